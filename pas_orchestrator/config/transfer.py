"""A transfer study's definition (``pas study transfer --job jobs/transfer_NAME.yaml``): the target dataset,
its splits, the fine-tuning recipe and the evaluation (paper Sec. 4.4, Table 5).

    transfer: ucf101                  # the study's name (its rows, report files)
    data: {format: ucf101, root: ..., annotations: {dir: ...}, num_classes: 101}   # `split` is set per row
    splits: [1, 2, 3]
    recipe: {...}                     # Sec. 4.2's recipe; its lr is divided by lr_divisor (fine-tuning)
    lr_divisor: 10
    eval: {clips: 10, crops: 1}
    short_videos: 0.0                 # the share of a split's videos that may be shorter than a network's clip
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pas_models.data.formats import DatasetConfig, dataset_config_from_dict
from pas_models.errors import PasError
from pas_models.train.task import EvalConfig, Recipe, recorded_recipe
from pas_models.typed_data import from_data
from pas_orchestrator.config.recipe_checks import check_gpu_decode, check_recipe
from pas_orchestrator.config.yamlfile import load_mapping, require
from pas_orchestrator.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,24}$")


@dataclass(frozen=True)
class _RawTransfer:
    transfer: str
    data: dict[str, Any]
    recipe: Recipe
    splits: tuple[int, ...] = (1, 2, 3)
    lr_divisor: float = 10.0
    eval: EvalConfig = field(default_factory=EvalConfig)
    short_videos: float = 0.0


@dataclass(frozen=True)
class TransferDef:
    name: str
    data: DatasetConfig  # split: the first of ``splits`` (each row sets its own)
    splits: tuple[int, ...]
    recipe: Recipe
    lr_divisor: float
    eval: EvalConfig
    short_videos: float
    source: str

    def split(self, k: int) -> DatasetConfig:
        return replace(self.data, split=k)

    def recorded(self) -> dict[str, Any]:
        """What the study records on first run (a resume must match it)."""
        from dataclasses import asdict

        d = asdict(self)
        d.pop("source")
        d["recipe"] = recorded_recipe(d["recipe"])
        return d


def load_transfer(path: str | Path) -> TransferDef:
    p = Path(path)
    raw = load_mapping(p, "transfer study definition")
    where = str(p)
    try:
        r = from_data(_RawTransfer, raw, f"{where}:", ConfigError)
        data = dataset_config_from_dict(r.data, where=f"{where}: data")
    except PasError as exc:
        raise ConfigError(str(exc)) from exc
    require(bool(NAME_RE.match(r.transfer)), f"{where}: transfer",
            f"the study's name: 1-24 letters, digits, '_' or '-', got {r.transfer!r}")
    require(data.num_classes is not None, f"{where}: data.num_classes", "required (it sizes the new classifier)")
    require(len(r.splits) >= 1 and len(set(r.splits)) == len(r.splits), f"{where}: splits",
            f"a list of distinct splits, got {list(r.splits)}")
    if data.format in ("ucf101", "hmdb51"):
        require(all(k in (1, 2, 3) for k in r.splits), f"{where}: splits",
                f"{data.format} has splits 1, 2, 3; got {list(r.splits)}")
    else:
        require(list(r.splits) == [1], f"{where}: splits", f"a {data.format} dataset has one split: use [1]")
    require(r.lr_divisor >= 1, f"{where}: lr_divisor", f"must be >= 1, got {r.lr_divisor}")
    require(0 <= r.short_videos < 1, f"{where}: short_videos", f"must be in [0, 1), got {r.short_videos}")
    check_recipe(r.recipe, f"{where}: recipe")
    if r.recipe.gpu_decode:
        check_gpu_decode(data, f"{where}: recipe.gpu_decode")
    if not Path(data.root).is_absolute():
        data = replace(data, root=str((p.parent / data.root).resolve()))
    return TransferDef(r.transfer, replace(data, split=r.splits[0]), tuple(r.splits), r.recipe, r.lr_divisor, r.eval,
                       r.short_videos, where)
