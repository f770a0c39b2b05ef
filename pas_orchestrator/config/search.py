"""Search definitions: ``jobs/NAME.yaml`` -> a validated, frozen ``SearchDef``.

Every key is checked: unknown keys, wrong types, missing files and bad values
are ConfigErrors naming the file and the key (``jobs/demo.yaml: recipe.lr``)
and the valid choices. Relative paths are relative to the working directory
(where ``pas``/``make`` runs), like ``runs/``. See jobs/README.md for every key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pas_models.data.formats import DatasetConfig, dataset_config_from_dict, load_dataset_config
from pas_models.errors import PasError
from pas_models.halving import Rung
from pas_models.nas.result import GradientConfig
from pas_models.presets import PRESETS, preset
from pas_models.reductions import DEFAULT_GAMMAS, OPERATORS, check_gamma
from pas_models.spec import ArchSpec
from pas_models.train.task import (
    Distill,
    EvalConfig,
    Recipe,
)
from pas_models.tucker_options import RANK_RULES, TuckerOptions
from pas_models.typed_data import from_data
from pas_orchestrator.config.recipe_checks import check_distill, check_gpu_decode, check_recipe
from pas_orchestrator.config.synthsection import SynthSection, check_synthetic
from pas_orchestrator.config.yamlfile import load_mapping, one_of, require
from pas_orchestrator.errors import ConfigError

SELECTIONS = ("auto", "paper", "eq1", "eq3")
STRATEGIES = ("coordinate_descent", "gradient")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class BaseSection:
    """Where the base network B comes from: an imported ``checkpoint`` (a pas ``model.pt``, or a
    torchvision state dict for r2plus1d_18) or ``train: true`` (iteration 0 trains it with CE)."""

    checkpoint: str | None = None
    train: bool = False
    recipe: Recipe | None = None  # the base training recipe; default: the search's recipe


@dataclass(frozen=True)
class StopSection:
    target_gflops: float | None = None  # stop once the winner's GFLOPs per view is at or below this


@dataclass(frozen=True)
class FinetuneSection:
    enabled: bool = True  # initialise from the parent when weight shapes allow (paper Sec. 3.4)
    lr_divisor: float = 10.0


TuckerSection = TuckerOptions  # search key ``tucker``: operator k's stages and rank rule


@dataclass(frozen=True)
class RungEval:
    """The cheap evaluation at the end of a rung before the last (the last rung uses ``eval``)."""

    clips: int = 1
    crops: int = 1


@dataclass(frozen=True)
class HalvingSection:
    """Successive halving inside each iteration (pas_models.halving): ``rungs`` prefixes of the full
    schedule, the best ceil(n / eta) of each rung go on. Absent or null: every hypothesis trains to the end."""

    eta: int = 3
    rungs: int = 3
    eval: RungEval = field(default_factory=RungEval)

    def rung(self, k: int) -> Rung:
        return Rung(k, self.rungs, self.eta, self.eval.clips, self.eval.crops)


@dataclass(frozen=True)
class TiesSection:
    """``ties``: the selection's winner shares the iteration with every hypothesis whose top-1 is not
    distinguishable from its own on the same test videos (``rule: paired``: the exact McNemar test at
    ``level``); among them the one that costs the fewest GFLOPs wins, then the selection's order. Absent or
    null: the selection's order decides alone, as the paper's (pas_orchestrator.comparisons)."""

    rule: str = "paired"
    level: float = 0.05


@dataclass(frozen=True)
class BudgetSection:
    """The most compute the search may use: once its attempts together used ``gpu_hours`` (GPU-hours on a GPU
    cluster; hours x processes, CPU-h, where jobs have no GPU), nothing new is submitted, what runs finishes,
    and the search ends with the best network so far."""

    gpu_hours: float


CANDIDATE_RUNGS = 2  # strategy gradient without halving: a candidate's first rung, then the best one to the end


@dataclass(frozen=True)
class DatasetSize:
    """How many videos the dataset has (``dataset_size``): what `pas search --dry-run` estimates from while the
    dataset lists cannot be read (data not staged yet); once they can, the lists are counted instead."""

    train: int
    val: int


@dataclass(frozen=True)
class _RawSearch:
    name: str
    backbone: str
    base: BaseSection
    data: dict[str, Any] | None = None
    synthetic: SynthSection | None = None
    operators: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GAMMAS))
    iterations: int = 5
    stop: StopSection = field(default_factory=StopSection)
    selection: str = "auto"
    ratio_tolerance: float = 0.1
    distill: Distill = field(default_factory=Distill)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    tucker: TuckerSection = field(default_factory=TuckerSection)
    recipe: Recipe = field(default_factory=Recipe)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    max_retries: int = 2
    baselines: bool = False
    halving: HalvingSection | None = None
    budget: BudgetSection | None = None
    strategy: str = "coordinate_descent"
    gradient: GradientConfig | None = None
    dataset_size: DatasetSize | None = None
    ties: TiesSection | None = None
    replicas: int = 1


@dataclass(frozen=True)
class SearchDef:
    """A whole search. ``operators`` keeps the file's order (the order hypotheses are listed in).
    ``selection``: eq3 (max top-1), eq1 (cost saved per accuracy lost), auto: eq3 when the
    hypotheses' cost ratios agree within ``ratio_tolerance`` (relative), else eq1; or paper: eq1 once a
    hypothesis sees fewer frames than its network's temporal stride, else eq3 (pas_orchestrator.selection)."""

    name: str
    backbone: str
    base: BaseSection
    data: DatasetConfig
    synthetic: SynthSection | None
    operators: dict[str, float]
    iterations: int
    stop: StopSection
    selection: str
    ratio_tolerance: float
    distill: Distill
    finetune: FinetuneSection
    tucker: TuckerSection
    recipe: Recipe
    eval: EvalConfig
    seed: int
    max_retries: int
    baselines: bool
    halving: HalvingSection | None = None
    budget: BudgetSection | None = None
    strategy: str = "coordinate_descent"  # or gradient (pas_orchestrator/strategies/gradient.py)
    gradient: GradientConfig | None = None
    dataset_size: DatasetSize | None = None  # for a dry run before the lists can be read
    ties: TiesSection | None = None  # noise-aware selection (opt-in): indistinguishable hypotheses tie
    # independent trainings of B and of every hypothesis, replica r with seed + r (pas_orchestrator/replicas.py)
    replicas: int = 1
    source: str = ""  # the file it was read from

    def candidate_halving(self) -> HalvingSection:
        """strategy gradient: how a target's candidates are trained: ``halving`` when set, else two rungs,
        the first after ``gradient.candidate_fraction`` of the schedule (eta = 1 / fraction)."""
        if self.halving is not None:
            return self.halving
        assert self.gradient is not None
        return HalvingSection(eta=round(1 / self.gradient.candidate_fraction), rungs=CANDIDATE_RUNGS)

    def base_spec(self) -> ArchSpec:
        return preset(self.backbone, self.data.num_classes)

    @property
    def base_replicas(self) -> int:
        """B's trainings: one per replica, one B when it is imported (every replica distils from it)."""
        return self.replicas if self.base.checkpoint is None else 1

    @property
    def base_recipe(self) -> Recipe:
        return self.base.recipe or self.recipe


