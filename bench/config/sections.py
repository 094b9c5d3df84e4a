"""The typed config: the closed sections (``Diffusion``, ``Train``, ``Eval`` with its ``NLL``,
``Toy`` and ``Diagnostics``, a sweep's ``Executor``), the open ones (``Component``: a registry name
and its parameters), the top-level keys with their defaults and docs, ``Config`` (the frozen,
checked view a run reads) and ``DEFAULTS`` generated from it all; ``deep_update``, the merge of a
config over another (an open section given a new name starts afresh), and ``import_modules`` (a
config's ``imports``). Built from the field machinery of ``bench.config.fields``."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.config.fields import (BOOL, FINITE_NON_NEGATIVE, ITERATIONS, NON_NEGATIVE_INT,
                                 PATH_STRING, POSITIVE_INT, POSITIVE_NUMBER, SHELL_LINES,
                                 SLURM_NAME, ConfigError, Rule, Section, choice, int_at_least,
                                 is_finite, is_int, is_number, opt, sub)
from bench.core.checks import check_keys
from bench.core.ddpm import SCHEDULES, VARIANCES


# ---------------------------------------------------------------------------- the sections
@dataclass(frozen=True)
class Diffusion(Section):
    PATH = "diffusion."
    schedule: str = opt("linear", "β schedule", choice(*SCHEDULES))
    timesteps: int = opt(1000, "T", int_at_least(2, "an integer >= 2"))
    variance: str = opt("fixed_large", "reverse-process variance", choice(*VARIANCES))


@dataclass(frozen=True)
class ProcessSpec(Section):
    PATH = "process."
    name: str = opt("ddpm", "ddpm (ε-prediction on the diffusion.* schedule) | flow (rectified "
                            "flow, velocity prediction; diffusion.timesteps = its time-grid "
                            "cells; docs/processes.md)", choice("ddpm", "flow"))
    cell_time: str = opt("uniform", "flow: where in the drawn grid cell a step trains: uniform "
                                    "(a continuous t drawn within the cell) | centre (the cell's "
                                    "centre); ddpm: uniform only (its time is the index)",
                         choice("uniform", "centre"))


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


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
    compile: Any = opt(False, "torch.compile the training forward: false | true (= default) | "
                              "default | reduce-overhead (CUDA graphs) | max-autotune; the "
                              "strategies' hooks and evaluations stay eager",
                       Rule("false, true, default, reduce-overhead or max-autotune",
                            lambda v: isinstance(v, bool) or v in COMPILE_MODES))
    cudnn_benchmark: bool = opt(True, "CUDA: let cuDNN time its convolution algorithms "
                                      "(torch.backends.cudnn.benchmark); no effect on the CPU",
                                BOOL)
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
    ode_steps: int = opt(20, "flow: Heun steps of the ODE likelihood (2 network passes each)",
                         int_at_least(1))
    probes: int = opt(1, "flow: Hutchinson probes per example (one backward pass each per "
                         "network call)", int_at_least(1))


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
    sampler: str = opt("ddim", "ddpm (T ancestral steps) | ddim (DDPM process); euler | heun "
                               "(flow process)",
                       choice("ddpm", "ddim", "euler", "heun", unknown_form=False))
    ddim_steps: int = opt(100, "DDIM steps", int_at_least(1))
    steps: int = opt(50, "Euler / Heun steps (flow; Heun: 2·steps − 1 network passes)",
                     int_at_least(1))
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
    ref_stats: str = opt("", "explicit reference-statistics .npz "
                         "(bench.evaluation.reference format)", PATH_STRING)
    cache_dir: str = opt("", "ref stats + extractor weights; \"\" = ~/.cache/timestep-bench",
                         PATH_STRING)
    nll: NLL = sub(NLL, "test NLL (bits/dim)")
    toy: Toy = sub(Toy, "2-D toy metrics")
    diagnostics: Diagnostics = sub(Diagnostics, "per-timestep diagnostics under timesteps/")

    @property
    def enabled(self) -> bool:
        return self.every > 0 or bool(self.at) or self.final

    @property
    def sampler_steps(self) -> int:
        """The steps of the configured sampler: ``steps`` (euler, heun), else ``ddim_steps``
        (ddim; ddpm runs its T steps and ignores it)."""
        return self.steps if self.sampler in ("euler", "heun") else self.ddim_steps

    def evaluated_steps(self, iterations: int) -> list[int]:
        """The evaluated steps of a run of ``iterations`` (the Evaluator's schedule): every
        ``every`` steps (> 0), each ``at`` step (0 = the initial model), the last with ``final``."""
        out = set(range(self.every, iterations + 1, self.every)) if self.every > 0 else set()
        out |= {s for s in self.at if 0 <= s <= iterations}
        return sorted(out | ({iterations} if self.final else set()))


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


# ---------------------------------------------------------------------------- the top level
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
TOP_SECTIONS = {"process": ProcessSpec, "diffusion": Diffusion, "train": Train, "eval": Eval}


def deep_update(base: dict, new: dict) -> dict:
    """``new`` merged over a copy of ``base``, section by section; an open section (dataset,
    backbone, strategy) given a new ``name`` replaces the old parameters wholesale."""
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


def import_modules(modules) -> None:
    """Import the ``imports`` of a config or sweep (user modules that register components);
    ConfigError naming the module that does not import."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ConfigError(f"imports must be a list of module names, got {modules!r}")
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as e:   # ImportError, the module's own error or exit
            raise ConfigError(f"imports: cannot import {name!r} ({type(e).__name__}: {e}); "
                              f"is it on PYTHONPATH or installed?") from e


@dataclass(frozen=True)
class Config:
    """The typed, frozen view of a resolved run config."""

    name: str
    seed: int
    dataset: Component
    backbone: Component
    strategy: Component
    process: ProcessSpec
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
                   process=ProcessSpec.from_dict(full["process"]),
                   diffusion=Diffusion.from_dict(full["diffusion"]),
                   eval=Eval.from_dict(full["eval"]))


DEFAULTS: dict[str, Any] = {**copy.deepcopy(TOP_DEFAULTS),
                            **{k: s().to_dict() for k, s in TOP_SECTIONS.items()}}
