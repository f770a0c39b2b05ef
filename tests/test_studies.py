"""Studies (paper Tables 4 and 7): what each plans from a finished search, the trainings it runs, when it ends,
what `decide` submits for it, and its table. Pure (snapshots in, actions and tasks out): milliseconds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from snapshots import LAYOUT

from pas_models.data.formats import DatasetConfig
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.task import Distill, TrainTask
from pas_orchestrator.core.actions import AddHypotheses, EndSearch, SubmitBatch
from pas_orchestrator.core.decide import Capacity, Observations, Policy, decide
from pas_orchestrator.ledger.records import HypRec, SearchRec, Snapshot
from pas_orchestrator.ledger.states import HypState, SearchState
from pas_orchestrator.studies import StudyError, StudyStrategy
from pas_orchestrator.studies.ablation import Ablation
from pas_orchestrator.studies.registry import make_study, studies_in
from pas_orchestrator.studies.teacher_bn import TeacherBN

B = preset("r2plus1d_tiny", 8)
DONE, STOPPED, PLANNED, NA = HypState.DONE, HypState.STOPPED, HypState.PLANNED, HypState.NOT_APPLICABLE


def row(hid: int, iteration: int, op: str, state: HypState = DONE, kind: str = "pas", top1: float | None = 50.0,
        path: str | None = None, winner: bool = False, finetuned: bool = True, source: str = "live",
        stopped: int | None = None) -> HypRec:
    spec = B
    ops = (path or op).split(",") if op != "base" else []
    for o in ops:
        spec = apply_op(spec, o.split(".")[0])
    result = json.dumps({"finetuned_from_parent": finetuned, "teacher_source": source}) if state == DONE else None
    return HypRec(hid, iteration, op, kind, ",".join(o.split(".")[0] for o in ops), state, None, 1e-3, 100,
                  spec.to_json(), f"/runs/s/hyp/{iteration}-{op}", top1 if state == DONE else None,
                  90.0 if state == DONE else None, result, winner, 0.0, None, stopped_rung=stopped)


def snap(*rows: HypRec, teacher_bn: str = "train") -> Snapshot:
    definition = json.dumps({"distill": {"teacher_bn": teacher_bn}})
    return Snapshot(SearchRec("s", definition, "h", "local", SearchState.DONE, None, 0.0, 1.0), rows)


SEARCH = (row(1, 0, "base", top1=60.0, finetuned=False, source="none"),
          row(2, 1, "s", top1=55.0), row(3, 1, "t", top1=57.0, winner=True),
          row(4, 1, "f", STOPPED, stopped=1), row(5, 1, "c", top1=52.0, finetuned=False),
          row(6, 1, "l", top1=51.0, finetuned=False),
          row(7, 2, "s", top1=54.0, path="t,s"), row(8, 2, "f", top1=53.0, path="t,f", winner=True),
          row(9, 2, "c", top1=50.0, path="t,c", finetuned=False))


def ops(actions: list) -> list[str]:
    (add,) = actions
    assert isinstance(add, AddHypotheses)
    return [h.op for h in add.hypotheses]


def test_teacher_bn_trains_the_other_mode_and_both_where_the_search_has_no_whole_live_figure() -> None:
    study = TeacherBN(1, "train")
    # s, t: whole live trainings in BN train mode (reused); f: stopped at a rung (both modes trained)
    assert ops(StudyStrategy(study, LAYOUT).advance(snap(*SEARCH))) == [
        "s.bn-eval", "t.bn-eval", "f.bn-train", "f.bn-eval", "c.bn-eval", "l.bn-eval"]
    cached = tuple(replace(h, result=json.dumps({"teacher_source": "cache"})) if h.iteration == 1 and h.op == "s"
                   else h for h in SEARCH)
    assert ops(StudyStrategy(study, LAYOUT).advance(snap(*cached)))[:2] == ["s.bn-train", "s.bn-eval"]
    with pytest.raises(StudyError, match="no trained hypothesis at iteration 5"):
        StudyStrategy(TeacherBN(5, "train"), LAYOUT).advance(snap(*SEARCH))


def test_ablation_covers_s_t_f_with_the_variants_the_search_did_not_train() -> None:
    # iteration 1: s and t fine-tuned whole (KD + FT reused); f stopped at a rung: KD + FT trained too; c, l left out
    assert ops(StudyStrategy(Ablation(1), LAYOUT).advance(snap(*SEARCH))) == [
        "s.ft-nokd", "s.kd-scratch", "t.ft-nokd", "t.kd-scratch", "f.kd-ft", "f.ft-nokd", "f.kd-scratch"]
    assert ops(StudyStrategy(Ablation(2), LAYOUT).advance(snap(*SEARCH))) == [
        "s.ft-nokd", "s.kd-scratch", "f.ft-nokd", "f.kd-scratch"]
    with pytest.raises(StudyError, match="no iteration 4"):
        StudyStrategy(Ablation(4), LAYOUT).advance(snap(*SEARCH))
    only_c = tuple(h for h in SEARCH if h.op in ("base", "c", "l"))
    with pytest.raises(StudyError, match="none of s, t, f was trained"):
        StudyStrategy(Ablation(1), LAYOUT).advance(snap(*only_c))


def _search_task(h: HypRec) -> TrainTask:
    """What the controller builds for a search row (here: KD from B, fine-tuned from the parent)."""
    from pas_models.spec import ArchSpec

    return TrainTask(hypothesis=f"{h.iteration}-{h.op}", student=ArchSpec.from_json(h.spec or ""),
                     data=DatasetConfig(format="list", root="/d", annotations={"train": "t", "val": "v"},
                                       num_classes=8), out_dir=h.out_dir, teacher=B,
                     teacher_checkpoint="/b.pt", parent=B, parent_checkpoint="/p.pt",
                     distill=Distill(alpha=10.0, teacher_bn="train"), lr_divisor=10.0)


def test_each_variant_changes_the_search_training_in_one_respect_only() -> None:
    s = snap(*SEARCH)
    study_rows = {h.op: h for h in planned_rows(Ablation(1), s)}
    src = _search_task(SEARCH[2])
    nokd = Ablation(1).task(s, study_rows["t.ft-nokd"], _search_task)
    assert nokd.teacher is None and nokd.distill.alpha == 0 and nokd.parent_checkpoint == "/p.pt"
    assert nokd.out_dir == "/runs/s/hyp/1-t.ft-nokd" and nokd.hypothesis == "1-t.ft-nokd"
    scratch = Ablation(1).task(s, study_rows["t.kd-scratch"], _search_task)
    assert scratch.parent is None and scratch.parent_checkpoint is None and scratch.distill == src.distill
    assert replace(scratch, parent=src.parent, parent_checkpoint=src.parent_checkpoint, hypothesis=src.hypothesis,
                   out_dir=src.out_dir) == src
    bn_rows = {h.op: h for h in planned_rows(TeacherBN(1, "train"), s)}
    ev = TeacherBN(1, "train").task(s, bn_rows["t.bn-eval"], _search_task)
    assert ev.distill == replace(src.distill, teacher_bn="eval") and ev.parent_checkpoint == "/p.pt"


def planned_rows(study: object, s: Snapshot) -> list[HypRec]:
    """The study's planned rows as ledger rows (ids from 100)."""
    (add,) = StudyStrategy(study, LAYOUT).advance(s)  # type: ignore[arg-type]
    return [HypRec(100 + i, n.iteration, n.op, n.kind, n.path, n.state, n.reason, n.gflops, n.params, n.spec, n.out_dir,
                   None, None, None, False, 0.0, None) for i, n in enumerate(add.hypotheses)]


