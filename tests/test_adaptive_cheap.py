"""adaptive_beta made cheaper (issue 28, Build 5): the all-T row on a stratified stride
(``all_t_stride``) or every k-th update (``all_t_every``), the update's evaluations in one forward
each (``chunk_size: all``), the reference batch kept on its device, the no-grad max-pool. The
faithful defaults stay bit-identical (the golden of tests/test_perf_equivalence.py and the
existing adaptive_beta tests run them); here: the options do what they say, count what they
plan, refuse bad values and leave run ids alone at their defaults."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from sklearn.feature_selection import SelectKBest, f_regression
from torch import nn

import strategies
from bench import config as C
from bench.core.counted import Counted
from bench.core.ddpm import DDPM
from bench.train.trainer import Interrupted, Trainer
from strategies._beta_policy import BetaPolicy, block_centres, max_pool_2x2, select_blocks
from strategies.base import StepContext

from helpers import StopAt, thread_rank_reduce

pytestmark = pytest.mark.usefixtures("one_thread")


def build(T=40, **params):
    return strategies.build("adaptive_beta", DDPM("linear", T), params)


class Toy(nn.Module):
    """A t-dependent linear ε-model on 2-D data with fixed weights (no global RNG)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T
        self.lin = nn.Linear(2, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[0.3, -0.2], [0.1, 0.5]]))
            self.lin.bias.copy_(torch.tensor([0.05, -0.1]))

    def forward(self, x, t):
        return self.lin(x) * (1 + t.float()[:, None] / self.T)


def _ctx(s, x, step, model, generator_seed=None):
    draw = s.sample(x, torch.Generator().manual_seed(step))
    return StepContext(step=step, x0=x, draw=draw, losses=torch.zeros(len(x)), model=model,
                       process=s.process,
                       generator=torch.Generator().manual_seed(
                           100 + step if generator_seed is None else generator_seed))


def _run(params, steps=6, T=40, B=8):
    """``steps`` optimizer steps of a toy model (its weights nudged between before and after)."""
    s = build(T=T, update_every=params.pop("update_every", 1), **params)
    model = Counted(Toy(T))
    x = torch.randn(B, 2, generator=torch.Generator().manual_seed(1))
    for step in range(steps):
        ctx = _ctx(s, x, step, model)
        s.before_update(ctx)
        with torch.no_grad():
            for prm in model.parameters():
                prm.add_(0.02 * (step + 1))
        s.after_update(ctx)
    return s, model


# ---------------------------------------------------------------- the defaults
def test_defaults_spelled_out_are_the_same_run():
    a, ma = _run({})
    b, mb = _run({"all_t_stride": 1, "all_t_every": 1, "chunk_size": 256})
    assert a.diagnostics() == b.diagnostics() and a.S == b.S
    assert all(torch.equal(x, y) for x, y in zip(a.queue, b.queue)) and len(a.queue) == 6
    assert all(torch.equal(x, y) for x, y in zip(a.policy.parameters(), b.policy.parameters()))
    assert ma.counts() == mb.counts() == (6 * 2 * (3 * 8 + 40), 0)


def _id(strategy: dict) -> str:
    return C.run_id(C.resolve({"strategy": strategy}))


def test_run_ids_unchanged_at_the_defaults_and_changed_otherwise():
    base = _id({"name": "adaptive_beta"})
    assert _id({"name": "adaptive_beta", "all_t_stride": 1, "all_t_every": 1}) == base
    others = {_id({"name": "adaptive_beta", **p}) for p in (
        {"all_t_stride": 4}, {"all_t_every": 2}, {"chunk_size": "all"})}
    assert base not in others and len(others) == 3
    lv = {"name": "adaptive_beta", "variant": "low_variance"}
    assert _id({**lv, "all_t_stride": 1, "all_t_every": 1}) == _id(lv)
    nested = {"name": "compose", "sampler": {"name": "adaptive_beta", "all_t_stride": 1}}
    assert _id(nested) == _id({"name": "compose", "sampler": {"name": "adaptive_beta"}})


def test_the_default_draws_nothing_more_from_the_strategy_stream():
    s = build(T=40)
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    ctx = StepContext(step=0, x0=torch.zeros(2, 2), draw=None, losses=torch.zeros(2),
                      model=Toy(40), process=s.process, generator=g)
    assert torch.equal(s._rank_timesteps(ctx), torch.arange(40))
    assert torch.equal(g.get_state(), state)


