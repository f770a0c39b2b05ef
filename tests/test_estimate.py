"""`pas search --dry-run`'s cost estimate (pas_orchestrator/estimate.py): the formulas on figures worked out
by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pas_orchestrator.estimate import Inputs, estimate

X = Inputs(train_clips=100, val_videos=10, views=2, base_gflops=4.0, iteration1_gflops=(2.0, 2.0),
           iterations=2, base_epochs=3, epochs=5, distill=True, baselines=False, baseline_epochs=3, halving=None,
           throughput=1.0, throughput_source="test", gpus_per_job=4, processes_per_job=4, time_limit_h=2.0,
           max_retries=1, max_requeues=2, measure=False)
H = 1 / 3600  # hours per GFLOP at 1 GFLOP/s


def test_expected_compute_of_a_search() -> None:
    # B: 3 epochs x 100 clips x 3 x 4 + 10 videos x 2 views x 4
    base = 3 * 100 * 3 * 4.0 + 10 * 2 * 4.0
    # iteration 1: two networks of 2 GFLOPs, distilled from B (4): 5 x 100 x (3 x 2 + 4) + 10 x 2 x 2 each
    it1 = 2 * (5 * 100 * (3 * 2.0 + 4.0) + 10 * 2 * 2.0)
    # iteration 2: costs scaled by r = 2 / 4 (the geometric mean of iteration 1's ratios): 1 GFLOPs each
    it2 = 2 * (5 * 100 * (3 * 1.0 + 4.0) + 10 * 2 * 1.0)
    est = estimate(X)
    assert est.expected_hours == pytest.approx((base + it1 + it2) * H) and est.unit == "GPU-h"
    # an imported B is only evaluated
    assert estimate(replace(X, base_epochs=0)).expected_hours == pytest.approx((10 * 2 * 4.0 + it1 + it2) * H)


def test_worst_case_counts_retries_requeues_and_one_job_per_rung() -> None:
    # (1 + 2 + 2) jobs x (1 + 1) x (1 + 2) x 2 h x 4 GPUs
    assert estimate(X).worst_hours == pytest.approx(5 * 2 * 3 * 2.0 * 4)
    # halving eta 2, 3 rungs: 2 -> 1 -> 1 jobs per iteration: 1 + 2 x 4
    assert estimate(replace(X, halving=(2, 3))).worst_hours == pytest.approx(9 * 2 * 3 * 2.0 * 4)
    # latency jobs: one GPU for at most 30 minutes, retried as well
    assert estimate(replace(X, measure=True)).worst_hours == pytest.approx(5 * 2 * 3 * 2.0 * 4 + 2 * 2 * 0.5)
    assert estimate(replace(X, gpus_per_job=0)).unit == "CPU-h"


def test_halving_share_of_the_full_search() -> None:
    est = estimate(replace(X, halving=(2, 3), iteration1_gflops=(2.0, 2.0, 2.0, 2.0)))
    full = estimate(replace(X, iteration1_gflops=(2.0, 2.0, 2.0, 2.0)))
    assert est.expected_hours is not None and full.expected_hours is not None
    assert est.full_fraction == pytest.approx(est.expected_hours / full.expected_hours)
    assert 0 < est.full_fraction < 1
    assert any("an iteration of 4 trains" in line for line in est.lines)


def test_replicas_multiply_every_network_and_b_s_cache_but_not_an_imported_b_nor_the_baselines() -> None:
    base = 3 * 100 * 3 * 4.0 + 10 * 2 * 4.0
    it1 = 2 * (5 * 100 * (3 * 2.0 + 4.0) + 10 * 2 * 2.0)
    it2 = 2 * (5 * 100 * (3 * 1.0 + 4.0) + 10 * 2 * 1.0)
    three = estimate(replace(X, replicas=3))
    assert three.expected_hours == pytest.approx(3 * (base + it1 + it2) * H)
    assert "x 3 replicas" in three.lines[0]
    imported = estimate(replace(X, replicas=3, base_epochs=0))
    assert imported.expected_hours == pytest.approx((10 * 2 * 4.0 + 3 * (it1 + it2)) * H)
    # jobs: 3 B + 3 x 4 hypotheses, each (1 + 1) x (1 + 2) x 2 h x 4 GPUs; a cache shard pair per B replica
    assert three.worst_hours == pytest.approx(15 * 2 * 3 * 2.0 * 4)
    cached = estimate(replace(X, replicas=3, distill=False, cache_clips=160, cache_shards=2))
    assert cached.worst_hours == pytest.approx(15 * 2 * 3 * 2.0 * 4 + 3 * 2 * 2 * 3 * 2.0)
    with_baselines = estimate(replace(X, replicas=2, baselines=True))
    once = estimate(replace(X, baselines=True))
    assert with_baselines.expected_hours is not None and once.expected_hours is not None
    baselines = 2 * (3 * 100 * 3 * 1.5 + 10 * 2 * 1.5) * H  # mean cost of each iteration's networks, once
    assert with_baselines.expected_hours == pytest.approx(2 * (once.expected_hours - baselines) + baselines)


def test_unknown_when_nothing_says_how_fast() -> None:
    est = estimate(replace(X, throughput=None))
    assert est.expected_hours is None and "no throughput" in est.lines[0]
    assert estimate(replace(X, train_clips=None)).lines[0].startswith("expected: unknown (the dataset lists")


def test_a_teacher_cache_costs_one_pass_of_b_and_no_teacher_in_the_steps() -> None:
    # 20 videos x K 8 clips of B's forward (4 GFLOPs), once; the hypotheses' steps without B's forward
    cached = estimate(replace(X, distill=False, cache_clips=20 * 8, cache_shards=2))
    base = 3 * 100 * 3 * 4.0 + 10 * 2 * 4.0
    it1 = 2 * (5 * 100 * 3 * 2.0 + 10 * 2 * 2.0)
    it2 = 2 * (5 * 100 * 3 * 1.0 + 10 * 2 * 1.0)
    assert cached.expected_hours == pytest.approx((base + 20 * 8 * 4.0 + it1 + it2) * H)
    assert "teacher cache" in cached.lines[0] and "(3 g_h)" in cached.lines[0]
    # each shard job may use its whole time limit, retried and requeued like any job (one GPU each)
    assert cached.worst_hours == pytest.approx(5 * 2 * 3 * 2.0 * 4 + 2 * 2 * 3 * 2.0)


def test_local_processes_have_a_worst_case_of_retries_not_of_scheduler_time_limits() -> None:
    """A local search (no scheduler: no queue, no requeues) whose jobs are far shorter than the time limit: the
    worst case is every job failing ``max_retries`` times at its very end, not 24 h per attempt and requeue."""
    local = replace(X, scheduler=False, time_limit_h=24.0, max_requeues=20)
    est = estimate(local)
    assert est.expected_hours is not None
    assert est.worst_hours == pytest.approx(est.expected_hours * (1 + local.max_retries))
    assert est.lines[1].startswith("worst case: every job fails 1 time at its very end") and "requeue" not in \
        est.lines[1].split(";")[0]
    # a local job that would run past the time limit: the time-limit bound again
    slow = replace(local, throughput=0.001)
    assert estimate(slow).worst_hours == pytest.approx(5 * 2 * 21 * 24.0 * 4)


def test_an_assumed_dataset_size_gives_an_expected_figure_flagged_as_assumed() -> None:
    est = estimate(replace(X, size_note="assumed: 100 training clips"))
    assert est.expected_hours == estimate(X).expected_hours
    assert est.lines[0].startswith("expected (assumed: 100 training clips): ")


@pytest.mark.parametrize(("fmt", "split", "classes", "size"), [
    ("kinetics400", 1, 400, (240_000, 20_000)), ("ucf101", 1, 101, (9537, 3783)), ("ucf101", 3, 101, (9624, 3696)),
    ("hmdb51", 2, 51, (3570, 1530)), ("kinetics400", 1, 600, None), ("list", 1, 10, None)])
def test_standard_dataset_sizes(fmt: str, split: int, classes: int, size: tuple[int, int] | None) -> None:
    from pas_orchestrator.estimate import standard_size

    got = standard_size(fmt, split, classes)
    assert (got[:2] if got else None) == size


def test_the_dry_run_of_a_local_search_and_of_a_search_whose_lists_are_not_there(tmp_path: Path) -> None:
    """`pas search --dry-run` in-process: a local search's worst case is its retries (no 24 h time limits and
    SLURM requeues); a list dataset whose lists are missing is estimated from the definition's dataset_size."""
    import yaml
    from tinyjob import tiny_job

    from pas_models.layout import RunLayout
    from pas_orchestrator.commands.search import dry_run
    from pas_orchestrator.config.cluster import load_profile
    from pas_orchestrator.config.search import load_search

    (tmp_path / "job.yaml").write_text(yaml.safe_dump(tiny_job("dry", synthetic={
        "root": str(tmp_path / "synth"), "classes": 4, "videos_per_class": 3, "val_per_class": 1, "frames": 16}),
        sort_keys=False))
    search = load_search(tmp_path / "job.yaml")
    out = dry_run(search, load_profile("local"), RunLayout.of(tmp_path / "runs", "dry"))
    worst = next(line for line in out.splitlines() if line.startswith("# worst case"))
    assert worst.startswith("# worst case: every job fails 2 times at its very end") and "24 h x" not in worst
    assert "requeues" not in worst.split(";")[0] and "# expected: " in out

    (tmp_path / "lists").mkdir()
    listed = {**tiny_job("dry2"), "synthetic": None, "dataset_size": {"train": 300, "val": 40},
              "data": {"format": "list", "root": str(tmp_path / "lists"), "num_classes": 4,
                       "annotations": {"train": "train.txt", "val": "val.txt"}}}
    del listed["synthetic"]
    (tmp_path / "job2.yaml").write_text(yaml.safe_dump(listed, sort_keys=False))
    out = dry_run(load_search(tmp_path / "job2.yaml"), load_profile("local"), RunLayout.of(tmp_path / "runs", "d2"))
    assert "# expected (assumed: the definition's dataset_size, 300 training and 40 validation videos (the lists " \
           "could not be read: " in out, out
    del listed["dataset_size"]
    (tmp_path / "job2.yaml").write_text(yaml.safe_dump(listed, sort_keys=False))
    out = dry_run(load_search(tmp_path / "job2.yaml"), load_profile("local"), RunLayout.of(tmp_path / "runs", "d2"))
    assert "# expected: unknown (the dataset lists could not be read; state dataset_size" in out
