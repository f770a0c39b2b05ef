"""Replicas for real (``replicas: 2``): a whole search in subprocesses with a teacher cache and successive halving,
every replica a chain of its own on disk: B's replicas, a cache per B replica, hypotheses distilled from their B
replica's cache and fine-tuned from their parent's replica, a rung decision that stops a hypothesis with its
replica, and the status that shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tinyjob import pas, tiny_job

JOB = tiny_job("replicated", iterations=2, operators={"t": 2, "s": 1.4}, replicas=2,
               halving={"eta": 2, "rungs": 2},
               distill={"alpha": 10, "teacher_bn": "train", "cache": {"clips_per_video": 4, "shards": 1}})


@pytest.mark.slow
def test_a_replicated_search_with_a_cache_and_halving_runs_each_chain_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    run = pas(tmp_path, "search", "--job", "job.yaml", "--poll", "0.3")
    assert run.returncode == 0, run.stderr[-3000:]
    st = json.loads(pas(tmp_path, "status", "--json").stdout)
    assert st["state"] == "DONE", st["error"]
    rows = {(h["iteration"], h["op"]): h for h in st["hypotheses"]}
    assert rows[0, "base.r1"]["kind"] == "replica" and rows[0, "base.r1"]["state"] == "DONE"
    assert sorted(s["shard"] for s in st["teacher_cache"]) == [0, 0]  # shard 0 of each B replica's cache
    runs = tmp_path / "runs/replicated"
    assert (runs / "teacher_cache").is_dir() and (runs / "teacher_cache-r1").is_dir()
    for i in (1, 2):
        winner = next(h for h in st["hypotheses"] if h["iteration"] == i and h["winner"])
        loser = next(h for h in st["hypotheses"] if h["iteration"] == i and h["kind"] == "pas" and not h["winner"])
        # the loser was stopped at rung 1 together with its replica, or both trained to the end
        assert rows[i, loser["op"] + ".r1"]["state"] == loser["state"]
        assert rows[i, winner["op"] + ".r1"]["state"] == "DONE"
        assert winner["replicas"]["count"] == 2 and len(winner["replicas"]["top1"]) == 2
        log = (Path(rows[i, winner["op"] + ".r1"]["out_dir"]) / "train.log").read_text()
        assert "teacher_cache-r1" in log  # distilled from its own B replica's soft labels
        if i == 2:  # fine-tuned from iteration 1's winner's replica 1, not from replica 0
            first = next(h for h in st["hypotheses"] if h["iteration"] == 1 and h["winner"])
            assert str(Path(rows[1, first["op"] + ".r1"]["out_dir"]) / "model.pt") in log
    text = pas(tmp_path, "status").stdout
    assert "replicas (replica r trains with the search's seed + r" in text and "base.r1" in text
    report = pas(tmp_path, "report")
    assert report.returncode == 0, report.stderr[-2000:]
    table = (runs / "report/table.md").read_text()
    assert "## Replicas" in table and "videos x 2 replicas" in table
    assert "<h2>Replicas</h2>" in (runs / "report/report.html").read_text()