def load_search(path: str | Path) -> SearchDef:
    """Read and validate a search definition. The synthetic dataset is not generated here
    (``config.synthetic.ensure_data`` does that) but its config must then exist once generated."""
    p = Path(path)
    raw = load_mapping(p, "search definition")
    return search_from_dict(raw, str(p))


def search_from_dict(raw: dict[str, Any], where: str) -> SearchDef:
    try:
        r = from_data(_RawSearch, raw, f"{where}:", ConfigError)
    except PasError as exc:
        raise ConfigError(str(exc)) from exc
    _check(r, where)
    data = _data_config(r, where)
    cache = r.distill.cache
    if cache is not None and cache.top_k is not None and data.num_classes is not None:
        require(cache.top_k <= data.num_classes, f"{where}: distill.cache.top_k",
                f"{cache.top_k} exceeds the dataset's {data.num_classes} classes (null keeps every logit)")
    for key, rc in (("recipe", r.recipe), ("base.recipe", r.base.recipe)):
        if rc is not None and rc.gpu_decode:
            check_gpu_decode(data, f"{where}: {key}.gpu_decode")
    values = {f.name: getattr(r, f.name) for f in fields(_RawSearch)}
    values["data"] = data
    values["operators"] = {k: check_gamma(k, g) for k, g in r.operators.items()}
    return SearchDef(**values, source=where)


