"""Small validators for strategy ``Params.__post_init__``: each raises a ValueError that names the
strategy, the parameter and the valid range or choices."""

from __future__ import annotations

import math
from typing import Any, Iterable


def number(strategy: str, key: str, value: Any, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in [low, high] (or open at either end); bools are rejected."""
    lo = "(" if low_open or low is None else "["      # an infinite end is always open
    hi = ")" if high_open or high is None else "]"
    rng = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{strategy}: {key} must be a finite number in {rng}, got {value!r}")
    return float(value)


def integer(strategy: str, key: str, value: Any, *, low: int | None = None,
            high: int | None = None) -> int:
    """An int in [low, high]; bools and floats are rejected."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        rng = (f"{'(-inf' if low is None else f'[{low}'}, "
               f"{'inf)' if high is None else f'{high}]'}")
        raise ValueError(f"{strategy}: {key} must be an integer in {rng}, got {value!r}")
    return value


def choice(strategy: str, key: str, value: Any, valid: Iterable[str]) -> str:
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"{strategy}: unknown {key} {value!r}; valid: {', '.join(valid)}")
    return value


def boolean(strategy: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{strategy}: {key} must be true or false, got {value!r}")
    return value
