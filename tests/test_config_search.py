"""Search definitions: the shipped files load; every malformed case is an error naming the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pas_models.presets import preset
from pas_orchestrator.config.search import load_search
from pas_orchestrator.config.synthetic import ensure_data
from pas_orchestrator.errors import ConfigError

GOOD = {
    "name": "t1",
    "backbone": "r2plus1d_tiny",
    "base": {"train": True},
    "synthetic": {"root": "SYNTH", "classes": 4, "videos_per_class": 2, "val_per_class": 1, "frames": 16},
    "operators": {"s": 1.4, "f": 2},
    "iterations": 2,
    "recipe": {"epochs": 1, "batch_per_gpu": 4},
}


def _write(tmp_path: Path, data: object, name: str = "job.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def _with(path: str, value: object) -> dict:
    """GOOD with the dotted key ``path`` set to ``value`` (or removed when value is ...)."""
    import copy

    d = copy.deepcopy(GOOD)
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is ...:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    return d


def test_a_good_definition_loads_with_defaults_and_generates_its_data(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_search(_write(tmp_path, _with("synthetic.root", "data/s")))
    assert s.name == "t1" and list(s.operators) == ["s", "f"] and s.operators["f"] == 2.0
    assert s.distill.alpha == 500 and s.distill.temperature == 5 and s.finetune.lr_divisor == 10
    assert s.selection == "auto" and s.stop.target_gflops is None and s.base_recipe == s.recipe
    assert s.base_spec() == preset("r2plus1d_tiny", 4)
    data = ensure_data(s, progress=False)
    assert data.num_classes == 4 and (tmp_path / "data/s/videos").is_dir()
    assert len((tmp_path / "data/s/train.txt").read_text().split("\n")) == 4 * 2 + 1
    other = load_search(_write(tmp_path, _with("synthetic", {"root": "data/s", "classes": 5})))
    with pytest.raises(ConfigError, match="made with other settings"):
        ensure_data(other, progress=False)


@pytest.mark.parametrize("job", sorted(p for p in (Path(__file__).parents[1] / "jobs").glob("*.yaml")
                                        if not p.name.startswith("transfer_")), ids=lambda p: p.name)
def test_shipped_search_definitions_load(job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PAS_DATA", "PAS_WEIGHTS"):
        monkeypatch.setenv(var, str(tmp_path))
    (tmp_path / "r2plus1d_18_k400.pth").write_bytes(b"")
    (tmp_path / "X3D_M.pyth").write_bytes(b"")
    for sub in ("k400", "ucf101"):
        (tmp_path / sub).mkdir()
    s = load_search(job.resolve())
    assert s.base_spec().num_classes == s.data.num_classes


CASES = [
    ("unknown top-level key", _with("iteration", 3), "unknown key(s) iteration; valid keys: name, backbone"),
    ("missing name", _with("name", ...), "missing key(s) name"),
    ("bad name", _with("name", "my search"), "name: 'my search': use 1-64 letters"),
    ("unknown backbone", _with("backbone", "resnet50"), "backbone: 'resnet50' is not one of r2plus1d_18"),
    ("both base sources", _with("base.checkpoint", "b.pt"), "base: give exactly one of checkpoint"),
    ("no base source", _with("base.train", False), "base: give exactly one of checkpoint"),
    ("missing checkpoint", {**_with("base.train", ...), "base": {"checkpoint": "nope.pt"}},
     "base.checkpoint: file nope.pt not found"),
    ("unknown operator", _with("operators.x", 2), "operators: 'x' is not one of s, t, f, c, l, k"),
    ("k stage out of range", _with("tucker.stages", [5]), "tucker.stages: residual stages of r2plus1d_tiny are 1..4"),
    ("k rank rule", _with("tucker.ranks", "svd"), "tucker.ranks: 'svd' is not one of flops, vbmf"),
    ("gamma <= 1", _with("operators.s", 1.0), "operators.s: gamma of operator 's' must be a number > 1"),
    ("fractional frame stride", _with("operators.f", 1.5), "operators.f: gamma of operator 'f' must be an integer"),
    ("no operators", _with("operators", {}), "operators: give at least one of s, t, f, c, l, k"),
    ("zero iterations", _with("iterations", 0), "iterations: must be >= 1, got 0"),
    ("negative target", _with("stop.target_gflops", -1), "stop.target_gflops: must be > 0"),
    ("unknown selection", _with("selection", "eq2"), "selection: 'eq2' is not one of auto, paper, eq1, eq3"),
    ("string lr", _with("recipe.lr", "fast"), "recipe.lr: expected a number, got 'fast'"),
    ("zero epochs", _with("recipe.epochs", 0), "recipe.epochs: must be >= 1, got 0"),
    ("unknown schedule", _with("recipe.schedule", "linear"), "recipe.schedule: 'linear' is not one of step, cosine"),
    ("unknown amp", _with("recipe.amp", "fp8"), "recipe.amp: 'fp8' is not one of none, bf16, fp16"),
    ("misspelled recipe key", _with("recipe.lr_rate", 0.1), "recipe: unknown key(s) lr_rate; valid keys: epochs"),
    ("bool as int", _with("recipe.epochs", True), "recipe.epochs: expected int, got True"),
    ("teacher BN mode", _with("distill.teacher_bn", "frozen"), "distill.teacher_bn: 'frozen' is not one of train"),
    ("negative alpha", _with("distill.alpha", -1), "distill.alpha: must be >= 0"),
    ("eval crops", _with("eval.crops", 2), "eval.crops: must be 1 or 3, got 2"),
    ("lr divisor", _with("finetune.lr_divisor", 0.5), "finetune.lr_divisor: must be >= 1"),
    ("no data", _with("synthetic", ...), "missing key data (a dataset) or synthetic"),
    ("unknown data format", {**_with("synthetic", ...), "data": {"format": "avi", "root": ".", "num_classes": 3,
                                                                   "annotations": {}}},
     "data.format: 'avi' is not one of"),
    ("missing data root", {**_with("synthetic", ...),
                           "data": {"format": "list", "root": "/no/such/dir", "num_classes": 3,
                                    "annotations": {"train": "a", "val": "b"}}},
     "data.root: folder /no/such/dir does not exist"),
    ("data file and keys", {**_with("synthetic", ...), "data": {"file": "d.yaml", "root": "."}},
     "data: give either file: DATASET.yaml or the dataset keys"),
    ("unset variable", _with("base", {"checkpoint": "${PAS_NO_SUCH_VAR}/b.pt"}),
     "base.checkpoint: environment variable PAS_NO_SUCH_VAR is not set"),
    ("too many synthetic classes", _with("synthetic.classes", 99), "synthetic.classes: must be in 2..32"),
    ("teacher cache with feature distillation", _with("distill", {"feature_weight": 0.5, "cache": {}}),
     "distill.cache: feature distillation (feature_weight 0.5) needs B's stage outputs"),
    ("teacher cache: top_k above the classes", _with("distill.cache", {"top_k": 9}),
     "distill.cache.top_k: 9 exceeds the dataset's 4 classes (null keeps every logit)"),
    ("teacher cache: no recipes", _with("distill.cache", {"clips_per_video": 0}),
     "distill.cache.clips_per_video: must be >= 1"),
    ("teacher cache: no shards", _with("distill.cache", {"shards": 0}), "distill.cache.shards: must be >= 1"),
    ("teacher cache: misspelled key", _with("distill.cache", {"clips": 8}),
     "distill.cache: unknown key(s) clips; valid keys: clips_per_video"),
    ("unknown strategy", _with("strategy", "random"), "strategy: 'random' is not one of coordinate_descent, gradient"),
    ("gradient without its settings", _with("strategy", "gradient"),
     "gradient: strategy gradient needs gradient: {targets_gflops: [...], ...}"),
    ("gradient settings without the strategy", _with("gradient", {"targets_gflops": [1.0]}),
     "gradient: is read only with strategy: gradient"),
    ("gradient: no target", {**_with("strategy", "gradient"), "gradient": {"targets_gflops": []}},
     "gradient.targets_gflops: must be a list of GFLOPs per view > 0, got []"),
    ("gradient: a target twice", {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1, 1]}},
     "gradient.targets_gflops: a target is listed twice"),
    ("gradient: candidate fraction not 1/n",
     {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1], "candidate_fraction": 0.3}},
     "gradient.candidate_fraction: must be 1/n for an integer n >= 2 (0.5, 0.25, ...), got 0.3"),
    ("gradient: lr divisor below 1",
     {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1], "lr_divisor": 0.5}},
     "gradient.lr_divisor: must be >= 1 (1: the recipe's lr), got 0.5"),
    ("gradient: unknown candidate init",
     {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1], "candidate_init": "b"}},
     "gradient.candidate_init: must be pas or supernet, got 'b'"),
    ("distill: teacher dropout not a boolean", _with("distill.teacher_dropout", "yes"), "distill.teacher_dropout"),
    ("gradient: no cycle", {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1], "cycles": 0}},
     "gradient.cycles: must be >= 1 (1: no diversity mechanism), got 0"),
    ("gradient: hold-out of everything",
     {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1], "holdout": 1.0}},
     "gradient.holdout: must be in (0, 1), got 1.0"),
    ("gradient with a teacher cache",
     {**_with("strategy", "gradient"), "gradient": {"targets_gflops": [1]}, "distill": {"cache": {}}},
     "distill.cache: strategy gradient distils from the live teacher"),
    ("gradient: misspelled key", {**_with("strategy", "gradient"), "gradient": {"targets": [1]}},
     "gradient: unknown key(s) targets; valid keys: targets_gflops"),
]


@pytest.mark.parametrize(("data", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_definition_names_file_and_key(tmp_path: Path, data: dict, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_search(path)
    assert str(err.value).startswith(str(path)), err.value
    assert message in str(err.value), err.value


@pytest.mark.parametrize(("text", "message"), [
    ("name: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "must be a YAML mapping"),
])
def test_unreadable_yaml(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_search(_write(tmp_path, text))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"jobs/nope\.yaml: search definition not found"):
        load_search("jobs/nope.yaml")


def test_a_definition_at_defaults_records_what_older_pas_recorded(tmp_path: Path) -> None:
    """The definition a ledger records, as its hash reads it (what a resume must match), leaves every key added
    since at its default out: tests/golden/definition_defaults.json is what the first pas to record definitions
    recorded for this definition, so a search started by it still resumes. A new key must be left out at its
    default (config.recorded.definition_dict), a new default read as the old one (hashed_definition)."""
    from pas_orchestrator.config.recorded import definition_dict, hashed_definition

    raw = {"name": "golden", "backbone": "r2plus1d_tiny", "base": {"train": True, "recipe": {"epochs": 2}},
           "data": {"format": "list", "root": str(tmp_path), "annotations": {"train": "train.txt", "val": "val.txt"},
                    "num_classes": 8},
           "recipe": {"epochs": 3}, "distill": {"alpha": 10}}
    path = tmp_path / "golden.yaml"
    path.write_text(yaml.safe_dump(raw))
    search = load_search(path)
    assert definition_dict(search)["data"]["backend"] == "auto"  # recorded as written
    recorded = hashed_definition(search)
    recorded["data"]["root"] = "ROOT"
    golden = json.loads((Path(__file__).parent / "golden" / "definition_defaults.json").read_text())
    assert recorded == golden


@pytest.mark.parametrize("job", sorted((Path(__file__).parents[1] / "jobs").glob("transfer_*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_transfer_definitions_load(job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pas_orchestrator.config.transfer import load_transfer

    monkeypatch.setenv("PAS_DATA", str(tmp_path))
    t = load_transfer(job)
    assert t.splits == (1, 2, 3) and t.lr_divisor == 10 and t.data.format in ("ucf101", "hmdb51")
    assert t.data.num_classes == {"ucf101": 101, "hmdb51": 51}[t.data.format]


@pytest.mark.parametrize(("change", "message"), [
    ({"splits": [1, 4]}, "splits: ucf101 has splits 1, 2, 3; got [1, 4]"),
    ({"lr_divisor": 0.5}, "lr_divisor: must be >= 1, got 0.5"),
    ({"short_videos": 1.0}, "short_videos: must be in [0, 1), got 1.0"),
    ({"transfer": "a b"}, "transfer: the study's name: 1-24 letters"),
    ({"epochs": 3}, "unknown key(s) epochs"),
])
def test_malformed_transfer_definition_names_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    from pas_orchestrator.config.transfer import load_transfer

    raw = {"transfer": "u", "data": {"format": "ucf101", "root": str(tmp_path), "annotations": {"dir": "l"},
                                     "num_classes": 101}, "recipe": {"epochs": 1}, **change}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_transfer(tmp_path / "t.yaml")
    assert message in str(err.value) and "t.yaml" in str(err.value)
