"""Multi-view evaluation: softmax averaged over every clip x crop of a video; top-1 / top-5 in percent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Subset

from pas_models.data.dataset import ClipDataset, ClipLoader, collate_clips
from pas_models.data.formats import DatasetConfig, Sample
from pas_models.predictions import Predictions
from pas_models.spec import ArchSpec
from pas_models.train.task import EvalConfig


@dataclass(frozen=True)
class EvalResult:
    top1: float  # percent of evaluated videos
    top5: float
    videos: int  # videos evaluated (every view readable)
    skipped: int  # videos left out: one of their views (or the file) is unreadable
    skipped_ids: tuple[int, ...] = ()  # their indices in ``samples``
    predictions: Predictions | None = None  # per evaluated video: its label, the top classes, their probabilities


@torch.no_grad()
def evaluate(model: nn.Module, samples: Sequence[Sample], spec: ArchSpec, data: DatasetConfig, cfg: EvalConfig,
             device: torch.device, world: int = 1, rank: int = 0, num_workers: int = 0,
             decode_device: str = "cpu") -> EvalResult:
    """Each rank evaluates the videos ``v`` with ``v % world == rank``; sums are all-reduced, so every
    video counts exactly once however many ranks there are. A video with any unreadable view is left
    out whole (``skipped``), never scored on the views that happened to decode. ``decode_device``: a CUDA
    device decodes and cuts the views there (``ClipDataset``; no workers then)."""
    ds = ClipDataset(samples, spec, train=False, clips=cfg.clips, crops=cfg.crops, backend=data.backend,
                     mean=data.mean, std=data.std, decode_device=decode_device)
    views = cfg.clips * cfg.crops
    mine = [i for i in range(len(ds)) if (i // views) % world == rank]
    # its own generator: an evaluation between steps (a quick one every N epochs) leaves torch's global
    # generator (dropout's) where it was, as a resumed run that did not evaluate there has it
    workers = 0 if decode_device != "cpu" else num_workers
    loader = ClipLoader(Subset(ds, mine), batch_size=cfg.batch, num_workers=workers, collate_fn=collate_clips,
                        generator=torch.Generator().manual_seed(0))
    probs = torch.zeros(len(samples), spec.num_classes, dtype=torch.float64, device=device)
    seen = torch.zeros(len(samples), dtype=torch.float64, device=device)
    failed = torch.zeros(len(samples), dtype=torch.float64, device=device)  # invalid views per video
    was_training = model.training
    model.eval()
    for batch in loader:
        valid = batch["valid"].to(device)
        p = model(batch["student"].to(device, non_blocking=True)).float().softmax(1).double()
        idx = batch["video"].to(device)
        probs.index_add_(0, idx, p * valid[:, None])
        seen.index_add_(0, idx, valid.double())
        failed.index_add_(0, idx, (~valid).double())
    model.train(was_training)
    if world > 1:
        dist.all_reduce(probs)
        dist.all_reduce(seen)
        dist.all_reduce(failed)
    labels = torch.tensor([s.label for s in samples], device=device)
    ok = (seen > 0) & (failed == 0)  # a partially unreadable video is left out whole, as in training
    k = min(5, spec.num_classes)
    top = probs[ok].topk(k, dim=1).indices
    hit1 = (top[:, 0] == labels[ok]).double()
    hit5 = (top == labels[ok][:, None]).any(1).double()
    n = int(ok.sum())
    kept = probs[ok] / seen[ok][:, None]  # the views' mean
    best = kept.topk(k, dim=1)
    predictions = Predictions(
        len(samples), ok.nonzero().flatten().cpu().numpy().astype("int32"), labels[ok].cpu().numpy().astype("int32"),
        best.indices.cpu().numpy().astype("int32"), best.values.cpu().numpy().astype("float16"),
        kept.gather(1, labels[ok][:, None]).flatten().cpu().numpy().astype("float16"))
    return EvalResult(top1=100 * hit1.mean().item() if n else 0.0, top5=100 * hit5.mean().item() if n else 0.0,
                      videos=n, skipped=len(samples) - n,
                      skipped_ids=tuple(int(i) for i in (~ok).nonzero().flatten()), predictions=predictions)
