"""Clip sampling, pure: start frames, the student's frames as the paper defines them, short videos."""

from __future__ import annotations

import numpy as np

from pas_models.data.sampling import clip_span, plan_views, random_starts, uniform_starts, views_span
from pas_models.presets import preset
from pas_models.reductions import apply_sequence


def test_train_starts_are_random_inside_the_video_and_reproducible() -> None:
    a = random_starts(100, 16, 50, np.random.default_rng(1))
    assert all(0 <= s <= 84 for s in a) and len(set(a)) > 10
    assert a == random_starts(100, 16, 50, np.random.default_rng(1))
    assert random_starts(10, 16, 3, np.random.default_rng(0)) == [0, 0, 0]


def test_test_starts_are_uniform() -> None:
    assert uniform_starts(100, 16, 5) == [0, 21, 42, 63, 84]
    assert uniform_starts(100, 16, 1) == [42]
    assert uniform_starts(10, 16, 3) == [0, 0, 0]


def test_student_view_is_first_t_over_gamma_frames_every_gamma_f() -> None:
    teacher = preset("r2plus1d_18")
    student = apply_sequence(teacher, ["f", "t"])[-1]  # every 2nd frame, then the first half
    plan = plan_views(student, teacher, start=10, num_frames=300)
    assert plan.decode == tuple(range(10, 26))  # the teacher's 16 frames; the student needs no others
    assert [plan.decode[i] for i in plan.teacher] == list(range(10, 26))
    assert [plan.decode[i] for i in plan.student] == [10, 12, 14, 16]


def test_slowfast_views_use_the_fast_frames() -> None:
    teacher = preset("slowfast_4x16_r50")
    student = apply_sequence(teacher, ["t"])[-1]
    plan = plan_views(student, teacher, start=0, num_frames=1000)
    assert [plan.decode[i] for i in plan.teacher] == list(range(0, 64, 2))
    assert [plan.decode[i] for i in plan.student] == list(range(0, 32, 2))
    assert clip_span(teacher) == 63 and views_span(student, teacher) == 63


def test_short_video_repeats_its_last_frame() -> None:
    spec = preset("r2plus1d_tiny")  # 8 frames, stride 2: span 15
    plan = plan_views(spec, None, start=0, num_frames=6)
    assert [plan.decode[i] for i in plan.student] == [0, 2, 4, 5, 5, 5, 5, 5]
    assert max(plan.decode) == 5 and plan.teacher is None