def test_decide_submits_only_the_study_rows_and_the_study_ends_when_they_have() -> None:
    study = TeacherBN(2, "train")
    planned = planned_rows(study, snap(*SEARCH))
    leftover = row(50, 3, "s", PLANNED, path="t,f,s")  # a row of the search that never ran: not the study's
    view = Snapshot(replace(snap().search, state=SearchState.RUNNING), (*SEARCH, *planned))
    pol = Policy(StudyStrategy(study, LAYOUT), 1, Capacity(8))
    (batch,) = decide(view, Observations(), pol)
    assert isinstance(batch, SubmitBatch) and set(batch.hypothesis_ids) == {h.id for h in planned}
    assert leftover.id not in batch.hypothesis_ids
    ended = [replace(h, state=DONE, top1=40.0 + i) for i, h in enumerate(planned)]
    (end,) = decide(replace(view, hypotheses=(*SEARCH, *ended)), Observations(), pol)
    assert isinstance(end, EndSearch) and end.state == SearchState.DONE and "3 of 3 trainings done" in end.reason
    failed = [replace(h, state=HypState.FAILED, reason="OOM") for h in planned]
    (end,) = decide(replace(view, hypotheses=(*SEARCH, *failed)), Observations(), pol)
    assert end.state == SearchState.FAILED and "(OOM)" in end.reason


