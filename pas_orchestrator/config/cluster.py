"""Cluster profiles: ``cluster_profiles/NAME.yaml`` -> a validated, frozen ``ClusterProfile``.

``executor: local`` runs every job as a local subprocess through submitit's local executor
(at most ``max_jobs`` at once); ``executor: slurm`` submits one SLURM array per iteration
through submitit with the ``slurm`` resources, optionally overridden per backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pas_models.errors import PasError
from pas_models.presets import PRESETS
from pas_models.typed_data import from_data
from pas_orchestrator.config.yamlfile import load_mapping, one_of, require
from pas_orchestrator.errors import ConfigError

EXECUTORS = ("local", "slurm")
PROFILE_DIR = Path(__file__).resolve().parents[2] / "cluster_profiles"


@dataclass(frozen=True)
class Resources:
    """What one hypothesis gets: ``nodes`` x ``tasks_per_node`` processes (one per GPU)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    nodes: int = 1
    gpus_per_node: int = 0
    gres: str | None = None  # e.g. "gpu:4": ask for GPUs with --gres (some sites) instead of --gpus-per-node
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    mem_gb: float | None = None
    constraint: str | None = None
    exclusive: bool = False
    max_array_size: int = 1000  # at most this many tasks per array (SLURM MaxArraySize); more: several arrays
    array_parallelism: int | None = None  # %N: at most N tasks of an array run at once
    qos_by_nodes: dict[int, str] = field(default_factory=dict)  # e.g. {16: normal, 256: big}: first key >= nodes
    signal_delay_s: int = 120  # USR2 this long before the time limit: checkpoint and requeue
    max_requeues: int = 20  # time limits / preemptions one attempt may requeue itself through (submitit)
    additional: dict[str, str] = field(default_factory=dict)  # other sbatch options, e.g. {gres-flags: ...}

    def effective_qos(self) -> str | None:
        for max_nodes in sorted(self.qos_by_nodes):
            if self.nodes <= max_nodes:
                return self.qos_by_nodes[max_nodes]
        return self.qos


def _one_gpu(gres: str | None) -> str | None:
    """"gpu:4" / "gpu:v100:4" -> the same kind, one."""
    if not gres:
        return gres
    parts = gres.split(":")
    return ":".join([*parts[:-1], "1"]) if len(parts) > 1 and parts[-1].isdigit() else gres


def measure_resources(res: Resources) -> Resources:
    """What a latency measurement job gets (pas_models.measure): one process on one node, one GPU when the
    hypotheses get GPUs, the node to itself (``--exclusive``: nothing else runs beside it), at most 30
    minutes, never an array throttle."""
    return replace(res, nodes=1, tasks_per_node=1, gpus_per_node=min(res.gpus_per_node, 1), gres=_one_gpu(res.gres),
                   exclusive=True, time_min=min(res.time_min, 30), array_parallelism=None)


def single_gpu_resources(res: Resources) -> Resources:
    """What a teacher cache shard job gets (pas_models.teacher_cache): one process on one node with one GPU
    when the hypotheses get GPUs (B in inference: no DDP), the profile's time limit, shards as an array."""
    return replace(res, nodes=1, tasks_per_node=1, gpus_per_node=min(res.gpus_per_node, 1), gres=_one_gpu(res.gres),
                   exclusive=False)  # one GPU of a node: the node's others stay for other jobs


@dataclass(frozen=True)
class _RawProfile:
    name: str
    executor: str
    slurm: dict[str, Any] = field(default_factory=dict)
    backbones: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-backbone resource overrides
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load, conda activate, ...)
    env: dict[str, str] = field(default_factory=dict)  # exported in each job (NCCL settings, ...)
    max_jobs: int = 2  # local executor: jobs at once
    poll_seconds: float = 60.0
    python: str | None = None  # interpreter on the compute nodes (default: this one)
    # training throughput in GFLOP/s per GPU (per process without GPUs), for `pas search --dry-run`'s
    # expected compute until the search's own jobs measured one
    throughput_gflops: float | None = None


