"""A strategy's parameters as data: its defaults, its presets, the ``late`` parameters that keep
old run ids, the spec → ``Params`` check, the spec as it identifies a run (``identity``), what a
label compares with, and ``build`` (a strategy from its name, process and parameters)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from bench.core.checks import check_keys
from bench.core.process import Process
from strategies.base import Strategy
from strategies.registry import get


def defaults(name: str) -> dict[str, Any]:
    """The default parameters of strategy ``name`` (required ones, without a default, left out)."""
    out = {}
    for f in dataclasses.fields(get(name).Params):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def late(default: Any) -> Any:
    """A parameter added after runs existed: at its default it is left out of the run identity
    (``identity``), so existing run ids stay valid. Its default must keep the old behaviour."""
    return dataclasses.field(default=default, metadata={"late": True})


def make_params(cls: type[Strategy], params: dict[str, Any] | None) -> Strategy.Params:
    """Build ``cls.Params`` from a dict (after ``cls.preset``); unknown keys are errors that
    list the valid ones."""
    params = dict(params or {})
    check_keys(params, sorted(f.name for f in dataclasses.fields(cls.Params)), "parameter(s)",
               where=f"strategy {cls.name!r}")
    return cls.Params(**cls.preset(params))


def identity(spec: dict[str, Any]) -> dict[str, Any]:
    """A strategy spec as it identifies a run: every default spelled out after the strategy's
    preset, minus the ``late`` parameters that are at their default and minus ``variant`` (only a
    name for the values it filled in), so a preset and its values written out are one run."""
    cls = get(spec["name"])
    params = cls.preset({k: v for k, v in spec.items() if k != "name"})
    full = {**copy.deepcopy(defaults(spec["name"])), **params}
    drop = {f.name for f in dataclasses.fields(cls.Params)
            if f.metadata.get("late") and f.name in full and full[f.name] == f.default}
    if cls.PRESETS:
        drop.add("variant")
    return {"name": spec["name"], **{k: v for k, v in full.items() if k not in drop}}


def label_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """What a label compares a spec with: the defaults, with the values of the preset the spec's
    ``variant`` names (so a label shows what differs from the preset, and the variant)."""
    cls = get(spec["name"])
    base = defaults(spec["name"])
    if not cls.PRESETS:
        return base
    variant = spec.get("variant", base.get("variant"))
    return {**base, **cls.PRESETS.get(variant, {})} if isinstance(variant, str) else base


def build(name: str, process: Process, params: dict[str, Any] | None = None) -> Strategy:
    cls = get(name)
    return cls(process, make_params(cls, params))
