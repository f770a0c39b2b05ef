"""`pas status` on a large ledger: 10,000 attempts (2,000 hypotheses x 5 attempts), timed from opening
the ledger to the rendered table, and the JSON form. Target: < 0.3 s."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pas_orchestrator.core.actions import AddHypotheses, CreateAttempts, FailAttempt, ObserveAttempt, RecordJobIds
from pas_orchestrator.core.outcomes import JobOutcome, Phase
from pas_orchestrator.ledger import AttemptState, HypState, Ledger, NewHypothesis
from pas_orchestrator.views import as_json, render


def build(path: Path, hypotheses: int = 2000, attempts: int = 5) -> None:
    led = Ledger(path)
    led.acquire_lease()
    led.init_search("big", {}, "h", "local")
    ops = "stfcl"
    led.apply(AddHypotheses(tuple(NewHypothesis(i // 5 + 1, f"{ops[i % 5]}{i}", "pas", "c,f", f"/runs/big/hyp/{i}",
                                                gflops=1.0, params=1000) for i in range(hypotheses))))
    ids = tuple(h.id for h in led.snapshot().hypotheses)
    for n in range(attempts):
        atts = led.apply(CreateAttempts(ids, "pas-big-i1")).attempts
        led.apply(RecordJobIds(tuple((a.id, f"{1000 + n}_{a.array_index}") for a in atts)))
        for a in atts:
            if n < attempts - 1:
                led.apply(FailAttempt(a.id, AttemptState.SUBMITTED, "NODE_FAIL",
                                      JobOutcome(Phase.FAILED, "NODE_FAIL", label="NODE_FAIL")))
            else:
                led.apply(ObserveAttempt(a.id, AttemptState.SUBMITTED, JobOutcome(Phase.RUNNING, label="RUNNING")))
    led.release_lease()
    led.close()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.sqlite"
        t = time.perf_counter()
        build(path)
        built = time.perf_counter() - t
        rows = []
        for label, fn in (("table", render), ("json", as_json)):
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                led = Ledger(path, readonly=True)
                snap = led.snapshot()
                out = fn(snap)
                led.close()
                best = min(best, time.perf_counter() - t)
            n_att = sum(len(h.attempts) for h in snap.hypotheses)
            rows.append((label, len(snap.hypotheses), n_att, best, len(str(out))))
        assert all(h.state == HypState.RUNNING for h in snap.hypotheses)
    print(f"ledger built in {built:.1f} s")
    print(f"{'output':8s} {'hypotheses':>10s} {'attempts':>9s} {'seconds (best of 5)':>20s} {'target':>7s}")
    for label, nh, na, sec, _ in rows:
        print(f"{label:8s} {nh:10d} {na:9d} {sec:20.3f} {'< 0.3':>7s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