def _data_config(r: _RawSearch, where: str) -> DatasetConfig:
    if r.data is None:
        require(r.synthetic is not None, where, "missing key data (a dataset) or synthetic (generate one)")
        assert r.synthetic is not None
        root = Path(r.synthetic.root)
        # what `pas data synth` writes (checked again once it exists)
        return DatasetConfig(format="list", root=str(root.resolve()),
                             annotations={"train": "train.txt", "val": "val.txt"},
                             num_classes=r.synthetic.classes, hflip=False)
    if "file" in r.data:
        require(set(r.data) == {"file"}, f"{where}: data",
                "give either file: DATASET.yaml or the dataset keys, not both")
        try:
            cfg = load_dataset_config(str(r.data["file"]))
        except PasError as exc:
            raise ConfigError(f"{where}: data.file: {exc}") from exc
        require(cfg.num_classes is not None, f"{where}: data.file", f"{r.data['file']} must set num_classes")
        return cfg
    try:
        cfg = dataset_config_from_dict(r.data, where=f"{where}: data")
    except PasError as exc:
        raise ConfigError(str(exc)) from exc
    require(Path(cfg.root).is_dir(), f"{where}: data.root", f"folder {cfg.root} does not exist")
    require(cfg.num_classes is not None, f"{where}: data.num_classes", "required (it sizes the classifier)")
    return replace(cfg, root=str(Path(cfg.root).resolve()))


def _check(r: _RawSearch, where: str) -> None:
    w = f"{where}:"
    require(bool(NAME_RE.match(r.name)), f"{w} name",
            f"{r.name!r}: use 1-64 letters, digits, '.', '_' or '-' (it names folders and SLURM jobs)")
    one_of(r.backbone, tuple(sorted(PRESETS)), f"{w} backbone")
    require(r.base.train != (r.base.checkpoint is not None), f"{w} base",
            "give exactly one of checkpoint: PATH (import B) or train: true (train B first)")
    if r.base.checkpoint is not None:
        require(Path(r.base.checkpoint).is_file(), f"{w} base.checkpoint", f"file {r.base.checkpoint} not found")
    if r.base.recipe is not None:
        check_recipe(r.base.recipe, f"{w} base.recipe")
    require(bool(r.operators), f"{w} operators", f"give at least one of {', '.join(OPERATORS)}")
    for key, gamma in r.operators.items():
        one_of(key, tuple(OPERATORS), f"{w} operators")
        try:
            check_gamma(key, gamma)
        except PasError as exc:
            raise ConfigError(f"{w} operators.{key}: {exc}") from exc
    if r.tucker.stages is not None:
        n = len(preset(r.backbone).stage_blocks)
        require(bool(r.tucker.stages) and all(1 <= s <= n for s in r.tucker.stages), f"{w} tucker.stages",
                f"residual stages of {r.backbone} are 1..{n}, got {list(r.tucker.stages)} (null: all)")
    one_of(r.tucker.ranks, RANK_RULES, f"{w} tucker.ranks")
    require(r.iterations >= 1, f"{w} iterations", f"must be >= 1, got {r.iterations}")
    if r.stop.target_gflops is not None:
        require(r.stop.target_gflops > 0, f"{w} stop.target_gflops", "must be > 0 (GFLOPs per view) or null")
    one_of(r.selection, SELECTIONS, f"{w} selection")
    require(0 <= r.ratio_tolerance < 1, f"{w} ratio_tolerance", "must be in [0, 1) (relative spread)")
    check_distill(r.distill, f"{w} distill")
    require(r.finetune.lr_divisor >= 1, f"{w} finetune.lr_divisor", "must be >= 1")
    check_recipe(r.recipe, f"{w} recipe")
    _check_eval(r, w)
    require(r.max_retries >= 0, f"{w} max_retries", "must be >= 0")
    _check_sections(r, w)
    one_of(r.strategy, STRATEGIES, f"{w} strategy")
    if r.strategy == "gradient":
        check_gradient(r, w)
    else:
        require(r.gradient is None, f"{w} gradient",
                "is read only with strategy: gradient (set it, or remove gradient)")
    if r.synthetic is not None:
        check_synthetic(r.synthetic, w)


def _check_eval(r: _RawSearch, w: str) -> None:
    require(r.eval.clips >= 1, f"{w} eval.clips", "must be >= 1")
    require(r.eval.crops in (1, 3), f"{w} eval.crops", f"must be 1 or 3, got {r.eval.crops}")
    require(r.eval.batch >= 1, f"{w} eval.batch", "must be >= 1")
    require(r.eval.latency_passes >= 0, f"{w} eval.latency_passes", "must be >= 0 (0: latency not measured)")
    require(r.eval.latency_rounds >= 1, f"{w} eval.latency_rounds", "must be >= 1")
    require(len(r.eval.latency_batches) >= 1 and all(b >= 1 for b in r.eval.latency_batches),
            f"{w} eval.latency_batches", "must be a list of batch sizes >= 1, e.g. [1, 8]")