def test_tables_put_the_search_figures_beside_the_study_ones() -> None:
    s = snap(*SEARCH)
    planned = planned_rows(TeacherBN(1, "train"), s)
    tops = {"s.bn-eval": 53.0, "t.bn-eval": 55.5, "f.bn-train": 56.0, "f.bn-eval": 54.0, "c.bn-eval": 49.0}
    ended = tuple(replace(h, state=DONE, top1=tops[h.op]) if h.op in tops else h for h in planned)
    full = Snapshot(s.search, (*SEARCH, *ended))
    t = TeacherBN(1, "train").table(full)
    by_op = {r[0]: r for r in t.rows}
    assert by_op["s"][3:] == ("55.00", "53.00") and by_op["f"][3:] == ("56.00", "54.00")
    assert by_op["l"][3:] == ("51.00", "planned")
    assert "| reduction | path | GFLOPs/view | teacher BN train | teacher BN eval |" in t.markdown()
    assert t.csv().splitlines()[0] == "reduction,path,GFLOPs/view,teacher BN train,teacher BN eval"
    assert [st.slug for st in studies_in(full)] == ["teacher-bn-1"]
    a = Ablation(1).table(Snapshot(s.search, (*SEARCH, *(replace(h, state=DONE, top1=30.0) for h in
                                                           planned_rows(Ablation(1), s)))))
    assert [r[0] for r in a.rows] == ["s", "t", "f"]
    assert a.rows[0][3:] == ("55.00", "30.00", "30.00") and a.rows[2][3:] == ("30.00", "30.00", "30.00")


def test_unknown_study_is_one_line() -> None:
    with pytest.raises(StudyError, match=r"no study 'distil' \(studies: ablation, baselines, distill, teacher-bn,"):
        make_study("distil", 1, {})


def test_distill_trains_the_feature_losses_beside_the_search_logits_only_figure() -> None:
    s = snap(*SEARCH)
    study = make_study("distill", 1, {"distill": {"feature_weight": 0.0}}, "l", 0.5)
    assert ops(StudyStrategy(study, LAYOUT).advance(s)) == ["l.mse@0.5", "l.margin@0.5"]
    rows = planned_rows(study, s)
    margin = study.task(s, rows[1], _search_task)
    assert margin.distill == replace(_search_task(SEARCH[5]).distill, feature_weight=0.5, feature_loss="margin")
    assert study_of_row(rows[1], s) == study  # the instance is read back from the row (its op and weight)
    with pytest.raises(StudyError, match="trained no hypothesis k at iteration 1"):
        StudyStrategy(make_study("distill", 1, {}, "k"), LAYOUT).advance(s)
    searched_with_features = make_study("distill", 1, {"distill": {"feature_weight": 2.0}}, "l", 0.5)
    assert ops(StudyStrategy(searched_with_features, LAYOUT).advance(s))[0] == "l.logits"  # trained, not reused
    trained = (replace(h, state=DONE, top1=t) for h, t in zip(rows, (49.0, 52.5), strict=True))
    ended = Snapshot(s.search, (*SEARCH, *trained))
    assert study.table(ended).rows == (("l", "l", "0.001", "51.00", "49.00", "52.50"),)


def test_baselines_train_the_winners_the_search_did_not_train_without_pas() -> None:
    s = snap(*SEARCH)
    assert ops(StudyStrategy(make_study("baselines", 0, {}), LAYOUT).advance(s)) == ["t.scratch", "f.scratch"]
    had = replace(row(20, 1, "t", top1=44.0), kind="baseline")
    s2 = snap(*SEARCH, had)
    study = make_study("baselines", 0, {})
    assert ops(StudyStrategy(study, LAYOUT).advance(s2)) == ["f.scratch"]
    kinds = []
    study.task(s2, planned_rows(study, s2)[0], lambda h: kinds.append(h.kind) or _search_task(h))
    assert kinds == ["baseline"]  # the search's own without-PAS training of that winner
    done = Snapshot(s2.search, (*SEARCH, had, *(replace(h, state=DONE, top1=50.0) for h in planned_rows(study, s2))))
    assert study.table(done).rows == (("1", "t", "0.001", "57.00", "44.00", "+13.00"),
                                      ("2", "t,f", "0.001", "53.00", "50.00", "+3.00"))


def study_of_row(h: HypRec, s: Snapshot) -> object:
    from pas_orchestrator.studies.registry import study_of

    return study_of(h, s)


def _transfer_def(tmp_path: object, splits: tuple[int, ...] = (1, 2, 3), short: float = 0.0) -> object:
    from pas_models.train.task import EvalConfig, Recipe
    from pas_orchestrator.config.transfer import TransferDef

    data = DatasetConfig(format="ucf101", root="/data/ucf", annotations={"dir": "lists"}, num_classes=5, split=1)
    return TransferDef("ucf", data, splits, Recipe(epochs=3), 10.0, EvalConfig(clips=2), short, "t.yaml")


