"""What noise-aware selection (``ties``) changes: the same search with the paper's rule and with
``ties: {rule: paired, level: 0.05}``, over several seeds, one search at a time on this machine.

For each seed (default 0, 1, 2) it runs ``paper`` (the definition as it is, seed S: trains B) and ``ties``
(the same with ties on, importing that B: ``base.checkpoint``, evaluated only), so both start from one B
and train the same hypotheses at iteration 1 (training is deterministic per seed on CPU). Reported per seed:
each search's path, its final network's top-1 with its 95% interval (Wilson) and GFLOPs/view, the paired
difference of the two final networks on the same test videos (Newcombe's interval; exact McNemar p), the
iterations whose choice differs, and the compute of the iterations (B left out of both). A search already
DONE under ``--work`` is reused.

    python benchmarks/bench_ties.py [--work DIR] [--job jobs/demo.yaml] [--seeds 0,1,2] [--level 0.05]

Writes DIR/bench_ties.json and prints the table (markdown).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_cost import iteration_compute, path_of, run_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from pas_models.intervals import paired, percent_interval  # noqa: E402
from pas_models.predictions import PerVideo  # noqa: E402


def final(status: dict[str, Any]) -> dict[str, Any]:
    """The search's last winner (its network: what the search hands over)."""
    won = [h for h in status["hypotheses"] if h["winner"] and h["kind"] == "pas" and h["iteration"] > 0]
    return max(won, key=lambda h: h["iteration"])


def _per_video(h: dict[str, Any]) -> PerVideo:
    result = json.loads((Path(h["out_dir"]) / "result.json").read_text())
    return PerVideo.from_dict(result["per_video"], h["out_dir"])


def compare(paper: dict[str, Any], ties: dict[str, Any]) -> dict[str, Any]:
    a, b = final(ties), final(paper)
    mine, theirs = _per_video(a).shared(_per_video(b))
    c = paired(mine, theirs)
    p_path, t_path = path_of(paper), path_of(ties)
    return {"paper_path": p_path, "ties_path": t_path,
            "differs_at": [i + 1 for i in range(min(len(p_path), len(t_path))) if p_path[:i + 1] != t_path[:i + 1]][:1],
            "paper_top1": b["top1"], "paper_interval": percent_interval(b["top1"], b["eval_videos"]),
            "ties_top1": a["top1"], "ties_interval": percent_interval(a["top1"], a["eval_videos"]),
            "paper_gflops": b["gflops"], "ties_gflops": a["gflops"], "videos": c.n,
            "ties_minus_paper": c.difference, "paired_interval": [c.low, c.high], "mcnemar_p": c.p_value,
            "paper_compute": iteration_compute(paper), "ties_compute": iteration_compute(ties),
            "unit": "/".join(sorted(paper.get("compute_hours_by_unit", {}))) or "-",
            "paper_wall_s": paper["wall_s"], "ties_wall_s": ties["wall_s"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "ties")
    ap.add_argument("--job", default="jobs/demo.yaml")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--level", type=float, default=0.05)
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    definition = yaml.safe_load((ROOT / args.job).read_text())
    definition.pop("ties", None)
    if definition.get("synthetic") is not None:  # one dataset for every search, generated once under --work
        definition["synthetic"] = {**definition["synthetic"], "root": str(work / "data" / "synth")}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        name = f"{definition['name']}-s{seed}"
        print(f"== {name} paper", flush=True)
        paper = run_search(work, {**definition, "seed": seed}, f"{name}-paper")
        b = Path(paper["hypotheses"][0]["out_dir"]) / "model.pt"
        print(f"== {name} ties", flush=True)
        ties = run_search(work, {**definition, "seed": seed, "base": {"checkpoint": str(b)},
                                 "ties": {"rule": "paired", "level": args.level}}, f"{name}-ties")
        rows.append({"seed": seed, **compare(paper, ties)})
    print(f"\n### {args.job}: the paper's rule against ties (paired, level {args.level:g})\n")
    print("| seed | paper path | ties path | paper final top-1 [95%] | ties final top-1 [95%] | GFLOPs paper / ties "
          "| ties - paper, paired [95%] (p) | compute paper / ties |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pi, ti = r["paper_interval"], r["ties_interval"]
        print(f"| {r['seed']} | {','.join(r['paper_path'])} | {','.join(r['ties_path'])} | "
              f"{r['paper_top1']:.2f} [{pi[0]:.1f}, {pi[1]:.1f}] | {r['ties_top1']:.2f} [{ti[0]:.1f}, {ti[1]:.1f}] | "
              f"{r['paper_gflops']:.4g} / {r['ties_gflops']:.4g} | {r['ties_minus_paper']:+.2f} "
              f"[{r['paired_interval'][0]:+.2f}, {r['paired_interval'][1]:+.2f}] (p {r['mcnemar_p']:.2g}) | "
              f"{r['paper_compute']:.3g} / {r['ties_compute']:.3g} {r['unit']} |")
    out = work / "bench_ties.json"
    out.write_text(json.dumps({"job": args.job, "level": args.level, "seeds": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
