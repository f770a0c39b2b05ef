"""Which studies exist, and the study instances a ledger holds rows of."""

from __future__ import annotations

import json
from typing import Any

from pas_orchestrator.ledger.records import HypRec, Snapshot
from pas_orchestrator.studies import STUDY_PREFIX, Study, StudyError, is_study
from pas_orchestrator.studies.ablation import Ablation
from pas_orchestrator.studies.baselines import Baselines
from pas_orchestrator.studies.distill import FeatureDistill
from pas_orchestrator.studies.teacher_bn import TeacherBN
from pas_orchestrator.studies.transfer import Transfer

NAMES = ("ablation", "baselines", "distill", "teacher-bn", "transfer")


def make_study(name: str, iteration: int, definition: dict[str, Any], op: str | None = None,
               weight: float | None = None) -> Study:
    """``definition``: the search's recorded definition (its distill settings); ``op`` and ``weight``: the
    distill study's hypothesis and feature-loss weight."""
    distill = definition.get("distill", {})
    if name == "ablation":
        return Ablation(iteration)
    if name == "teacher-bn":
        return TeacherBN(iteration, str(distill.get("teacher_bn", "train")))
    if name == "distill":
        return FeatureDistill(iteration, op or "l", 1.0 if weight is None else weight,
                              float(distill.get("feature_weight", 0.0)))
    if name == "baselines":
        return Baselines()
    if name == "transfer":  # its table only: running it needs its definition (pas study transfer --job)
        return Transfer(op or "?")
    raise StudyError(f"no study {name!r} (studies: {', '.join(NAMES)})")


def study_of(h: HypRec, snap: Snapshot) -> Study:
    """The study instance a row of kind study-NAME belongs to."""
    name = h.kind.removeprefix(STUDY_PREFIX)
    if name == "transfer":
        return Transfer(h.op.split(".")[1])
    op, _, variant = h.op.partition(".")
    weight = float(variant.split("@", 1)[1]) if "@" in variant else None
    return make_study(name, h.iteration, json.loads(snap.search.definition), op, weight)


def studies_in(snap: Snapshot) -> list[Study]:
    """Every study instance with rows in the ledger, in the order they were planned."""
    out: list[Study] = []
    for h in snap.hypotheses:
        if is_study(h.kind) and not any(s.owns(h) for s in out):
            out.append(study_of(h, snap))
    return out
