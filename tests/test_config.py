"""The typed config: one place for defaults, checks and docs; run ids stable across the redesign."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import config as C
from bench.rundir import runfiles
from bench.config.docs import docs_markdown
from bench.experiment import validate
from bench.sweep import spec as S

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "results"
# Run ids of the committed fixture's configs. They changed when ids became hashes of the canonical
# form (every component default spelled out, 5 == 5.0), and when the run's name left the identity
# (issue 24; bench.tools.migrate); they must not change again.
FIXTURE_IDS = {"fx/c-lin-s0": "7f24a811ac", "fx/c-lin-s1": "a163ede4d0",
               "fx/m-cos-s0": "a35e5ac560", "fx/m-lin-s0": "587b0c0a0c",
               "fx/m-lin-s1": "eb31336529", "fx/u-cos-s0": "bfefc27454",
               "fx/u-lin-s0": "45dd427801", "fx/u-lin-s1": "7e7f6aafd6",
               "fx2/9f3ce0e6b1": "2123ccb32a"}


def test_docs_config_md_is_generated_from_the_sections():
    on_disk = (REPO / "docs" / "config.md").read_text()
    assert on_disk == docs_markdown(), \
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


def test_run_ids_of_the_committed_fixture_are_pinned():
    for rel, rid in FIXTURE_IDS.items():
        assert C.run_id(C.resolve(runfiles.read_config(FIXTURE / rel))) == rid, rel


def test_run_ids_of_the_quickstart_are_pinned():
    """The 72 DDPM runs keep the ids they had before flow matching joined the quickstart (its 36
    flow runs were added to the list then, issue 25, and renamed when flow's time became
    continuous within the drawn cell: ``process.cell_time``)."""
    before = (REPO / "tests" / "fixtures" / "quickstart_run_ids.txt").read_text().split()
    runs = S.expand(S.load_sweep(REPO / "sweeps" / "quickstart.yaml"))
    assert sorted(r.run_id for r in runs) == sorted(before)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_file_resolves_and_its_components_validate(path):
    cfg = C.load(path)
    validate(cfg)
    assert C.Config.of(cfg).train.iterations > 0


def test_one_run_however_its_defaults_are_spelled(tmp_path):
    ids = {C.run_id(C.resolve({"strategy": s})) for s in (
        {"name": "min_snr"}, {"name": "min_snr", "gamma": 5}, {"name": "min_snr", "gamma": 5.0})}
    assert len(ids) == 1
    assert C.run_id(C.resolve({"strategy": {"name": "compose", "sampler": {
        "name": "adaptive_beta", "update_every": 40}}})) == \
        C.run_id(C.resolve({"strategy": {"name": "compose", "sampler": {"name": "adaptive_beta"}}}))
    assert C.run_id(C.resolve({"backbone": {"name": "mlp", "width": 128}})) == \
        C.run_id(C.resolve({"backbone": {"name": "mlp"}}))
    assert C.run_id(C.resolve({"strategy": {"name": "min_snr", "gamma": 1}})) not in ids
    sweep = {"name": "s", "grid": {"strategy": [{"name": "min_snr"}, {"name": "min_snr",
                                                                     "gamma": 5.0}]}}
    with pytest.raises(S.SweepError, match="duplicate runs"):
        S.expand(sweep)
