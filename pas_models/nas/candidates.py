"""A supernet job's candidates: at each learning-rate cycle's end, the most likely network within the target's
band (``most_likely_within``), its weights cut from the supernet (``candidate``)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from pas_models.layout import HypFiles
from pas_models.nas.cost import CostTable
from pas_models.nas.result import SupernetTask
from pas_models.nas.space import Arch, SearchSpace
from pas_models.nas.supernet import Supernet
from pas_models.train.checkpoint import save_checkpoint

CANDIDATE_SAMPLES = 4096
CANDIDATE_BAND = 0.8  # a candidate's GFLOPs are in [0.8, 1] x the target where the samples allow


def most_likely_within(probs: list[torch.Tensor], table: CostTable, target: float, seed: int = 0) -> Arch:
    """The candidate at the end of a cycle (pas's rule): among each decision's most likely choice and 4,096
    architectures sampled from the distribution (seeded), the most likely one whose GFLOPs are in [0.8, 1] x
    the target; if none is, the one closest to the target from below; if none is below, the smallest network.
    (Each decision's most likely choice alone ignores the cost: on the demo it left the candidates at up to
    twice their target.)"""
    logp = [torch.log(p.clamp_min(1e-12)) for p in probs]
    gen = torch.Generator().manual_seed(seed)
    drawn = torch.stack([torch.multinomial(p.float(), CANDIDATE_SAMPLES, replacement=True, generator=gen)
                         for p in probs], dim=1).tolist()
    archs = sorted({tuple(int(torch.argmax(p)) for p in probs), *(tuple(a) for a in drawn)})
    chosen = torch.tensor(archs, dtype=torch.long)
    loglik = sum((lp[chosen[:, i]] for i, lp in enumerate(logp)), torch.zeros(len(archs), dtype=logp[0].dtype))
    scored = list(zip(loglik.tolist(), table.gflops_of(archs), archs, strict=True))
    below = [x for x in scored if x[1] <= target]
    band = [x for x in below if x[1] >= CANDIDATE_BAND * target]
    if band:
        return max(band, key=lambda x: (x[0], x[1], x[2]))[2]
    if below:
        return max(below, key=lambda x: (x[1], x[0], x[2]))[2]
    return tuple(len(p) - 1 for p in probs)


def candidate(task: SupernetTask, space: SearchSpace, table: CostTable, supernet: Supernet,
               logits: list[torch.Tensor], cycle: int, files: HypFiles, main: bool) -> dict[str, Any]:
    probs = [F.softmax(lg.detach(), dim=0).double().cpu() for lg in logits]
    arch = most_likely_within(probs, table, task.target_gflops, seed=task.seed * 1_000_003 + cycle)
    child = space.derive(arch)
    path = files.candidate(space.code(arch), cycle)
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint({"model": supernet.state_of(child), "spec": child.to_json()}, path)
    return {"cycle": cycle, "arch": list(arch), "code": space.code(arch), "description": space.describe(arch),
            "gflops": table.gflops(arch), "expected_gflops": float(table.expected_gflops(probs)),
            "probability": float(math.prod(float(p[k]) for p, k in zip(probs, arch, strict=True))),
            "spec": child.to_dict(), "weights": str(path)}