def test_transfer_plans_b_and_every_winner_per_split_and_refuses_clips_longer_than_the_videos() -> None:
    from pas_models.data.sampling import clip_span
    from pas_orchestrator.studies.transfer import Transfer

    s = snap(*SEARCH)
    span_b, span_t = clip_span(B), clip_span(apply_op(B, "t"))  # 15 and 7 source frames (8 x 2, 4 x 2)
    counts = {1: (20, 20, 20), 2: (20, 10, 20), 3: (6, 20, 20)}  # split 2: one video shorter than B's clip
    study = Transfer("ucf", _transfer_def(None), counts, seed=3)
    planned = StudyStrategy(study, LAYOUT).advance(s)[0].hypotheses
    assert [(h.iteration, h.op, h.state) for h in planned] == [
        (0, "base.ucf.s1", PLANNED), (0, "base.ucf.s2", NA), (0, "base.ucf.s3", NA),
        (1, "t.ucf.s1", PLANNED), (1, "t.ucf.s2", PLANNED), (1, "t.ucf.s3", NA),
        (2, "f.ucf.s1", PLANNED), (2, "f.ucf.s2", PLANNED), (2, "f.ucf.s3", PLANNED)]
    assert span_b == 15 and span_t == 7
    assert planned[1].reason == ("1 of the 3 videos of split 2 have fewer frames than its clip spans (15 source "
                                 "frames; short_videos 0): not padded")
    lenient = Transfer("ucf", _transfer_def(None, short=0.4), counts)
    assert all(h.state == PLANNED for h in StudyStrategy(lenient, LAYOUT).advance(s)[0].hypotheses[:2])
    rows = planned_rows(study, s)
    task = study.task(s, rows[3], _search_task)
    assert task.student.num_classes == 5 and task.parent.num_classes == 8 and task.parent_checkpoint == \
        "/runs/s/hyp/1-t/model.pt"
    assert task.data.split == 1 and task.data.root == "/data/ucf" and task.lr_divisor == 10.0
    assert task.teacher is None and task.distill.alpha == 0 and task.seed == 3 and task.eval.clips == 2
    ended = [replace(h, state=DONE, top1=60.0 + i, result=json.dumps({"views": 2})) if h.state == PLANNED else h
             for i, h in enumerate(rows)]
    table = study.table(Snapshot(s.search, (*SEARCH, *ended)))
    assert [r[0] for r in table.rows] == ["s (B)", "s-PAS-1", "s-PAS-2"]
    assert table.rows[0][3].startswith("n/a: 1 of the 3 videos of split 2")
    assert table.rows[2][3:] == ("67.00", "66.00", "67.00", "68.00", "0.001 x 2")
    assert table.columns[3:7] == ("mean over 3 split(s)", "split 1", "split 2", "split 3")


def test_a_new_classifier_keeps_every_other_weight() -> None:
    import torch

    from pas_models.inherit import can_init_from_parent, init_from_parent
    from pas_models.nets import build_model

    child = B.replace(num_classes=5)
    parent = build_model(B)
    assert can_init_from_parent(B, child)
    model = build_model(child)
    assert init_from_parent(model, parent.state_dict(), B, child) == "copied, classifier re-initialised"
    ref = parent.state_dict()
    for k, v in model.state_dict().items():
        assert (k.startswith("fc.")) == (v.shape != ref[k].shape or not torch.equal(v, ref[k]))


def _measured(h: HypRec, right: list[bool]) -> HypRec:
    """``h`` with a per-video record on len(right) test videos (its top-1 from it)."""
    from pas_models.predictions import PerVideo

    n = len(right)
    pv = PerVideo(n, (True,) * n, tuple(right), (True,) * n)
    return replace(h, state=DONE, top1=100 * sum(right) / n, eval_videos=n,
                   result=json.dumps({**json.loads(h.result or "{}"), "per_video": pv.to_dict()}))


def test_study_tables_carry_intervals_and_the_gain_its_paired_interval() -> None:
    s = snap(*SEARCH)
    study = make_study("baselines", 0, {})
    # 100 videos: the winner t right on the first 60, its scratch training on the first 40 (all of them inside
    # t's): t gains 20 points on 20 discordant videos, all one way; t,f and its baseline differ on 2 of 100
    winner = _measured(SEARCH[2], [i < 60 for i in range(100)])
    wins2 = _measured(SEARCH[7], [i < 51 for i in range(100)])
    base = planned_rows(study, s)
    trained = (_measured(base[0], [i < 40 for i in range(100)]), _measured(base[1], [1 <= i < 50 for i in range(100)]))
    done = Snapshot(s.search, tuple({h.id: h for h in (*SEARCH, winner, wins2)}.values()) + trained)
    rows = study.table(done).rows
    assert rows[0][3] == "60.00 [50.2-69.1]" and rows[0][4] == "40.00 [30.9-49.8]"  # Wilson's, 100 videos
    gain, interval = rows[0][5].split(" ", 1)
    assert gain == "+20.00" and interval.startswith("[+") and "not distinguishable" not in interval
    assert rows[1][5].startswith("+2.00 [-") and rows[1][5].endswith("not distinguishable")
