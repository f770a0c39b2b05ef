"""How fast this machine runs the suite's kind of work right now: CPU seconds of three fresh `import torch`
(what every training job and `pas` command that counts or trains starts with) and of a 10M-step Python loop
(the controllers' and the tests' own work).

The parallel `make test` is CPU-bound, so its wall time follows these figures: run this before and after a
timed `make test` and report them with it (docs/testing.md). Nothing else should run meanwhile.

    python benchmarks/machine_speed.py
"""

from __future__ import annotations

import resource
import subprocess
import sys


def torch_imports(n: int = 3) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


# at a module's top level, as `python -c` runs it (global names: about twice the CPU of the same loop in a function)
LOOP = """
import time
t = time.process_time(); x = 0
for i in range(10_000_000): x += i
print(time.process_time() - t)
"""


def python_loop() -> float:
    return float(subprocess.run([sys.executable, "-c", LOOP], check=True, capture_output=True, text=True).stdout)


if __name__ == "__main__":
    print(f"import torch x3: {torch_imports():.2f} CPU-s; 10M-step Python loop: {python_loop():.2f} CPU-s")
