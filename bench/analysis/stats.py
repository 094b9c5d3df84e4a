"""Statistics over seeds: t-intervals of a mean and of a paired difference, and the direction
(lower or higher is better) of a metric."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


# ---------------------------------------------------------------------------- direction
# Direction per metric family (prefix of the metric name): True = lower is better.
LOWER_IS_BETTER = {"fd_": True, "fid": True, "kid": True, "nll": True, "swd": True, "mmd": True,
                   "loss": True, "bpd": True, "is_": False, "inception_score": False,
                   "precision": False, "recall": False, "accuracy": False}


def lower_is_better(metric: str) -> bool:
    """Direction of ``metric``: FD/FID/KID/NLL/SWD/MMD are lower-is-better; IS, precision, recall
    higher-is-better. An unknown name is treated as lower-is-better (``known_direction``
    says so)."""
    for prefix, lower in LOWER_IS_BETTER.items():
        if metric.startswith(prefix):
            return lower
    return True


def known_direction(metric: str) -> bool:
    return any(metric.startswith(p) for p in LOWER_IS_BETTER)


# Where a metric's true value lies (prefix of its name): CI bands are clipped to it. KID and
# MMD² are non-negative quantities whose unbiased estimates can fall below 0 at small n (a mean
# may, its band stops at 0).
VALID_RANGE = {"fd_": (0.0, math.inf), "fid": (0.0, math.inf), "swd": (0.0, math.inf),
               "kid": (0.0, math.inf), "mmd": (0.0, math.inf),
               "nll": (0.0, math.inf), "bpd": (0.0, math.inf), "loss": (0.0, math.inf),
               "is_": (0.0, math.inf), "inception_score": (0.0, math.inf),
               "precision": (0.0, 1.0), "recall": (0.0, 1.0), "accuracy": (0.0, 1.0)}


# Metrics estimated without bias around 0 (either sign at small n): a ratio to the baseline's
# mean is meaningless for them.
SIGNED_ESTIMATES = ("kid", "mmd")


def valid_range(metric: str) -> tuple[float, float]:
    """(low, high) of ``metric``'s possible values; unbounded when unknown."""
    for prefix, rng in VALID_RANGE.items():
        if metric.startswith(prefix):
            return rng
    return (-math.inf, math.inf)



# ---------------------------------------------------------------------------- statistics
def _t_critical(level: float, df: float) -> float:
    """t_{(1+level)/2, df}: the two-sided Student-t critical value with ``df`` degrees of
    freedom (scipy is imported here, on first use: importing the report stays light)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2.0, df))


def t_quantile(n: int, level: float = 0.95) -> float:
    """t_{(1+level)/2, n-1}: the two-sided Student-t critical value for n samples."""
    return _t_critical(level, n - 1)


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, CI half-width, sample std, n) of the finite values: half-width
    t_{0.975,n-1}·s/√n with s the ddof=1 standard deviation (NaN for n < 2)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, math.nan, 1
    s = float(x.std(ddof=1))
    return float(x.mean()), t_quantile(n, level) * s / math.sqrt(n), s, n


def diff_ci(a: dict, b: dict, level: float = 0.95) -> tuple[float, float, str]:
    """(mean(b) − mean(a), CI half-width, test) from {seed: value} of two conditions. With ≥ 2
    common seeds the difference is paired by seed (runs share data order and noise: common random
    numbers) — mean and t-interval of the per-seed differences; else Welch's interval with the
    Welch–Satterthwaite degrees of freedom; with fewer than 2 values on a side, no interval."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        m, half, _, n = mean_ci([b[s] - a[s] for s in common], level)
        return m, half, f"paired, n={n}"
    ma, _, sa, na = mean_ci(a.values(), level)
    mb, _, sb, nb = mean_ci(b.values(), level)
    if na == 0 or nb == 0:
        return math.nan, math.nan, ""
    if na < 2 or nb < 2:
        return mb - ma, math.nan, f"n={na} vs {nb}"
    va, vb = sa**2 / na, sb**2 / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return mb - ma, 0.0, f"welch, n={na} vs {nb}"
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return mb - ma, _t_critical(level, df) * se, f"welch, n={na} vs {nb}"


