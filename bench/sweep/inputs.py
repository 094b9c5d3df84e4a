"""Every input a sweep needs that is not on this machine, and every warning about its plan,
found before any work (``--dry-run`` prints them in its summary and exits non-zero when one is
missing; a launch refuses): the sweep file's ``requires:`` paths, and clean-fid's Inception
weights for runs that evaluate Inception features — which a run would otherwise try to download
at its first evaluation, hours in, on nodes that may have no internet.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.config.sections import Config
from bench.data import datasets
from bench.evaluation.callbacks import FEATURE_METRICS, cache_dir, resolve_metrics
from bench.evaluation.inception import (INCEPTION_FILE, INCEPTION_URL, InceptionUnavailable,
                                        find_inception)
from bench.sweep.spec import RunConfig, missing_requirements


def _first_inception_step(cfg: Mapping) -> int | None:
    """The first evaluation step of a run that computes Inception features; None if it has
    none."""
    c = Config.of(cfg)
    e = c.eval
    steps = e.evaluated_steps(c.train.iterations)
    if not steps or e.extractor != "inception":
        return None
    kind = datasets.kind(c.dataset.name)
    metrics = resolve_metrics(list(e.metrics), kind != "vector", kind == "latent")
    return min(steps) if set(FEATURE_METRICS) & set(metrics) else None


def missing_inputs(spec: Mapping, runs: list[RunConfig]) -> list[str]:
    """One message per missing input, naming it and how to provide it."""
    msgs = missing_requirements(spec)
    need: dict[str, list[int]] = {}                 # cache folder -> first evaluation steps
    for r in runs:
        step = _first_inception_step(r.config)
        if step is None:
            continue
        e = Config.of(r.config).eval
        try:
            find_inception(e.inception_weights, cache_dir(e), download=False)
        except InceptionUnavailable:
            need.setdefault(str(e.inception_weights or cache_dir(e)), []).append(step)
    for where, steps in need.items():
        msgs.append(f"clean-fid's Inception weights ({INCEPTION_FILE}) for {len(steps)} run(s) "
                    f"not found ({where}, /tmp): each run would download them at its first "
                    f"evaluation (step {min(steps)}), which fails on nodes without internet — "
                    f"download {INCEPTION_URL} into {where} now, or set "
                    f"eval.inception_weights=/path/to/{INCEPTION_FILE}")
    return msgs


def plan_warnings(cluster: str, ex: Mapping) -> list[str]:
    """What the plan should flag that does not stop it."""
    out = []
    if cluster == "slurm" and ex.get("partition") is None:
        out.append("executor.partition is not set: the jobs go to the cluster's default "
                   "partition (set it in the sweep's executor block or --executor partition=...)")
    return out
