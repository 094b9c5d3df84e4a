"""adaptive_beta's lower-variance options beside the faithful default: the ``variant`` preset,
run ids that do not move for the late parameters at their defaults, the control-variate baseline,
reward normalisation, t = 0 exclusion and the guard against a one-update jump."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import strategies
from bench import config as C
from bench.core.ddpm import DDPM
from bench.train.trainer import Trainer
from strategies.adaptive_beta import PRESETS, select_timesteps

pytestmark = pytest.mark.usefixtures("one_thread")


def build(T=100, **params):
    return strategies.build("adaptive_beta", DDPM("linear", T), params)


def _id(strategy: dict) -> str:
    return C.run_id(C.resolve({"strategy": strategy}))


# ---------------------------------------------------------------------------- presets and ids
def test_low_variance_preset_fills_what_the_config_does_not_give():
    p = build(variant="low_variance").params
    for k, v in PRESETS["low_variance"].items():
        assert getattr(p, k) == v
    assert build(variant="low_variance", common_noise=False).params.common_noise is False
    official = build().params
    assert official.variant == "official" and official.baseline == "none"
    assert official.common_noise is False and official.reward_train_mode is True


def test_late_parameters_at_their_default_keep_the_run_id():
    base = _id({"name": "adaptive_beta"})
    assert _id({"name": "adaptive_beta", "variant": "official", "baseline": "none",
                "zero_term": "kl", "max_log_change": 0, "normalize_reward": False}) == base
    lv = _id({"name": "adaptive_beta", "variant": "low_variance"})
    assert lv != base
    assert _id({"name": "adaptive_beta", "variant": "low_variance",
                **PRESETS["low_variance"]}) == lv
    assert _id({"name": "adaptive_beta", **PRESETS["low_variance"]}) == lv   # one run
    nested = {"name": "compose", "sampler": {"name": "adaptive_beta", "variant": "official"}}
    assert _id(nested) == _id({"name": "compose", "sampler": {"name": "adaptive_beta"}})


def test_labels_show_what_differs_from_the_preset():
    from bench.labels import strategy_label

    lv = {"name": "adaptive_beta", "variant": "low_variance"}
    assert strategy_label(lv) == "adaptive_beta(variant=low_variance)"
    assert strategy_label({**lv, "baseline": "none"}) == \
        "adaptive_beta(baseline=none,variant=low_variance)"
    assert strategy_label({**lv, "baseline": "batch_mean"}) == strategy_label(lv)


@pytest.mark.parametrize("params,match", [
    ({"variant": "fast"}, "variant must be one of official, low_variance"),
    ({"variant": ["official"]}, "variant must be one of official, low_variance"),
    ({"baseline": "value_net"}, "baseline must be one of none, batch_mean, ema"),
    ({"zero_term": "drop"}, "zero_term must be one of kl, decoder, exclude"),
    ({"max_log_change": -1}, "max_log_change must be >= 0"),
    ({"baseline_decay": 1.0}, r"baseline_decay must be in \[0, 1\)"),
])
def test_bad_options_name_the_valid_choices(params, match):
    with pytest.raises(ValueError, match=match):
        build(**params)


# ---------------------------------------------------------------------------- the reward
def test_batch_mean_baseline_is_leave_one_out_and_normalisation_gives_unit_std():
    R = torch.tensor([1.0, 2.0, 4.0, 9.0], dtype=torch.float64)
    a = build(baseline="batch_mean").advantage(R)
    want = [r - (R.sum() - r) / 3 for r in R]
    np.testing.assert_allclose(a, want)
    assert float(a.sum()) == pytest.approx(0.0, abs=1e-12)
    n = build(baseline="batch_mean", normalize_reward=True).advantage(R)
    np.testing.assert_allclose(n, a / R.std())          # the std of the reward
    assert torch.equal(build().advantage(R), R)         # official: the reward itself


def test_ema_baseline_starts_at_zero_and_follows_the_batch_means():
    s = build(baseline="ema", baseline_decay=0.5)
    r1, r2 = torch.tensor([1.0, 3.0]), torch.tensor([5.0, 7.0])
    np.testing.assert_allclose(s.advantage(r1), [1.0, 3.0])      # b = 0 at the first update
    assert s.baseline_value == pytest.approx(2.0)
    np.testing.assert_allclose(s.advantage(r2), [3.0, 5.0])      # b = 2
    assert s.baseline_value == pytest.approx(0.5 * 2 + 0.5 * 6)
    assert build(baseline="ema").state_dict()["baseline_value"] is None


def test_zero_is_never_a_candidate_when_excluded():
    rows = np.random.default_rng(0).normal(size=(20, 10))
    rows[:, 0] *= 100.0                                 # t = 0 dominates the row sums
    assert 0 in select_timesteps(rows, 2)
    S = select_timesteps(rows, 2, first=1)
    assert len(S) == 2 and min(S) >= 1
    assert build(zero_term="exclude").S == [1, 2, 3]
    with pytest.raises(ValueError, match=r"num_selected \(\|S\|\) must be in \[1, 99\]"):
        build(T=100, zero_term="exclude", num_selected=100)


def _cfg(strategy: dict, iterations: int) -> dict:
    return C.resolve({
        "seed": 0, "dataset": {"name": "toy2d", "kind": "8gaussians"},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "strategy": strategy, "diffusion": {"timesteps": 100},
        "train": {"iterations": iterations, "batch_size": 32, "log_every": 5, "ckpt_every": 100,
                  "device": "cpu"}})


def test_a_low_variance_run_never_puts_zero_in_S(tmp_path):
    tr = Trainer(_cfg({"name": "adaptive_beta", "update_every": 2, "variant": "low_variance"},
                      30), tmp_path, progress=False)
    tr.run()
    assert tr.strategy.n_updates == 15
    assert all(0 not in h["S_used"] and 0 not in h["S"] for h in tr.strategy.history)


def test_the_guard_caps_the_change_of_alpha_and_beta_per_update(tmp_path):
    cap = 0.05
    cfg = _cfg({"name": "adaptive_beta", "update_every": 1, "lr": 0.5, "ent_coef": 0.0,
                "max_log_change": cap}, 8)
    tr = Trainer(cfg, tmp_path, progress=False)
    free = Trainer(C.deep_update(cfg, {"strategy": {"max_log_change": 0.0}}), tmp_path / "f",
                   progress=False)
    worst_free = 0.0
    for _ in range(8):
        for t, record in ((tr, True), (free, False)):
            x0 = t.batch(t.step)
            a0, b0 = t.strategy.policy_params(x0)
            t.train_step()
            a1, b1 = t.strategy.policy_params(x0)
            change = float(torch.stack([(a1.log() - a0.log()).abs().max(),
                                        (b1.log() - b0.log()).abs().max()]).max())
            if record:
                assert change <= cap * (1 + 1e-6)
            else:
                worst_free = max(worst_free, change)
    assert worst_free > cap                 # without the guard this lr jumps further


def test_params_dataclass_lists_the_late_fields():
    late = {f.name for f in dataclasses.fields(build().params) if f.metadata.get("late")}
    assert late == {"variant", "baseline", "baseline_decay", "normalize_reward", "zero_term",
                    "max_log_change", "reward_terms", "all_t_stride", "all_t_every"}
