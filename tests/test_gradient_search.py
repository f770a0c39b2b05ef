"""strategy: gradient, for real: a local search (B, a supernet per target as one batch, the candidates as rungs,
the best to the end), its controller SIGKILLed while a supernet trains and resumed with the same command; then
`pas status`, `pas report --compare` against a PAS search of the same base, and the dry run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tinyjob import TINY_RECIPE, look, pas, tiny_job

from pas_models.flops import count_cost
from pas_models.presets import preset

B = count_cost(preset("r2plus1d_tiny", 4)).gflops
TARGETS = [round(B * 0.5, 7), round(B * 0.25, 7)]
GRAD = tiny_job("grad", strategy="gradient",
                gradient={"targets_gflops": TARGETS, "epochs": 2, "cycles": 2, "arch_lr": 0.05, "holdout": 0.25,
                          "candidate_fraction": 0.5},
                recipe={**TINY_RECIPE, "epochs": 2, "clips_per_video": 2})
PAS = tiny_job("pas1", iterations=1, operators={"t": 2, "s": 1.4}, recipe={**TINY_RECIPE, "epochs": 2})


@pytest.mark.slow
def test_a_gradient_search_killed_and_resumed_then_compared_with_pas(tmp_path: Path) -> None:
    (tmp_path / "grad.yaml").write_text(yaml.safe_dump(GRAD))
    (tmp_path / "pas1.yaml").write_text(yaml.safe_dump(PAS))
    dry = pas(tmp_path, "search", "--job", "grad.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "strategy gradient" in dry.stdout and "2 supernets" in dry.stdout and "expected:" in dry.stdout
    controller = subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "grad.yaml",
                                   "--poll", "0.3"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400
        while True:  # SIGKILL the controller once a supernet job runs
            assert time.monotonic() < deadline and controller.poll() is None
            # both supernets submitted (one array: a kill between its attempts and sbatch is the SLURM kill
            # test's), one of them training
            supernets = [h for h in (look(tmp_path) or {"hypotheses": []})["hypotheses"] if h["kind"] == "supernet"]
            if len(supernets) == 2 and all(h["attempts"] and h["attempts"][-1]["job_id"] for h in supernets) \
                    and any(h["state"] == "RUNNING" for h in supernets):
                break
            time.sleep(0.3)
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait(timeout=30)
    finally:
        controller.kill()
    resumed = pas(tmp_path, "search", "--job", "grad.yaml", "--poll", "0.3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert status["state"] == "DONE", status["error"]
    supernets = [h for h in status["hypotheses"] if h["kind"] == "supernet"]
    assert [h["iteration"] for h in supernets] == [1, 2] and all(h["state"] == "DONE" for h in supernets)
    assert all(len(h["attempts"]) == 1 for h in supernets)  # trained once, across the kill
    assert len({a["job_name"].rsplit("_", 1)[0] for h in supernets for a in h["attempts"]}) == 1  # one array
    for j in (1, 2):
        cands = [h for h in status["hypotheses"] if h["kind"] == "pas" and h["iteration"] == j]
        assert 1 <= len(cands) <= 2
        winners = [h for h in cands if h["winner"]]
        assert len(winners) == 1 and winners[0]["state"] == "DONE"
        assert all(h["state"] == "STOPPED" for h in cands if not h["winner"])
        result = json.loads((Path(winners[0]["out_dir"]) / "result.json").read_text())
        # candidate_init supernet (the default): every candidate starts from its weights cut from its target's
        # supernet at the end of its cycle (the same shapes: loaded whole), distilled from the live B
        assert result["finetuned_from_parent"] is True
        log = (Path(winners[0]["out_dir"]) / "train.log").read_text()
        assert re.search(rf"initialised from .*/{j}-supernet/candidates/cycle\d-g\d+\.pt \(weights copied\)", log), log
        assert result["teacher_source"] == "live"
    text = pas(tmp_path, "status").stdout
    assert "search grad on local: DONE" in text and "supernet" in text

    _compared_with_pas(tmp_path)

def _compared_with_pas(tmp_path: Path) -> None:
    """A PAS search of the same B, its "without PAS" study, and `pas report --compare` against the gradient search."""
    assert pas(tmp_path, "search", "--job", "pas1.yaml", "--poll", "0.3").returncode == 0
    # the "without PAS" study on that PAS search (baselines: false): its winner from scratch, beside its PAS figure
    study = pas(tmp_path, "study", "baselines", "--search", "pas1", "--poll", "0.3")
    assert study.returncode == 0, study.stderr[-3000:]
    (row,) = [r.split("|")[1:-1] for r in study.stdout.splitlines() if r.startswith("| 1 |")]
    winner = next(h for h in json.loads(pas(tmp_path, "status", "--search", "pas1", "--json").stdout)["hypotheses"]
                  if h["winner"])
    pas_top, without = (float(c.split()[0]) for c in row[3:5])
    assert pas_top == winner["top1"] and 0 <= without <= 100 and "[" in row[3] and "[" in row[4]
    assert row[5].strip().startswith(f"{winner['top1'] - without:+.2f} [")  # the gain with its paired interval
    strategy_gradient = pas(tmp_path, "study", "ablation", "--search", "grad")
    assert strategy_gradient.returncode == 1 and "the studies are about PAS's iterations" in strategy_gradient.stderr
    report = pas(tmp_path, "report", "--search", "grad", "--compare", "pas1")
    assert report.returncode == 0, report.stderr
    compare = (tmp_path / "runs/grad/report/compare-pas1.md").read_text()
    assert "grad-target-1" in compare and "pas1-PAS-1" in compare and "CPU-h" in compare
    # the same B and test videos: each network against the other search's nearest in cost, paired
    rows = [r.split("|")[1:-1] for r in compare.splitlines() if r.startswith("| grad |")]
    assert rows and all(re.fullmatch(r" [+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\].*", r[9]) for r in rows), rows
    assert (tmp_path / "runs/grad/report/compare-pas1.png").stat().st_size > 10_000
    assert "# gradient search (a supernet per target) grad" in (tmp_path / "runs/grad/report/table.md").read_text()



def test_a_hold_out_smaller_than_a_batch_is_refused_at_start(tmp_path: Path) -> None:
    job = {**GRAD, "recipe": {**TINY_RECIPE, "epochs": 2, "batch_per_gpu": 8}}
    (tmp_path / "grad.yaml").write_text(yaml.safe_dump(job))
    out = pas(tmp_path, "search", "--job", "grad.yaml")
    assert out.returncode != 0 and "gradient.holdout: the supernet's hold-out split has 3 of the 12" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_target_outside_the_space_is_refused_before_anything_runs(tmp_path: Path) -> None:
    job = {**GRAD, "gradient": {**GRAD["gradient"], "targets_gflops": [B * 2]}}
    (tmp_path / "grad.yaml").write_text(yaml.safe_dump(job))
    out = pas(tmp_path, "search", "--job", "grad.yaml")
    assert out.returncode != 0 and "gradient.targets_gflops" in out.stderr and "outside the search space" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "runs").exists()