def _check_sections(r: _RawSearch, w: str) -> None:
    """The optional sections: ties, replicas, dataset_size, budget, halving."""
    require(r.replicas >= 1, f"{w} replicas", f"must be an integer >= 1 (1: one training each), got {r.replicas}")
    require(r.replicas == 1 or r.strategy == "coordinate_descent", f"{w} replicas",
            "replicas apply to strategy coordinate_descent (a gradient search's targets are not replicated): "
            "set replicas: 1")
    if r.ties is not None:
        one_of(r.ties.rule, ("paired",), f"{w} ties.rule")
        require(0 < r.ties.level < 1, f"{w} ties.level", f"must be a significance level in (0, 1), got {r.ties.level}")
    if r.dataset_size is not None:
        for key in ("train", "val"):
            n = getattr(r.dataset_size, key)
            require(n > 0, f"{w} dataset_size.{key}", f"must be a number of videos > 0, got {n}")
    if r.budget is not None:
        require(math.isfinite(r.budget.gpu_hours) and r.budget.gpu_hours > 0, f"{w} budget.gpu_hours",
                f"must be a number of hours > 0, got {r.budget.gpu_hours} (no budget: leave the key out)")
    if r.halving is not None:
        h = r.halving
        require(h.eta >= 2, f"{w} halving.eta", f"must be an integer >= 2 (the best 1/eta go on), got {h.eta}")
        require(h.rungs >= 2, f"{w} halving.rungs",
                f"must be an integer >= 2, got {h.rungs} (no halving: leave the key out or set halving: null)")
        require(h.eval.clips >= 1, f"{w} halving.eval.clips", "must be >= 1")
        require(h.eval.crops in (1, 3), f"{w} halving.eval.crops", f"must be 1 or 3, got {h.eval.crops}")


def check_gradient(r: _RawSearch, w: str) -> None:
    """strategy: gradient (pas_models.nas): one supernet per target GFLOPs, then its candidates."""
    g = r.gradient
    require(g is not None, f"{w} gradient", "strategy gradient needs gradient: {targets_gflops: [...], ...}")
    assert g is not None
    require(len(g.targets_gflops) >= 1 and all(math.isfinite(t) and t > 0 for t in g.targets_gflops),
            f"{w} gradient.targets_gflops", f"must be a list of GFLOPs per view > 0, got {list(g.targets_gflops)}")
    require(len(set(g.targets_gflops)) == len(g.targets_gflops), f"{w} gradient.targets_gflops",
            "a target is listed twice")
    require(g.epochs >= 1, f"{w} gradient.epochs", f"must be >= 1, got {g.epochs}")
    require(g.cycles >= 1, f"{w} gradient.cycles", f"must be >= 1 (1: no diversity mechanism), got {g.cycles}")
    require(g.arch_lr > 0 and g.penalty >= 0, f"{w} gradient", "arch_lr must be > 0 and penalty >= 0")
    require(0 < g.tau_min <= g.tau_max, f"{w} gradient.tau_min", "must be in (0, tau_max]")
    require(0 < g.holdout < 1, f"{w} gradient.holdout", f"must be in (0, 1), got {g.holdout}")
    require(0 <= g.warmup < 1, f"{w} gradient.warmup", f"must be in [0, 1), got {g.warmup}")
    require(g.lr_divisor >= 1, f"{w} gradient.lr_divisor", f"must be >= 1 (1: the recipe's lr), got {g.lr_divisor}")
    require(g.grad_clip >= 0, f"{w} gradient.grad_clip", f"must be >= 0 (0: not clipped), got {g.grad_clip}")
    require(r.recipe.compile == "none", f"{w} recipe.compile",
            "strategy gradient steps a different sampled network each step (torch.compile would recompile it "
            "each time): set compile: none (base.recipe may compile B's training)")
    require(g.candidate_init in ("pas", "supernet"), f"{w} gradient.candidate_init",
            f"must be pas or supernet, got {g.candidate_init!r}")
    inv = 1 / g.candidate_fraction if 0 < g.candidate_fraction < 1 else 0
    require(inv >= 2 and abs(inv - round(inv)) < 1e-6, f"{w} gradient.candidate_fraction",
            f"must be 1/n for an integer n >= 2 (0.5, 0.25, ...), got {g.candidate_fraction}")
    require(r.distill.cache is None, f"{w} distill.cache",
            "strategy gradient distils from the live teacher (each supernet step cuts its own view): remove "
            "distill.cache")
    require(r.distill.feature_weight == 0, f"{w} distill.feature_weight",
            "strategy gradient distils logits only: set feature_weight: 0")
    require(not r.baselines, f"{w} baselines", "strategy gradient has no \"without PAS\" baselines: set false")