# ---------------------------------------------------------------- the stride
@pytest.mark.parametrize("zero_term,first", [("kl", 0), ("exclude", 1)])
def test_the_stride_draws_one_t_per_block_uniformly(zero_term, first):
    T, k = 50, 8
    s = build(T=T, all_t_stride=k, zero_term=zero_term)
    starts = np.arange(first, T, k)
    sizes = np.minimum(starts + k, T) - starts
    assert s.all_t.size == len(starts) == -(-(T - first) // k)
    ctx = StepContext(step=0, x0=torch.zeros(2, 2), draw=None, losses=torch.zeros(2),
                      model=Toy(T), process=s.process, generator=torch.Generator().manual_seed(0))
    offsets = np.stack([s._rank_timesteps(ctx).numpy() - starts for _ in range(4000)])
    assert ((offsets >= 0) & (offsets < sizes)).all()              # one t in each block
    for b in (0, len(starts) - 1):                                # uniform within a block
        counts = np.bincount(offsets[:, b], minlength=sizes[b])
        expected = 4000 / sizes[b]
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected), counts


def test_the_strided_sum_is_unbiased():
    """E[Σ_b size_b·f(t_b)] = Σ_t f(t) for t_b uniform in block b (stratified sampling)."""
    T, k = 50, 8
    s = build(T=T, all_t_stride=k)
    f = (torch.arange(T, dtype=torch.float64) / T) ** 2
    ctx = StepContext(step=0, x0=torch.zeros(2, 2), draw=None, losses=torch.zeros(2),
                      model=Toy(T), process=s.process, generator=torch.Generator().manual_seed(1))
    est = torch.stack([(s.all_t.sizes * f[s._rank_timesteps(ctx)]).sum() for _ in range(3000)])
    assert float(est.mean()) == pytest.approx(float(f.sum()), abs=4 * float(est.std()) / 3000**.5)
    assert float(est.std()) > 0


def test_the_strided_row_holds_each_blocks_value_and_the_scaled_sum(monkeypatch):
    """A fake KL: f(t) before the step, 0 after. Each block's columns hold f at its drawn t;
    the row sum (history's row_sum) is Σ_b size_b·f(t_b)."""
    T, k = 40, 6
    s = build(T=T, all_t_stride=k)
    f = lambda ts: (ts.double() + 1) ** 0.5                       # noqa: E731
    phase = {"after": False}

    def fake_kl(ctx, x0, ts, noise):
        v = torch.zeros(len(ts), dtype=torch.float64) if phase["after"] else f(ts)
        return v[None, :].expand(x0.shape[0], -1).float()

    monkeypatch.setattr(s, "_kl_at", fake_kl)
    x = torch.zeros(4, 2)
    ctx = _ctx(s, x, 0, Toy(T))
    s.before_update(ctx)
    ts = ctx.scratch["adaptive_beta"]["ts"]
    phase["after"] = True
    s.after_update(ctx)
    row = s.queue[0]
    vals = f(ts).float().double()
    for b, (lo, n) in enumerate(zip(s.all_t.starts.tolist(), s.all_t.sizes.tolist())):
        assert torch.equal(row[lo:lo + n], vals[b].expand(n))
    assert s.diagnostics()[0]["row_sum"] == pytest.approx(float((s.all_t.sizes * vals).sum()))


