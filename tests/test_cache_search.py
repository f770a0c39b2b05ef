"""A search with a teacher cache (``distill.cache``), for real: its cache stage runs as shard jobs between B
and iteration 1, the controller and a shard job are SIGKILLed in the middle of it, and the same command
finishes the search without computing a finished shard again; every hypothesis then distils from the cache
(``teacher_source: cache``, no teacher network built)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tinyjob import look, pas, tiny_job

# a shard job lasts long enough (~3.5 s) to be killed while it runs (with 32, one started from the fork server,
# which spares it the imports, once ended before the test could kill it)
CLIPS = 128
JOB = tiny_job("cached", iterations=1, operators={"t": 2, "s": 1.4},
               distill={"alpha": 10, "teacher_bn": "train", "cache": {"clips_per_video": CLIPS, "shards": 3}})


@pytest.mark.slow
def test_a_cache_stage_killed_and_resumed_computes_no_shard_twice(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    ctl = subprocess.Popen([sys.executable, "-m", "pas_orchestrator", "search", "--job", "job.yaml", "--poll", "0.3"],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:  # the first two shard jobs submitted (2 local jobs at once)
            assert time.monotonic() < deadline and ctl.poll() is None
            st = look(tmp_path)
            shards = {s["shard"]: s for s in st["teacher_cache"]} if st else {}
            if all(k in shards and shards[k]["attempts"] and shards[k]["attempts"][-1]["job_id"] for k in (0, 1)):
                break
            time.sleep(0.2)
        os.kill(ctl.pid, signal.SIGKILL)
        ctl.wait()
        victim = int(shards[0]["attempts"][-1]["job_id"])
        os.killpg(victim, signal.SIGKILL)  # a local job is a process group of its own
    finally:
        ctl.kill()
    cache = tmp_path / "runs/cached/teacher_cache"
    assert not (Path(shards[0]["out_dir"]) / "result.json").exists(), "shard 0 ended before it was killed"
    deadline = time.monotonic() + 120
    while not (Path(shards[1]["out_dir"]) / "result.json").exists():  # shard 1 finishes with no controller
        assert time.monotonic() < deadline
        time.sleep(0.2)
    kept = (cache / "shard-001-of-003.npz").stat()

    resumed = pas(tmp_path, "search", "--job", "job.yaml", "--poll", "0.3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    st = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert st["state"] == "DONE"
    by_shard = {s["shard"]: s for s in st["teacher_cache"]}
    assert sorted(by_shard) == [0, 1, 2] and all(s["state"] == "DONE" for s in by_shard.values())
    assert len(by_shard[1]["attempts"]) == 1  # found finished: ingested, not run again
    now = (cache / "shard-001-of-003.npz").stat()
    assert (now.st_ino, now.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert [a["state"] for a in by_shard[0]["attempts"]][-1] == "COMPLETED" and len(by_shard[0]["attempts"]) == 2
    assert sum(r["result"]["clips"] for r in by_shard.values()) == 12 * CLIPS  # every video, K recipes each
    # the cache stage ran between B and iteration 1
    base = st["hypotheses"][0]
    first = min(a["submitted_at"] for h in st["hypotheses"] if h["iteration"] == 1 for a in h["attempts"])
    assert all(a["ended_at"] <= first for s in by_shard.values() for a in s["attempts"] if a["state"] == "COMPLETED")
    assert base["attempts"][-1]["ended_at"] <= min(a["submitted_at"] for s in by_shard.values() for a in s["attempts"])
    for h in st["hypotheses"]:
        result = json.loads((Path(h["out_dir"]) / "result.json").read_text())
        if h["iteration"] == 0:
            assert result["teacher_source"] == "none"
        else:
            assert result["teacher_source"] == "cache"
            assert "no teacher network" in (Path(h["out_dir"]) / "train.log").read_text()
    text = pas(tmp_path, "status").stdout
    assert "cache-0" in text and "cache-2" in text
