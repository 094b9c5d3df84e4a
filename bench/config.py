"""Run configuration: typed sections (defaults + validation in one place), YAML, ``--set``, run id.

On disk and in sweeps a run config is a plain nested mapping (config.yaml); ``resolve`` merges it
over ``DEFAULTS``, checks it, and returns that mapping, whose canonical JSON gives the ``run_id``.
``Config.of(cfg)`` is its typed, frozen view — what the trainer and the evaluators read
(``cfg.train.batch_size``). Each section below is a frozen dataclass whose fields carry their
default, one line of documentation and their check; ``DEFAULTS`` and the docs' config tables
(``config_table``) are generated from them. ``dataset``, ``backbone`` and ``strategy`` are open
sections: a ``name`` plus that component's parameters, validated by its registry.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

import backbones
import strategies
from bench.core.checks import check_keys
from bench.core.diffusion import SCHEDULES, VARIANCES
from bench.data import datasets


class ConfigError(ValueError):
    """A config problem, with a message that names it and the valid choices."""


# ---------------------------------------------------------------------------- field checks
@dataclass(frozen=True)
class Rule:
    """A check of one value: ``ok(value)``; the message says ``<key> must be <text>``, or for a
    choice ``unknown <key> <value>; valid: <choices>``."""

    text: str
    ok: Callable[[Any], bool]
    choices: tuple = ()


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_at_least(lo: int, text: str | None = None) -> Rule:
    return Rule(text or f"an integer >= {lo}", lambda v: is_int(v) and v >= lo)


def is_finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


POSITIVE_INT = Rule("a positive integer", lambda v: is_int(v) and v > 0)
FINITE_NON_NEGATIVE = Rule("a finite number >= 0", lambda v: is_finite(v) and v >= 0)
NON_NEGATIVE_INT = Rule("a non-negative integer", lambda v: is_int(v) and v >= 0)
BOOL = Rule("true or false", lambda v: isinstance(v, bool))
PATH_STRING = Rule("a path string", lambda v: isinstance(v, str))
ITERATIONS = Rule("a list of iterations >= 0",
                  lambda v: isinstance(v, list) and all(is_int(i) and i >= 0 for i in v))


def choice(*valid, unknown_form: bool = True) -> Rule:
    return Rule(f"one of {', '.join(map(str, valid))}", lambda v: v in valid,
                valid if unknown_form else ())


def opt(default: Any, doc: str, rule: Rule | None = None):
    """A config field: its default, one line of documentation, its check."""
    meta = {"doc": doc, "rule": rule}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def sub(cls: type, doc: str):
    """A nested section."""
    return field(default_factory=cls, metadata={"doc": doc, "rule": None, "section": cls})


class Section:
    """Base of a typed section: ``from_dict`` checks keys and values; ``to_dict`` is the inverse."""

    PATH = ""                   # "train." etc.: the prefix of a key in messages
    WHAT = "config key"         # unknown keys: "unknown <WHAT> <NAME_PREFIX>'key'; valid: ..."
    NAME_PREFIX: str | None = None   # None: PATH
    SORT_VALID = True           # list the valid keys sorted (else in field order)

    def __post_init__(self) -> None:
        for f in fields(self):
            rule, value = f.metadata.get("rule"), getattr(self, f.name)
            if rule is not None and not rule.ok(value):
                key = f"{self.PATH}{f.name}"
                if rule.choices:
                    raise ConfigError(f"unknown {key} {value!r}; valid: "
                                      f"{', '.join(map(str, rule.choices))}")
                raise ConfigError(f"{key} must be {rule.text}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Checks across fields (override)."""

    @classmethod
    def check_keys(cls, d: Any, where: str) -> None:
        """``d`` is a mapping of this section's keys (nested sections too); else ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"config section {where} must be a mapping")
        valid = [f.name for f in fields(cls)]
        check_keys(d, sorted(valid) if cls.SORT_VALID else valid, cls.WHAT,
                   prefix=cls.PATH if cls.NAME_PREFIX is None else cls.NAME_PREFIX, quote=True,
                   error=ConfigError)
        for f in fields(cls):
            if f.metadata.get("section") and f.name in d:
                f.metadata["section"].check_keys(d[f.name], f"{cls.PATH}{f.name!r}")

    @classmethod
    def from_dict(cls, d: Mapping):
        """The section from a mapping: keys first (all levels), then values (this level first)."""
        cls.check_keys(d, repr(cls.PATH.rstrip(".")))
        own = {f.name: d[f.name] for f in fields(cls)
               if f.name in d and not f.metadata.get("section")}
        out = cls(**own)
        nested = {f.name: f.metadata["section"].from_dict(d[f.name]) for f in fields(cls)
                  if f.name in d and f.metadata.get("section")}
        return dataclasses.replace(out, **nested) if nested else out

    def to_dict(self) -> dict:
        return {f.name: (getattr(self, f.name).to_dict() if f.metadata.get("section")
                         else copy.deepcopy(getattr(self, f.name))) for f in fields(self)}


# ---------------------------------------------------------------------------- the sections
@dataclass(frozen=True)
class Diffusion(Section):
    PATH = "diffusion."
    schedule: str = opt("linear", "β schedule", choice(*SCHEDULES))
    timesteps: int = opt(1000, "T", int_at_least(2, "an integer >= 2"))
    variance: str = opt("fixed_large", "reverse-process variance", choice(*VARIANCES))


@dataclass(frozen=True)
class Train(Section):
    PATH = "train."
    iterations: int = opt(1000, "budget, in optimizer steps", POSITIVE_INT)
    batch_size: int = opt(128, "global batch", POSITIVE_INT)
    optimizer: str = opt("adam", "adam | adamw", choice("adam", "adamw"))
    lr: float = opt(2e-4, "learning rate",
                    Rule("positive and finite", lambda v: is_finite(v) and v > 0))
    betas: list = opt([0.9, 0.999], "Adam betas",
                      Rule("a list of two numbers in [0, 1)", lambda v: isinstance(v, list)
                           and len(v) == 2 and all(is_finite(b) and 0 <= b < 1 for b in v)))
    weight_decay: float = opt(0.0, "weight decay", FINITE_NON_NEGATIVE)
    warmup: int = opt(0, "linear LR warm-up, steps", NON_NEGATIVE_INT)
    grad_clip: float = opt(1.0, "max grad norm; 0 disables", FINITE_NON_NEGATIVE)
    ema_decay: float = opt(0.9999, "EMA decay, with the DDPM warm-up min(decay, (1+n)/(10+n))",
                           Rule("in [0, 1)", lambda v: is_number(v) and 0.0 <= v < 1.0))
    log_every: int = opt(100, "steps between metrics.jsonl rows", POSITIVE_INT)
    ckpt_every: int = opt(500, "steps between checkpoints", POSITIVE_INT)
    loss_bins: int = opt(10, "timestep bins of the logged loss", POSITIVE_INT)
    device: str = opt("auto", "auto | cpu | cuda", choice("auto", "cpu", "cuda"))
    bf16: bool = opt(False, "bf16 autocast (CUDA or CPU)", BOOL)
    channels_last: bool = opt(False, "channels-last memory format (images)", BOOL)
    fused_optimizer: bool = opt(False, "fused Adam (CUDA only)", BOOL)
    tf32: bool = opt(False, "TF32 matmuls/convolutions (CUDA only)", BOOL)
    compile: bool = opt(False, "torch.compile the training forward", BOOL)
    keep: Any = opt("none", "weights kept besides ckpt/last.pt, as ckpt/step_<N>.safetensors "
                            "(the evaluated weights: EMA unless eval.use_ema is false): none | "
                            "at_evals (every evaluated step) | a list of steps; re-evaluate one "
                            "with python -m bench.evaluation RUN --step N (not part of the run "
                            "id)",
                    Rule("none, at_evals or a list of positive steps",
                         lambda v: v in ("none", "at_evals") or (
                             isinstance(v, list) and all(is_int(x) and x > 0 for x in v))))
    loggers: list = opt([], "experiment trackers besides the run's own files: tensorboard, "
                            "wandb (bench.train.loggers; not part of the run id)",
                        Rule("a list of logger names", lambda v: isinstance(v, list)
                             and all(isinstance(x, str) for x in v)))


@dataclass(frozen=True)
class NLL(Section):
    PATH = "eval.nll."
    n_images: int = opt(256, "held-out images (0 = the whole test split)", int_at_least(0))
    timesteps: int = opt(0, "0 = all T terms; K > 0 = t=0 + K stratified timesteps",
                         int_at_least(0))
    batch_size: int = opt(256, "images per batch", int_at_least(1))
    decoder: str = opt("auto", "auto | discretized (8-bit images) | gaussian (continuous)",
                       choice("auto", "discretized", "gaussian", unknown_form=False))
    clip: Any = opt("auto", "clip x0-hat to [-1, 1]: auto = images yes, vectors no",
                    choice("auto", True, False, unknown_form=False))


@dataclass(frozen=True)
class Toy(Section):
    PATH = "eval.toy."
    n_proj: int = opt(256, "sliced-Wasserstein directions", int_at_least(1))
    mmd_n: int = opt(2000, "points per side for MMD", int_at_least(2))
    mmd_bandwidth: float = opt(0.0, "RBF bandwidth; 0 = median heuristic on the true points",
                               FINITE_NON_NEGATIVE)


@dataclass(frozen=True)
class Diagnostics(Section):
    PATH = "eval.diagnostics."
    every: int = opt(0, "per-timestep diagnostics every N iterations; 0 = off", int_at_least(0))
    at: list = opt([], "... and at these iterations", ITERATIONS)
    bins: int = opt(20, "timestep bins", int_at_least(1))
    loss_per_bin: int = opt(128, "examples per bin for the loss", int_at_least(1))
    per_bin: int = opt(32, "examples per bin for the gradient variance (0 = skip it)",
                       int_at_least(0))
    estimator: str = opt("two_half", "two_half | per_sample (strategies.grad_variance)",
                         choice("two_half", "per_sample", unknown_form=False))
    param_subset: int = opt(0, "last N parameter tensors for the gradient (0 = all)",
                            int_at_least(0))
    pool: int = opt(512, "train images the bins draw from", int_at_least(1))
    p_t: bool = opt(True, "snapshot strategy.probabilities()", BOOL)
    hist_bins: int = opt(100, "histogram of drawn t between snapshots (0 = off)", int_at_least(0))

    def check(self) -> None:
        if self.per_bin and self.estimator == "two_half" and (self.per_bin % 2 or
                                                                self.per_bin < 2):
            raise ConfigError(f"eval.diagnostics.per_bin must be even and >= 2 for two_half "
                              f"(0 = off), got {self.per_bin!r}")


EVAL_METRICS = ("auto", "fid", "kid", "nll", "swd", "mmd")


@dataclass(frozen=True)
class Eval(Section):
    PATH = "eval."
    every: int = opt(0, "evaluate every N iterations; 0 = off", int_at_least(0))
    at: list = opt([], "... and at these iterations (0 = the initial model)", ITERATIONS)
    final: bool = opt(False, "... and at the last iteration", BOOL)
    metrics: list = opt(["auto"], "fid | kid | nll | swd | mmd; auto: images fid, nll; 2-D swd, "
                                  "mmd, nll; kid (images) only when listed",
                        Rule(f"a non-empty list of {', '.join(EVAL_METRICS)}",
                             lambda v: isinstance(v, list) and bool(v)
                             and all(m in EVAL_METRICS for m in v)))
    use_ema: bool = opt(True, "evaluate the EMA weights (False: the live weights)", BOOL)
    n_samples: int = opt(1000, "generated samples for fid / swd / mmd", int_at_least(1))
    sampler: str = opt("ddim", "ddpm (T ancestral steps) | ddim",
                       choice("ddpm", "ddim", unknown_form=False))
    ddim_steps: int = opt(100, "DDIM steps", int_at_least(1))
    eta: float = opt(0.0, "DDIM eta (0 = deterministic)", FINITE_NON_NEGATIVE)
    batch_size: int = opt(500, "sampling / feature batch", int_at_least(1))
    extractor: str = opt("cnn", "cnn (offline classifier: fd_cnn) | inception (fid_inception)",
                         choice("cnn", "inception", unknown_form=False))
    inception_weights: str = opt("", "path to inception-2015-12-05.pt (file or folder)",
                                 PATH_STRING)
    inception_download: bool = opt(True, "download the Inception weights into cache_dir if "
                                         "missing", BOOL)
    ref_split: str = opt("train", "split of the reference statistics",
                         choice("train", "test", unknown_form=False))
    ref_n: int = opt(0, "reference images (0 = the whole split)", int_at_least(0))
    ref_stats: str = opt("", "explicit reference-statistics .npz (bench.evaluation.fid format)",
                         PATH_STRING)
    cache_dir: str = opt("", "ref stats + extractor weights; \"\" = ~/.cache/timestep-bench",
                         PATH_STRING)
    nll: NLL = sub(NLL, "test NLL (bits/dim)")
    toy: Toy = sub(Toy, "2-D toy metrics")
    diagnostics: Diagnostics = sub(Diagnostics, "per-timestep diagnostics under timesteps/")

    @property
    def enabled(self) -> bool:
        return self.every > 0 or bool(self.at) or self.final

    def steps(self, iterations: int) -> list[int]:
        """The evaluated steps of a run of ``iterations`` (the Evaluator's schedule): every
        ``every`` steps (> 0), each ``at`` step (0 = the initial model), the last with ``final``."""
        out = set(range(self.every, iterations + 1, self.every)) if self.every > 0 else set()
        out |= {s for s in self.at if 0 <= s <= iterations}
        return sorted(out | ({iterations} if self.final else set()))


SLURM_NAME = Rule("a string", lambda v: v is None or isinstance(v, str))
POSITIVE_NUMBER = Rule("a positive number", lambda v: is_number(v) and v > 0)
SHELL_LINES = Rule("a list of shell lines",
                   lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))


@dataclass(frozen=True)
class Executor(Section):
    """A sweep's executor block (``executor:``; ``--executor KEY=VALUE`` overrides it)."""

    PATH, WHAT, NAME_PREFIX, SORT_VALID = "executor.", "executor key(s)", "", False
    partition: str | None = opt(None, "SLURM partition (None: the cluster's default)", SLURM_NAME)
    account: str | None = opt(None, "--account", SLURM_NAME)
    qos: str | None = opt(None, "--qos", SLURM_NAME)
    timeout_min: int = opt(60, "wall-clock limit per job; on timeout: checkpoint and requeue",
                           POSITIVE_INT)
    nodes: int = opt(1, "nodes per job", POSITIVE_INT)
    tasks_per_node: int = opt(1, "> 1: one DDP rank per task (NCCL on GPUs, gloo on CPU)",
                              POSITIVE_INT)
    gpus_per_node: int = opt(0, "GPUs per node", NON_NEGATIVE_INT)
    cpus_per_task: int = opt(1, "CPUs (and torch threads) per task", POSITIVE_INT)
    mem_gb: float | None = opt(None, "None: the cluster's default",
                               Rule("a positive number",
                                    lambda v: v is None or (is_number(v) and v > 0)))
    array_parallelism: int = opt(32, "max array tasks running at once", POSITIVE_INT)
    parallel: int = opt(1, "--cluster local: runs at once, each in its own process with "
                           "cpus_per_task threads (1: one after another, in this process)",
                        POSITIVE_INT)
    constraint: str | None = opt(None, "--constraint", SLURM_NAME)
    max_num_timeout: int = opt(3, "requeues after a timeout (preemptions do not count)",
                               NON_NEGATIVE_INT)
    setup: list = opt([], "shell lines run before the job (module load, conda activate)",
                      SHELL_LINES)
    additional: dict = opt({}, "extra sbatch options, e.g. {exclusive: true}",
                           Rule("a mapping of sbatch options", lambda v: isinstance(v, Mapping)))
    stop_timeout_s: float = opt(60, "on preemption/timeout: max wait for the trainer to finish "
                                    "its step and save (< submitit's 90 s signal delay)",
                                POSITIVE_NUMBER)
    poll_s: float = opt(5.0, "--wait: state polling period", POSITIVE_NUMBER)


@dataclass(frozen=True)
class Component:
    """An open section: a registry name and that component's parameters."""

    name: str
    params: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping, key: str) -> "Component":
        if not isinstance(d, Mapping) or "name" not in d:
            raise ConfigError(f"config section {key!r} must be a mapping with a 'name'")
        return cls(d["name"], {k: copy.deepcopy(v) for k, v in d.items() if k != "name"})

    def to_dict(self) -> dict:
        return {"name": self.name, **copy.deepcopy(self.params)}


