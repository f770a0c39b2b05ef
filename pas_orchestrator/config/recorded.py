"""A search definition as its ledger records it: what a resumed search must match (``definition_hash``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from pas_models.data.formats import hashed_data
from pas_models.train.task import ACCEL_KEYS, recorded_recipe
from pas_orchestrator.config.search import CANDIDATE_RUNGS, SearchDef


def definition_hash(search: SearchDef) -> str:
    return hashlib.sha256(json.dumps(hashed_definition(search), sort_keys=True, default=str).encode()).hexdigest()[:16]


def hashed_definition(search: SearchDef) -> dict[str, Any]:
    """What ``definition_hash`` hashes: the recorded definition, its data's backend ``auto`` read as ``decord``
    (recorded as written; hashed as by a pas from before ``auto``, whose searches still resume), without the
    recipes' ``ACCEL_KEYS`` (how steps run, not what they train: switched on a resume, jobs submitted after it
    run with the new setting)."""
    d = without_accel(definition_dict(search))
    d["data"] = hashed_data(d["data"])
    return d


def without_accel(definition: dict[str, Any]) -> dict[str, Any]:
    """A recorded definition (a search's or a study's) without its recipes' ``ACCEL_KEYS``: what a resume
    compares."""
    d = json.loads(json.dumps(definition))
    for recipe in (d.get("recipe"), (d.get("base") or {}).get("recipe")):
        if isinstance(recipe, dict):
            for key in ACCEL_KEYS:
                recipe.pop(key, None)
    return d


def definition_dict(search: SearchDef) -> dict[str, Any]:
    """The search definition as recorded in the ledger (what a resume must match)."""
    d = asdict(search)
    d.pop("source")
    # keys added after searches were started, left out at their default so those still resume
    if d["tucker"]["ranks"] == "flops":
        del d["tucker"]["ranks"]
    if d["eval"]["latency_rounds"] == 3:
        del d["eval"]["latency_rounds"]
    for key in ("halving", "budget", "gradient", "dataset_size", "ties"):
        if d[key] is None:
            del d[key]
    if d["strategy"] == "coordinate_descent":
        del d["strategy"]
    if d["replicas"] == 1:
        del d["replicas"]
    for key, default in (("teacher_dropout", False), ("feature_loss", "mse")):
        if d["distill"][key] == default:
            del d["distill"][key]
    d["recipe"] = recorded_recipe(d["recipe"])
    if d["base"]["recipe"] is not None:
        d["base"]["recipe"] = recorded_recipe(d["base"]["recipe"])
    return json.loads(json.dumps(d, default=str))


def recorded_rungs(definition: dict[str, Any]) -> int | None:
    """The rungs a recorded definition trains its hypotheses in (halving, or a gradient search's candidates), None
    when they train to the end (``SearchDef.candidate_halving``, read from the ledger's record)."""
    if definition.get("halving"):
        return int(definition["halving"]["rungs"])
    return CANDIDATE_RUNGS if definition.get("strategy") == "gradient" else None
