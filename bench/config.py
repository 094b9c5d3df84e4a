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
        "fused_optimizer": False,  # fused Adam (CUDA only)
        "tf32": False,             # TF32 matmuls/convolutions (CUDA only)
        "compile": False,          # torch.compile the training forward
    },
    # Evaluation and diagnostics (bench/evaluation.py; docs/evaluation.md). All off by default.
    "eval": {
        "every": 0,                # evaluate every N iterations; 0 = off
        "at": [],                  # ... and at these iterations (0 = the initial model)
        "final": False,            # ... and at the last iteration
        "metrics": ["auto"],       # fid | nll | swd | mmd; auto: images fid, nll; 2-D swd, mmd, nll
        "use_ema": True,           # evaluate the EMA weights (False: the live weights)
        "n_samples": 1000,         # generated samples for fid / swd / mmd
        "sampler": "ddim",         # ddpm (T ancestral steps) | ddim
        "ddim_steps": 100,
        "eta": 0.0,                # DDIM eta (0 = deterministic)
        "batch_size": 500,         # sampling / feature batch
        "extractor": "cnn",        # cnn (offline classifier: fd_cnn) | inception (fid_inception)
        "inception_weights": "",   # path to inception-2015-12-05.pt (file or folder)
        "inception_download": True,  # download the Inception weights into cache_dir if missing
        "ref_split": "train",      # split of the reference statistics
        "ref_n": 0,                # reference images (0 = the whole split)
        "ref_stats": "",           # explicit reference-statistics .npz (bench.fid format)
        "cache_dir": "",           # ref stats + extractor weights; "" = ~/.cache/timestep-bench
        "nll": {
            "n_images": 256,       # held-out images (0 = the whole test split)
            "timesteps": 0,        # 0 = all T terms; K > 0 = t=0 + K stratified timesteps
            "batch_size": 256,
            "decoder": "auto",     # auto | discretized (8-bit images) | gaussian (continuous)
            "clip": "auto",        # clip x0-hat to [-1, 1]: auto = images yes, vectors no
        },
        "toy": {
            "n_proj": 256,         # sliced-Wasserstein directions
            "mmd_n": 2000,         # points per side for MMD
            "mmd_bandwidth": 0.0,  # RBF bandwidth; 0 = median heuristic on the true points
        },
        "diagnostics": {
            "every": 0,            # per-timestep diagnostics every N iterations; 0 = off
            "at": [],              # ... and at these iterations
            "bins": 20,            # timestep bins
            "loss_per_bin": 128,   # examples per bin for the loss
            "per_bin": 32,         # examples per bin for the gradient variance (0 = skip it)
            "estimator": "two_half",  # two_half | per_sample (strategies.grad_variance)
            "param_subset": 0,     # last N parameter tensors for the gradient (0 = all)
            "pool": 512,           # train images the bins draw from
            "p_t": True,           # snapshot strategy.probabilities()
            "hist_bins": 100,      # histogram of drawn t between snapshots (0 = off)
        },
    },
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
    _check_eval(cfg["eval"])
    return cfg


EVAL_METRICS = ("auto", "fid", "nll", "swd", "mmd")


def _check_eval(e: dict) -> None:
    """Values of the eval section (its keys are already checked against DEFAULTS)."""
    def need(cond: bool, key: str, rule: str, value) -> None:
        if not cond:
            raise ConfigError(f"eval.{key} must be {rule}, got {value!r}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def iters(v) -> bool:
        return isinstance(v, list) and all(is_int(i) and i >= 0 for i in v)

    nll, toy, dg = e["nll"], e["toy"], e["diagnostics"]
    for key, v, lo in (("every", e["every"], 0), ("n_samples", e["n_samples"], 1),
                       ("ddim_steps", e["ddim_steps"], 1), ("batch_size", e["batch_size"], 1),
                       ("ref_n", e["ref_n"], 0), ("nll.n_images", nll["n_images"], 0),
                       ("nll.timesteps", nll["timesteps"], 0),
                       ("nll.batch_size", nll["batch_size"], 1), ("toy.n_proj", toy["n_proj"], 1),
                       ("toy.mmd_n", toy["mmd_n"], 2), ("diagnostics.every", dg["every"], 0),
                       ("diagnostics.bins", dg["bins"], 1),
                       ("diagnostics.loss_per_bin", dg["loss_per_bin"], 1),
                       ("diagnostics.per_bin", dg["per_bin"], 0),
                       ("diagnostics.param_subset", dg["param_subset"], 0),
                       ("diagnostics.pool", dg["pool"], 1),
                       ("diagnostics.hist_bins", dg["hist_bins"], 0)):
        need(is_int(v) and v >= lo, key, f"an integer >= {lo}", v)
    need(iters(e["at"]), "at", "a list of iterations >= 0", e["at"])
    need(iters(dg["at"]), "diagnostics.at", "a list of iterations >= 0", dg["at"])
    need(isinstance(e["metrics"], list) and e["metrics"]
         and all(m in EVAL_METRICS for m in e["metrics"]), "metrics",
         f"a non-empty list of {', '.join(EVAL_METRICS)}", e["metrics"])
    for key, v, valid in (("sampler", e["sampler"], ("ddpm", "ddim")),
                          ("extractor", e["extractor"], ("cnn", "inception")),
                          ("ref_split", e["ref_split"], ("train", "test")),
                          ("nll.decoder", nll["decoder"], ("auto", "discretized", "gaussian")),
                          ("nll.clip", nll["clip"], ("auto", True, False)),
                          ("diagnostics.estimator", dg["estimator"], ("two_half", "per_sample"))):
        need(v in valid, key, f"one of {', '.join(map(str, valid))}", v)
    for key, v in (("final", e["final"]), ("use_ema", e["use_ema"]),
                   ("inception_download", e["inception_download"]), ("diagnostics.p_t", dg["p_t"])):
        need(isinstance(v, bool), key, "true or false", v)
    need(isinstance(e["eta"], (int, float)) and e["eta"] >= 0, "eta", ">= 0", e["eta"])
    need(isinstance(toy["mmd_bandwidth"], (int, float)) and toy["mmd_bandwidth"] >= 0,
         "toy.mmd_bandwidth", ">= 0 (0 = median heuristic)", toy["mmd_bandwidth"])
    for key in ("inception_weights", "ref_stats", "cache_dir"):
        need(isinstance(e[key], str), key, "a path string", e[key])
    need(dg["per_bin"] == 0 or dg["estimator"] != "two_half" or dg["per_bin"] % 2 == 0
         and dg["per_bin"] >= 2, "diagnostics.per_bin", "even and >= 2 for two_half (0 = off)",
         dg["per_bin"])


def canonical(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)


def run_id(cfg: dict) -> str:
    """A short content hash of the resolved config: no counters, no hyperparameters in names."""
    return hashlib.sha1(canonical(cfg).encode()).hexdigest()[:10]