OPEN_SECTIONS = ("dataset", "backbone", "strategy")
TOP_DEFAULTS = {"name": "run", "seed": 0, "dataset": {"name": "toy2d"},
                "backbone": {"name": "mlp"}, "strategy": {"name": "uniform"}, "imports": []}
TOP_DOCS = {"name": "the run's name (progress bar); a sweep sets its own",
            "seed": "data order, noise, timesteps and initialisation derive from it",
            "dataset": "a registered dataset (`name`) and its parameters",
            "backbone": "a registered backbone (`name`) and its parameters",
            "strategy": "a registered strategy (`name`) and its parameters "
                        "(`python -m bench.strategies` lists them)",
            "imports": "Python modules imported before the config is checked, e.g. "
                       "`[mypkg.mystrategy]`: they register strategies, backbones or datasets "
                       "of your own (also in SLURM jobs and local workers; not part of the run "
                       "id)"}
TOP_SECTIONS = {"diffusion": Diffusion, "train": Train, "eval": Eval}


@dataclass(frozen=True)
class Config:
    """The typed, frozen view of a resolved run config."""

    name: str
    seed: int
    dataset: Component
    backbone: Component
    strategy: Component
    diffusion: Diffusion
    train: Train
    eval: Eval

    @classmethod
    def of(cls, cfg: "Mapping | Config") -> "Config":
        """The typed view of a resolved config mapping (a Config is returned as it is)."""
        if isinstance(cfg, Config):
            return cfg
        check_keys(cfg, sorted(DEFAULTS), "config key", quote=True, error=ConfigError)
        import_modules(cfg.get("imports", []))           # before any component is looked up
        full = deep_update(DEFAULTS, cfg)
        open_ = {k: Component.from_dict(full[k], k) for k in OPEN_SECTIONS}
        for k, s in TOP_SECTIONS.items():               # every unknown key before any value
            s.check_keys(full[k], repr(k))
        train = Train.from_dict(full["train"])
        if not is_int(full["seed"]):
            raise ConfigError(f"seed must be an integer, got {full['seed']!r}")
        return cls(name=full["name"], seed=full["seed"], **open_, train=train,
                   diffusion=Diffusion.from_dict(full["diffusion"]),
                   eval=Eval.from_dict(full["eval"]))


