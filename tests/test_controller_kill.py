"""The controller survives SIGKILL: a search with successive halving whose controller is killed at random
instants and restarted each time ends with the same rung decisions and winners as an uninterrupted run,
every hypothesis trained at most once per rung (one completed attempt per rung reached, every optimizer
step once), nothing lost, each iteration's latency measured once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tinyjob import TINY_RECIPE, look, tiny_job

# 2 epochs x 3 steps: rungs end after 1, 2 and 6 steps (eta 3, 3 rungs)
JOB = tiny_job("kill", iterations=1, recipe={**TINY_RECIPE, "epochs": 2},
               halving={"eta": 3, "rungs": 3}, operators={"s": 1.4, "t": 2, "f": 2, "c": 1.4},
               synthetic={"root": "data/synth", "classes": 4, "videos_per_class": 3, "val_per_class": 2, "frames": 16},
               # latency measured (once, under kills), briefly
               eval={"clips": 2, "latency_batches": [1], "latency_rounds": 1, "latency_passes": 2})
RUNG_ENDS = {1: 1, 2: 2, 3: 6}


def _search(cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--poll", "0.3"],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _status(cwd: Path) -> dict:
    """`pas status --json` (its function, in this process: tests/tinyjob.look)."""
    st = look(cwd)
    assert st is not None
    return st


def _winners(status: dict) -> list[str]:
    return [h["path"] for h in status["hypotheses"] if h["winner"]]


def _prepare(root: Path, synth: Path) -> Path:
    root.mkdir()
    (root / "job.yaml").write_text(yaml.safe_dump(JOB))
    (root / "data").mkdir()
    (root / "data" / "synth").symlink_to(synth)
    return root


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The job's dataset, generated once by a first controller run (shared by both searches)."""
    from pas_models.data.synth import SynthConfig, generate
    from pas_models.data.synth import stamp as synth_stamp

    root = tmp_path_factory.mktemp("kill-data") / "synth"
    s = JOB["synthetic"]
    cfg = SynthConfig(classes=s["classes"], videos_per_class=s["videos_per_class"], val_per_class=s["val_per_class"],
                      frames=s["frames"])
    root.mkdir()
    (root / "synth.json").write_text(json.dumps(synth_stamp(cfg), indent=2) + "\n")
    generate(root, cfg)
    return root


@pytest.mark.slow
def _run_killing_it(folder: Path) -> int:
    """The search in ``folder`` run to its end with its controller SIGKILLed at random instants (at least 10
    times, then left to finish); how many kills."""
    rng = random.Random(1234)
    kills = 0
    deadline = time.monotonic() + 900
    while True:
        assert time.monotonic() < deadline, "the killed search did not finish"
        proc = _search(folder)
        try:
            # 0.3-1.5 s: the controller starts in well under a second (it imports torch only to plan), and the
            # search (about 20 s of jobs, which go on while their controller is dead) must not end before the
            # tenth kill
            proc.wait(timeout=rng.uniform(0.3, 1.5) if kills < 10 else 900)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        return kills


def test_sigkilled_controller_resumes_to_the_same_search(synth: Path, tmp_path: Path) -> None:
    clean = _prepare(tmp_path / "clean", synth)
    proc = _search(clean)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err.decode()[-3000:]
    reference = _status(clean)
    assert reference["state"] == "DONE" and len(_winners(reference)) == 1

    killed = _prepare(tmp_path / "killed", synth)
    assert _run_killing_it(killed) >= 10
    final = _status(killed)
    assert final["state"] == "DONE"
    assert _winners(final) == _winners(reference)
    for h in final["hypotheses"]:
        ref = next(r for r in reference["hypotheses"] if (r["iteration"], r["op"]) == (h["iteration"], h["op"]))
        assert h["state"] == ref["state"]
        assert (h["rung"], h["rung_top1"], h["stopped_at_rung"]) == (ref["rung"], ref["rung_top1"],
                                                                     ref["stopped_at_rung"]), (h, ref)
        if h["state"] not in ("DONE", "STOPPED"):
            continue
        assert h["top1"] == ref["top1"] and h["top5"] == ref["top5"], h  # no result lost or mixed up
        completed = [a for a in h["attempts"] if a["state"] == "COMPLETED"]
        reached = len(h["rung_top1"]) + (h["state"] == "DONE")  # the rungs it ended (B: one, the whole run)
        assert len(completed) == reached and [a["rung"] for a in completed] == (
            list(range(1, reached + 1)) if h["iteration"] else [None]), h["attempts"]
        assert all(a["state"] in ("COMPLETED", "ABANDONED") for a in h["attempts"]), h["attempts"]
        # trained once per rung: every optimizer step of the schedule it reached appears once
        steps = [json.loads(line) for line in (Path(h["out_dir"]) / "metrics.jsonl").read_text().splitlines()]
        keys = [(x["epoch"], x["step"]) for x in steps]
        assert len(keys) == len(set(keys)) == RUNG_ENDS[reached if h["iteration"] else 3], (h["op"], keys)
    for it in (1,):  # 4 -> ceil(4 / 3) = 2 -> 1
        hs = [h for h in final["hypotheses"] if h["iteration"] == it and h["kind"] == "pas"
              and h["state"] != "NOT_APPLICABLE"]
        n1 = len(hs)
        n2 = sum(1 for h in hs if h["stopped_at_rung"] != 1)
        assert n2 == max(1, -(-n1 // 3)) and sum(1 for h in hs if h["state"] == "DONE") == 1, hs
    text = subprocess.run([sys.executable, "-m", "pas_orchestrator", "status"], cwd=killed, capture_output=True,
                          text=True, check=True, timeout=60).stdout
    assert "stopped@1" in text and "3/3" in text and "rung top-1 %" in text, text
    # each iteration's latency measured once, alone
    assert [m["iteration"] for m in final["measurements"]] == [1]
    for m in final["measurements"]:
        assert m["state"] == "DONE" and [a["state"] for a in m["attempts"]].count("COMPLETED") == 1, m
