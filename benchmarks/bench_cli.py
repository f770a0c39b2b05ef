"""A CLI that answers at once: wall time of `pas` commands as processes, next to their baseline.

Each command runs as a fresh process (what a person or `watch` pays), interleaved with the baseline
`python -c "import sqlalchemy"` in the same run, on a ledger of 10,000 attempts (2,000 hypotheses x
5 attempts, built by benchmarks/bench_status.py). Reported: median and spread (min-max) over the
repeats, the ratio to the baseline's median, and whether torch was imported (it must not be).
Targets (issue: a CLI that answers at once): `pas status --json` <= 0.5 s and <= 3x the baseline.

    python benchmarks/bench_cli.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_status import build

TORCH_PROBE = "import sys, runpy; sys.argv = ['pas'] + sys.argv[1:]; " \
              "code = 0\ntry:\n    runpy.run_module('pas_orchestrator', run_name='__main__')\n" \
              "except SystemExit as e:\n    code = e.code or 0\n" \
              "sys.stderr.write('TORCH=%d\\n' % ('torch' in sys.modules)); sys.exit(code)"


def timed(cmd: list[str], cwd: Path) -> tuple[float, bool, int]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    torch = "TORCH=1" in proc.stderr
    return elapsed, torch, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "runs" / "big").mkdir(parents=True)
        t = time.perf_counter()
        build(root / "runs" / "big" / "ledger.sqlite")
        print(f"ledger of 10,000 attempts built in {time.perf_counter() - t:.1f} s; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f} (figures are only comparable on an idle machine)")
        cases = {
            'python -c "import sqlalchemy" (baseline)': [py, "-c", "import sqlalchemy"],
            "pas --version": [py, "-c", TORCH_PROBE, "--version"],
            "pas --help": [py, "-c", TORCH_PROBE, "--help"],
            "pas status --json": [py, "-c", TORCH_PROBE, "status", "--json"],
            "pas status": [py, "-c", TORCH_PROBE, "status"],
            "pas cancel --help": [py, "-c", TORCH_PROBE, "cancel", "--help"],
            'python -c "import torch" (for scale)': [py, "-c", "import torch"],
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        torch_seen: dict[str, bool] = dict.fromkeys(cases, False)
        for name, cmd in cases.items():  # warm the page cache once
            _, _, rc = timed(cmd, root)
            if rc != 0:
                print(f"{name}: exit {rc}")
                return 1
        for _ in range(args.repeats):  # interleaved: a load change hits every case alike
            for name, cmd in cases.items():
                elapsed, torch, _ = timed(cmd, root)
                times[name].append(elapsed)
                torch_seen[name] |= torch
    base = statistics.median(times['python -c "import sqlalchemy" (baseline)'])
    print(f"\n{'command':42s} {'median s':>9s} {'min-max s':>13s} {'x baseline':>10s} {'torch':>6s}")
    ok = True
    for name, values in times.items():
        med = statistics.median(values)
        probe = "TORCH_PROBE" if "pas" in name.split()[0] else ""
        torch = ("yes" if torch_seen[name] else "no") if probe or name.startswith("pas") else "-"
        print(f"{name:42s} {med:9.3f} {min(values):6.3f}-{max(values):6.3f} {med / base:10.2f} {torch:>6s}")
        if name == "pas status --json":
            ok = med <= 0.5 and med <= 3 * base and not torch_seen[name]
    print(f"\ntarget: pas status --json <= 0.5 s and <= 3x the baseline, no torch: {'met' if ok else 'NOT met'} "
          f"({args.repeats} repeats each, interleaved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