DEFAULTS: dict[str, Any] = {**copy.deepcopy(TOP_DEFAULTS),
                            **{k: s().to_dict() for k, s in TOP_SECTIONS.items()}}


def import_modules(modules) -> None:
    """Import the ``imports`` of a config or sweep (user modules that register components);
    ConfigError naming the module that does not import."""
    import importlib

    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ConfigError(f"imports must be a list of module names, got {modules!r}")
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:      # ImportError, or the module's own error
            raise ConfigError(f"imports: cannot import {name!r} ({type(e).__name__}: {e}); "
                              f"is it on PYTHONPATH or installed?") from e


# ---------------------------------------------------------------------------- YAML and --set
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
    """The one YAML loader of configs, sweeps and config.yaml files."""
    return yaml.load(text, Loader=_Loader)


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


REPO = Path(__file__).resolve().parents[1]


def search_dirs(kind: str) -> list[Path]:
    """Where ``find_file`` looks for a config (``kind`` configs) or sweep (sweeps) given by
    name: $TSB_HOME/<kind>, the source checkout's <kind>/ (an editable install), and
    <prefix>/share/timestep-bench/<kind> (a wheel: pyproject's data-files)."""
    home = os.environ.get("TSB_HOME")
    dirs = [Path(home) / kind] if home else []
    return dirs + [REPO / kind, Path(sys.prefix) / "share" / "timestep-bench" / kind]


