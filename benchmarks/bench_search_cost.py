"""What successive halving saves, and whether it changes the search: full searches against the same searches
with ``halving``, same seed, one search at a time on this machine.

For each definition (default: jobs/demo.yaml, and the same with the ``slowfast_tiny`` backbone) it runs:

- ``full``: the definition as it is (every hypothesis trained to the end, the paper);
- ``eta3``: ``halving: {eta: 3, rungs: 3}``;
- ``eta2``: ``halving: {eta: 2, rungs: 3}``.

B is trained once, by the full search; the other searches import it (``base.checkpoint``: evaluated only),
so every search starts from the same B and compute is compared on the iterations alone (B's training is
left out of every total). Reported per definition and iteration: the operator each search chose, the
rank correlation (Kendall's tau-b) between the rung-1 scores of a halving search and the final top-1 of
the same hypotheses in the full search (only while the halving search's path is the full search's: after
a different choice the hypotheses differ), and per search the compute its attempts used (CPU-h here: wall
time x processes, latency measurement jobs included) and its share of the full search's, beside the time
its hypotheses spent in optimizer steps (each job's own clock: what halving divides; process start-up,
data set-up and evaluations are a fixed cost per job). A search already DONE under ``--work`` is reused.

    python benchmarks/bench_search_cost.py [--work DIR] [--jobs jobs/demo.yaml ...] [--variants full,eta3,eta2]

Writes DIR/bench_search_cost.json and prints the tables (markdown).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"full": None, "eta3": {"eta": 3, "rungs": 3}, "eta2": {"eta": 2, "rungs": 3}}


def kendall_tau_b(x: list[float], y: list[float]) -> float | None:
    """Kendall's tau-b (ties in either list handled); None with fewer than 2 pairs or no untied pair."""
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return None if denom == 0 else (concordant - discordant) / denom


def pas(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *args], cwd=cwd, capture_output=True, text=True)


def run_search(work: Path, definition: dict[str, Any], name: str) -> dict[str, Any]:
    """Run the search (or reuse it when it is DONE already under ``work``: a rerun of the benchmark reports
    again without training again), then its `pas status --json`."""
    if (work / "runs" / name / "ledger.sqlite").is_file():
        done = json.loads(pas(work, "status", "--search", name, "--json").stdout)
        if done["state"] == "DONE":
            done["wall_s"] = done["ended_at"] - done["created_at"]
            return done
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**definition, "name": name}, sort_keys=False))
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pas_orchestrator", "search", "--job", str(path), "--poll", "1"],
                          cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise SystemExit(f"search {name} failed: {proc.stderr[-2000:]}")
    status = json.loads(pas(work, "status", "--search", name, "--json").stdout)
    status["wall_s"] = wall
    return status


def path_of(status: dict[str, Any]) -> list[str]:
    winners = sorted((h["iteration"], h["op"]) for h in status["hypotheses"] if h["winner"] and h["iteration"])
    return [op for _, op in winners]


def training_seconds(status: dict[str, Any]) -> float:
    """Seconds spent in optimizer steps by the hypotheses of iterations >= 1 (the job's own clock, cumulative
    over its rungs: the last rung file or result.json each wrote), i.e. without process start-up, data
    set-up, evaluations and measurement jobs."""
    total = 0.0
    for h in status["hypotheses"]:
        if h["iteration"] < 1 or h["kind"] != "pas":
            continue
        out = Path(h["out_dir"])
        files = [out / "result.json"] if (out / "result.json").is_file() else sorted(out.glob("rung-*.json"))
        if files:
            total += max(json.loads(f.read_text())["train_seconds"] for f in files)
    return total


def iteration_compute(status: dict[str, Any]) -> float:
    """Compute of everything but B (iterations >= 1, their measurement jobs included)."""
    total = 0.0
    for h in status["hypotheses"] + status["measurements"]:
        if h["iteration"] >= 1:
            total += sum(a["compute_hours"] or 0.0 for a in h["attempts"])
    return total


