"""Independent reference formulas for the strategy golden tests (NumPy/SciPy/math only; nothing
from ``strategies`` or ``bench``). Written from docs/official_code.md."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logit
from scipy.stats import norm


def betas(schedule: str, T: int) -> np.ndarray:
    """Noise schedules: linear (IDDPM, scaled by 1000/T), quad (ATS), cosine (Nichol & Dhariwal,
    clip 0.999)."""
    if schedule == "linear":
        s = 1000.0 / T
        return np.array([s * 1e-4 + (s * 0.02 - s * 1e-4) * i / (T - 1) for i in range(T)])
    if schedule == "quad":
        lo, hi = math.sqrt(1e-4), math.sqrt(0.02)
        return np.array([(lo + (hi - lo) * i / (T - 1)) ** 2 for i in range(T)])
    if schedule == "cosine":
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        return np.array([min(1.0 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    raise ValueError(schedule)


def abar(schedule: str, T: int) -> np.ndarray:
    out, prod = [], 1.0
    for b in betas(schedule, T):
        prod *= 1.0 - b
        out.append(prod)
    return np.array(out)


def snr(schedule: str, T: int) -> np.ndarray:
    a = abar(schedule, T)
    return a / (1.0 - a)


# --------------------------------------------------------------------------- SpeeD
def speed_increments(schedule: str, T: int) -> np.ndarray:
    f = np.sqrt(1.0 - abar(schedule, T))
    g = np.empty(T)
    g[0], g[-1] = f[1] - f[0], f[-1] - f[-2]
    for i in range(1, T - 1):
        g[i] = (f[i + 1] - f[i - 1]) / 2.0
    return g


def speed_boundary(g: np.ndarray, delta: float = 1e-4) -> int:
    for i, gi in enumerate(g):
        if gi < delta:
            return i + 1
    return 1          # argmax of an all-False array is 0


def speed_p(schedule: str, T: int) -> np.ndarray:
    g = speed_increments(schedule, T)
    raw = np.array([math.tanh(1e6 * (gi - 1e-4)) + 1.5 for gi in g])
    return raw / raw.sum()


def speed_marginal(schedule: str, T: int, n: int, dual: bool = True) -> np.ndarray:
    """Batch marginal: the first n//2+1 draws from p, then mirrors of the first draws, cut to n."""
    p = speed_p(schedule, T)
    if not dual:
        return p
    m = speed_boundary(speed_increments(schedule, T))
    p_dual = np.zeros(T)
    for t in range(T):
        d = m - t if t < m else t - m
        p_dual[d] += p[t]
    a = min(n // 2 + 1, n)
    return (a / n) * p + ((n - a) / n) * p_dual


# --------------------------------------------------------------------------- log-normal
def logit_normal_floor(T: int, m: float = 0.0, s: float = 1.0) -> np.ndarray:
    """i = floor(u·T): P(i) = Φ((logit((i+1)/T) − m)/s) − Φ((logit(i/T) − m)/s)."""
    return np.array([norm.cdf((logit((i + 1) / T) - m) / s) - norm.cdf((logit(i / T) - m) / s)
                     for i in range(T)])


def logit_normal_round(T: int, m: float = 0.0, s: float = 1.0) -> np.ndarray:
    """i = round(u·(T−1)): u ∈ [(i−½)/(T−1), (i+½)/(T−1)) ∩ [0, 1]."""
    def cdf(u):
        u = min(max(u, 0.0), 1.0)
        return norm.cdf((logit(u) - m) / s)
    return np.array([cdf((i + 0.5) / (T - 1)) - cdf((i - 0.5) / (T - 1)) for i in range(T)])


def edm_lognormal(schedule: str, T: int, p_mean: float = -1.2, p_std: float = 1.2) -> np.ndarray:
    """ln σ ~ N(p_mean, p_std²), σ_i = sqrt((1−abar)/abar), nearest index in ln σ."""
    a = abar(schedule, T)
    ls = [0.5 * math.log((1 - x) / x) for x in a]
    edges = [-math.inf] + [(ls[i - 1] + ls[i]) / 2 for i in range(1, T)] + [math.inf]
    return np.array([norm.cdf((edges[i + 1] - p_mean) / p_std)
                     - norm.cdf((edges[i] - p_mean) / p_std) for i in range(T)])


# --------------------------------------------------------------------------- Laplace
def laplace_masses(schedule: str, T: int, mu: float = 0.0, b: float = 0.5) -> np.ndarray:
    def F(x):
        if x == math.inf:
            return 1.0
        if x == -math.inf:
            return 0.0
        return 0.5 * math.exp((x - mu) / b) if x < mu else 1.0 - 0.5 * math.exp(-(x - mu) / b)
    ls = [math.log(x) for x in snr(schedule, T)]
    e = [math.inf] + [(ls[i - 1] + ls[i]) / 2 for i in range(1, T)] + [-math.inf]
    return np.array([F(e[i]) - F(e[i + 1]) for i in range(T)])