def find_file(path: str | Path, kinds: tuple[str, ...] = ("sweeps", "configs")) -> Path:
    """``path`` itself when it exists, else the first ``search_dirs`` match of its name (with or
    without ``.yaml``: ``quickstart``, ``sweeps/quickstart.yaml``); ConfigError listing the
    places searched."""
    path = Path(path)
    if path.is_file():
        return path
    looked = [str(path)]
    if not path.is_absolute():
        names = [path.name] if path.suffix in (".yaml", ".yml") else [f"{path.name}.yaml",
                                                                        path.name]
        for kind in kinds:
            for d in search_dirs(kind):
                for n in names:
                    if (d / n).is_file():
                        return d / n
                looked.append(str(d / names[0]))
    raise ConfigError(f"config file not found: {path} (looked in "
                      f"{', '.join(dict.fromkeys(looked))})")


def load_yaml(path: str | Path, kinds: tuple[str, ...] = ("configs", "sweeps")) -> dict:
    """A YAML mapping from ``path`` (or a file of that name in ``kinds``: ``find_file``)."""
    path = find_file(path, kinds)
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML in {path}: {e}") from e
    if data is None:
        raise ConfigError(f"{path} is empty; write {{}} in it for a run on all defaults")
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


def resolve(overrides: dict) -> dict:
    """DEFAULTS ⊕ overrides, checked (keys and values; component parameters are their
    registries' business). Returns the mapping that config.yaml holds and run ids hash."""
    cfg = deep_update(DEFAULTS, overrides)
    Config.of(cfg)
    return cfg


