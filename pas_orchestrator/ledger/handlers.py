"""The ledger's action handlers: each runs inside the transaction of ``Ledger.apply`` (BEGIN IMMEDIATE: no other
writer between the read of a row's state and its change), checks every state change against the transition table
(``states.check``) and against the state the action expected (compare-and-set), and returns what changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pas_models.train.result import JobResult
from pas_orchestrator.core.actions import (
    AbandonAttempt,
    AddHypotheses,
    CancelSearch,
    CreateAttempts,
    EndSearch,
    FailAttempt,
    IngestResult,
    IngestRung,
    InterruptAttempt,
    LogEvent,
    MarkWinner,
    NoteScheduler,
    ObserveAttempt,
    PromoteRung,
    RecordJobIds,
    ResumeSearch,
)
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.errors import LedgerConflict, LedgerError
from pas_orchestrator.kinds import kind_of
from pas_orchestrator.ledger import states
from pas_orchestrator.ledger.records import AttemptRec
from pas_orchestrator.ledger.schema import AttemptRow, EventRow, HypothesisRow, SearchRow
from pas_orchestrator.ledger.states import AttemptState, HypState, SearchState


@dataclass(frozen=True)
class Applied:
    changed: bool  # a state, a winner, a row or a requeue count changed (the core may decide anew)
    attempts: tuple[AttemptRec, ...] = ()  # CreateAttempts: the new attempts; CancelSearch: those cancelled


def _get_attempt(s: Session, att_id: int) -> AttemptRow:
    row = s.get(AttemptRow, att_id)
    if row is None:
        raise LedgerError(f"no attempt with id {att_id} in the ledger")
    return row


def _get_hyp(s: Session, hyp_id: int) -> HypothesisRow:
    row = s.get(HypothesisRow, hyp_id)
    if row is None:
        raise LedgerError(f"no hypothesis with id {hyp_id} in the ledger")
    return row


def _expect(what: str, row: Any, expected: Any) -> None:
    states_ok = expected if isinstance(expected, (tuple, frozenset, set)) else (expected,)
    if row.state not in states_ok:
        raise LedgerConflict(f"{what}: expected {'/'.join(sorted(x.value for x in states_ok))}, but it is "
                             f"{row.state.value} now (changed by another writer): refused")


def _set(what: str, row: Any, new: Any) -> None:
    states.check(what, row.state, new)
    row.state = new


def _event(s: Session, now: float, kind: str, message: str, hyp_id: int | None = None) -> None:
    s.add(EventRow(time=now, kind=kind, hypothesis_id=hyp_id, message=message))


def _attempt_name(row: AttemptRow) -> str:
    return f"{row.job_name} (job {row.job_id})" if row.job_id else row.job_name


def _scheduler_info(s: Session, row: AttemptRow, outcome: JobOutcome | None, now: float,
                    note: str | None = None) -> bool:
    """Record what the scheduler said (display, node, requeues); True when the requeue count grew."""
    if outcome is None:
        return False
    row.scheduler_state = outcome.shown
    if row.state in states.ACTIVE_ATTEMPT:  # while active: the scheduler's why (pending reason) or our note
        row.reason = note or outcome.reason
    if outcome.node:
        row.node = outcome.node
    if outcome.compute_hours is not None and outcome.compute_hours >= (row.compute_hours or 0.0):
        row.compute_hours, row.compute_unit = outcome.compute_hours, outcome.compute_unit  # it only grows
    if outcome.requeues > row.requeues:
        row.requeues = outcome.requeues
        _event(s, now, "requeue", f"{_attempt_name(row)} requeued ({outcome.requeues}): "
                                  f"{outcome.requeue_why or 'by the scheduler'}", row.hypothesis_id)
        return True
    return False


def _end_attempt(s: Session, row: AttemptRow, new: AttemptState, reason: str | None, now: float) -> None:
    _set(f"attempt {row.job_name}", row, new)
    row.ended_at, row.reason = now, reason
    _event(s, now, "attempt", f"{_attempt_name(row)} {new.value.lower()}" + (f": {reason}" if reason else ""),
           row.hypothesis_id)


def _record_job_ids(s: Session, a: RecordJobIds, now: float) -> Applied:
    changed = False
    for att_id, job_id in a.pairs:
        row = _get_attempt(s, att_id)
        if row.state != AttemptState.CREATED and row.job_id == job_id:
            continue  # recorded already
        _expect(f"attempt {row.job_name}", row, AttemptState.CREATED)
        _set(f"attempt {row.job_name}", row, AttemptState.SUBMITTED)
        row.job_id, row.submitted_at = job_id, now
        _event(s, now, "reconcile" if a.found else "submit",
               f"{row.job_name}: " + (f"found job {job_id}" if a.found else f"job {job_id}"), row.hypothesis_id)
        changed = True
    return Applied(changed)


def _abandon(s: Session, a: AbandonAttempt, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {row.job_name}", row, AttemptState.CREATED)
    _end_attempt(s, row, AttemptState.ABANDONED, a.reason, now)
    return Applied(True)


def _observe(s: Session, a: ObserveAttempt, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {row.job_name}", row, a.expect)
    changed = _scheduler_info(s, row, a.outcome, now, a.note)
    if a.outcome.phase == Phase.RUNNING and row.state == AttemptState.SUBMITTED:
        _set(f"attempt {row.job_name}", row, AttemptState.RUNNING)
        row.started_at = row.started_at or now
        _event(s, now, "attempt", f"{_attempt_name(row)} running" + (f" on {row.node}" if row.node else ""),
               row.hypothesis_id)
        changed = True
    return Applied(changed)


def _note(s: Session, a: NoteScheduler, now: float) -> Applied:
    row = _get_attempt(s, a.attempt_id)
    row.scheduler_state = a.outcome.shown
    if a.outcome.node:
        row.node = a.outcome.node
    if a.outcome.compute_hours is not None and a.outcome.compute_hours >= (row.compute_hours or 0.0):
        row.compute_hours, row.compute_unit = a.outcome.compute_hours, a.outcome.compute_unit
    return Applied(False)


def _ingest(s: Session, a: IngestResult, now: float) -> Applied:
    hyp, att = _get_hyp(s, a.hypothesis_id), _get_attempt(s, a.attempt_id)
    if att.hypothesis_id != hyp.id:
        raise LedgerError(f"attempt {att.job_name} is not an attempt of hypothesis {hyp.iteration}-{hyp.op}")
    if hyp.state == HypState.DONE and att.state == AttemptState.COMPLETED:
        return Applied(False)  # ingested already
    label = f"hypothesis {hyp.iteration}-{hyp.op}"
    _expect(f"attempt {att.job_name}", att, (AttemptState.SUBMITTED, AttemptState.RUNNING))
    _expect(label, hyp, HypState.RUNNING)
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, AttemptState.COMPLETED, None, now)
    _set(label, hyp, HypState.DONE)
    r, kind = a.result, kind_of(hyp.kind)
    hyp.ended_at = now
    hyp.result = json.dumps(r.to_dict(), sort_keys=True)
    where = f"{hyp.iteration}-{hyp.op}"
    if kind.network:  # a trained network's figures
        assert isinstance(r, JobResult)
        hyp.top1, hyp.top5, hyp.gflops, hyp.params = r.top1, r.top5, r.gflops_per_view, r.params
        hyp.eval_videos = r.eval_videos
        where += f" ({hyp.kind})"
    _event(s, now, "result", kind.summary(where, r), hyp.id)
    return Applied(True)


def _ingest_rung(s: Session, a: IngestRung, now: float) -> Applied:
    """A rung's cheap evaluation: the attempt COMPLETED, the score kept; the hypothesis waits (RUNNING, no
    attempt) for the iteration's rung decision."""
    hyp, att = _get_hyp(s, a.hypothesis_id), _get_attempt(s, a.attempt_id)
    label = f"hypothesis {hyp.iteration}-{hyp.op}"
    if att.hypothesis_id != hyp.id:
        raise LedgerError(f"attempt {att.job_name} is not an attempt of {label}")
    r = a.result
    scores = json.loads(hyp.rung_results) if hyp.rung_results else []
    if att.state == AttemptState.COMPLETED and any(x["rung"] == r.rung for x in scores):
        return Applied(False)  # ingested already
    _expect(f"attempt {att.job_name}", att, (AttemptState.SUBMITTED, AttemptState.RUNNING))
    _expect(label, hyp, HypState.RUNNING)
    if hyp.rung != r.rung or att.rung != r.rung:
        raise LedgerConflict(f"{label}: a rung {r.rung} result for an attempt of rung {att.rung} (the hypothesis is "
                             f"at rung {hyp.rung}): refused")
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, AttemptState.COMPLETED, None, now)
    scores = [x for x in scores if x["rung"] != r.rung] + [
        {"rung": r.rung, "top1": r.top1, "top5": r.top5, "steps": r.steps, "total_steps": r.total_steps,
         "eval_videos": r.eval_videos, "per_video": r.per_video or None}]
    hyp.rung_results = json.dumps(sorted(scores, key=lambda x: x["rung"]))
    _event(s, now, "rung", f"{hyp.iteration}-{hyp.op}: rung {r.rung}/{r.rungs} after {r.steps} of {r.total_steps} "
                           f"steps: top-1 {r.top1:.2f}%, top-5 {r.top5:.2f}% ({r.views} view(s))", hyp.id)
    return Applied(True)


