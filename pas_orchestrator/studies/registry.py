"""Which studies exist, and the study instances a ledger holds rows of."""

from __future__ import annotations

import json

from pas_orchestrator.ledger.records import HypRec, Snapshot
from pas_orchestrator.studies import STUDY_PREFIX, Study, StudyError, is_study
from pas_orchestrator.studies.ablation import Ablation
from pas_orchestrator.studies.teacher_bn import TeacherBN

NAMES = ("ablation", "teacher-bn")


def make_study(name: str, iteration: int, teacher_bn: str) -> Study:
    """``teacher_bn``: the search's distill.teacher_bn."""
    if name == "ablation":
        return Ablation(iteration)
    if name == "teacher-bn":
        return TeacherBN(iteration, teacher_bn)
    raise StudyError(f"no study {name!r} (studies: {', '.join(NAMES)})")


def searched_teacher_bn(snap: Snapshot) -> str:
    return str(json.loads(snap.search.definition).get("distill", {}).get("teacher_bn", "train"))


def study_of(h: HypRec, snap: Snapshot) -> Study:
    """The study instance a row of kind study-NAME belongs to."""
    return make_study(h.kind.removeprefix(STUDY_PREFIX), h.iteration, searched_teacher_bn(snap))


def studies_in(snap: Snapshot) -> list[Study]:
    """Every study instance with rows in the ledger, in the order they were planned."""
    out: list[Study] = []
    for h in snap.hypotheses:
        if is_study(h.kind) and not any(s.owns(h) for s in out):
            out.append(study_of(h, snap))
    return out
