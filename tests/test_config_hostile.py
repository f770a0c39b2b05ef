"""Config files that cannot hurt: hostile and malformed search definitions, cluster profiles and dataset
configs each end in one line ``FILE: KEY.PATH: message`` (or ``FILE: message``), quickly and in bounded
memory. ``python tests/test_config_hostile.py`` prints the table of every case and the error it gives.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pas_models.data.formats import load_dataset_config
from pas_models.errors import PasError
from pas_orchestrator.config.cluster import load_profile
from pas_orchestrator.config.search import load_search

SEARCH = ("name: t1\nbackbone: r2plus1d_tiny\nbase: {train: true}\n"
          "synthetic: {root: SYNTH, classes: 4}\noperators: {s: 1.4}\niterations: 2\n")
PROFILE = "name: p\nexecutor: local\nmax_jobs: 2\nslurm: {time_min: 60}\n"
DATASET = "format: list\nroot: .\nannotations: {train: t.txt, val: v.txt}\n"


def laughs(levels: int = 30) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return SEARCH + "\n".join(lines) + "\n"


# (name, loader, file content, a fragment the one-line error must contain)
CASES: list[tuple[str, str, bytes | str | Callable[[], bytes | str], str]] = [
    ("billion laughs (nested aliases)", "search", laughs, "a29: expands to more than 100,000 values"),
    ("50,000 nested brackets", "search", lambda: SEARCH + "deep: " + "[" * 50_000 + "]" * 50_000 + "\n",
     "nested deeper than 64 levels (line 7)"),
    ("50,000 nested mappings", "profile", lambda: PROFILE + "x: " + "{a: " * 50_000 + "1" + "}" * 50_000,
     "nested deeper than 64 levels"),
    ("50 MB file", "search", lambda: SEARCH + "# " + "x" * (50 << 20) + "\n", "50.0 MiB is too large"),
    ("5 MB file", "search", lambda: SEARCH + "notes: " + "y" * (5 << 20) + "\n", "5.0 MiB is too large"),
    ("a 900 kB value (under the size limit)", "search", lambda: SEARCH + "notes: " + "y" * 900_000 + "\n",
     "unknown key(s) notes"),
    ("non-UTF-8 bytes", "search", lambda: SEARCH.encode() + b"comment: caf\xe9\n",
     "not UTF-8 text (byte 0xe9 at line 7)"),
    ("UTF-16 file", "profile", lambda: PROFILE.encode("utf-16"), "not UTF-8 text (byte 0xff at line 1)"),
    ("duplicated key", "search", SEARCH + "iterations: 7\n", "iterations: key given twice (lines 6 and 7)"),
    ("duplicated nested key", "search", SEARCH + "recipe:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n",
     "recipe.lr: key given twice (lines 8 and 10)"),
    ("duplicated key in a profile", "profile", PROFILE + "max_jobs: 9\n", "max_jobs: key given twice (lines 3 and 5)"),
    ("duplicated key in a dataset config", "dataset", DATASET + "root: /elsewhere\n",
     "root: key given twice (lines 2 and 4)"),
    ("binary garbage", "search", lambda: bytes(range(256)) * 4, "not UTF-8 text"),
    ("NUL bytes", "search", "name: a\x00b\n", "not valid YAML (unacceptable character #x0000"),
    ("tab indentation", "search", "name: t1\nbase:\n\ttrain: true\n", "not valid YAML"),
    ("unclosed bracket", "search", "name: [unclosed\n", "not valid YAML"),
    ("unclosed quote", "profile", 'name: "p\nexecutor: local\n', "not valid YAML"),
    ("two documents", "search", SEARCH + "---\nname: t2\n", "not valid YAML"),
    ("python object tag", "search", SEARCH + "x: !!python/object/apply:os.system [ls]\n", "not valid YAML"),
    ("undefined alias", "search", SEARCH + "x: *nope\n", "not valid YAML"),
    ("empty file", "search", "", "must be a YAML mapping"),
    ("only a comment", "profile", "# nothing\n", "must be a YAML mapping"),
    ("a list at the top", "search", "- a\n- b\n", "must be a YAML mapping"),
    ("a scalar at the top", "dataset", "hello\n", "must be a YAML mapping"),
    ("a long scalar at the top", "search", lambda: "z" * 200_000 + "\n", "(200,002 characters)"),
    ("unknown key", "search", SEARCH + "iteration: 3\n", "unknown key(s) iteration"),
    ("a key that is a list", "search", SEARCH + "[a, b]: 1\n", "line 7, column 1: found unhashable key"),
    ("a huge unknown key", "search", lambda: SEARCH + "k" * 300_000 + ": 1\n", "could not find expected ':'"),
    ("wrong type, huge value", "search", lambda: SEARCH.replace("iterations: 2", "iterations: " + "9" * 2000 + "x"),
     "iterations: expected int, got '99999"),
    ("string for a number", "search", SEARCH.replace("{s: 1.4}", "{s: fast}"), "operators.s: expected a number"),
    ("null for a mapping", "search", SEARCH + "recipe: null\n", "recipe: expected a mapping, got None"),
    ("list for a mapping", "profile", PROFILE.replace("slurm: {time_min: 60}", "slurm: [1, 2]"),
     "slurm: expected a mapping, got [1, 2]"),
    ("bool for an int", "profile", PROFILE.replace("max_jobs: 2", "max_jobs: yes"), "max_jobs: expected int, got True"),
    ("negative max_jobs", "profile", PROFILE.replace("max_jobs: 2", "max_jobs: -1"), "max_jobs: must be >= 1"),
    ("unknown executor", "profile", PROFILE.replace("local", "kubernetes"), "executor: 'kubernetes' is not one of"),
    ("slurm without partition", "profile", PROFILE.replace("local", "slurm"), "slurm.partition: required"),
    ("unknown slurm key", "profile", PROFILE.replace("{time_min: 60}", "{time_mins: 60}"),
     "slurm: unknown key(s) time_mins"),
    ("NaN lr", "search", SEARCH + "recipe: {lr: .nan}\n", "recipe.lr: must be > 0, got nan"),
    ("infinite target", "search", SEARCH + "stop: {target_gflops: -.inf}\n", "stop.target_gflops: must be > 0"),
    ("unset variable", "search", SEARCH.replace("train: true", "checkpoint: '${PAS_HOSTILE_A}/b.pt'"),
     "base.checkpoint: environment variable PAS_HOSTILE_A is not set"),
    ("three unset variables", "search",
     SEARCH.replace("train: true", "checkpoint: '${PAS_HOSTILE_A}/b.pt'")
     .replace("SYNTH", "'${PAS_HOSTILE_B}/${PAS_HOSTILE_C}'"),
     "environment variables not set: PAS_HOSTILE_A (base.checkpoint), PAS_HOSTILE_B (synthetic.root), "
     "PAS_HOSTILE_C (synthetic.root); export PAS_HOSTILE_A=... PAS_HOSTILE_B=... PAS_HOSTILE_C=..."),
    ("dataset: unknown format", "dataset", DATASET.replace("list", "csv"), "format: 'csv' is not one of"),
    ("dataset: unknown backend", "dataset", DATASET + "backend: opencv\n", "backend: 'opencv' is not one of"),
    ("dataset: bad mean", "dataset", DATASET + "mean: [0.4, 0.4]\n", "mean: expected 3 values, got 2"),
    ("dataset: unknown key", "dataset", DATASET + "labels: x.txt\n", "unknown key(s) labels"),
    ("dataset: a 50,000-deep list", "dataset", lambda: DATASET + "mean: " + "[" * 50_000 + "]" * 50_000 + "\n",
     "nested deeper than 64 levels"),
]

LOADERS = {"search": load_search, "profile": lambda p: load_profile(str(p)), "dataset": load_dataset_config}
MAX_LINE = 500  # characters: an error is read, not scrolled


def run_case(tmp_path: Path, kind: str, content: bytes | str | Callable[[], bytes | str]) -> str:
    """The error the loader raises for ``content`` (its first and only line)."""
    body = content() if callable(content) else content
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    try:
        LOADERS[kind](path)
    except PasError as exc:
        return str(exc)
    raise AssertionError(f"{kind} file loaded without an error")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kind", "content", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_config_is_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
                                                    content: bytes | str | Callable[[], bytes | str],
                                                    fragment: str) -> None:
    for var in ("PAS_HOSTILE_A", "PAS_HOSTILE_B", "PAS_HOSTILE_C"):
        monkeypatch.delenv(var, raising=False)
    message = run_case(tmp_path, kind, content)
    assert "\n" not in message and len(message) <= MAX_LINE, message[:1000]
    assert message.startswith(f"{tmp_path / kind}.yaml: "), message
    assert ".yaml." not in message  # the key path is never glued to the file name
    assert fragment in message, message


def test_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = SEARCH + "defaults: &d {epochs: 1, batch_per_gpu: 4}\n"
    data = yaml.safe_load(text)
    assert data["defaults"]["epochs"] == 1
    ok = SEARCH + "recipe:\n  <<: {epochs: 3, lr: 0.1}\n  lr: 0.2\n"  # a merge key overridden is not a duplicate
    path = tmp_path / "s.yaml"
    path.write_text(ok)
    (tmp_path / "SYNTH").mkdir()
    assert load_search(path).recipe.lr == 0.2


def main() -> int:
    import tempfile

    print("| # | input | loader | the error printed (file name shortened to FILE) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, kind, content, _) in enumerate(CASES, start=1):
            message = run_case(Path(tmp), kind, content).replace(f"{tmp}/{kind}.yaml", "FILE")
            print(f"| {i} | {name} | {kind} | `{message.replace('|', '/')}` |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
