"""Run identity: ``canonical_form`` (the resolved config with every component default spelled out,
numbers normalised, the keys that only watch a run left out), its ``canonical`` JSON and the
``run_id`` hashed from it, so that one run has one id however its config spells a default. The
component identities come from the registries (strategies, datasets, backbones)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import backbones
import strategies
from bench.config.sections import DEFAULTS
from bench.data import datasets


def canonical(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)


def _with_defaults(defaults: Callable[[str], dict]) -> Callable[[Mapping], dict]:
    return lambda spec: {**copy.deepcopy(defaults(spec["name"])), **spec}


# spec -> the spec as it identifies a run (strategies: presets applied, late parameters at their
# default left out, so adding such a parameter keeps every existing run id)
COMPONENT_IDENTITY = {"strategy": strategies.identity,
                      "dataset": _with_defaults(datasets.defaults),
                      "backbone": _with_defaults(backbones.defaults)}


def _filled(spec: Mapping, identity: Callable[[Mapping], dict]) -> dict:
    """A component spec with every default parameter of its registry spelled out; a parameter
    that is itself a spec of the same registry (compose's sampler, latent's source) too."""
    out = identity(spec)
    return {k: _filled(v, identity) if isinstance(v, Mapping) and "name" in v and k != "name"
            else v for k, v in out.items()}


def _numbers(x: Any) -> Any:
    """Integral floats as ints (5.0 and 5 are one value); bools stay bools."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, Mapping):
        return {k: _numbers(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_numbers(v) for v in x]
    return x


# Keys that change how a run is watched or named, not what it computes: left out of the run id
# (so adding one renames no run, turning a logger on resumes the same run, and one config in two
# sweeps is one run). ``name`` joined them in issue 24: ``bench.tools.migrate`` renames the run
# directories of an older results tree.
NOT_IDENTITY = ("name", "imports", "train.loggers", "train.keep")
# Keys added after runs existed: at their default they are left out of the canonical form, so
# every earlier run keeps its id (``process`` came with flow matching, and ``eval.steps`` with
# its samplers).
LATE_KEYS = ("process", "eval.steps", "eval.nll.ode_steps", "eval.nll.probes",
             "train.cudnn_benchmark")


def canonical_form(cfg: Mapping) -> dict:
    """What identifies a run: the resolved config with every component default spelled out and
    numbers normalised, so that ``{name: min_snr}``, ``{name: min_snr, gamma: 5}`` and
    ``gamma: 5.0`` are one run; NOT_IDENTITY keys left out."""
    out = copy.deepcopy(dict(cfg))
    for key in (*LATE_KEYS, *NOT_IDENTITY):
        *path, name = key.split(".")
        holder, default = out, DEFAULTS
        for p in path:
            holder = holder.get(p) if isinstance(holder, dict) else None
            default = default[p]
        if not isinstance(holder, dict):
            continue
        value, fallback = holder.get(name, default.get(name)), default.get(name)
        if isinstance(value, Mapping) and isinstance(fallback, Mapping):
            value = holder[name] = {**fallback, **value}     # a section: its defaults filled
        if key in NOT_IDENTITY or value == fallback:
            holder.pop(name, None)
    for key, identity in COMPONENT_IDENTITY.items():
        if isinstance(out.get(key), Mapping) and "name" in out[key]:
            out[key] = _filled(out[key], identity)
    return _numbers(out)


def _hash(form: dict) -> str:
    return hashlib.sha1(canonical(form).encode()).hexdigest()[:10]


def run_id(cfg: dict) -> str:
    """A short content hash of the canonical form of the resolved config: no counters, no
    hyperparameters in folder names, one id however a default is spelled."""
    return _hash(canonical_form(cfg))


def legacy_run_id(cfg: dict) -> str:
    """The run id before the run's ``name`` left the identity (the migration's old name)."""
    form = canonical_form(cfg)
    if "name" in cfg:
        form["name"] = cfg["name"]
    return _hash(form)
