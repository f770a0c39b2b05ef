"""Studies: the paper's other experiments (Tables 4-8) as declarative sets of trainings derived from a
finished search, run by the same controller (ledger, retries, requeue, status, compute accounting).

A study instance (e.g. ``teacher-bn`` at iteration 1) plans its rows once, into the search's own ledger,
with a kind of its own (``study-teacher-bn``) and ops ``OPERATOR.VARIANT`` (``t.bn-eval``); each row is
one training whose task is the search's task for the row it derives from, changed in one respect (the
teacher's BN mode, no distillation, no fine-tuning, ...). ``StudyStrategy`` is a strategy like the
search's: it plans the rows when there are none and ends when all of them have ended; the study controller
(``pas study``) runs it on the search's snapshot until then, and the study's table is built from the
rows (and from the search's own rows where they are the same training).

Which study exists, what it plans and how its table reads: ``STUDIES`` (teacher_bn.py, ablation.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pas_models.errors import PasError
from pas_models.layout import RunLayout
from pas_orchestrator.core.actions import Action, AddHypotheses, EndSearch
from pas_orchestrator.ledger.records import STUDY_PREFIX as STUDY_PREFIX  # the ledger defines the kind
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.records import is_study as is_study
from pas_orchestrator.ledger.states import TERMINAL_HYP, HypState, SearchState

if TYPE_CHECKING:
    from pas_models.train.task import TrainTask

# builds the search's own training task for one of its rows (the controller's, so a study trains exactly
# what the search trained, changed in the one respect the study is about)
SearchTask = Callable[[HypRec], "TrainTask"]


class StudyError(PasError):
    """A study that cannot be run on this search (one line: what is missing and what to do)."""


@dataclass(frozen=True)
class StudyTable:
    """A study's result in the paper's layout (Markdown and CSV)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
               "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            out += ["", *self.notes]
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()


class Study(Protocol):
    name: str  # the `pas study` subcommand
    kind: str  # the ledger kind of its rows
    iteration: int

    @property
    def slug(self) -> str:
        """This instance (``teacher-bn-1``): its report files and what `pas status --study` names."""
        ...

    def owns(self, h: HypRec) -> bool:
        """Whether a ledger row is one of this instance's."""
        ...

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        """The rows to train (raises StudyError when the search cannot give them)."""
        ...

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        """The training of one of its rows."""
        ...

    def table(self, snap: Snapshot) -> StudyTable:
        ...


class PerIteration:
    """A study of one iteration: its slug is NAME-ITERATION and it owns its kind's rows of that iteration."""

    name: str
    kind: str
    iteration: int

    @property
    def slug(self) -> str:
        return f"{self.name}-{self.iteration}"

    def owns(self, h: HypRec) -> bool:
        return h.kind == self.kind and h.iteration == self.iteration


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def with_interval(h: HypRec) -> str:
    """Top-1 and its 95% interval over the test videos ("56.25 [44.1-67.7]"), where the videos are known."""
    ci = h.top1_interval
    return fmt(h.top1) + ("" if ci is None else f" [{ci[0]:.1f}-{ci[1]:.1f}]")


def cell(h: HypRec | None) -> str:
    """A table cell: its top-1 with its interval, or its state while it has none ("-": not planned)."""
    if h is None:
        return "-"
    return with_interval(h) if h.state == HypState.DONE else h.state.value.lower()


def derived_row(src: HypRec, op: str, kind: str, layout: RunLayout) -> NewHypothesis:
    """A study row that trains the network of the search's row ``src`` (its iteration, path, cost, spec)."""
    return NewHypothesis(src.iteration, op, kind, src.path, str(layout.hyp_dir(src.iteration, op, kind)),
                         gflops=src.gflops, params=src.params, spec=src.spec)


Variants = tuple[str, ...]
OpOf = Callable[[HypRec, str], str]
Reused = Callable[[HypRec, str], bool]


def plan_variants(sources: list[HypRec], variants: Variants, op_of: OpOf, reused: Reused, kind: str,
                  layout: RunLayout) -> list[NewHypothesis]:
    """Each source row's variants, but those the search already trained (``reused``)."""
    return [derived_row(src, op_of(src, v), kind, layout) for src in sources for v in variants
            if not reused(src, v)]


def variant_rows(snap: Snapshot, iteration: int, owns: Callable[[HypRec], bool], variants: Variants,
                 op_of: OpOf, reused: Reused, include: Callable[[HypRec], bool] = lambda _: True
                 ) -> tuple[tuple[str, ...], ...]:
    """Table rows (reduction, path, GFLOPs, one cell per variant) of the iteration's rows that have study rows;
    a variant the search trained itself shows the search's figure."""
    mine = {h.op: h for h in snap.hypotheses if owns(h)}
    rows = []
    for src in snap.iteration(iteration):
        if not include(src) or not any(op.split(".", 1)[0] == src.op for op in mine):
            continue
        cells = [cell(src if mine.get(op_of(src, v)) is None and reused(src, v) else mine.get(op_of(src, v)))
                 for v in variants]
        rows.append((src.op, src.path, f"{src.gflops or 0:.4g}", *cells))
    return tuple(rows)


def source_row(snap: Snapshot, h: HypRec) -> HypRec:
    """The search's row a study row derives from (same iteration, its operator, kind pas)."""
    op = h.op.split(".", 1)[0]
    for x in snap.iteration(h.iteration):
        if x.op == op:
            return x
    raise StudyError(f"{h.label}: the search has no hypothesis {h.iteration}-{op} to derive it from")


def trained_to_the_end(h: HypRec) -> bool:
    """A search row whose figure is a whole training (not stopped at a rung, not failed)."""
    return h.state == HypState.DONE and h.top1 is not None and h.stopped_rung is None


@dataclass(frozen=True)
class StudyStrategy:
    """Plans a study's rows once, then ends (``EndSearch``, which the study controller takes as the study's end and
    never applies to the search) when every one of them has ended."""

    study: Study
    layout: RunLayout
    name: str = "study"

    def advance(self, snap: Snapshot) -> list[Action]:
        rows = [h for h in snap.hypotheses if self.study.owns(h)]
        if not rows:
            return [AddHypotheses(tuple(self.study.plan(snap, self.layout)))]
        if any(h.state not in TERMINAL_HYP for h in rows):
            return []
        done = [h for h in rows if h.state == HypState.DONE]
        ended = "; ".join(f"{h.op}: {h.state.value.lower()}" + (f" ({h.reason})" if h.reason and h.state !=
                                                                 HypState.DONE else "") for h in rows)
        return [EndSearch(SearchState.DONE if done else SearchState.FAILED,
                          f"study {self.study.slug}: {len(done)} of {len(rows)} trainings done ({ended})")]
