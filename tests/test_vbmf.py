"""EVBMF rank selection (Nakajima et al. 2013): the rank and the noise of low-rank matrices under
Gaussian noise are recovered, pure noise keeps nothing, and a kernel's Tucker-2 ranks are those it was
built with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pas_models.vbmf import evbmf_rank, noise_variance, threshold, tucker2_ranks


def test_threshold_at_square_matrices_is_the_papers() -> None:
    # alpha = 1: tau_ = 2.5129 (Nakajima et al. 2013), so x_ = (1 + tau_)(1 + 1 / tau_)
    assert threshold(1.0) == pytest.approx(3.5129 * (1 + 1 / 2.5129), rel=1e-4)
    # smaller alpha, lower threshold; x_ stays above the Marchenko-Pastur edge (1 + sqrt(alpha))^2
    xs = [threshold(a) for a in (0.05, 0.2, 0.5, 1.0)]
    assert xs == sorted(xs)
    assert all(x > (1 + math.sqrt(a)) ** 2 for x, a in zip(xs, (0.05, 0.2, 0.5, 1.0), strict=True))


@pytest.mark.parametrize(("L", "M", "rank", "sigma"), [
    (64, 576, 10, 0.1),  # a (2+1)D spatial kernel's unfolding shape
    (200, 300, 10, 1.0),
    (576, 144, 30, 0.5),  # tall: transposed inside
    (64, 64, 5, 0.3),
    (12, 189, 3, 0.05),  # a tiny network's kernel
])
def test_rank_and_noise_of_low_rank_plus_noise(L: int, M: int, rank: int, sigma: float) -> None:
    rng = np.random.default_rng(L * M + rank)
    signal = rng.normal(size=(L, rank)) @ rng.normal(size=(rank, M))
    y = signal + sigma * rng.normal(size=(L, M))
    assert evbmf_rank(y) == rank
    s = np.linalg.svd(y.T if L > M else y, compute_uv=False)
    assert noise_variance(s, min(L, M), max(L, M)) == pytest.approx(sigma ** 2, rel=0.15)
    assert evbmf_rank(torch.from_numpy(y).float()) == rank  # tensors too


def test_noise_alone_and_nothing_keep_no_component() -> None:
    rng = np.random.default_rng(0)
    assert evbmf_rank(rng.normal(size=(100, 200))) == 0
    assert evbmf_rank(np.zeros((5, 7))) == 0
    with pytest.raises(ValueError, match="needs a matrix"):
        evbmf_rank(np.zeros(5))


def test_tucker2_ranks_of_a_kernel_built_at_known_ranks() -> None:
    g = torch.Generator().manual_seed(0)
    c_out, c_in, r_out, r_in = 48, 32, 12, 5
    core = torch.randn(r_out, r_in, 3, 3, 3, generator=g)
    u_out = torch.linalg.qr(torch.randn(c_out, r_out, generator=g))[0]
    u_in = torch.linalg.qr(torch.randn(c_in, r_in, generator=g))[0]
    kernel = torch.einsum("oa,ab...,ib->oi...", u_out, core, u_in)
    kernel += 0.01 * torch.randn(kernel.shape, generator=g)
    assert tucker2_ranks(kernel) == (r_in, r_out)
    assert tucker2_ranks(0.01 * torch.randn(8, 6, 1, 3, 3, generator=g)) == (1, 1)  # noise: rank 1, never 0
