"""The decode tables of bench_gpu.py: clips/s of B's training view decoded on the CPU (in the process, and
by N DataLoader workers) and on the GPU (NVDEC, in the process); the GPU's frames and views against the CPU's."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pas_models.data.backends import read_frames
from pas_models.data.dataset import ClipDataset, ClipLoader, collate_clips
from pas_models.data.formats import Sample
from pas_models.spec import ArchSpec

CLIPS_PER_VIDEO = 1000


def decoders_missing() -> str | None:
    """None where PyAV (the index, ``pas data prepare``) and torchcodec load here, else what is missing."""
    try:
        import av  # noqa: F401
    except ImportError as exc:
        return f"PyAV does not import ({exc})"
    from pas_models.data.torchcodec_reader import torchcodec_status

    version, why = torchcodec_status()
    return None if version is not None else f"torchcodec is {why}"


def gpu_decode_missing(path: Path) -> str | None:
    """None where NVDEC decodes ``path`` through torchcodec here, else why not."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    from pas_models.data.torchcodec_reader import TorchcodecReader, torchcodec_status

    if torchcodec_status()[0] is None:
        return f"torchcodec is {torchcodec_status()[1]}"
    reader = TorchcodecReader(str(path), "cuda")
    reader.close()
    return reader.cpu_by


def _dataset(paths: list[Path], spec: ArchSpec, device: str) -> ClipDataset:
    return ClipDataset([Sample(str(p), 0) for p in paths], spec, train=True, clips=CLIPS_PER_VIDEO, seed=0,
                       backend="torchcodec", decode_device=device)


def _order(n_videos: int, clips: int, offset: int) -> list[int]:
    return [(i % n_videos) * CLIPS_PER_VIDEO + (offset + i) % CLIPS_PER_VIDEO for i in range(clips)]


def in_process(paths: list[Path], spec: ArchSpec, device: str, clips: int, offset: int) -> float:
    """Clips/s of batches of 8 made in this process (decode, cut, normalise, collate; on ``device``)."""
    ds = _dataset(paths, spec, device)
    for i in _order(len(paths), 2, offset + clips):  # warm-up: imports, the packet index, the decoder
        ds[i]
    order = _order(len(paths), clips, offset)
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for k in range(0, clips, 8):
        collate_clips([ds[i] for i in order[k:k + 8]])
    if device != "cpu":
        torch.cuda.synchronize()
    return clips / (time.perf_counter() - start)


def workers(paths: list[Path], spec: ArchSpec, n: int, clips: int, offset: int) -> float:
    """Clips/s of a training loader with ``n`` workers decoding on the CPU, from its first batch on."""
    ds = _dataset(paths, spec, "cpu")
    loader = ClipLoader(ds, batch_size=8, sampler=_order(len(paths), clips + 8, offset), num_workers=n,
                        collate_fn=collate_clips, pin_memory=torch.cuda.is_available())
    it = iter(loader)
    next(it)
    start, got = time.perf_counter(), 0
    for batch in it:
        got += len(batch["label"])
    return got / (time.perf_counter() - start)


def decode_rates(sets: dict[str, list[Path]], spec: ArchSpec, worker_counts: list[int], gpu: bool, clips: int,
                 rounds: int) -> list[dict[str, Any]]:
    """Per video set and loader: median clips/s over interleaved rounds, and the spread."""
    cases: list[tuple[str, Callable[[list[Path], int], float]]] = [
        ("CPU, in the process", lambda p, o: in_process(p, spec, "cpu", clips, o))]
    cases += [(f"CPU, {n} workers", lambda p, o, n=n: workers(p, spec, n, clips, o)) for n in worker_counts]
    if gpu:
        cases.append(("GPU (NVDEC), in the process", lambda p, o: in_process(p, spec, "cuda", clips, o)))
    rates: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for name, paths in sets.items():
            for label, fn in cases[r % len(cases):] + cases[:r % len(cases)]:
                rates.setdefault((name, label), []).append(fn(paths, r * clips))
    rows = []
    for (name, label), got in rates.items():
        med = statistics.median(got)
        rows.append({"videos": name, "loader": label, "clips_per_s": med,
                     "spread": (max(got) - min(got)) / med if len(got) > 1 else 0.0, "rounds": len(got)})
    return rows


def _levels(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.float64)
    return {"mean": float(d.mean()), "p99": float(np.percentile(d, 99)), "max": float(d.max())}


def colour_rows(paths: list[Path], spec: ArchSpec) -> list[dict[str, Any]]:
    """The GPU's decoded frames and training views against the CPU's, in uint8 levels."""
    from pas_models.data.torchcodec_reader import TorchcodecReader

    rows = []
    for path in paths:
        reader = TorchcodecReader(str(path), "cuda")
        try:
            idx = list(range(0, min(reader.num_frames, 64), 4))
            gpu = reader.frames(idx)
        finally:
            reader.close()
        gpu = gpu.cpu().numpy() if isinstance(gpu, torch.Tensor) else gpu
        cpu = read_frames(path, idx, "torchcodec")
        rows.append({"video": path.name, "what": "decoded frames", **_levels(gpu, cpu)})
        cpu_ds, gpu_ds = (_dataset([path], spec, d) for d in ("cpu", "cuda"))
        std = 255 * torch.tensor(cpu_ds.std).view(3, 1, 1, 1)
        a = torch.stack([cpu_ds[i]["student"] * std for i in range(8)])
        b = torch.stack([gpu_ds[i]["student"].cpu() * std for i in range(8)])
        d = (a - b).abs().flatten().double()
        rows.append({"video": path.name, "what": "training views (8 clips)", "mean": float(d.mean()),
                     "p99": float(d.quantile(0.99)), "max": float(d.max())})
    return rows
