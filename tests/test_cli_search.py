"""The controller's commands on a real (tiny) search: a second controller is refused, `pas cancel`
stops the controller and its jobs, `pas search` resumes the cancelled search to the end, then
`pas status`, `pas report` and `pas export` on the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tinyjob import TINY_RECIPE, pas, tiny_job

JOB = tiny_job("cli", iterations=1, operators={"s": 1.4, "f": 2, "c": 1.4}, baselines=True, eval={"clips": 1},
               base={"train": True, "recipe": {**TINY_RECIPE, "epochs": 4, "clips_per_video": 10}},
               recipe={**TINY_RECIPE, "epochs": 2})



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_cancel_resume_status_report_export(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    controller = subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml",
                                   "--poll", "0.3"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:  # wait for a running job
            assert time.monotonic() < deadline and controller.poll() is None
            if (tmp_path / "runs/cli/ledger.sqlite").exists():
                st = pas(tmp_path, "status", "--json")
                if st.returncode == 0:
                    jobs = [a for h in json.loads(st.stdout)["hypotheses"] for a in h["attempts"] if a["job_id"]]
                    if jobs:
                        break
            time.sleep(0.5)
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

    resumed = pas(tmp_path, "search", "--job", "job.yaml", "--poll", "0.3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    status = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert status["state"] == "DONE"
    by = {(h["iteration"], h["op"], h["kind"]): h for h in status["hypotheses"]}
    assert by[(0, "base", "pas")]["state"] == "DONE" and len(by[(0, "base", "pas")]["attempts"]) == 2
    winner = next(h for h in status["hypotheses"] if h["winner"])
    assert winner["iteration"] == 1 and by[(1, winner["op"], "baseline")]["state"] == "DONE"
    text = pas(tmp_path, "status").stdout
    assert "search cli on local: DONE" in text and "DONE *" in text and "(scratch)" in text

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
        (n, b) for n in trained for b in (1, 8))
    assert all(t["ms_per_view"] > 0 and len(t["round_medians"]) == 3 for t in measure["timings"])
    [m] = measure["attempts"]
    for h in status["hypotheses"]:  # nothing else of the search ran beside it
        for a in h["attempts"]:
            if a["started_at"] is not None:
                assert a["ended_at"] <= m["submitted_at"] or a["submitted_at"] >= m["ended_at"], (h["op"], a, m)
    path_rows = [line.split("|") for line in table.splitlines() if line.startswith("| cli")]
    assert len(path_rows) == 2 and all(float(r[6].split()[0]) > 0 for r in path_rows)  # ms/view at batch 1
    assert "(FLOPs " in path_rows[1][7]  # measured speedup (or "not trusted") next to the FLOPs reduction
    # the figure plots what was trusted (B's and the network's spread both within 20%), and only that
    by_net = {(t["network"], t["batch"]): t for t in measure["timings"]}
    trusted = [(n, b) for (n, b), t in by_net.items() if n != "0-base" and t["spread"] <= 0.2
               and by_net[("0-base", b)]["spread"] <= 0.2]
    speedup = tmp_path / "runs/cli/report/speedup.png"
    if trusted:
        assert speedup.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "not trusted" in path_rows[1][7] and not speedup.exists()

    export = pas(tmp_path, "export")
    assert export.returncode == 0, export.stderr
    best = tmp_path / "runs/cli/report/best"
    info = json.loads((best / "model.json").read_text())
    assert info["path"] == winner["path"] and info["top1"] == winner["top1"]
    scripted = torch.jit.load(str(best / "model.ts"))
    assert scripted(torch.zeros(info["input_shape"])).shape == (1, 4)