def _promote(s: Session, a: PromoteRung, now: float) -> Applied:
    """The rung decision of one iteration, all or nothing: the promoted go on to the next rung (a new attempt
    each, resuming from last.pt), the others are STOPPED with their rank and score."""
    for hyp_id in a.promoted + tuple(h for h, _ in a.stopped):
        hyp = _get_hyp(s, hyp_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, HypState.RUNNING)
        if hyp.iteration != a.iteration or hyp.rung != a.rung:
            raise LedgerConflict(f"{label} is at rung {hyp.rung} of iteration {hyp.iteration}, not rung {a.rung} "
                                 f"of iteration {a.iteration}: rung decision refused")
        busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp_id,
                                                           AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
        if busy is not None:
            raise LedgerConflict(f"{label} still has an active attempt ({busy}): rung decision refused")
    names = []
    for hyp_id in a.promoted:
        hyp = _get_hyp(s, hyp_id)
        hyp.rung = a.rung + 1
        names.append(hyp.op)
    for hyp_id, why in a.stopped:
        hyp = _get_hyp(s, hyp_id)
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.STOPPED)
        hyp.stopped_rung, hyp.reason, hyp.ended_at = a.rung, why, now
    _event(s, now, "rung", f"iteration {a.iteration}, rung {a.rung}: promoted {', '.join(names)}; stopped "
                           f"{len(a.stopped)}")
    return Applied(True)


