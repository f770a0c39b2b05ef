"""Every result file type a job writes refuses a missing, non-UTF-8 or non-JSON file with one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pas_models.halving import RungInvalid, RungResult
from pas_models.measure import MeasureInvalid, MeasureResult
from pas_models.nas.result import SupernetResult, SupernetResultInvalid
from pas_models.teacher_cache.config import CacheInvalid, CacheShardResult
from pas_models.train.result import JobResult, ResultInvalid

TYPES = [(JobResult, ResultInvalid), (RungResult, RungInvalid), (MeasureResult, MeasureInvalid),
         (CacheShardResult, CacheInvalid), (SupernetResult, SupernetResultInvalid)]


@pytest.mark.parametrize(("kind", "error"), TYPES, ids=[t[0].__name__ for t in TYPES])
def test_unreadable_result_files_are_one_line_errors(tmp_path: Path, kind: type, error: type) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(error, match=rf"^{missing}: cannot read \(FileNotFoundError"):
        kind.read(missing)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{")
    with pytest.raises(error, match=rf"^{binary}: cannot read \(UnicodeDecodeError"):
        kind.read(binary)
    cut = tmp_path / "cut.json"
    cut.write_text('{"hypothesis": "1-t", ')
    with pytest.raises(error, match=rf"^{cut}: not JSON \(Expecting property name .* at line 1\)"):
        kind.read(cut)
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    with pytest.raises(error) as exc:
        kind.read(other)
    assert str(other) in str(exc.value) and "\n" not in str(exc.value)


def test_per_video_records_round_trip_and_are_checked() -> None:
    from pas_models.predictions import PerVideo, PredictionsInvalid, pack, unpack

    bits = [True, False, True, True, False, False, False, True, True]
    assert unpack(pack(bits), 9) == bits and pack([]) == ""
    per = PerVideo(9, (*[True] * 8, False), (*bits[:8], False), (*[True] * 8, False))
    assert PerVideo.from_dict(per.to_dict()) == per
    a, b = per.shared(PerVideo(9, (False,) + (True,) * 8, (False,) * 9, (False,) + (True,) * 8))
    assert len(a) == len(b) == 7  # videos 1-7: evaluated by both
    with pytest.raises(PredictionsInvalid, match="right that was not evaluated"):
        PerVideo.from_dict({**per.to_dict(), "top1": pack([True] * 9)})
    with pytest.raises(PredictionsInvalid, match="format"):
        PerVideo.from_dict({"videos": 9})
    with pytest.raises(PredictionsInvalid, match="not the same validation list"):
        per.shared(PerVideo(3, (True,) * 3, (True,) * 3, (True,) * 3))


def test_a_result_file_says_its_intervals_and_reads_back_without_them() -> None:
    from snapshots import RUNG1, result

    r = result(top1=60.0)  # 2 test videos: 60% of 2 is not a count, Wilson's still bounds it
    d = r.to_dict()
    assert d["interval"].startswith("95%, Wilson") and d["top1_interval"][0] < 60.0 < d["top1_interval"][1]
    assert d["top5_interval"][0] < 90.0 <= d["top5_interval"][1]
    assert JobResult.from_dict(d) == r and JobResult.from_dict({k: v for k, v in d.items() if "interval" not in k}) == r
    rung = RUNG1.to_dict()
    assert "top1_interval" in rung and RungResult.from_dict(rung) == RUNG1
