"""How sure an accuracy is: intervals for a proportion measured on a finite test set, and for the difference of
two networks measured on the same videos. Pure Python (no numpy): the controller's commands use it too.

- ``wilson(k, n)``: the Wilson score interval of k correct out of n (Wilson 1927). It stays inside [0, 1] and
  keeps close to its nominal coverage at the test-set sizes pas sees (64 videos of the demo to Kinetics-400's
  20k), where the normal approximation (p +- z sqrt(p(1-p)/n)) leaves [0, 1] near 0 or 1 and under-covers.
- ``paired(a, b)``: two networks' per-video correctness on the same videos. The difference of their
  accuracies in points with Newcombe's hybrid score interval for paired proportions (Newcombe 1998, Statistics
  in Medicine 17:2635, method 10: the two Wilson intervals combined with the pairs' correlation), and the exact
  McNemar test of "they are equally accurate" on the discordant videos (a two-sided binomial test with
  p = 1/2). Paired, because the videos are shared: a video both get right or both get wrong says nothing
  about which is better, and the interval of the difference is much narrower than the two intervals suggest.

- ``mean_interval(values)``: the mean of independent repeats (a figure per seed) with Student's t interval, the
  unit being the repeat: what ``paired`` pooled over seeds leaves out, how much the networks themselves vary
  from one training to the next.

Coverage of each is checked by simulation in tests/test_intervals.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

LEVEL = 0.95  # the confidence level pas reports at


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level}: must be in (0, 1)")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The interval of a proportion k / n as fractions in [0, 1]; (0, 1) when n is 0 (nothing measured)."""
    if not 0 <= k <= n:
        raise ValueError(f"{k} of {n}: need 0 <= k <= n")
    if n == 0:
        return 0.0, 1.0
    z = _z(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def percent_interval(percent: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The interval of an accuracy given in percent of n videos (as results store it), in percent."""
    lo, hi = wilson(round(percent * n / 100), n, level)
    return 100 * lo, 100 * hi


@dataclass(frozen=True)
class Paired:
    """Network A against network B on the same n videos (points: percent)."""

    n: int
    a_only: int  # videos A gets right and B wrong
    b_only: int  # videos B gets right and A wrong
    difference: float  # A's accuracy minus B's, points
    low: float  # the interval of the difference, points
    high: float
    p_value: float  # exact McNemar: the chance of so lopsided a split of the discordant videos if A and B were equal
    level: float = LEVEL

    @property
    def distinguishable(self) -> bool:
        """The interval leaves 0 out (A and B differ at the level)."""
        return self.low > 0 or self.high < 0

    def describe(self, a: str = "A", b: str = "B") -> str:
        verdict = "distinguishable" if self.distinguishable else "not distinguishable"
        return (f"{a} - {b}: {self.difference:+.2f} points [{self.low:+.2f}, {self.high:+.2f}] "
                f"({self.a_only} vs {self.b_only} discordant of {self.n} videos; McNemar p = {self.p_value:.2g}): "
                f"{verdict} at {self.level:.0%}")


def paired(a: Sequence[bool], b: Sequence[bool], level: float = LEVEL) -> Paired:
    """A's and B's correctness on the same videos, in the same order."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} and {len(b)} videos: not the same videos")
    n = len(a)
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    neither = n - both - a_only - b_only
    if n == 0:
        return Paired(0, 0, 0, 0.0, -100.0, 100.0, 1.0, level)
    low, high = _newcombe(both, a_only, b_only, neither, level)
    return Paired(n, a_only, b_only, 100 * (a_only - b_only) / n, 100 * low, 100 * high,
                  mcnemar_exact(a_only, b_only), level)


def _newcombe(both: int, a_only: int, b_only: int, neither: int, level: float) -> tuple[float, float]:
    """Newcombe's method 10: the interval of p_A - p_B from the paired 2x2 table, as fractions."""
    n = both + a_only + b_only + neither
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    l1, u1 = wilson(both + a_only, n, level)
    l2, u2 = wilson(both + b_only, n, level)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = 0.0 if margins == 0 else (both * neither - a_only * b_only) / math.sqrt(margins)
    theta = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, theta - delta), min(1.0, theta + epsilon)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail of the discordant split (at most 1)."""
    m = a_only + b_only
    if m == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2 ** m
    return min(1.0, 2 * tail)


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (``0.5 < p < 1``) for ``df`` >= 1 degrees of freedom: the CDF integrated from the
    density (Simpson's rule) and inverted by Newton's method; to 1e-6 of scipy's for df 1-200
    (tests/test_intervals.py)."""
    if not 0.5 < p < 1 or df < 1:
        raise ValueError(f"t quantile of {p} with {df} degrees of freedom: need 0.5 < p < 1 and df >= 1")
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(x: float) -> float:
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        f = [density(i * h) for i in range(steps + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    x = 0.0  # Newton from below: the CDF is concave for x > 0, so every step stays below the root
    for _ in range(200):
        step = (p - cdf(x)) / density(x)
        x += step
        if step < 1e-10 * max(1.0, x):
            break
    return x


def mean_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """The mean of independent repeats (e.g. one figure per seed) and its t interval: (mean, low, high). The unit
    is the repeat, so the interval holds everything that varies between repeats (training, data order, test
    noise); with one value it is (mean, -inf, inf)."""
    if not values:
        raise ValueError("the mean of no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, -math.inf, math.inf
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))
    half = t_quantile(0.5 + level / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return m, m - half, m + half