def _end_observed(s: Session, a: FailAttempt | InterruptAttempt, new: AttemptState, now: float) -> AttemptRow:
    """An active attempt ends as the executor observed it (compare-and-set on the state ``a`` expects)."""
    att = _get_attempt(s, a.attempt_id)
    _expect(f"attempt {att.job_name}", att, a.expect)
    _scheduler_info(s, att, a.outcome, now)
    _end_attempt(s, att, new, a.reason, now)
    return att


def _fail(s: Session, a: FailAttempt, now: float) -> Applied:
    att = _end_observed(s, a, AttemptState.FAILED, now)
    if a.fail_hypothesis is not None:
        hyp = _get_hyp(s, att.hypothesis_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, HypState.RUNNING)
        _set(label, hyp, HypState.FAILED)
        hyp.reason, hyp.ended_at = a.fail_hypothesis, now
        _event(s, now, "hypothesis", f"{hyp.iteration}-{hyp.op} ({hyp.kind}) failed: {a.fail_hypothesis}", hyp.id)
    return Applied(True)


def _interrupt(s: Session, a: InterruptAttempt, now: float) -> Applied:
    _end_observed(s, a, AttemptState.INTERRUPTED, now)
    return Applied(True)


def _create_attempts(s: Session, a: CreateAttempts, now: float) -> Applied:
    serial = (s.scalar(select(func.count(func.distinct(AttemptRow.batch)))) or 0) + 1
    batch = f"{a.batch_prefix}-b{serial}"
    out = []
    for index, hyp_id in enumerate(a.hypothesis_ids):
        hyp = _get_hyp(s, hyp_id)
        label = f"hypothesis {hyp.iteration}-{hyp.op}"
        _expect(label, hyp, (HypState.PLANNED, HypState.RUNNING))
        busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp_id,
                                                           AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
        if busy is not None:
            raise LedgerConflict(f"{label} already has an active attempt ({busy}): refused a second one")
        if hyp.state == HypState.PLANNED:
            _set(label, hyp, HypState.RUNNING)
        number = (s.scalar(select(func.max(AttemptRow.number)).where(AttemptRow.hypothesis_id == hyp_id)) or 0) + 1
        row = AttemptRow(hypothesis_id=hyp_id, number=number, job_name=f"{batch}_{index}", batch=batch,
                         array_index=index, state=AttemptState.CREATED, requeues=0, created_at=now, rung=hyp.rung)
        s.add(row)
        s.flush()
        out.append(row.record())
    return Applied(True, tuple(out))


