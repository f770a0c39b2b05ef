"""README.md and docs/ stay true: the `pas flops` example is what the command prints, every link leads to a file,
the README is a front door (short), the docs carry no commit hashes, and docs/architecture.md names every module."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pas_orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "jobs" / "README.md",
         ROOT / "cluster_profiles" / "README.md"]


def test_the_flops_example_is_real_output(capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(p.read_text() for p in PAGES)
    block = re.search(r"```console\n\$ (pas flops [^\n]+)\n(.*?)```", text, re.S)
    assert block, "the docs lost their `pas flops` example"
    command, shown = block.group(1), block.group(2)
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == shown


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: the manual belongs in docs/"
    for heading in ("## Status", "## Install", "## The two commands", "## Where to read on"):
        assert heading in lines


def test_every_relative_link_leads_to_a_file() -> None:
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, "links to nothing:\n" + "\n".join(bad)


def test_no_commit_hashes_in_the_docs() -> None:
    """History is git's: a token that names a commit of this repository does not belong in the docs."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    tokens = {(page.relative_to(ROOT).as_posix(), t) for page in PAGES
              for t in re.findall(r"\b[0-9a-f]{7,40}\b", page.read_text())
              if re.search(r"[a-f]", t) and re.search(r"[0-9]", t)}
    answer = subprocess.run(["git", "-C", str(ROOT), "cat-file", "--batch-check"], capture_output=True, text=True,
                            input="".join(f"{t}^{{commit}}\n" for _, t in sorted(tokens))).stdout.splitlines()
    found = [f"{page}: {t}" for (page, t), line in zip(sorted(tokens), answer, strict=True)
             if not line.endswith("missing")]
    assert not found, "commit hashes in the docs:\n" + "\n".join(found)


def test_the_architecture_names_every_module() -> None:
    """Each module is in a row of docs/architecture.md's tables: by its path in its package, or by its name in a
    row that names its folder; a package's ``__init__.py`` by its folder."""
    rows = [line for line in (ROOT / "docs" / "architecture.md").read_text().splitlines() if line.startswith("|")]
    missing = []
    for pkg in ("pas_models", "pas_orchestrator"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT / pkg).as_posix()
            folder = path.parent.relative_to(ROOT / pkg).as_posix()
            if path.name == "__init__.py" and folder != ".":
                named = any(f"`{folder}/" in row for row in rows)
            else:
                named = any(rel in row or (folder != "." and f"`{folder}/" in row and f"{path.name}" in row)
                            or (folder != "." and f"`{folder}/*.py`" in row) for row in rows)
            if not named:
                missing.append(f"{pkg}/{rel}")
    assert not missing, "modules docs/architecture.md does not name:\n" + "\n".join(missing)
