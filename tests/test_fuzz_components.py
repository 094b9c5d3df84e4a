"""A seeded fuzzer over component and strategy values: every value either passes the checks before
any work (``experiment.validate``: what ``bench.train``, the sweep's ``--dry-run`` and the launch
run) or is refused there with a ConfigError/ValueError that names the key — never another
exception (a traceback on the command line); and every config the checks accept builds its
components and trains (dry-run ⇔ run)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

import backbones
import strategies
from bench import config as C
from bench import experiment
from bench.data import datasets
from bench.train.trainer import Diverged

BASE = {"name": "fuzz", "seed": 0, "dataset": {"name": "toy2d", "n_train": 64, "n_test": 16},
        "backbone": {"name": "mlp", "width": 8, "depth": 1, "time_dim": 8},
        "diffusion": {"timesteps": 50},
        "train": {"iterations": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 2,
                  "device": "cpu"}}
IMAGES = {"dataset": {"name": "digits"}}

# Wrong types, edges and plausible values; small enough that an accepted one trains quickly.
POOL = [None, True, False, 0, 1, 2, 3, -1, 0.5, 1.5, -0.5, 1e-6, math.inf, -math.inf, math.nan,
        "abc", "128", "", [], [1, 2], [0], {}, {"name": "uniform"}, {"name": "nope"},
        "uniform", "min_snr", "linear"]


def _values(default, rng: random.Random, n: int) -> list:
    """``n`` values from the pool, plus neighbours of the parameter's default."""
    near = []
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        near = [default * 2, -default, default + 1]
    return rng.sample(POOL, n) + near


def cases(seed: int = 0, per_param: int = 6):
    """(label, config overrides) for each parameter of every strategy, dataset and backbone."""
    rng = random.Random(seed)
    for name in strategies.names():
        for f in dataclasses.fields(strategies.get(name).Params):
            default = strategies.defaults(name).get(f.name)
            for v in _values(default, rng, per_param):
                yield f"strategy {name}.{f.name}={v!r}", {"strategy": {"name": name, f.name: v}}
    for name, extra in (("toy2d", {}), ("digits", IMAGES)):
        for key, default in datasets.defaults(name).items():
            for v in _values(default, rng, per_param):
                spec = {**extra.get("dataset", BASE["dataset"]), key: v}
                yield f"dataset {name}.{key}={v!r}", {"dataset": spec}
    for name, extra in (("mlp", {}), ("unet", IMAGES), ("uvit", IMAGES)):
        small = {"unet": {"ch": 8, "ch_mult": [1, 2], "attn_resolutions": [4]},
                 "uvit": {"dim": 8, "depth": 1, "heads": 2}, "mlp": BASE["backbone"]}[name]
        for key, default in backbones.defaults(name).items():
            for v in _values(default, rng, per_param):
                yield (f"backbone {name}.{key}={v!r}",
                       {**extra, "backbone": {**small, "name": name, key: v}})
    for v in _values(8, rng, per_param):
        yield f"train.batch_size={v!r}", {"train": {"batch_size": v}}
    for v in POOL:                           # a component's name itself
        for section in ("strategy", "dataset", "backbone"):
            yield f"{section}.name={v!r}", {section: {"name": v}}


def _config(overrides: dict) -> dict:
    cfg = C.deep_update(BASE, overrides)
    for section in ("dataset", "backbone"):          # a new name: its own small defaults only
        if section in overrides and "name" in overrides[section] and \
                overrides[section]["name"] != BASE[section]["name"]:
            cfg[section] = dict(overrides[section])
    return cfg


def test_fuzzed_values_are_refused_by_name_or_accepted_and_run(tmp_path):
    """0 tracebacks: every refusal is a ValueError (ConfigError) before any work; every accepted
    config trains (two steps)."""
    accepted, refused, crashes = [], 0, []
    for label, overrides in cases():
        try:
            cfg = C.resolve(_config(overrides))
            experiment.validate(cfg)
        except ValueError as e:
            refused += 1
            assert str(e), label
            continue
        except Exception as e:                  # noqa: BLE001 - the point of the test
            crashes.append(f"{label}: {type(e).__name__}: {e}")
            continue
        accepted.append((label, cfg))
    assert not crashes, "\n".join(crashes)
    assert refused > 300 and len(accepted) > 150, (refused, len(accepted))
    failed = []
    for i, (label, cfg) in enumerate(accepted):
        try:
            experiment.run(cfg, tmp_path / str(i), progress=False, log_lines=False)
        except Diverged:                        # a training outcome (lr=1.01), not a refusal
            pass
        except Exception as e:                  # noqa: BLE001
            failed.append(f"{label}: {type(e).__name__}: {e}")
    assert not failed, "accepted by the checks, refused by the run:\n" + "\n".join(failed)


@pytest.mark.parametrize("overrides,message", [
    ({"backbone": {"name": "mlp", "dropout": 3}},
     "backbone.dropout must be a finite number in [0.0, 1.0), got 3"),
    ({"backbone": {"name": "mlp", "width": "128"}}, "backbone.width must be an integer >= 1"),
    ({"backbone": {"name": "mlp", "depth": 0.5}}, "backbone.depth must be an integer >= 1"),
    ({"dataset": {"name": "toy2d", "kind": "moonz"}},
     "unknown dataset.kind 'moonz'; valid: 8gaussians, checkerboard, moons, swissroll"),
    ({"dataset": {"name": "toy2d", "n_train": "abc"}}, "dataset.n_train must be an integer"),
    ({"dataset": {"name": ["digits"]}}, "unknown dataset.name ['digits']; valid: cifar10"),
    ({"strategy": {"name": ["a", "b"]}}, "unknown strategy ['a', 'b']; valid: adaptive_beta"),
    ({"strategy": {"name": "compose", "weighting": "speed"}},
     "compose: weighting must be a strategy config"),
    ({"train": {"batch_size": 100}},
     "train.batch_size=100 exceeds the 64 training examples of dataset 'toy2d'; valid: 1 to 64"),
    ({**IMAGES, "backbone": {"name": "uvit", "patch_size": 3}},
     "uvit: resolution 8x8 is not divisible by patch_size 3"),
])
def test_component_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ValueError) as e:
        experiment.validate(C.resolve(_config(overrides)))
    assert message in str(e.value)