def _mark_winner(s: Session, a: MarkWinner, now: float) -> Applied:
    row = _get_hyp(s, a.hypothesis_id)
    _expect(f"hypothesis {row.iteration}-{row.op}", row, HypState.DONE)
    others = s.scalars(select(HypothesisRow).where(HypothesisRow.iteration == row.iteration,
                                                   HypothesisRow.kind == row.kind,
                                                   HypothesisRow.winner.is_(True))).all()
    if any(o.id != row.id for o in others):
        raise LedgerConflict(f"iteration {row.iteration} already has a winner: refused a second one")
    if row.winner:
        return Applied(False)
    row.winner = True
    _event(s, now, "winner", f"iteration {row.iteration}: {row.op} wins ({a.why})", row.id)
    return Applied(True)


def _add_hypotheses(s: Session, a: AddHypotheses, now: float) -> Applied:
    """Planned hypotheses; those already there (same iteration, op, kind) are left as they are."""
    changed = False
    for h in a.hypotheses:
        exists = s.scalars(select(HypothesisRow.id).where(
            HypothesisRow.iteration == h.iteration, HypothesisRow.op == h.op, HypothesisRow.kind == h.kind)).first()
        if exists is not None:
            continue
        if h.state not in (HypState.PLANNED, HypState.NOT_APPLICABLE):
            raise LedgerError(f"hypothesis {h.iteration}-{h.op}: a new hypothesis is PLANNED or NOT_APPLICABLE, "
                              f"not {h.state.value}")
        row = HypothesisRow(**h.__dict__, winner=False, created_at=now)
        if h.state == HypState.NOT_APPLICABLE:
            row.ended_at = now
        s.add(row)
        s.flush()
        _event(s, now, "plan", f"{h.iteration}-{h.op} ({h.kind}) {h.state.value.lower()}"
                               + (f": {h.reason}" if h.reason else ""), row.id)
        changed = True
    return Applied(changed)


def _search_row(s: Session) -> SearchRow:
    row = s.scalars(select(SearchRow)).one_or_none()
    if row is None:
        raise LedgerError("the ledger has no search row")
    return row


