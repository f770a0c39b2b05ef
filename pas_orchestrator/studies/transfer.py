"""``pas study transfer``: the paper's Table 5. B and every winner of the search fine-tuned on another dataset
(each of its splits): the network's weights with a new classifier for the target's classes, the study's
recipe at lr / lr_divisor (paper Sec. 4.4: the base lr / 10, Sec. 4.2 otherwise), cross-entropy only (PAS is
not applied again), evaluated with the study's ``eval``.

A network whose clip cannot be sampled from the target's videos is not applicable, with the reason, never
padded: when more than ``short_videos`` of a split's videos (training and test) have fewer frames than the
clip spans (the paper could not evaluate SlowFast PAS-1/2 on HMDB51: 64 frames at 30 fps exceed many of its
clips). B is held to the same rule. The frame counts are read by the command (``pas study``) before the study
plans, so that planning stays pure.

Rows: iteration of the network (0: B), op ``SRC.NAME.sK`` (``base.ucf101.s1``, ``t.ucf101.s2``).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from pas_models.data.sampling import clip_span
from pas_models.layout import HypFiles, RunLayout
from pas_models.spec import ArchSpec
from pas_models.train.task import Distill, TrainTask
from pas_orchestrator.config.transfer import TransferDef
from pas_orchestrator.ledger.records import HypRec, NewHypothesis, Snapshot
from pas_orchestrator.ledger.states import HypState
from pas_orchestrator.studies import SearchTask, StudyError, StudyTable, fmt, with_interval


def short_share(counts: tuple[int, ...], span: int) -> tuple[int, int]:
    """(videos with fewer frames than ``span``, videos counted)."""
    return sum(1 for n in counts if n < span), len(counts)


@dataclass(frozen=True)
class Transfer:
    name: str  # the transfer study's name (its definition's ``transfer``)
    definition: TransferDef | None = None  # None: only the table can be made (pas report)
    counts: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # split -> frame counts of its videos
    seed: int = 0
    iteration: int = 0
    kind: str = "study-transfer"

    @property
    def slug(self) -> str:
        return f"transfer-{self.name}"

    def owns(self, h: HypRec) -> bool:
        parts = h.op.split(".")
        return h.kind == self.kind and len(parts) == 3 and parts[1] == self.name

    @staticmethod
    def networks(snap: Snapshot) -> list[HypRec]:
        """B and every winner, in order."""
        base = snap.iteration(0)
        winners = [w for i in range(1, snap.last_iteration + 1) if (w := snap.winner(i)) is not None]
        return [*base[:1], *winners]

    def _need(self) -> TransferDef:
        if self.definition is None:
            raise StudyError(f"study {self.slug}: its definition is needed (pas study transfer --job FILE)")
        return self.definition

    def op(self, src: HypRec, split: int) -> str:
        return f"{src.op}.{self.name}.s{split}"

    def plan(self, snap: Snapshot, layout: RunLayout) -> list[NewHypothesis]:
        d = self._need()
        nets = self.networks(snap)
        if not nets or nets[0].state != HypState.DONE:
            raise StudyError(f"study {self.slug}: the search has no trained base network")
        out = []
        for src in nets:
            spec = ArchSpec.from_json(src.spec or "")
            span = clip_span(spec)
            for k in d.splits:
                op = self.op(src, k)
                counts = self.counts.get(k)
                reason = None
                if counts:
                    short, n = short_share(counts, span)
                    if short > d.short_videos * n:
                        reason = (f"{short} of the {n} videos of split {k} have fewer frames than its clip spans "
                                  f"({span} source frames; short_videos {d.short_videos:g}): not padded")
                out.append(NewHypothesis(src.iteration, op, self.kind, src.path,
                                         str(layout.hyp_dir(src.iteration, op, self.kind)),
                                         state=HypState.NOT_APPLICABLE if reason else HypState.PLANNED,
                                         reason=reason, gflops=src.gflops, params=src.params, spec=src.spec))
        return out

    def task(self, snap: Snapshot, h: HypRec, search_task: SearchTask) -> TrainTask:
        d = self._need()
        src_op, _, split = h.op.split(".")
        src = next((x for x in self.networks(snap) if x.iteration == h.iteration and x.op == src_op), None)
        if src is None:
            raise StudyError(f"{h.label}: the search has no network {h.iteration}-{src_op} to transfer")
        parent = ArchSpec.from_json(src.spec or "")
        assert d.data.num_classes is not None
        student = parent.replace(num_classes=d.data.num_classes)
        return TrainTask(hypothesis=h.label, student=student, data=d.split(int(split[1:])), out_dir=h.out_dir,
                         parent=parent, parent_checkpoint=str(HypFiles.of(src.out_dir).model), recipe=d.recipe,
                         distill=Distill(alpha=0.0), eval=d.eval, lr_divisor=d.lr_divisor, seed=self.seed)

    def table(self, snap: Snapshot) -> StudyTable:
        mine = {h.op: h for h in snap.hypotheses if self.owns(h)}
        splits = sorted({int(op.rsplit(".s", 1)[1]) for op in mine})
        definition = json.loads(snap.search.definition or "{}")
        pretrain = "synthetic" if definition.get("synthetic") else str(definition.get("data", {}).get("format", "-"))
        rows = []
        for src in self.networks(snap):
            cells = [mine.get(self.op(src, k)) for k in splits]
            if not any(cells):
                continue
            name = f"{snap.search.name} (B)" if src.iteration == 0 else f"{snap.search.name}-PAS-{src.iteration}"
            na = [h for h in cells if h is not None and h.state == HypState.NOT_APPLICABLE]
            done = [h for h in cells if h is not None and h.state == HypState.DONE and h.top1 is not None]
            views = next((json.loads(h.result or "{}").get("views") for h in done), None)
            gflops = next((h.gflops for h in done), src.gflops)
            mean = (f"n/a: {na[0].reason}" if na else fmt(statistics.mean(h.top1 for h in done))  # type: ignore[misc]
                    if len(done) == len(splits) else "-")
            per = [with_interval(h) if h is not None and h in done else "n/a" if h is not None and h in na else
                   "-" if h is None else h.state.value.lower() for h in cells]
            rows.append((name, src.path or "-", pretrain, mean, *per,
                         f"{gflops or 0:.4g} x {views}" if views else f"{gflops or 0:.4g}"))
        return StudyTable(f"Transfer to {self.name} (paper Table 5): top-1 %",
                          ("model", "path", "pretrain", f"mean over {len(splits)} split(s)",
                           *(f"split {k}" for k in splits), "GFLOPs x views"), tuple(rows),
                          ("Each network's weights with a new classifier, fine-tuned with cross-entropy on each split "
                           "at the study's lr / lr_divisor; n/a: its clip is longer than too many of the target's "
                           "videos (never padded). A split's brackets: its 95% interval (Wilson, over its test "
                           "videos).",))
