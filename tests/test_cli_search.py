"""The controller's commands on a real (tiny) search: a second controller is refused, `pas cancel`
stops the controller and its jobs, `pas search` resumes the cancelled search to the end, then
`pas status`, `pas report` and `pas export` on the result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tinyjob import TINY_RECIPE, look, paced, pas, tiny_job

# B trains 12 steps; the first controller's jobs are paced to 1 s a step (no CPU): B still runs when `pas cancel`
# comes, whatever else runs here
# latency measured at batches 1 and 2, 5 passes a round (a real search's defaults, 1 and 8 x 10, only cost CPU here)
JOB = tiny_job("cli", iterations=1, operators={"s": 1.4, "f": 2, "c": 1.4}, baselines=True,
               eval={"clips": 1, "latency_batches": [1, 2], "latency_passes": 5},
               base={"train": True, "recipe": {**TINY_RECIPE, "epochs": 2, "clips_per_video": 2}},
               recipe={**TINY_RECIPE, "epochs": 2})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_cancel_resume_status_report_export(tmp_path: Path) -> None:
    """One search through the commands a person uses: cancelled while B trains, resumed to its end, looked at,
    reported and exported; then the studies of the paper on it, recorded in its ledger."""
    _cancel_while_b_trains(tmp_path)
    status, by, winner = _resume_to_the_end(tmp_path)
    _report_with_latency(tmp_path, status, winner)
    _export(tmp_path, winner)
    _teacher_bn_and_ablation(tmp_path, by)
    _distill_baselines_and_status(tmp_path, by)
    _transfer(tmp_path)


def _cancel_while_b_trains(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    controller = subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml",
                                   "--poll", "0.3"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env={**os.environ, **paced(1.0)})
    try:
        deadline = time.monotonic() + 300
        while True:  # wait for a running job
            assert time.monotonic() < deadline and controller.poll() is None
            st = look(tmp_path)
            if st and [a for h in st["hypotheses"] for a in h["attempts"] if a["job_id"]]:
                break
            time.sleep(0.3)
        second = pas(tmp_path, "search", "--job", "job.yaml")
        assert second.returncode == 1 and f"another controller runs this search (pid {controller.pid}" in second.stderr
        cancel = pas(tmp_path, "cancel")
        assert cancel.returncode == 0, cancel.stderr
        assert "search cli cancelled; its controller stopped; 1 job(s) cancelled" in cancel.stdout
        assert controller.wait(timeout=60) != 0
    finally:
        controller.kill()
    status = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert status["state"] == "CANCELLED"
    killed = [int(a["job_id"]) for h in status["hypotheses"] for a in h["attempts"]]
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in killed)  # the training process is gone too
    assert {a["state"] for h in status["hypotheses"] for a in h["attempts"]} == {"CANCELLED"}


def _resume_to_the_end(tmp_path: Path) -> tuple[dict, dict, dict]:
    resumed = pas(tmp_path, "search", "--job", "job.yaml", "--poll", "0.3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = look(tmp_path)  # `pas status --json`'s function (the command itself: above and below)
    assert status is not None
    assert status["state"] == "DONE"
    by = {(h["iteration"], h["op"], h["kind"]): h for h in status["hypotheses"]}
    assert by[(0, "base", "pas")]["state"] == "DONE" and len(by[(0, "base", "pas")]["attempts"]) == 2
    winner = next(h for h in status["hypotheses"] if h["winner"])
    # every accuracy with its interval over the 4 test videos, every hypothesis against the winner on them
    lo, hi = winner["top1_interval"]
    assert winner["eval_videos"] == 4 and lo <= winner["top1"] <= hi and hi - lo > 20
    rivals = [h for h in status["hypotheses"] if h["iteration"] == 1 and h["kind"] == "pas" and not h["winner"]
              and h["state"] == "DONE"]
    assert rivals and all(h["vs_winner"]["videos"] == 4 and h["vs_winner"]["winner"] == winner["op"] for h in rivals)
    assert all(h["vs_winner"]["interval"][0] <= h["vs_winner"]["difference"] <= h["vs_winner"]["interval"][1]
               for h in rivals)
    assert winner["iteration"] == 1 and by[(1, winner["op"], "baseline")]["state"] == "DONE"
    text = pas(tmp_path, "status").stdout
    assert "search cli on local: DONE" in text and "DONE *" in text and "(scratch)" in text and "95% CI" in text
    from pas_orchestrator.ledger.store import Ledger

    led = Ledger(tmp_path / "runs" / "cli" / "ledger.sqlite", readonly=True)  # the winner's why: the same videos
    whys = [e.message for e in led.events(1000) if e.kind == "winner"]
    led.close()
    assert whys and "on the same 4 videos (paired, 95%)" in whys[0], whys

    return status, by, winner


def _report_with_latency(tmp_path: Path, status: dict, winner: dict) -> None:
    report = pas(tmp_path, "report")
    assert report.returncode == 0, report.stderr
    table = (tmp_path / "runs/cli/report/table.md").read_text()
    assert "| cli (B) | - |" in table and f"| cli-PAS-1 | {winner['path']} |" in table
    assert (tmp_path / "runs/cli/report/pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # latency beside GFLOPs: measured alone by one job per iteration (B and the iteration's networks
    # interleaved), not by the trainings, which ran beside each other
    result = json.loads((Path(winner["out_dir"]) / "result.json").read_text())
    assert result["latency"] == []
    [measure] = status["measurements"]
    assert measure["iteration"] == 1 and measure["state"] == "DONE"
    trained = ["0-base"] + [f"1-{h['op']}" for h in status["hypotheses"] if h["iteration"] == 1
                            and h["kind"] == "pas" and h["state"] == "DONE"]
    assert sorted((t["network"], t["batch"]) for t in measure["timings"]) == sorted(
        (n, b) for n in trained for b in (1, 2))
    assert all(t["ms_per_view"] > 0 and len(t["round_medians"]) == 3 for t in measure["timings"])
    [m] = measure["attempts"]
    for h in status["hypotheses"]:  # nothing else of the search ran beside it
        for a in h["attempts"]:
            if a["started_at"] is not None:
                assert a["ended_at"] <= m["submitted_at"] or a["submitted_at"] >= m["ended_at"], (h["op"], a, m)
    path_rows = [line.split("|") for line in table.splitlines() if line.startswith("| cli")]
    assert len(path_rows) == 2 and all(float(r[7].split()[0]) > 0 for r in path_rows)  # ms/view at batch 1
    assert "(FLOPs " in path_rows[1][8]  # measured speedup (or "not trusted") next to the FLOPs reduction
    # the figure plots what was trusted (B's and the network's spread both within 20%), and only that
    by_net = {(t["network"], t["batch"]): t for t in measure["timings"]}
    trusted = [(n, b) for (n, b), t in by_net.items() if n != "0-base" and t["spread"] <= 0.2
               and by_net[("0-base", b)]["spread"] <= 0.2]
    speedup = tmp_path / "runs/cli/report/speedup.png"
    if trusted:
        assert speedup.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "not trusted" in path_rows[1][8] and not speedup.exists()


def _export(tmp_path: Path, winner: dict) -> None:
    export = pas(tmp_path, "export")
    assert export.returncode == 0, export.stderr
    best = tmp_path / "runs/cli/report/best"
    info = json.loads((best / "model.json").read_text())
    assert info["path"] == winner["path"] and info["top1"] == winner["top1"]
    scripted = torch.jit.load(str(best / "model.ts"))
    assert scripted(torch.zeros(info["input_shape"])).shape == (1, 4)


def _teacher_bn_and_ablation(tmp_path: Path, by: dict) -> None:
    # studies on the finished search (paper Tables 7 and 4), recorded in its ledger, run by the same controller
    dry = pas(tmp_path, "study", "teacher-bn", "--search", "cli", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 training(s)" in dry.stdout and "1-s.bn-eval" in dry.stdout and "# expected: " in dry.stdout
    slurm = subprocess.run([sys.executable, "-m", "pas_orchestrator", "study", "teacher-bn", "--search", "cli",
                            "--dry-run", "--cluster", str(Path(__file__).resolve().parents[1] / "cluster_profiles"
                                                          / "marconi100.yaml")], cwd=tmp_path, capture_output=True,
                           text=True, env={**os.environ, "PAS_ACCOUNT": "acct"}, timeout=120)
    assert slurm.returncode == 0, slurm.stderr
    assert "#SBATCH --array=0-2" in slurm.stdout and "#SBATCH --job-name=pas-cli-teacher-bn-1-b1" in slurm.stdout
    bn = pas(tmp_path, "study", "teacher-bn", "--search", "cli", "--poll", "0.3")
    assert bn.returncode == 0, bn.stderr[-3000:]
    rows = {r[1].strip(): [c.strip() for c in r[1:-1]] for r in (line.split("|") for line in bn.stdout.splitlines())
            if len(r) > 5 and r[1].strip() in ("s", "f", "c")}
    assert set(rows) == {"s", "f", "c"}
    for op, r in rows.items():  # BN train: the search's own figure; BN eval: the study's training
        assert top(r[3]) == by[(1, op, "pas")]["top1"] and 0 <= top(r[4]) <= 100
    ab = pas(tmp_path, "study", "ablation", "--search", "cli", "--iteration", "1", "--poll", "0.3")
    assert ab.returncode == 0, ab.stderr[-3000:]
    assert "(paper Table 4)" in ab.stdout
    assert (tmp_path / "runs/cli/report/study-ablation-1.csv").read_text().splitlines()[0] == \
        "reduction,path,GFLOPs/view,KD + fine-tuning,\"fine-tuning, no KD\",\"KD, no fine-tuning\""
    status = look(tmp_path)
    assert status is not None
    studied = {h["op"]: h for h in status["studies"]}
    assert not any(h["kind"].startswith("study-") for h in status["hypotheses"])
    assert sum(status["studies_compute_hours_by_unit"].values()) > 0
    assert set(studied) == {"s.bn-eval", "f.bn-eval", "c.bn-eval", "s.ft-nokd", "s.kd-scratch", "f.ft-nokd",
                            "f.kd-scratch"}
    assert all(h["state"] == "DONE" and len(h["attempts"]) == 1 for h in studied.values())
    nokd = json.loads((Path(studied["s.ft-nokd"]["out_dir"]) / "result.json").read_text())
    assert nokd["teacher_source"] == "none" and nokd["finetuned_from_parent"]
    scratch = json.loads((Path(studied["s.kd-scratch"]["out_dir"]) / "result.json").read_text())
    assert scratch["teacher_source"] == "live" and not scratch["finetuned_from_parent"]
    assert json.loads((Path(studied["c.bn-eval"]["out_dir"]) / "result.json").read_text())["distill"][
        "teacher_bn"] == "eval"


def top(cell: str) -> float:
    """A study table's cell: top-1 and its 95% interval over the test videos ("56.25 [44.1-67.7]")."""
    m = re.fullmatch(r"\s*(\d+\.\d\d) \[(\d+\.\d)-(\d+\.\d)\]\s*", cell)
    assert m is not None, cell
    assert float(m[2]) <= float(m[1]) <= float(m[3]), cell
    return float(m[1])


