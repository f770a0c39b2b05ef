"""The package rules of docs/architecture.md, checked on the source and on real imports."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth (function-level imports included)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def test_pas_models_never_imports_pas_orchestrator() -> None:
    """The compute-node package stands alone: nothing under pas_models/ imports the controller side."""
    bad = [f"{p.relative_to(ROOT)}:{line}: {mod}" for p in sorted((ROOT / "pas_models").rglob("*.py"))
           for line, mod in _imports(p) if mod == "pas_orchestrator" or mod.startswith("pas_orchestrator.")]
    assert not bad, "pas_models imports pas_orchestrator:\n" + "\n".join(bad)


def test_commands_do_not_import_each_other() -> None:
    commands = ROOT / "pas_orchestrator" / "commands"
    bad = [f"{p.name}:{line}: {mod}" for p in sorted(commands.glob("*.py"))
           for line, mod in _imports(p) if mod.startswith("pas_orchestrator.commands")]
    assert not bad, "\n".join(bad)


def test_building_a_network_does_not_import_the_decomposition() -> None:
    """nets -> tucker -> flops/weights -> nets was a cycle: building from a spec (Tucker layers included)
    needs neither the decomposition nor the rank rules."""
    code = ("import sys; from pas_models.nets import build_model; from pas_models.presets import preset; "
            "from pas_models.reductions import apply_op; s = preset('r2plus1d_tiny', 4); "
            "k = apply_op(s, 'k', {'k': 2.0}); n = len(sys.modules); build_model(k); "
            "print(','.join(m for m in ('pas_models.tucker', 'pas_models.flops', 'pas_models.weights', "
            "'pas_models.vbmf', 'tensorly') if m in sys.modules and m not in before))")
    code = code.replace("n = len(sys.modules);", "before = set(sys.modules);")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"build_model imported {out.stdout.strip()}"


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["status", "--help"], ["cancel", "--help"],
                                  ["report", "--help"], ["status", "--json", "--runs", "/nonexistent"],
                                  # usage errors and a missing definition answer at once (0.2 s, not 2.3 s)
                                  ["train", "--job", "nope.yaml", "--ops", "c,q"],
                                  ["train", "--job", "nope.yaml", "--base", "--nproc", "0"],
                                  ["train", "--job", "nope.yaml", "--base"]],
                         ids=lambda a: " ".join(a))
def test_commands_that_only_look_do_not_import_torch(argv: list[str]) -> None:
    code = ("import sys, runpy; sys.argv = ['pas'] + sys.argv[1:]\ntry:\n"
            "    runpy.run_module('pas_orchestrator', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH", out.stdout[-500:] + out.stderr[-1000:]


def test_loading_a_search_definition_does_not_import_torch(tmp_path: Path) -> None:
    """A definition is configuration: `pas train`'s and `pas search`'s first checks, the meta network builds of
    planning and the fork server's jobs come later."""
    import yaml
    from tinyjob import tiny_job

    (tmp_path / "job.yaml").write_text(yaml.safe_dump(tiny_job("arch", iterations=1)))
    code = ("import sys; from pas_orchestrator.config.search import load_search; s = load_search('job.yaml'); "
            "print(s.name, 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["arch", "NO-TORCH"]


PLAN_AND_PICKLE = """
import pickle, sys
from pas_models.presets import preset
from pas_models.train.task import TrainTask
from pas_orchestrator.config.cluster import Resources
from pas_orchestrator.executors.base import job_for
from pas_orchestrator.planning import plan_iteration
planned = plan_iteration(preset("r2plus1d_tiny", 4), (), {"s": 2.0, "t": 2.0, "c": 2.0})
task = TrainTask("1-s", planned[0].spec, None, "out")
job, _ = job_for(task, Resources())
pickle.dumps((job, task))
print(sorted(p.gflops for p in planned), 'TORCH' if 'torch' in sys.modules else 'NO-TORCH')
"""


def test_a_controller_plans_counted_children_and_pickles_their_jobs_without_torch(tmp_path: Path) -> None:
    """Counts come from the FLOPs cache (pas_models.flops) once made: a restarted controller, or another search
    from the same base, plans an iteration and pickles its submissions without importing torch (1.5-3 s)."""
    env = {**os.environ, "PAS_CACHE_DIR": str(tmp_path)}
    env.pop("PAS_FLOPS_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", PLAN_AND_PICKLE], capture_output=True, text=True, timeout=120,
                           env=env) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    (cold, first), (warm, second) = (r.stdout.rsplit(" ", 1) for r in runs)
    assert second.strip() == "NO-TORCH" and first.strip() == "TORCH"  # the first counted (a forward pass)
    assert warm == cold


def test_every_command_is_listed_and_registered_with_the_same_help() -> None:
    import argparse

    from pas_orchestrator.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert helps == {name: text for name, (_, text) in COMMANDS.items()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules a file imports when it runs: at any depth (a function-level import is still an
    edge), leaving out ``if TYPE_CHECKING:`` blocks."""
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.update(f"{child.module}.{a.name}" if f"{child.module}.{a.name}" in modules else child.module
                           for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return out & modules


def test_no_import_cycles() -> None:
    """No two modules of the packages import each other, directly or around a loop, not even through an import
    inside a function (a cycle "broken" that way still ties the two modules together)."""
    files = {_module_name(p): p for pkg in ("pas_models", "pas_orchestrator") for p in (ROOT / pkg).rglob("*.py")}
    graph = {m: _runtime_imports(p, set(files)) - {m} for m, p in files.items()}
    cycles = []
    for start in graph:  # a module that reaches itself again
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
    assert not cycles, f"modules on an import cycle: {', '.join(sorted(cycles))}"
