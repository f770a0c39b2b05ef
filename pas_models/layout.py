"""Where everything of a search lives on disk: the one definition of the run folder layout.

    runs/NAME/                       RunLayout(runs, NAME)
        ledger.sqlite (+ -wal, -shm)   the search's state (pas_orchestrator.ledger)
        hyp/ITER-OP[-scratch]/         one folder per hypothesis (HypFiles)
        submitit/BATCH/                each submission's scheduler files (pickles, logs)
        report/                        `pas report` (table.md, pareto.png) and `pas export` (best/: ExportFiles)
        manual/OPS[-scratch]/          `pas train` outside a search
        teacher_cache/                 distill.cache: B's soft labels, shard-K-of-N.npz (pas_models.teacher_cache)

    hyp/ITER-OP/ (HypFiles)
        result.json    the job result (pas_models.train.result.JobResult), written last
        predictions.npz  the final evaluation's per-video scores (pas_models.predictions), written before it
        supernet.json  a supernet job's result (strategy: gradient; pas_models.nas.result.SupernetResult)
        candidates/    a supernet job's candidates: cycleC-CODE.pt, weights cut from the supernet
        rung-K.json    a halving search: the evaluation at the end of rung K (pas_models.halving.RungResult)
        model.pt       final weights and spec (the next iteration and `pas export` read it)
        last.pt        resumable training state (every epoch and every checkpoint_minutes)
        progress.json  heartbeat of the training (epoch, step, loss, clips/s)
        metrics.jsonl  one line per step
        train.log      the job's log
        tensorboard/   scalars
        requeued.json  how often the job was requeued (time limit / preemption)
        interrupted.json  the last interruption (SIGINT / SIGTERM) of a training
        .lock          flock held by the process that trains this hypothesis

Torch-free and pure (paths only): the controller side and the compute side both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LEDGER = "ledger.sqlite"


def hypothesis_label(iteration: int, op: str, kind: str) -> str:
    """``2-t``, ``0-base``, ``3-f-scratch`` (a "without PAS" baseline)."""
    return f"{iteration}-{op}" + ("-scratch" if kind == "baseline" else "")


@dataclass(frozen=True)
class HypFiles:
    """The files of one training's output folder."""

    root: Path

    @classmethod
    def of(cls, out_dir: str | Path) -> HypFiles:
        return cls(Path(out_dir))

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    def rung(self, k: int) -> Path:
        """The cheap evaluation at the end of rung ``k`` of a halving search (pas_models.halving)."""
        return self.root / f"rung-{k}.json"

    @property
    def predictions(self) -> Path:
        """The final evaluation's per-video scores (pas_models.predictions), written before result.json."""
        return self.root / "predictions.npz"

    def rung_predictions(self, k: int) -> Path:
        return self.root / f"rung-{k}.predictions.npz"

    @property
    def supernet(self) -> Path:
        """A supernet job's result (pas_models.nas.result.SupernetResult), written last."""
        return self.root / "supernet.json"

    def candidate(self, code: str, cycle: int) -> Path:
        """A supernet job's candidate of one cycle: its weights cut from the supernet (model + spec)."""
        return self.root / "candidates" / f"cycle{cycle}-{code}.pt"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def progress(self) -> Path:
        return self.root / "progress.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def requeued(self) -> Path:
        return self.root / "requeued.json"

    @property
    def interrupted(self) -> Path:
        return self.root / "interrupted.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"


@dataclass(frozen=True)
class ExportFiles:
    """What `pas export` writes (``report/best/`` by default)."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def torchscript(self) -> Path:
        return self.root / "model.ts"

    @property
    def info(self) -> Path:
        return self.root / "model.json"


@dataclass(frozen=True)
class RunLayout:
    """The folder of one search: ``RUNS/NAME``."""

    root: Path

    @classmethod
    def of(cls, runs: str | Path, name: str) -> RunLayout:
        return cls(Path(runs) / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def submitit(self) -> Path:
        return self.root / "submitit"

    def batch_folder(self, batch: str) -> Path:
        return self.submitit / batch

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def export(self) -> Path:
        return self.report / "best"

    @property
    def teacher_cache(self) -> Path:
        return self.root / "teacher_cache"

    def study_file(self, slug: str, what: str) -> Path:
        """A study's own files (``studies/transfer-ucf101.definition.json``, ``...frames.json``)."""
        return self.root / "studies" / f"{slug}.{what}.json"

    def hyp_dir(self, iteration: int, op: str, kind: str) -> Path:
        return self.root / "hyp" / hypothesis_label(iteration, op, kind)

    def manual_dir(self, ops: list[str] | None, scratch: bool = False) -> Path:
        """`pas train` outside a search: ``manual/base``, ``manual/t-f``, ``manual/t-f-scratch``."""
        return self.root / "manual" / ("base" if not ops else "-".join(ops) + ("-scratch" if scratch else ""))


def search_ledgers(runs: Path) -> list[Path]:
    """Every ``RUNS/*/ledger.sqlite`` (unsorted)."""
    return list(runs.glob(f"*/{LEDGER}"))
