"""Sliced Wasserstein and MMD on 2-D toys: exact cases, sanity ordering, fresh vs wrong samples."""

from __future__ import annotations

import math

import pytest
import torch

from bench.data import datasets

from bench.evaluation import toy_metrics as tm


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_swd_of_a_translation_is_exact():
    """Shifting by v: every projection shifts by θ·v, so SW₂² = E_θ (θ·v)² = ‖v‖²/2 in 2-D."""
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    v = torch.tensor([0.3, -0.4])
    sw = tm.sliced_wasserstein(x, x + v, n_proj=512, generator=torch.Generator().manual_seed(1))
    assert sw == pytest.approx(math.sqrt(0.25 / 2), rel=1e-3)
    assert tm.sliced_wasserstein(x, x[torch.randperm(500)], 64) == pytest.approx(0.0, abs=1e-12)


def test_swd_unequal_sizes_matches_repeated_sample():
    """With M = 2N, the merged-quantile W₂ of y vs x equals that of y vs x repeated twice."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 2, generator=g), torch.randn(200, 2, generator=g) + 0.2
    a = tm.sliced_wasserstein(x, y, 64, torch.Generator().manual_seed(3))
    b = tm.sliced_wasserstein(x.repeat(2, 1), y, 64, torch.Generator().manual_seed(3))
    assert a == pytest.approx(b, rel=1e-6)


def test_mmd_against_bruteforce_and_zero_in_expectation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64)
    y = torch.randn(30, 2, generator=g, dtype=torch.float64) + 1.0
    h = 0.7

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))

    xx = sum(k(x[i], x[j]) for i in range(40) for j in range(40) if i != j) / (40 * 39)
    yy = sum(k(y[i], y[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    xy = sum(k(x[i], y[j]) for i in range(40) for j in range(30)) / (40 * 30)
    assert tm.mmd2_rbf(x, y, h) == pytest.approx(xx + yy - 2 * xy, rel=1e-6)
    same = [tm.mmd2_rbf(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g), 1.0)
            for _ in range(20)]
    assert abs(sum(same) / 20) < 3e-3            # unbiased: mean ≈ 0, can be negative
    with pytest.raises(ValueError, match="bandwidth"):
        tm.mmd2_rbf(x, y, 0.0)


def test_median_bandwidth():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert tm.median_bandwidth(x) == pytest.approx(2.0)      # distances 1, 2, 3


@pytest.mark.parametrize("kind", datasets.TOYS)
def test_true_vs_fresh_true_is_smaller_than_vs_wrong(kind):
    """Fresh samples of the same toy score far better than another toy or a blurred copy."""
    g = torch.Generator().manual_seed(0)
    a, b = datasets.toy_points(kind, 1000, g), datasets.toy_points(kind, 1000, g)
    other = datasets.toy_points("moons" if kind != "moons" else "8gaussians", 1000, g)
    blurred = b + 0.3 * torch.randn(b.shape, generator=g)
    h = tm.median_bandwidth(a)
    sw = [tm.sliced_wasserstein(a, y, 128, torch.Generator().manual_seed(0))
          for y in (b, blurred, other)]
    mmd = [tm.mmd2_rbf(a, y, h) for y in (b, blurred, other)]
    assert sw[0] < 0.5 * min(sw[1:]), sw
    assert mmd[0] < 0.1 * min(mmd[1:]), mmd
