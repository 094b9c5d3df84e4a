"""The typed config: one place for defaults, checks and docs; run ids stable across the redesign."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import config as C
from bench import rundir
from bench.sweep import spec as S

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "results"
# Run ids of the committed fixture's configs, computed before the typed config existed.
FIXTURE_IDS = {"fx/c-lin-s0": "f65ed155b4", "fx/c-lin-s1": "3b684916a5",
               "fx/m-cos-s0": "e53c7687f6", "fx/m-lin-s0": "72720d8462",
               "fx/m-lin-s1": "ae0615de56", "fx/u-cos-s0": "c1a66013ed",
               "fx/u-lin-s0": "dd5b343dbf", "fx/u-lin-s1": "0a45ac78a8",
               "fx2/f37c93ca72": "64ae748886"}


def test_docs_config_md_is_generated_from_the_sections():
    on_disk = (REPO / "docs" / "config.md").read_text()
    assert on_disk == C.docs_markdown(), \
        "docs/config.md is stale: regenerate with  python -m bench.config > docs/config.md"


def test_defaults_come_from_the_sections():
    assert C.DEFAULTS["train"] == C.Train().to_dict()
    assert C.DEFAULTS["eval"]["nll"] == C.NLL().to_dict()
    assert S.executor_params({}) == C.Executor().to_dict()
    for cls in (C.Diffusion, C.Train, C.Eval, C.NLL, C.Toy, C.Diagnostics, C.Executor):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no documentation"


def test_the_typed_view_is_frozen_and_reads_attributes():
    cfg = C.Config.of(C.resolve({"train": {"lr": 1e-3}, "strategy": {"name": "p2", "k": 2}}))
    assert cfg.train.lr == 1e-3 and cfg.eval.nll.clip == "auto" and cfg.strategy.params == {"k": 2}
    assert C.Config.of(cfg) is cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0


@pytest.mark.parametrize("override,message", [
    ({"train": {"ema_decay": 1.0}}, "train.ema_decay must be in [0, 1), got 1.0"),
    ({"eval": {"nll": {"decoder": "x"}}}, "eval.nll.decoder must be one of auto, discretized"),
    ({"eval": {"diagnostics": {"per_bin": 3}}}, "even and >= 2 for two_half"),
    ({"train": {"optimizer": "sgd"}}, "unknown train.optimizer 'sgd'; valid: adam, adamw"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"eval": "often"}, "config section 'eval' must be a mapping"),
])
def test_bad_values_name_the_key_and_the_valid_choices(override, message):
    with pytest.raises(C.ConfigError) as e:
        C.resolve(override)
    assert message in str(e.value)


def test_run_ids_of_the_committed_fixture_are_unchanged():
    for rel, rid in FIXTURE_IDS.items():
        assert C.run_id(C.resolve(rundir.read_config(FIXTURE / rel))) == rid, rel


def test_run_ids_of_the_quickstart_are_unchanged():
    before = (REPO / "tests" / "fixtures" / "quickstart_run_ids.txt").read_text().split()
    runs = S.expand(S.load_sweep(REPO / "sweeps" / "quickstart.yaml"))
    assert sorted(r.run_id for r in runs) == sorted(before)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_file_resolves_and_its_components_validate(path):
    cfg = C.load(path)
    S.validate_components(cfg)
    assert C.Config.of(cfg).train.iterations > 0