def _end_search(s: Session, a: EndSearch, now: float) -> Applied:
    row = _search_row(s)
    if row.state == a.state:
        return Applied(False)
    _expect(f"search {row.name}", row, SearchState.RUNNING)
    if a.cancel_unfinished is not None:
        unfinished = s.scalars(select(HypothesisRow).where(HypothesisRow.state.in_(
            (HypState.PLANNED, HypState.RUNNING)))).all()
        for hyp in unfinished:
            busy = s.scalars(select(AttemptRow.job_name).where(AttemptRow.hypothesis_id == hyp.id,
                                                               AttemptRow.state.in_(states.ACTIVE_ATTEMPT))).first()
            if busy is not None:
                raise LedgerConflict(f"hypothesis {hyp.iteration}-{hyp.op} has an active attempt ({busy}): the "
                                     "search cannot end yet")
            _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.CANCELLED)
            hyp.reason, hyp.ended_at = a.cancel_unfinished, now
    _set(f"search {row.name}", row, a.state)
    row.error, row.ended_at = a.reason, now
    _event(s, now, "search", f"search {a.state.value.lower()}" + (f": {a.reason}" if a.reason else ""))
    return Applied(True)


def _cancel(s: Session, a: CancelSearch, now: float) -> Applied:
    """Active attempts and unfinished hypotheses become CANCELLED; the attempts that were active are
    returned (their jobs are to be cancelled)."""
    out = []
    for att in s.scalars(select(AttemptRow).where(AttemptRow.state.in_(states.ACTIVE_ATTEMPT))):
        out.append(att.record())
        _set(f"attempt {att.job_name}", att, AttemptState.CANCELLED)
        att.reason, att.ended_at = a.reason, now
        if att.scheduler_state is not None:
            att.scheduler_state = "CANCELLED"
    for hyp in s.scalars(select(HypothesisRow).where(HypothesisRow.state.in_((HypState.PLANNED, HypState.RUNNING)))):
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.CANCELLED)
        hyp.reason, hyp.ended_at = a.reason, now
    row = _search_row(s)
    if row.state != SearchState.CANCELLED:
        _set(f"search {row.name}", row, SearchState.CANCELLED)
        row.error, row.ended_at = a.reason, now
    _event(s, now, "search", f"cancelled: {a.reason} ({len(out)} jobs)")
    return Applied(True, tuple(out))


def _resume(s: Session, a: ResumeSearch, now: float) -> Applied:
    row = _search_row(s)
    if row.state == SearchState.RUNNING:
        return Applied(False)
    _expect(f"search {row.name}", row, (SearchState.CANCELLED, SearchState.FAILED))
    was = row.state
    _set(f"search {row.name}", row, SearchState.RUNNING)
    row.error, row.ended_at = None, None
    hyps = s.scalars(select(HypothesisRow).where(HypothesisRow.state == HypState.CANCELLED)).all()
    for hyp in hyps:
        _set(f"hypothesis {hyp.iteration}-{hyp.op}", hyp, HypState.PLANNED)
        hyp.reason, hyp.ended_at = None, None
    _event(s, now, "search", f"resumed (was {was.value.lower()}; {len(hyps)} cancelled hypotheses planned again)")
    return Applied(True)


def _log(s: Session, a: LogEvent, now: float) -> Applied:
    _event(s, now, a.kind, a.message, a.hypothesis_id)
    return Applied(False)


HANDLERS: dict[type, Callable[[Session, Any, float], Applied]] = {
    RecordJobIds: _record_job_ids, AbandonAttempt: _abandon, ObserveAttempt: _observe, NoteScheduler: _note,
    IngestResult: _ingest, IngestRung: _ingest_rung, PromoteRung: _promote,
    FailAttempt: _fail, InterruptAttempt: _interrupt, CreateAttempts: _create_attempts, MarkWinner: _mark_winner,
    AddHypotheses: _add_hypotheses, EndSearch: _end_search, CancelSearch: _cancel, ResumeSearch: _resume,
    LogEvent: _log,
}
