"""No numerical change from the performance work (issue 8): fixed-seed short CPU runs (toy2d + MLP
with dropout, T = 100, 60 steps; adaptive_beta with f_S = 5, and uniform) must reproduce, exactly,
the metrics.jsonl rows, the final strategy state, model, EMA and global-RNG position recorded by
scripts/make_perf_golden.py on the code BEFORE the optimisations (tests/fixtures/perf_golden.json).

Bit-exactness is a property of one platform: the fixture holds one recording per CPU model
(``platforms``), each made on the pre-optimisation code (commit 0437afb) with the torch version
it names, on CPU, 1 thread — the AMD EPYC one on 2026-11-26, the Intel Xeon one on 2026-12-02
(on these machines, the same code gives other last bits on the two CPUs). On a CPU or torch
version with no recording the test is skipped, with how to record one, rather than failed.

Later additions that change no number are compared on the golden's keys only: the cost counters
of every metrics row (issue 15; checked against their formula here) and adaptive_beta's
``baseline_value`` (None with the official ``baseline: none``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from bench.train.run import cpu_model

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "perf_golden.json"


def _golden_module():
    spec = importlib.util.spec_from_file_location("make_perf_golden",
                                                  ROOT / "scripts" / "make_perf_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PLATFORMS = json.loads(FIXTURE.read_text())["platforms"]
MOD = _golden_module()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("run", sorted(MOD.RUNS))
def test_run_is_bit_identical_to_the_pre_optimisation_golden(run):
    cpu = cpu_model()
    if cpu not in PLATFORMS or torch.__version__ != PLATFORMS[cpu]["torch"]:
        recorded = "; ".join(f"{k}, torch {v['torch']}" for k, v in PLATFORMS.items())
        pytest.skip(f"no recording for CPU {cpu!r} with torch {torch.__version__} (recorded: "
                    f"{recorded}); record one with scripts/make_perf_golden.py run in a worktree "
                    "of commit 0437afb, under the fixture's platforms")
    got, want = MOD.run_one(MOD.RUNS[run]), PLATFORMS[cpu]["runs"][run]
    B = MOD.make_cfg(MOD.RUNS[run])["train"]["batch_size"]
    for row in got["metrics"]:
        assert row.pop("fwd_train") == row.pop("bwd_train") == row["step"] * B
        fwd_s, bwd_s = row.pop("fwd_strategy"), row.pop("bwd_strategy")
        assert bwd_s == 0 and (fwd_s == 0) == (run == "uniform")
    assert got["metrics"] == want["metrics"]
    if run == "adaptive_beta":
        assert got["strategy_state"].pop("baseline_value") is None
    assert got["strategy_state"] == want["strategy_state"]
    assert got["model"] == want["model"]
    assert got["ema"] == want["ema"]
    assert got["global_rng_next"] == want["global_rng_next"]
    assert got == want


@pytest.mark.parametrize("cpu", sorted(PLATFORMS))
def test_fixture_covers_policy_updates_and_log_rows(cpu):
    ab = PLATFORMS[cpu]["runs"]["adaptive_beta"]
    assert len(ab["metrics"]) == 6 and ab["metrics"][-1]["step"] == 60
    assert ab["strategy_state"]["n_updates"] == 12       # steps 0, 5, ..., 55
    assert len(ab["strategy_state"]["history"]) == 12