def test_blocks_are_selected_as_features_and_stand_as_their_centres():
    T, k, n = 40, 4, 12
    rng = np.random.default_rng(0)
    starts, sizes = np.arange(0, T, k), np.full(T // k, k)
    blocks = rng.normal(size=(n, len(starts))) * 0.01
    blocks[:, 7] += rng.normal(size=n) * 5                       # block 7 drives the sum
    blocks[:, 2] += rng.normal(size=n) * 2
    rows = np.repeat(blocks, sizes, axis=1)
    S = select_blocks(rows, 3, starts, sizes)
    want = SelectKBest(f_regression, k=3).fit(blocks, rows.sum(1)).get_support(indices=True)
    assert S == sorted(block_centres(starts, sizes)[want].tolist())
    assert 7 * k + 1 in S and 2 * k + 1 in S                     # the centre (lower of two)
    assert len({s // k for s in S}) == 3                         # never two in one block


def test_a_strided_run_selects_block_centres():
    s, _ = _run({"all_t_stride": 6, "zero_term": "exclude"}, steps=5)
    centres = set(block_centres(s.all_t.starts.numpy(), s.all_t.sizes.numpy()).tolist())
    assert s.diagnostics()[-1]["queue_rows"] == 5
    assert set(s.S) <= centres and s.S == sorted(s.S)


# ---------------------------------------------------------------- every k-th update
def test_every_k_refreshes_the_row_at_every_kth_update_only():
    s, _ = _run({"all_t_every": 3}, steps=7)
    hist = s.diagnostics()
    assert len(s.queue) == 3                                    # updates 0, 3, 6
    assert [h["row_sum"] is None for h in hist] == [False, True, True, False, True, True, False]
    assert [h["queue_rows"] for h in hist] == [1, 1, 1, 2, 2, 2, 3]
    for prev, h in zip(hist, hist[1:]):
        if h["row_sum"] is None:
            assert h["S"] == prev["S"] == h["S_used"]             # S kept
    ref, _ = _run({}, steps=7)                                  # the rows it did compute
    assert len(ref.queue) == 7


# ---------------------------------------------------------------- counted = planned
@pytest.mark.parametrize("params", [
    {}, {"all_t_stride": 3}, {"all_t_stride": 7, "zero_term": "exclude"},
    {"all_t_every": 2}, {"all_t_every": 3, "all_t_stride": 4, "update_every": 2},
    {"variant": "low_variance", "all_t_stride": 5, "all_t_every": 2, "chunk_size": "all"},
], ids=["default", "stride3", "stride7_exclude", "every2", "both_fS2", "low_variance"])
def test_counted_passes_equal_planned(params):
    s, model = _run(dict(params), steps=7, T=40, B=8)
    assert model.counts() == s.planned_passes(8, 7)


def test_planned_passes_formula():
    s = build(T=1000, all_t_stride=4, all_t_every=2)
    # 10 updates at f_S = 40 over 400 iterations, 5 rows of 250 timesteps, |S|·B = 384
    assert s.planned_passes(128, 400) == (2 * (10 * 384 + 5 * 250), 0)
    assert build(T=1000).planned_passes(128, 400) == (2 * 10 * (384 + 1000), 0)
    assert build(T=1000, all_t_stride=8, zero_term="exclude").all_t.size == 125   # ⌈999/8⌉


# ---------------------------------------------------------------- one forward per evaluation
def test_chunk_size_all_evaluates_each_set_in_one_forward():
    calls = []

    class Logged(Toy):
        def forward(self, x, t):
            calls.append(len(x))
            return super().forward(x, t)

    out = {}
    for chunk in (16, "all"):
        calls.clear()
        s = build(T=40, chunk_size=chunk, common_noise=True, reward_train_mode=False)
        x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
        model = Logged(40)
        ctx = _ctx(s, x, 0, model)
        s.before_update(ctx)
        with torch.no_grad():
            model.lin.bias.add_(0.1)
        s.after_update(ctx)
        out[chunk] = (list(calls), s.queue[0], s.last_reward)
    assert out["all"][0] == [24, 40, 24, 40]                    # |S|·B and T rows, before/after
    assert out[16][0] == [16, 8, 16, 16, 8] * 2
    # the same quantities, not the same bits: a GEMM over 40 rows is not the one over 16
    # (docs/adaptive_beta.md#one-forward-per-evaluation-chunk_size-all)
    torch.testing.assert_close(out["all"][1], out[16][1], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(out["all"][2], out[16][2], rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- bad values
@pytest.mark.parametrize("params,message", [
    ({"all_t_stride": 0}, "all_t_stride must be an integer >= 1, got 0"),
    ({"all_t_stride": 2.0}, "all_t_stride must be an integer >= 1, got 2.0"),
    ({"all_t_stride": True}, "all_t_stride must be an integer >= 1, got True"),
    ({"all_t_every": 0}, "all_t_every must be an integer >= 1, got 0"),
    ({"all_t_every": "2"}, "all_t_every must be an integer >= 1, got '2'"),
    ({"chunk_size": "some"}, 'chunk_size must be an integer >= 1 or "all"'),
    ({"chunk_size": 0}, 'chunk_size must be an integer >= 1 or "all"'),
    ({"num_selected": 4, "all_t_stride": 16},
     r"num_selected \(\|S\|\) must be in \[1, 3\] with all_t_stride=16"),
])
def test_bad_values_are_refused_naming_the_parameter_and_the_range(params, message):
    with pytest.raises(ValueError, match=message):
        build(T=40, **params)


# ---------------------------------------------------------------- per-step host work
def test_the_reference_batch_is_a_view_and_saved_as_a_compact_host_copy():
    s = build(T=40)
    x = torch.randn(300, 1, 8, 8)
    s.sample(x, torch.Generator().manual_seed(0))
    assert s.ref_x0.data_ptr() == x.data_ptr() and s.ref_x0.shape[0] == 256     # no copy
    saved = s.state_dict()["ref_x0"]
    assert saved.device.type == "cpu" and saved.data_ptr() != x.data_ptr()
    assert saved.untyped_storage().nbytes() == 256 * 64 * 4 and torch.equal(saved, x[:256])
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    other = build(T=40)
    other.load_state_dict(torch.load(buf, weights_only=False))
    assert torch.equal(other.probabilities(), s.probabilities())


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (4, 13, 21), (2,)])
def test_the_no_grad_policy_path_gives_the_same_numbers(shape):
    policy = BetaPolicy(shape, 64, 2, (8, 16, 16), (0.5, 0.5))
    policy.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        policy.head.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    x = torch.randn(9, *shape, generator=torch.Generator().manual_seed(2))
    x_copy = x.clone()
    with torch.enable_grad():
        a = policy(x)                                   # nn.MaxPool2d, nn.ReLU
    with torch.inference_mode():
        b = policy(x)                                   # max_pool_2x2, relu_
    assert all(torch.equal(u.detach(), v) for u, v in zip(a, b))
    assert torch.equal(x, x_copy)                       # the in-place ReLUs leave x0 alone
    h = torch.relu(torch.randn(3, 5, 7, 9))
    assert torch.equal(max_pool_2x2(h), nn.functional.max_pool2d(h, 2))


# ---------------------------------------------------------------- ranks and resume
def test_two_ranks_share_the_blocks_and_agree():
    T, W, k = 30, 2, 4
    diffusion = DDPM("linear", T)
    model = Toy(T)
    x_global = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    slots, barrier = [None] * W, threading.Barrier(W)
    strats = [strategies.build("adaptive_beta", diffusion, {"update_every": 1,
                                                            "all_t_stride": k})
              for _ in range(W)]
    seen, errors = [[] for _ in range(W)], []

    def rank_main(r):
        reduce = thread_rank_reduce(slots, barrier, r)
        try:
            s = strats[r]
            for step in range(4):
                draw = s.sample(x_global, torch.Generator().manual_seed(step))
                sl = slice(r * 8, (r + 1) * 8)
                ctx = StepContext(step=step, x0=x_global[sl], draw=draw.select(sl),
                                  losses=torch.zeros(8), model=model, process=diffusion,
                                  generator=torch.Generator().manual_seed(100 * r + step),
                                  reduce=reduce, rank=r, world_size=W)
                s.before_update(ctx)
                seen[r].append(ctx.scratch["adaptive_beta"]["ts"])
                barrier.wait()
                if r == 0:
                    with torch.no_grad():
                        model.lin.bias.add_(0.05 * (step + 1))
                barrier.wait()
                s.after_update(ctx)
        except Exception as e:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(W)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    a, b = strats
    for step in range(4):
        ts = torch.cat([seen[0][step], seen[1][step]])
        assert torch.equal(ts // k, torch.arange(-(-T // k)))     # one t per block, all blocks
    assert a.S == b.S and len(a.queue) == 4
    for ra, rb in zip(a.queue, b.queue):
        assert torch.equal(ra, rb) and bool((ra != 0).all())
    assert a.diagnostics() == b.diagnostics()


def test_resume_with_the_cheap_options_continues_identically(tmp_path):
    cfg = C.resolve({
        "name": "ab-cheap", "seed": 1, "dataset": {"name": "toy2d", "n_train": 512, "n_test": 64},
        "backbone": {"name": "mlp", "width": 16, "depth": 1},
        "strategy": {"name": "adaptive_beta", "update_every": 2, "all_t_stride": 4,
                     "all_t_every": 2, "variant": "low_variance"},
        "diffusion": {"schedule": "linear", "timesteps": 30},
        "train": {"iterations": 12, "batch_size": 16, "warmup": 0, "log_every": 4,
                  "ckpt_every": 12, "device": "cpu"}})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full = Trainer(cfg, tmp_path / "a", progress=False)
    full.run()
    part = Trainer(cfg, tmp_path / "b", progress=False, callbacks=[StopAt(5)])
    with pytest.raises(Interrupted):
        part.run()
    resumed = Trainer(cfg, tmp_path / "b", progress=False)
    resumed.run()
    a, b = full.strategy.state_dict(), resumed.strategy.state_dict()
    assert a["history"] == b["history"] and len(a["history"]) == 6
    assert [h["row_sum"] is None for h in a["history"]] == [False, True] * 3
    assert torch.equal(a["queue"], b["queue"]) and a["S"].tolist() == b["S"].tolist()
    for k in a["policy"]:
        assert torch.equal(a["policy"][k], b["policy"][k])