@dataclass(frozen=True)
class ClusterProfile:
    name: str
    executor: str
    resources: Resources
    backbones: dict[str, Resources]
    setup: tuple[str, ...]
    env: dict[str, str]
    max_jobs: int
    poll_seconds: float
    python: str | None
    throughput_gflops: float | None = None
    source: str = ""

    def resources_for(self, backbone: str) -> Resources:
        return self.backbones.get(backbone, self.resources)


def resolve_profile(name_or_path: str) -> Path:
    """``marconi100`` -> cluster_profiles/marconi100.yaml (shipped); a path is taken as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    shipped = PROFILE_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        known = sorted(q.stem for q in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown cluster {name_or_path!r}; shipped profiles: {', '.join(known)} "
                          "(or give the path of a profile YAML)")
    return shipped


def load_profile(name_or_path: str) -> ClusterProfile:
    path = resolve_profile(name_or_path)
    raw = load_mapping(path, "cluster profile")
    return profile_from_dict(raw, str(path))


def _resources(data: dict[str, Any], where: str, base: Resources | None = None) -> Resources:
    try:
        if base is None:
            res = from_data(Resources, data, where, ConfigError)
        else:  # a partial override of the profile's resources
            valid = [f.name for f in fields(Resources)]
            unknown = sorted(set(data) - set(valid))
            require(not unknown, where,
                    f"unknown key(s) {', '.join(map(str, unknown))}; valid keys: {', '.join(valid)}")
            merged = {f.name: getattr(base, f.name) for f in fields(Resources)} | data
            res = from_data(Resources, merged, where, ConfigError)
    except PasError as exc:
        raise ConfigError(str(exc)) from exc
    for key in ("time_min", "nodes", "tasks_per_node", "cpus_per_task", "max_array_size"):
        require(getattr(res, key) >= 1, f"{where}.{key}", f"must be >= 1, got {getattr(res, key)}")
    require(res.gpus_per_node >= 0, f"{where}.gpus_per_node", "must be >= 0")
    if res.gpus_per_node:
        require(res.tasks_per_node == res.gpus_per_node, f"{where}.tasks_per_node",
                f"must equal gpus_per_node ({res.gpus_per_node}): one process per GPU")
    require(res.signal_delay_s >= 5, f"{where}.signal_delay_s", "must be >= 5 seconds (time to checkpoint)")
    require(res.max_requeues >= 0, f"{where}.max_requeues", "must be >= 0")
    return res


def profile_from_dict(raw: dict[str, Any], where: str) -> ClusterProfile:
    try:
        r = from_data(_RawProfile, raw, f"{where}:", ConfigError)
    except PasError as exc:
        raise ConfigError(str(exc)) from exc
    one_of(r.executor, EXECUTORS, f"{where}: executor")
    res = _resources(r.slurm, f"{where}: slurm")
    if r.executor == "slurm":
        require(res.partition is not None, f"{where}: slurm.partition", "required with executor: slurm")
    backbones = {}
    for name, override in r.backbones.items():
        one_of(name, tuple(sorted(PRESETS)), f"{where}: backbones")
        backbones[name] = _resources(override, f"{where}: backbones.{name}", base=res)
    require(r.max_jobs >= 1, f"{where}: max_jobs", "must be >= 1")
    require(r.poll_seconds > 0, f"{where}: poll_seconds", "must be > 0")
    if r.throughput_gflops is not None:
        require(r.throughput_gflops > 0, f"{where}: throughput_gflops", "must be > 0 (GFLOP/s per GPU) or left out")
    return ClusterProfile(r.name, r.executor, res, backbones, tuple(r.setup), dict(r.env), r.max_jobs,
                          r.poll_seconds, r.python, r.throughput_gflops, source=where)