def _distill_baselines_and_status(tmp_path: Path, by: dict) -> None:
    fd = pas(tmp_path, "study", "distill", "--search", "cli", "--op", "c", "--feature-weight", "0.5", "--poll", "0.3")
    assert fd.returncode == 0, fd.stderr[-3000:]
    (fd_row,) = [r.split("|")[1:-1] for r in fd.stdout.splitlines() if r.startswith("| c |")]
    assert top(fd_row[3]) == by[(1, "c", "pas")]["top1"] and all(0 <= top(x) <= 100 for x in fd_row[4:6])
    margin = json.loads((tmp_path / "runs/cli/hyp/1-c.margin@0.5/result.json").read_text())["distill"]
    assert (margin["feature_loss"], margin["feature_weight"]) == ("margin", 0.5)
    refused = pas(tmp_path, "study", "baselines", "--search", "cli")
    assert refused.returncode == 1 and "trained every winner without PAS already" in refused.stderr
    status = look(tmp_path)
    assert status is not None
    (tmp_path / "runs/cli/report/study-teacher-bn-1.csv").unlink()
    assert "study-teacher-bn-1.csv" in pas(tmp_path, "report").stdout  # pas report writes every study's table
    assert (tmp_path / "runs/cli/report/study-teacher-bn-1.csv").is_file()
    again = pas(tmp_path, "study", "teacher-bn", "--search", "cli", "--poll", "0.3")  # done: nothing trains again
    assert again.returncode == 0 and again.stdout.count("|") > 0
    assert json.loads(pas(tmp_path, "status", "--json").stdout)["studies"] == status["studies"]
    text = pas(tmp_path, "status").stdout
    assert "studies: teacher-bn at iteration 1 (3 of 3 trainings done); ablation at iteration 1 (4 of 4" in text
    assert "teacher-bn s.bn-eval" in pas(tmp_path, "status", "--study").stdout


