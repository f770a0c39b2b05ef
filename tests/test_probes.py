"""Known-answer probes: each construction hides its evidence from exactly the view its operator leaves, checked
on the sampling rule itself and on real mp4 files cut by pas's own decoding and transforms."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pas_models.data import probes, synth
from pas_models.data.dataset import ClipDataset
from pas_models.data.formats import Sample, load_dataset_config, load_video_list
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_orchestrator.config.search import load_search
from pas_orchestrator.errors import ConfigError


def test_f_every_4th_frame_looks_the_same_under_both_bits_and_every_2nd_does_not() -> None:
    def seen(bit: int, stride: int) -> list[tuple[int, ...]]:
        pattern = probes.F_PATTERNS[bit]
        return sorted(tuple(pattern[(phase + start + stride * k) % len(pattern)] for k in range(4))
                      for phase in range(4) for start in range(4))
    assert seen(0, 4) == seen(1, 4)  # every phase and clip start, counted: the same multiset of samples
    assert all(len(set(s)) == 1 for s in seen(1, 4))
    assert set(seen(1, 2)).isdisjoint(seen(0, 2))  # bit 1 alternates at stride 2, bit 0 never does


def test_t_any_4_symbols_look_the_same_under_both_bits_and_8_tell_them_apart() -> None:
    def windows(bit: int, length: int) -> list[tuple[int, ...]]:
        out = []
        for first in itertools.product((-1, 1), repeat=probes.T_LAG):
            cycle = list(first) + [x if bit else -x for x in first]
            out += [tuple(cycle[(p + k) % len(cycle)] for k in range(length)) for p in range(len(cycle))]
        return sorted(out)
    assert windows(0, probes.T_LAG) == windows(1, probes.T_LAG)
    assert set(windows(0, 2 * probes.T_LAG)).isdisjoint(windows(1, 2 * probes.T_LAG))


def _lanes(op: str, root: Path, student_op: str | None, teacher: bool, train: bool) -> dict[int, list[float]]:
    cfg = load_dataset_config(root / "dataset.yaml")
    samples = load_video_list(cfg, "train").samples + load_video_list(cfg, "val").samples
    base = preset("r2plus1d_tiny", 4)
    student = base if student_op is None else apply_op(base, student_op)
    ds = ClipDataset(samples, student, base if teacher else None, train=train, clips=2, hflip=False)
    return probes.read_lanes(op, (ds[i] for i in range(len(ds))), 4)


@pytest.fixture(scope="module")
def probe_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for op in probes.PROBES:
        roots[op] = tmp_path_factory.mktemp(f"probe-{op}")
        synth.generate(roots[op], synth.SynthConfig(classes=4, videos_per_class=4, val_per_class=4, probe=op))
    return roots


@pytest.mark.parametrize("train", [True, False], ids=["training view", "evaluation view"])
def test_f_and_t_evidence_is_in_the_base_view_and_not_in_theirs(probe_roots: dict[str, Path], train: bool) -> None:
    f_base = _lanes("f", probe_roots["f"], None, False, train)
    assert set(f_base[1]) == {1.0} and set(f_base[0]) == {0.0}  # every lane's bit, read off every clip
    f_view = _lanes("f", probe_roots["f"], "f", train, train)
    assert set(f_view[0]) == set(f_view[1]) == {0.0}  # every 4th frame: constant under both bits
    t_base = _lanes("t", probe_roots["t"], None, False, train)
    assert min(t_base[1]) > -10 > -40 > max(t_base[0])  # levels 4 frames apart: equal, or negated
    t_spec = apply_op(preset("r2plus1d_tiny", 4), "t")
    assert t_spec.view.frames == probes.T_LAG  # the t view never holds a symbol and its echo


def _paired_s_views(tmp: Path, n: int) -> dict[str, float]:
    """The same videos with and without stripes (one seed each: the stripes are their only difference), cut by
    pas into each view: the rms of the difference per view, grey levels (what the view keeps of the stripes)."""
    lists = {}
    for label in (3, 0):  # stripes in both lanes, in neither
        paths = []
        for i in range(n):
            video = probes.render("s", label, 4, 32, 48, 64, np.random.default_rng([7, i]))
            paths.append(tmp / f"{label}-{i}.mp4")
            synth.write_mp4(paths[-1], video, 25)
        lists[label] = [Sample(str(p), label) for p in paths]
    base = preset("r2plus1d_tiny", 4)
    s = apply_op(base, "s")
    out = {}
    for name, student, teacher, train in (("base", base, None, False), ("base train", base, None, True),
                                          ("s", s, None, False), ("s train", s, base, True)):
        views = [ClipDataset(lists[label], student, teacher, train=train, clips=2, hflip=False) for label in (3, 0)]
        diffs = [views[0][i]["student"] - views[1][i]["student"] for i in range(len(views[0]))]
        out[name] = float(torch.stack(diffs).pow(2).mean().sqrt()) * probes.GREY
    return out


def test_s_stripes_are_plain_in_the_base_view_and_under_the_noise_in_the_s_view(tmp_path: Path) -> None:
    rms = _paired_s_views(tmp_path, 6)
    assert rms["base"] > 8 and rms["base train"] > 8
    # what is left in the s view is the encoder's noise (the two videos differ, so it codes them differently)
    # and the few % of the stripes' contrast that the antialiased resize lets through
    assert rms["s"] < 0.2 * rms["base"] and rms["s train"] < 0.2 * rms["base train"]


def test_the_student_is_cut_from_the_source_like_its_evaluation(probe_roots: dict[str, Path]) -> None:
    """Resizing B's 32 px crop again to 22 px would keep the stripes B's resize aliased to lower frequencies
    (their energy 10 times the noise's): the student's training view is the same box resized straight."""
    cfg = load_dataset_config(probe_roots["s"] / "dataset.yaml")
    samples = load_video_list(cfg, "val").samples
    base = preset("r2plus1d_tiny", 4)
    s = apply_op(base, "s")
    live = ClipDataset(samples, s, base, train=True, hflip=False)
    item = live[5]
    alone = ClipDataset(samples, s, None, train=True, hflip=False)
    assert item["student"].shape == alone[5]["student"].shape == (3, 8, 22, 22)
    stripes = [i for i, sm in enumerate(samples) if probes.lane_bits(sm.label, 4) == (1, 1)]
    energy = probes.read_lanes("s", (live[i] for i in stripes), 4)[1]
    assert max(energy) < 15


def pas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pas_orchestrator", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_pas_data_synth_makes_a_probe_and_refuses_what_cannot_be_one(tmp_path: Path) -> None:
    res = pas("data", "synth", "--probe", "t", "--classes", "2", "--videos-per-class", "1", "--val-per-class", "1",
              "--out", tmp_path / "t")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "t" / "classes.txt").read_text().split() == ["t-inverted", "t-repeated"]
    assert json.loads((tmp_path / "t" / "dataset.yaml").read_text())["num_classes"] == 2
    bad = pas("data", "synth", "--probe", "s", "--classes", "3", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "--classes: a probe has 2 or 4 classes" in bad.stderr
    bad = pas("data", "synth", "--probe", "c", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_a_definition_names_a_probe_and_its_errors_name_the_key(tmp_path: Path) -> None:
    job = (Path(__file__).resolve().parents[1] / "jobs" / "probe.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(job)
    assert load_search(path).synthetic.probe == "s"
    for old, new, key in (("probe: s,", "probe: c,", "synthetic.probe"), ("classes: 4,", "classes: 8,",
                                                                           "synthetic.classes")):
        path.write_text(job.replace(old, new))
        with pytest.raises(ConfigError, match=key):
            load_search(path)


def test_the_action_sets_stamp_is_unchanged_by_probes() -> None:
    """Roots made before probes existed record no probe key: they must stay valid."""
    assert "probe" not in synth.stamp(synth.SynthConfig())
    assert synth.stamp(synth.SynthConfig(classes=4, probe="f"))["probe"] == "f"
