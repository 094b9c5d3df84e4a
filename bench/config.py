"""Run configuration: defaults, YAML loading, ``--set`` overrides, validation and the run id.

A run config is a plain nested dict. ``dataset``, ``backbone`` and ``strategy`` hold a ``name`` plus
that component's parameters (validated by its registry); every other section is closed: a key not in
``DEFAULTS`` is an error that lists the valid keys. ``run_id`` is a short hash of the resolved config.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "dataset": {"name": "toy2d"},
    "backbone": {"name": "mlp"},
    "strategy": {"name": "uniform"},
    "diffusion": {"schedule": "linear", "timesteps": 1000, "variance": "fixed_large"},
    "train": {
        "iterations": 1000,        # budget, in optimizer steps
        "batch_size": 128,         # global batch
        "optimizer": "adam",       # adam | adamw
        "lr": 2e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
        "warmup": 0,               # linear LR warm-up, steps
        "grad_clip": 1.0,          # max grad norm; 0 disables
        "ema_decay": 0.9999,       # with the DDPM warm-up min(decay, (1+n)/(10+n))
        "log_every": 100,
        "ckpt_every": 500,
        "loss_bins": 10,           # timestep bins of the logged loss
        "device": "auto",          # auto | cpu | cuda
        "bf16": False,             # bf16 autocast (CUDA or CPU)
        "channels_last": False,
    },
    "eval": {},
}
OPEN_SECTIONS = ("dataset", "backbone", "strategy")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config problem, with a message that names it and the valid choices."""


def deep_update(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in OPEN_SECTIONS:
            out[k] = deep_update(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            # An open section with a new name replaces the old parameters wholesale.
            out[k] = copy.deepcopy(v) if "name" in v and v["name"] != out[k].get("name") \
                else {**out[k], **copy.deepcopy(v)}
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML in {path}: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def parse_set(items: list[str]) -> dict:
    """``["train.lr=1e-3", "strategy.name=p2"]`` → a nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: cannot parse value: {e}") from e
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _check_keys(cfg: dict, ref: dict, where: str) -> None:
    for k, v in cfg.items():
        if k not in ref:
            raise ConfigError(f"unknown config key {where}{k!r}; valid: {', '.join(sorted(ref))}")
        if k in OPEN_SECTIONS:
            if not isinstance(v, dict) or "name" not in v:
                raise ConfigError(f"config section {k!r} must be a mapping with a 'name'")
        elif isinstance(ref[k], dict) and ref[k]:
            if not isinstance(v, dict):
                raise ConfigError(f"config section {where}{k!r} must be a mapping")
            _check_keys(v, ref[k], f"{where}{k}.")


def resolve(overrides: dict) -> dict:
    """DEFAULTS ⊕ overrides, checked for unknown keys and bad values (not component parameters)."""
    cfg = deep_update(DEFAULTS, overrides)
    _check_keys(cfg, DEFAULTS, "")
    tr = cfg["train"]
    for key in ("iterations", "batch_size", "log_every", "ckpt_every", "loss_bins"):
        if not isinstance(tr[key], int) or tr[key] <= 0:
            raise ConfigError(f"train.{key} must be a positive integer, got {tr[key]!r}")
    for key in ("warmup",):
        if not isinstance(tr[key], int) or tr[key] < 0:
            raise ConfigError(f"train.{key} must be a non-negative integer, got {tr[key]!r}")
    if not isinstance(tr["lr"], (int, float)) or tr["lr"] <= 0:
        raise ConfigError(f"train.lr must be positive, got {tr['lr']!r}")
    if tr["optimizer"] not in ("adam", "adamw"):
        raise ConfigError(f"unknown train.optimizer {tr['optimizer']!r}; valid: adam, adamw")
    if tr["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown train.device {tr['device']!r}; valid: auto, cpu, cuda")
    if not 0.0 <= float(tr["ema_decay"]) < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {tr['ema_decay']!r}")
    if not isinstance(cfg["seed"], int):
        raise ConfigError(f"seed must be an integer, got {cfg['seed']!r}")
    from bench.diffusion import SCHEDULES, VARIANCES

    d = cfg["diffusion"]
    if d["schedule"] not in SCHEDULES:
        raise ConfigError(f"unknown diffusion.schedule {d['schedule']!r}; valid: {', '.join(SCHEDULES)}")
    if d["variance"] not in VARIANCES:
        raise ConfigError(f"unknown diffusion.variance {d['variance']!r}; valid: {', '.join(VARIANCES)}")
    if not isinstance(d["timesteps"], int) or d["timesteps"] < 2:
        raise ConfigError(f"diffusion.timesteps must be an integer >= 2, got {d['timesteps']!r}")
    return cfg


def canonical(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)


def run_id(cfg: dict) -> str:
    """A short content hash of the resolved config: no counters, no hyperparameters in names."""
    return hashlib.sha1(canonical(cfg).encode()).hexdigest()[:10]