def _transfer(tmp_path: Path) -> None:
    # transfer (Table 5): the shipped definitions validate by a dry run; a tiny one runs for real
    env = {**os.environ, "PAS_DATA": str(tmp_path / "datasets")}
    root = Path(__file__).resolve().parents[1]
    for job in ("transfer_ucf101.yaml", "transfer_hmdb51.yaml"):
        dry = subprocess.run([sys.executable, "-m", "pas_orchestrator", "study", "transfer", "--search", "cli", "--job",
                              str(root / "jobs" / job), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)
        assert dry.returncode == 0, dry.stderr
        assert "6 training(s)" in dry.stdout and "0-base." in dry.stdout and "short-video check runs" in dry.stdout
    made = pas(tmp_path, "data", "synth", "--out", "target", "--classes", "3", "--videos-per-class", "2",
               "--val-per-class", "1", "--frames", "16")
    assert made.returncode == 0, made.stderr
    (tmp_path / "transfer.yaml").write_text(yaml.safe_dump({
        "transfer": "tiny3", "splits": [1], "recipe": {**TINY_RECIPE, "epochs": 1}, "eval": {"clips": 1},
        "data": {"format": "list", "root": str(tmp_path / "target"), "num_classes": 3,
                 "annotations": {"train": "train.txt", "val": "val.txt"}}}))
    tr = pas(tmp_path, "study", "transfer", "--search", "cli", "--job", "transfer.yaml", "--poll", "0.3")
    assert tr.returncode == 0, tr.stderr[-3000:]
    table = [r.split("|")[1:-1] for r in tr.stdout.splitlines() if r.startswith("| cli")]
    assert [r[0].strip() for r in table] == ["cli (B)", "cli-PAS-1"] and all(0 <= float(r[3]) <= 100 for r in table)
    assert all(0 <= top(r[4]) <= 100 for r in table)  # split 1: its top-1 with its interval
    moved = json.loads((tmp_path / "runs/cli/hyp/0-base.tiny3.s1/result.json").read_text())
    assert moved["spec"]["num_classes"] == 3 and moved["finetuned_from_parent"] and moved["teacher_source"] == "none"
