"""One experiment end to end: its checks before any work, and the trainer with the evaluation
callbacks its config asks for.

The one place where training (bench.train) and evaluation (bench.evaluation) meet: the
``bench.train`` command and the launcher's task call ``run``; ``bench.train``, ``bench.sweep``
(dry run included) call ``validate`` before anything is written or submitted. The training layer
itself never imports evaluation.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path

import torch

import backbones
import strategies
from bench.config.fields import ConfigError
from bench.config.sections import Config
from bench.core import processes
from bench.data import datasets
from bench.evaluation.callbacks import callbacks as eval_callbacks
from bench.evaluation.callbacks import FEATURE_METRICS, cache_dir, check_samples, resolve_metrics
from bench.evaluation.inception import InceptionUnavailable, find_inception
from bench.train import loggers
from bench.train import run as train_run


def validate(cfg: Mapping | Config) -> None:
    """Everything about a resolved config that can be checked without loading data or training:
    the components (``_check_components``), the trackers (train.loggers) and their packages, the
    metrics against the data, evaluation steps within the budget. ConfigError naming the key."""
    cfg = Config.of(cfg)
    _check_components(cfg)
    loggers.check(cfg.train.loggers)                     # names, and their packages installed
    _check_evaluation(cfg)


def _check_components(cfg: Config) -> None:
    """Each component as the run will build it, without its data or weights: the dataset's and
    backbone's parameters against their declared types and ranges; the process and the strategy
    built; the backbone built and run on the meta device for the dataset's example shape; the batch
    against the dataset's size. Whatever a build raises becomes a ConfigError naming the
    component and its spec (never a traceback)."""
    def spec(c) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in c.to_dict().items())

    process = processes.build(cfg.diffusion, cfg.process)   # cheap: T floats
    datasets.check(cfg.dataset.name, cfg.dataset.params)
    backbones.check(cfg.backbone.name, cfg.backbone.params)
    strategies.get(cfg.strategy.name)                   # an unknown name: the valid ones
    steps = [("strategy", cfg.strategy,
              lambda: strategies.build(cfg.strategy.name, process, cfg.strategy.params))]
    described = datasets.info(cfg.dataset.name, cfg.dataset.params)
    if described is not None:
        shape, n_train = described
        steps.append(("backbone", cfg.backbone,
                      lambda: _meta_build(cfg.backbone.name, json.dumps(cfg.backbone.params,
                                                                        sort_keys=True), shape)))
        B = cfg.train.batch_size
        if n_train is not None and B > n_train:
            raise ConfigError(f"train.batch_size={B} exceeds the {n_train} training examples "
                              f"of dataset {cfg.dataset.name!r}; valid: 1 to {n_train}")
    for what, component, build in steps:
        try:
            with torch.random.fork_rng(devices=[]):   # a build's initialisation draws nothing
                build()
        except ConfigError:
            raise
        except (Exception, SystemExit) as e:
            raise ConfigError(f"{what} {spec(component)}: {e}") from e


@functools.lru_cache(maxsize=64)        # a sweep's runs share a few backbones
def _meta_build(name: str, params_json: str, shape: tuple[int, ...]) -> None:
    """The backbone built for ``shape`` and run on a batch of two, on the meta device (shapes
    only: no memory, no arithmetic), so that a layout the data cannot pass through is refused."""
    with torch.device("meta"):
        model = backbones.build(name, shape, json.loads(params_json))
        model(torch.empty(2, *shape), torch.zeros(2))


def _check_evaluation(cfg: Config) -> None:
    e, budget = cfg.eval, cfg.train.iterations
    keep = cfg.train.keep if isinstance(cfg.train.keep, list) else []
    for key, steps, what in (("eval.at", e.at, "evaluations"),
                             ("eval.diagnostics.at", e.diagnostics.at, "evaluations"),
                             ("train.keep", keep, "snapshots")):
        late = sorted(s for s in steps if s > budget)
        if late:
            raise ConfigError(f"{key}: {', '.join(map(str, late))} beyond train.iterations="
                              f"{budget}; those {what} would never run")
    for key, every, at in (("eval.every", e.every, "eval.at"),
                           ("eval.diagnostics.every", e.diagnostics.every, "eval.diagnostics.at")):
        if every > budget:
            raise ConfigError(f"{key}={every} exceeds train.iterations={budget}: it would never "
                              f"run; valid: 0 (off) to {budget}, or name the steps in {at}")
    if not e.enabled:
        return
    kind = datasets.kind(cfg.dataset.name)
    metrics = resolve_metrics(e.metrics, kind != "vector", kind == "latent")
    samples = any(m != "nll" for m in metrics)          # the sampler is used
    if samples:
        valid = processes.samplers(cfg.process.name)
        if e.sampler not in valid:
            raise ConfigError(f"eval.sampler={e.sampler!r} does not sample process "
                              f"{cfg.process.name}; valid: {', '.join(valid)}")
    pixels = cfg.dataset.params.get("source", {}) if kind == "latent" else cfg.dataset.to_dict()
    check_samples(metrics, e.n_samples)
    features = set(FEATURE_METRICS) & set(metrics)
    if features and e.extractor == "cnn" and pixels.get("name") not in datasets.LABELLED:
        raise ConfigError(f"eval.extractor=cnn trains on class labels, which dataset "
                          f"{pixels.get('name')!r} has not (labelled: "
                          f"{', '.join(datasets.LABELLED)}); use eval.extractor=inception")
    if features and e.ref_stats and not Path(e.ref_stats).expanduser().is_file():
        raise ConfigError(f"eval.ref_stats: no such file {e.ref_stats}; give a reference-"
                          f"statistics .npz, or leave it empty to compute them")
    if features and e.extractor == "inception" and (e.inception_weights
                                                    or not e.inception_download):
        try:                       # without a download: the weights must be there already
            find_inception(e.inception_weights, cache_dir(e), download=False)
        except InceptionUnavailable as err:
            raise ConfigError(str(err)) from None
    T = cfg.diffusion.timesteps
    if e.sampler == "ddim" and samples and e.ddim_steps > T:                    # DDPM
        raise ConfigError(f"eval.ddim_steps={e.ddim_steps} exceeds diffusion.timesteps={T}; "
                          f"valid: 1 to {T}")


def run(cfg: Mapping, run_dir: str | Path, *, extra_callbacks: list = (), **kw) -> dict:
    """``bench.train.run.run`` with ``eval_callbacks(cfg)`` + ``extra_callbacks``."""
    return train_run.run(cfg, run_dir, callbacks=[*eval_callbacks(cfg), *extra_callbacks], **kw)
