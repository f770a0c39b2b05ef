"""Rank selection by empirical variational Bayesian matrix factorisation (EVBMF).

Kim et al. 2016 choose the Tucker-2 ranks of a kernel by EVBMF on its two channel-mode
unfoldings; this is the analytic global solution of Nakajima, Sugiyama, Babacan and Tomioka
(JMLR 2013, "Global analytic solution of fully-observed variational Bayesian matrix
factorization"), with the noise variance chosen by minimising the free energy over the bounds of
Nakajima et al. (JMLR 2015, "Condition for perfect dimensionality recovery by variational Bayesian
PCA"). No well-kept library implements it, so it is written here from the papers.

For Y (L x M, L <= M after transposing) with singular values gamma_h, alpha = L / M and noise
variance sigma^2, write x_h = gamma_h^2 / (M sigma^2) and

    tau(x)  = (x - (1 + alpha) + sqrt((x - (1 + alpha))^2 - 4 alpha)) / 2
    psi1(t) = log(t + 1) + alpha log(t / alpha + 1) - t.

Component h is kept iff x_h > x_ = (1 + t_)(1 + alpha / t_), where t_ > 0 is the root of psi1
(2.5129 at alpha = 1). The free energy, up to constants and the factor M/2, is

    sum_h [x_h - log x_h + (x_h > x_) psi1(tau(x_h))] + residual / (M sigma^2) + (L - H) log sigma^2

(residual: the energy of Y beyond its H computed singular values), minimised over sigma^2.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def _psi1(t: np.ndarray | float, alpha: float) -> np.ndarray | float:
    return np.log(t + 1) + alpha * np.log(t / alpha + 1) - t


@functools.lru_cache(maxsize=256)
def threshold(alpha: float) -> float:
    """x_ of the module docstring: the smallest x_h = gamma_h^2 / (M sigma^2) that EVBMF keeps."""
    from scipy.optimize import brentq

    if not 0 < alpha <= 1:
        raise ValueError(f"alpha = L / M must be in (0, 1], got {alpha}")
    t = brentq(lambda t: float(_psi1(t, alpha)), 1e-9, 100.0, xtol=1e-12)
    return (1 + t) * (1 + alpha / t)


def _free_energy(sigma2: float, s2: np.ndarray, residual: float, L: int, M: int, x_: float) -> float:
    alpha = L / M
    x = s2 / (M * sigma2)
    out = float(np.sum(x - np.log(x)))
    big = x[x > x_]
    if big.size:
        b = big - (1 + alpha)
        tau = 0.5 * (b + np.sqrt(np.maximum(b * b - 4 * alpha, 0.0)))
        out += float(np.sum(_psi1(tau, alpha)))
    return out + residual / (M * sigma2) + (L - s2.size) * math.log(sigma2)


def noise_variance(s: np.ndarray, L: int, M: int, residual: float = 0.0) -> float:
    """The EVB estimate of sigma^2 from the singular values ``s`` (descending) of an L x M matrix."""
    from scipy.optimize import minimize_scalar

    s2 = np.asarray(s, dtype=np.float64) ** 2
    H = s2.size
    x_ = threshold(L / M)
    upper = (s2.sum() + residual) / (L * M)
    h_bar = max(0, min(math.ceil(L / (1 + L / M)) - 1, H - 1))  # at most this many components can be kept
    lower = max(s2[h_bar] / (M * x_), (s2[h_bar:].sum() + residual) / (M * (L - h_bar)))
    lower = min(lower, upper) * (1 - 1e-9)
    if not lower > 0:
        return float(upper)
    # the free energy is not convex in sigma^2: a log grid finds the basin, a bounded search refines it
    grid = np.geomspace(lower, upper, 200)
    values = [_free_energy(g, s2, residual, L, M, x_) for g in grid]
    i = int(np.argmin(values))
    a, b = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    if a == b:
        return float(a)
    res = minimize_scalar(_free_energy, bounds=(a, b), args=(s2, residual, L, M, x_), method="bounded",
                          options={"xatol": a * 1e-6})
    return float(res.x) if res.fun <= values[i] else float(grid[i])


def evbmf_rank(matrix: torch.Tensor | np.ndarray) -> int:
    """How many components of ``matrix`` EVBMF keeps (0 when it judges all of it noise)."""
    y = matrix.detach().to("cpu", torch.float64).numpy() if isinstance(matrix, torch.Tensor) \
        else np.asarray(matrix, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"EVBMF needs a matrix, got shape {tuple(y.shape)}")
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    if L < 2:
        return int(np.any(y != 0))
    s = np.linalg.svd(y, compute_uv=False)
    if s[0] == 0:
        return 0
    sigma2 = noise_variance(s, L, M)
    return int(np.sum(s ** 2 > M * sigma2 * threshold(L / M)))


def tucker2_ranks(kernel: torch.Tensor) -> tuple[int, int]:
    """(r_in, r_out) of a kernel (C_out, C_in, k...): EVBMF on its C_in and C_out unfoldings
    (Kim et al. 2016), at least 1 each."""
    c_out, c_in = kernel.shape[:2]
    w = kernel.detach().to("cpu", torch.float64)
    r_out = evbmf_rank(w.reshape(c_out, -1))
    r_in = evbmf_rank(w.transpose(0, 1).reshape(c_in, -1))
    return max(1, r_in), max(1, r_out)