def load(path: str | Path, sets: list[str] = ()) -> dict:
    """A config file with ``--set`` overrides, resolved."""
    return resolve(deep_update(load_yaml(path, ("configs",)), parse_set(list(sets))))


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


# Keys that change how a run is watched, not what it computes: left out of the run id (so adding
# one renames no run, and turning a logger on resumes the same run).
NOT_IDENTITY = ("imports", "train.loggers", "train.keep")


def canonical_form(cfg: Mapping) -> dict:
    """What identifies a run: the resolved config with every component default spelled out and
    numbers normalised, so that ``{name: min_snr}``, ``{name: min_snr, gamma: 5}`` and
    ``gamma: 5.0`` are one run; NOT_IDENTITY keys left out."""
    out = copy.deepcopy(dict(cfg))
    for key in NOT_IDENTITY:
        *section, name = key.split(".")
        holder = out.get(section[0]) if section else out
        if isinstance(holder, dict):
            holder.pop(name, None)
    for key, identity in COMPONENT_IDENTITY.items():
        if isinstance(out.get(key), Mapping) and "name" in out[key]:
            out[key] = _filled(out[key], identity)
    return _numbers(out)


def run_id(cfg: dict) -> str:
    """A short content hash of the canonical form of the resolved config: no counters, no
    hyperparameters in folder names, one id however a default is spelled."""
    return hashlib.sha1(canonical(canonical_form(cfg)).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------- docs
def config_table(section: type[Section]) -> str:
    """The markdown table of a section's keys, defaults and meanings (nested sections dotted)."""
    rows = ["| key | default | valid | meaning |", "|---|---|---|---|"]

    def walk(cls, prefix: str) -> None:
        for f in fields(cls):
            if f.metadata.get("section"):
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rule = f.metadata.get("rule")
            rows.append(f"| `{prefix}{f.name}` | `{json.dumps(default)}` | "
                        f"{rule.text if rule else 'any'} | "
                        f"{f.metadata['doc'].replace('|', '/')} |")
        for f in fields(cls):
            if f.metadata.get("section"):
                walk(f.metadata["section"], f"{prefix}{f.name}.")

    walk(section, "")
    return "\n".join(rows)


def docs_markdown() -> str:
    """docs/config.md, generated from the sections (``python -m bench.config > docs/config.md``)."""
    parts = ["# Configuration reference", "",
             "Generated from `bench/config.py` by `python -m bench.config > docs/config.md`; a "
             "test fails when the two disagree. A run config is YAML; every key not given takes "
             "the default below, an unknown key is an error that lists the valid ones, and a bad "
             "value names the key and the valid range or choices.", "",
             "## Top level", "", "| key | default | meaning |", "|---|---|---|"]
    parts += [f"| `{k}` | `{json.dumps(v)}` | {TOP_DOCS[k]} |" for k, v in TOP_DEFAULTS.items()]
    for key, cls in (*TOP_SECTIONS.items(), ("executor", Executor)):
        where = ("a sweep file's `executor:` block" if key == "executor"
                 else f"`{key}:`")
        parts += ["", f"## {key}", "", f"Keys of {where}.", "", config_table(cls)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(docs_markdown(), end="")
