"""The logger registry and protocol (see bench.train.loggers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_REGISTRY: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        _REGISTRY[name] = cls
        cls.name = name
        return cls
    return deco


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown logger {name!r}; valid: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def check(loggers: list[str]) -> None:
    """ValueError naming the logger whose package is not installed (before any work)."""
    for name in loggers:
        cls = get(name)
        if importlib.util.find_spec(cls.requires) is None:
            raise ValueError(f"train.loggers: {name} needs the {cls.requires!r} package, which "
                             f"is not installed (pip install {cls.pip})")


def build(loggers: list[str], run_dir: Path, cfg: dict, start_step: int) -> list:
    return [get(n)(Path(run_dir), cfg, start_step) for n in loggers]