def _iterations(v: str, st: dict[str, Any], full: dict[str, Any]) -> list[dict[str, Any]]:
    """Per iteration: what ``st`` chose, whether its path is the full search's so far, and (same parent) how
    its rung-1 scores order the hypotheses against their final figures (Kendall tau-b)."""
    p, full_path = path_of(st), path_of(full)
    out = []
    for i in range(1, max(len(p), len(full_path)) + 1):
        same_parent = p[:i - 1] == full_path[:i - 1]
        tau = None
        if v != "full" and same_parent:
            final = {h["op"]: h["top1"] for h in full["hypotheses"] if h["iteration"] == i
                     and h["kind"] == "pas" and h["top1"] is not None}
            rung1 = {h["op"]: h["rung_top1"][0] for h in st["hypotheses"] if h["iteration"] == i and h["rung_top1"]}
            ops = sorted(set(final) & set(rung1))
            tau = kendall_tau_b([rung1[o] for o in ops], [final[o] for o in ops])
        out.append({"iteration": i, "chosen": p[i - 1] if i <= len(p) else None,
                    "same_path_so_far": same_parent and i <= len(p) and i <= len(full_path)
                    and p[i - 1] == full_path[i - 1], "kendall_tau_rung1_vs_final": tau})
    return out


def _row(v: str, st: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    compute = iteration_compute(st)
    return {"variant": v, "path": path_of(st), "compute_hours": compute, "training_seconds": training_seconds(st),
            "training_fraction_of_full": training_seconds(st) / training_seconds(full),
            "compute_unit": "/".join(sorted(st.get("compute_hours_by_unit", {}))) or "-",
            "fraction_of_full": compute / iteration_compute(full) if iteration_compute(full) else None,
            "wall_s": st["wall_s"], "iterations": _iterations(v, st, full)}


def _print_tables(stem: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n### {stem}\n")
    print("| search | path | compute (iterations) | share of full | training steps' time (share) | wall |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        share = "-" if r["fraction_of_full"] is None else f"{r['fraction_of_full']:.0%}"
        print(f"| {r['variant']} | {','.join(r['path'])} | {r['compute_hours']:.3g} {r['compute_unit']} | "
              f"{share} | {r['training_seconds']:.0f} s ({r['training_fraction_of_full']:.0%}) | "
              f"{r['wall_s'] / 60:.1f} min |")
    print("\n| search | iteration | chosen | same as full so far | Kendall tau (rung 1 vs final) |")
    print("|---|---|---|---|---|")
    for r in rows[1:]:
        for it in r["iterations"]:
            tau = "-" if it["kendall_tau_rung1_vs_final"] is None else f"{it['kendall_tau_rung1_vs_final']:.2f}"
            print(f"| {r['variant']} | {it['iteration']} | {it['chosen']} | "
                  f"{'yes' if it['same_path_so_far'] else 'no'} | {tau} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "search_cost")
    ap.add_argument("--jobs", nargs="+", default=["jobs/demo.yaml", "jobs/demo.yaml:slowfast_tiny"],
                    help="definitions; FILE:BACKBONE runs FILE with another backbone")
    ap.add_argument("--variants", default="full,eta3,eta2")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    if variants[0] != "full":
        raise SystemExit("--variants must start with full (the reference, which also trains B)")
    report: dict[str, Any] = {"definitions": []}
    for spec in args.jobs:
        file, _, backbone = spec.partition(":")
        definition = yaml.safe_load((ROOT / file).read_text())
        if backbone:
            definition["backbone"] = backbone
        stem = f"{definition['name']}-{backbone or definition['backbone']}".replace("_", "-")
        definition["synthetic"] = {**definition.get("synthetic", {}), "root": str(work / "data" / "synth")}
        runs: dict[str, dict[str, Any]] = {}
        for v in variants:
            d = dict(definition)
            if v != "full":
                d["base"] = {"checkpoint": str(Path(runs["full"]["hypotheses"][0]["out_dir"]) / "model.pt")}
                d["halving"] = VARIANTS[v]
            print(f"== {stem} {v}", flush=True)
            runs[v] = run_search(work, d, f"{stem}-{v}")
        rows = [_row(v, runs[v], runs["full"]) for v in variants]
        report["definitions"].append({"definition": spec, "name": stem, "searches": rows})
        _print_tables(stem, rows)
    out = work / "bench_search_cost.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
