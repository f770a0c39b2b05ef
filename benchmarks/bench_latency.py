"""Latency next to FLOPs for R(2+1)D-18: the paper's PAS path c,f,t,t,t and one Tucker-2 step k, measured
on this machine by `pas bench-model` (batch 1, median of 5 passes after 2 warm-up; the GPU too when
present). Prints each step's FLOPs reduction and measured speedup, both relative to B."""

from __future__ import annotations

import subprocess
import sys

for ops in ("c,f,t,t,t", "k"):
    print(f"\n== pas bench-model --backbone r2plus1d_18 --ops {ops}", flush=True)
    done = subprocess.run([sys.executable, "-m", "pas_orchestrator", "bench-model", "--backbone", "r2plus1d_18",
                           "--ops", ops, "--batch", "1", "--passes", "5", "--warmup", "2"], check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)
