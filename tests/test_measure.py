"""The latency measurement job (pas_models.measure): its arithmetic, its result file, its resources, and
a real measurement of two networks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pas_models.measure import SPREAD_LIMIT, MeasureInvalid, MeasureJob, MeasureResult, MeasureTask, run, summarize
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_orchestrator.config.cluster import Resources, measure_resources


def test_summary_median_percentiles_and_spread() -> None:
    t = summarize("1-t", 8, [[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [4.0, 5.0, 6.0]])
    assert t.ms_per_view == 2.0  # the median of every pass
    assert t.round_medians == (2.0, 2.0, 5.0)
    assert t.spread == pytest.approx((5.0 - 2.0) / 2.0) and t.flagged
    quiet = summarize("1-t", 1, [[1.0, 1.01], [1.02, 1.0]])
    assert quiet.spread < SPREAD_LIMIT and not quiet.flagged


def test_a_result_file_is_validated_with_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"top1": 50.0}))
    with pytest.raises(MeasureInvalid, match="not a latency measurement"):
        MeasureResult.read(path)
    good = MeasureResult("1-latency", 1, "cpu (2 threads)", "h", 10, 3, (summarize("0-base", 1, [[1.0], [1.1]]),))
    d = good.to_dict()
    assert MeasureResult.from_dict(json.loads(json.dumps(d))) == good
    d["timings"][0]["ms_per_view"] = float("nan")
    path.write_text(json.dumps(d))
    with pytest.raises(MeasureInvalid, match=r"result.json: timings\[0\]: times must be finite"):
        MeasureResult.read(path)
    path.write_text("{")
    with pytest.raises(MeasureInvalid, match="not JSON"):
        MeasureResult.read(path)


@pytest.mark.parametrize(("gres", "expected"), [(None, None), ("gpu:4", "gpu:1"), ("gpu:v100:4", "gpu:v100:1")])
def test_a_measurement_gets_one_process_one_gpu_and_the_node_to_itself(gres: str | None,
                                                                       expected: str | None) -> None:
    res = Resources(nodes=16, tasks_per_node=4, gpus_per_node=4, gres=gres, time_min=1440, array_parallelism=8)
    m = measure_resources(res)
    assert (m.nodes, m.tasks_per_node, m.gpus_per_node, m.gres, m.exclusive, m.time_min, m.array_parallelism) == (
        1, 1, 1, expected, True, 30, None)
    assert measure_resources(Resources(gpus_per_node=0)).gpus_per_node == 0  # a CPU cluster stays one


def test_two_networks_timed_interleaved_and_written_last(tmp_path: Path) -> None:
    b = preset("r2plus1d_tiny", 4)
    f = apply_op(b, "f")
    task = MeasureTask("1-latency", str(tmp_path / "m"), (("0-base", b.to_json()), ("1-f", f.to_json())),
                       batches=(1, 2), passes=3, rounds=2, warmup=1)
    result = run(task, device="cpu")
    assert [(t.network, t.batch) for t in result.timings] == [("0-base", 1), ("0-base", 2), ("1-f", 1), ("1-f", 2)]
    assert all(len(t.round_medians) == 2 and t.ms_per_view > 0 for t in result.timings)
    assert result.device.startswith("cpu (") and MeasureResult.read(task.result_path) == result
    assert run(task) == result  # done already: read back, not measured again
    # it said what it was doing: 2 rounds x 2 networks x 2 batch sizes
    progress = json.loads((tmp_path / "m" / "progress.json").read_text())
    assert (progress["step"], progress["steps"]) == (8, 8) and progress["what"].startswith("round 2/2: ")


def test_the_measurement_job_logs_what_it_is_doing(tmp_path: Path) -> None:
    b = preset("r2plus1d_tiny", 4)
    task = MeasureTask("1-latency", str(tmp_path / "m"), (("0-base", b.to_json()),), batches=(1,), passes=2,
                       rounds=2, warmup=0)
    MeasureJob()(task)
    text = (tmp_path / "m" / "train.log").read_text()
    assert "1-latency: timing 1 networks x batches [1], 2 interleaved rounds" in text
    assert "1-latency: 2 of 2 timings done (round 2/2: 0-base batch 1)" in text
