"""Adaptive non-uniform timestep sampling — Kim et al. 2025, "Adaptive Non-uniform Timestep Sampling
for Accelerating Diffusion Model Training" (CVPR 2025), Sec. 5, eqs. 11-14, Algorithms 1-2, Tab. 7;
implemented as the official code (ku-dmlab/Adaptive-Timestep-Sampler @ 4b2eae4) runs it, see
docs/official_code.md#adaptive-beta.

Sampling (eq. 11, ``utils/train.py::sample_timesteps``). A policy network π_φ maps the clean
image x0 to (α, β) = softplus(out) + 1e-5 (output layer initialised to weight 0 / bias 0.5, so at
init α = β = softplus(0.5) + 1e-5 = 0.9740870 for every x0); u ~ Beta(α, β); t = round(u·(T−1)).
t = 0 and t = T−1 therefore get half-width bins: the index pmf is the Beta CDF difference over
[(i − ½)/(T−1), (i + ½)/(T−1)] ∩ [0, 1] (``beta_index_pmf``). u is drawn by inverting the Beta CDF
at a uniform from the trainer's generator (reproducible, device independent) and clamped to
[1e-6, 1 − 1e-6] so that log π(u) stays finite when α or β < 1; for T ≤ 500 000 the clamp never
moves a draw into another index bin, so the pmf is unchanged. Importance 1, loss weight 1: the model
trains on plain L_simple (the official code computes the VLB weight but does not apply it).

Policy update (Algorithm 1 lines 6-8, Algorithm 2, official ``Trainer.step``), at every step k with
k mod f_S = 0 (f_S = ``update_every`` = 40):

* before the model's optimizer step (θ_k) and after it (θ_{k+1}), KL_s(x0_b) in bits/dim for every
  example b of the batch and every s ∈ S (``ctx.likelihood_at(..., decoder="kl")``: the KL
  formula even at s = 0, clip_denoised off, as the official ``compute_kl_divergence``);
* reward_b = Σ_{s∈S} [KL_s(θ_k) − KL_s(θ_{k+1})] + ent_coef·H(Beta(α_b, β_b));
  policy loss = −mean_b log π(u_b | x0_b)·reward_b with the entropy term *inside* the product and
  not detached (official); one Adam step (lr 1e-2, grad-norm clip 1.0);
* one random image of the batch is evaluated at all T timesteps before and after (one noise draw per
  t); the row ΔKL_t (t = 0..T−1) is pushed into a FIFO queue of |Q| = 20 rows; once the queue holds
  more than one row S is re-selected with scikit-learn ``SelectKBest(f_regression, k=|S|)`` on
  (rows, row sums). S starts at {0, …, |S|−1}. Order as in the code: the "after" KLs for the reward
  use the old S; S changes afterwards.

``probabilities()`` is the batch marginal of the *current* policy on a reference batch: the first
``reference_size`` (256) rows of the x0 most recently passed to ``sample()``, i.e.
mean_b beta_index_pmf(α(x0_b), β(x0_b)). Before any ``sample()`` call it is the initial,
x0-independent Beta(α0, β0) pmf, which is also what the policy gives for every x0 until its first
update, so draws and ``probabilities()`` agree exactly in the initial state.

Where paper and code differ, a parameter selects, and its default is the official behaviour:

==========================  ===============================  ==================================
parameter                   official (default)               alternative (paper text / cleaner)
==========================  ===============================  ==================================
queue_size                  20 (CLI ``--capacity``; Tab. 7)  5 (config ``max_buffer_length``,
                                                             stored but unused by the code)
entropy_mode                "in_reward": −E[log π·(R + cH)]  "separate": −E[R·log π] − c·E[H]
reward_reduction            "sum" over S                     "mean": 1/|S| Σ_S (eq. 14)
reward_train_mode           True: dropout on in KL evals     False: eval mode
common_noise                False: fresh ε before and after  True: the same ε before and after
num_selected (|S|)          3                                any 1 ≤ |S| ≤ T
min_rows_for_selection      2 (|Q| > 1, Alg. 2 line 4)       3 skips the degenerate 2-row select
==========================  ===============================  ==================================

The reward KLs always use the live weights (the code does; the Strategy contract exposes no EMA, and
an EMA with decay 0.9999 moves by 1e-4 of the live change, so its Δ would be almost pure noise).

Cheaper updates (``late`` parameters; at their defaults the official row, bit-identical, and the
same run ids). An update costs 2·(|S|·B + T) forwards, the all-T row 2·T of them:

* ``all_t_stride`` s > 1: the candidates [first, T) are cut into blocks of s consecutive
  timesteps (the last one shorter); per block one t, uniform within it (drawn from
  ``ctx.generator``, before any noise; with s = 1 nothing is drawn, so the official stream is
  untouched), is evaluated before and after, and all of the block's columns of the row hold that
  ΔKL. The row's sum is then Σ_b size_b·ΔKL(t_b): a stratified estimate, unbiased for the full
  row's sum. S is selected block-wise (``_beta_policy.select_blocks``): SelectKBest(f_regression) on the
  blocks' values against those sums, each chosen block standing as its centre. Column-wise
  selection would be meaningless here: a block's columns are copies of one value, they score
  alike, and SelectKBest's tie-break would put all of S in one block; the block's centre is
  within s/2 of every timestep the block's score speaks for. ⌈(T − first)/s⌉ forwards per row
  and phase; |S| ≤ that number of blocks. With several ranks each takes a contiguous share of
  the blocks and draws their offsets from its own stream.
* ``all_t_every`` k > 1: the row (feature image, forwards, queue push and S's re-selection) only
  at every k-th update (the update index step // f_S ≡ 0 mod k: the first update has one); the
  others evaluate only the reward's |S|·B pairs and keep the queue and S (their history entry
  has ``row_sum`` None).
* ``chunk_size: all``: each evaluation (the reward's |S|·B rows; the row's T) in one forward
  instead of chunks of 256, for a GPU with the memory for it. Not bit-identical to the chunks:
  a GEMM over other row counts may choose other kernels and blockings (last bits differ, also on
  CPU), and with ``reward_train_mode`` on the dropout masks come from the global RNG in another
  layout. The ε draws (``common_noise`` off) are the same stream whenever every chunk holds a
  multiple of 16 values (CPU), but nothing promises that on other devices.

Deviations from the official code (each also in docs/adaptive_beta.md):

1. Bug fix: ``feature_selector`` returns a 1-tuple (``return idx.tolist(),``), so the official code
   crashes at the 3rd policy update (``torch.full`` with a list). Here S is that list.
2. Bug fix: runs in one process, on CPU, without torch.distributed (the official non-distributed
   path raises NotImplementedError after the first update and calls ``dist.barrier()``
   unconditionally; the launch needs ≥ 2 GPUs). With world_size > 1 the all-T row is split across
   ranks (rank r takes the r-th contiguous share of timesteps) and combined with ``ctx.reduce``; the
   policy gradient is the rank-average (as DDP averages it in the official code).
3. Bug fix: the policy works for any C×H×W: the official CNN (conv 32/64/128, 3×3, each followed by
   ReLU and 2×2 max-pool, MLP 256×2) hard-codes 32×32 inputs. Here a 2×2 max-pool follows a conv
   only while the map is ≥ 8 pixels on each side, then AdaptiveAvgPool2d(4) → 128·4·4 features.
   At 32×32 this is exactly the official network. Flat data (2-D toys) use an MLP on x0 with the
   same hidden layers and the same output-layer init.
4. The update counter is the global optimizer step (k mod f_S = 0, as Algorithm 1 line 6) instead of
   the official within-epoch batch index, which restarts every epoch (at 390 iterations per epoch
   the official gap across an epoch boundary is 30 steps, not 40).
5. Each KL evaluation runs the model once (the official ``compute_kl_divergence`` also runs
   ``train_losses``, whose MSE it discards; with dropout on, that extra forward only consumes RNG).
6. u is drawn by inverse-CDF sampling from the trainer's explicit generator and clamped to
   [1e-6, 1 − 1e-6] (the official code calls ``Beta.sample()`` on the global RNG, unclamped; u = 0
   or 1 would give an infinite log-prob).
7. The feature image is chosen by a generator derived from (``seed``, step), identically on every
   rank, instead of the leader's global RNG; the policy is initialised under its own seed (``seed``)
   without touching the global RNG, so adding this strategy does not shift the dropout stream.
8. The unused parts of the official code are not reproduced: the value network and its optimizer
   (``use_baseline: false``), ``clip_ratio``, and the VLB weight ``loss_coef`` (computed, not
   applied).
9. With 2 rows in the queue f_regression has 0 degrees of freedom, every score is 0 and SelectKBest
   ties resolve to the last |S| indices ({T−3, T−2, T−1}). The official code never used that S
   (it crashed first, deviation 1); this code uses it for one update by default, as Algorithm 2
   says; ``min_rows_for_selection=3`` skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special
from torch import Tensor

from bench.core.rng import derive_seed
from strategies._all_t_row import AllTRow
# select_timesteps: imported from here too (the official selector; AllTRow.select calls it)
from strategies._beta_policy import (ALPHA_OFFSET, INIT_BIAS, BetaPolicy, adaptation_record,
                                     advantage, beta_index_pmf, inverse_softplus, limit_change,
                                     select_timesteps, set_mean_gradients, softplus)
from strategies.base import Draw, StepContext, Strategy
from strategies.params import late
from strategies.registry import register

U_EPS = 1e-6                 # u is clamped to [U_EPS, 1 − U_EPS]
BASELINES = ("none", "batch_mean", "ema")
ZERO_TERMS = ("kl", "decoder", "exclude")
# Named presets (``variant``): values for the parameters a config does not give.
PRESETS: dict[str, dict[str, Any]] = {
    "official": {},
    "low_variance": {"common_noise": True, "reward_train_mode": False, "baseline": "batch_mean",
                     "normalize_reward": True, "min_rows_for_selection": 3,
                     "max_log_change": 0.25, "zero_term": "exclude"},
}


def _check(cond: bool, name: str, rule: str, value: Any) -> None:
    if not cond:
        raise ValueError(f"adaptive_beta: {name} must be {rule}, got {value!r}")


@register
class AdaptiveBeta(Strategy):
    name = "adaptive_beta"
    learned = True
    inverse_cdf = True          # u = I⁻¹(α, β; v): ``compose``'s stratified option applies
    PRESETS = PRESETS
    adaptation_columns = ("s_set", "reward_mean", "reward_std", "reward_t_corr", "alpha_mean",
                          "alpha_min", "alpha_max", "beta_mean", "beta_min", "beta_max")
    adaptation_text = ("s_set",)                # adaptation_record's columns
    paper = ("Kim et al. 2025, Adaptive Non-uniform Timestep Sampling (CVPR 2025), Sec. 5, "
             "eqs. 11-14, Alg. 1-2; official code ku-dmlab/Adaptive-Timestep-Sampler")

    @dataclass(frozen=True)
    class Params:
        update_every: int = 40             # f_S: a policy step when step % f_S == 0
        num_selected: int = 3              # |S|, 1 ≤ |S| ≤ T
        queue_size: int = 20               # |Q| (official --capacity 20; config's 5 is unused)
        lr: float = 1e-2                   # policy Adam lr (β = 0.9, 0.999)
        grad_clip: float = 1.0             # policy grad-norm clip; 0 disables
        ent_coef: float = 1e-2             # entropy coefficient c
        entropy_mode: str = "in_reward"    # official −E[log π·(R+cH)]; separate: −E[R log π]−cE[H]
        reward_reduction: str = "sum"      # official: Σ_S; "mean": 1/|S| Σ_S (paper eq. 14)
        reward_train_mode: bool = True     # official: model in train mode (dropout) for the KLs
        common_noise: bool = False         # official: fresh ε before and after the update
        min_rows_for_selection: int = 2    # re-select S once the queue has ≥ this many rows
        init_alpha: float | None = None    # initial α (None: softplus(0.5) + 1e-5, official)
        init_beta: float | None = None     # initial β (None: softplus(0.5) + 1e-5, official)
        hidden_dim: int = 256              # policy MLP width (official 256)
        hidden_depth: int = 2              # policy MLP hidden layers (official 2)
        conv_channels: tuple = (32, 64, 128)   # policy CNN (official)
        chunk_size: int | str = 256        # KL evaluations per model forward; "all": each
                                           # evaluation (|S|·B rows, the all-T row) in one forward
        reference_size: int = 256          # rows of the last batch kept for probabilities()
        seed: int = 0                      # policy init and the feature-image choice
        # Added later (left out of run ids at their default, which is the official behaviour):
        variant: str = late("official")    # official | low_variance (PRESETS)
        baseline: str = late("none")       # control variate: none | batch_mean | ema
        baseline_decay: float = late(0.9)  # the ema baseline's decay across updates
        normalize_reward: bool = late(False)   # divide the advantage by its batch std
        zero_term: str = late("kl")        # t = 0 in S and the all-T row: kl | decoder | exclude
        max_log_change: float = late(0.0)  # cap on max_b |Δ log α|, |Δ log β| per update; 0 = off
        reward_terms: str = late("likelihood")  # per-t terms: likelihood (VLB/ELBO) | loss
        # The cheap all-T row (1 and 1 = the official row: every t, at every update):
        all_t_stride: int = late(1)        # one random t per block of this many t, scaled sum
        all_t_every: int = late(1)         # the all-T row (and S's re-selection) every k-th update

        def __post_init__(self):
            def pos_int(name, lo=1):
                v = getattr(self, name)
                _check(isinstance(v, int) and not isinstance(v, bool) and v >= lo, name,
                       f"an integer >= {lo}", v)
            for name in ("update_every", "num_selected", "queue_size", "hidden_dim",
                         "hidden_depth", "reference_size", "all_t_stride", "all_t_every"):
                pos_int(name)
            c = self.chunk_size
            _check(c == "all" or (isinstance(c, int) and not isinstance(c, bool) and c >= 1),
                   "chunk_size", 'an integer >= 1 or "all" (each evaluation in one forward)', c)
            pos_int("min_rows_for_selection", 2)
            _check(isinstance(self.seed, int), "seed", "an integer", self.seed)
            _check(isinstance(self.lr, (int, float)) and self.lr > 0, "lr", "> 0", self.lr)
            _check(isinstance(self.grad_clip, (int, float)) and self.grad_clip >= 0,
                   "grad_clip", ">= 0 (0 disables)", self.grad_clip)
            _check(isinstance(self.ent_coef, (int, float)) and self.ent_coef >= 0,
                   "ent_coef", ">= 0", self.ent_coef)
            _check(self.entropy_mode in ("in_reward", "separate"), "entropy_mode",
                   "one of in_reward, separate", self.entropy_mode)
            _check(self.reward_reduction in ("sum", "mean"), "reward_reduction",
                   "one of sum, mean", self.reward_reduction)
            _check(self.variant in PRESETS, "variant", f"one of {', '.join(PRESETS)}",
                   self.variant)
            _check(self.baseline in BASELINES, "baseline", f"one of {', '.join(BASELINES)}",
                   self.baseline)
            _check(self.zero_term in ZERO_TERMS, "zero_term", f"one of {', '.join(ZERO_TERMS)}",
                   self.zero_term)
            _check(self.reward_terms in ("likelihood", "loss"), "reward_terms",
                   "one of likelihood, loss", self.reward_terms)
            _check(isinstance(self.baseline_decay, (int, float)) and 0 <= self.baseline_decay < 1,
                   "baseline_decay", "in [0, 1)", self.baseline_decay)
            _check(isinstance(self.max_log_change, (int, float)) and self.max_log_change >= 0,
                   "max_log_change", ">= 0 (0 disables)", self.max_log_change)
            for name in ("reward_train_mode", "common_noise", "normalize_reward"):
                _check(isinstance(getattr(self, name), bool), name, "a boolean",
                       getattr(self, name))
            for name in ("init_alpha", "init_beta"):
                v = getattr(self, name)
                _check(v is None or (isinstance(v, (int, float)) and v > ALPHA_OFFSET), name,
                       f"None or a Beta parameter > {ALPHA_OFFSET} (α = softplus(out) + 1e-5)", v)
            ch = tuple(self.conv_channels)
            _check(len(ch) >= 1 and all(isinstance(c, int) and c >= 1 for c in ch),
                   "conv_channels", "a non-empty list of positive integers", self.conv_channels)
            object.__setattr__(self, "conv_channels", ch)

    def __init__(self, process, params: "AdaptiveBeta.Params | None" = None):
        super().__init__(process, params)
        p = self.params
        self.first = 1 if p.zero_term == "exclude" else 0      # the smallest candidate for S
        if p.num_selected > self.T - self.first:
            raise ValueError(f"adaptive_beta: num_selected (|S|) must be in "
                             f"[1, {self.T - self.first}] (T={self.T}"
                             f"{', t = 0 excluded' if self.first else ''}), got {p.num_selected}")
        self.all_t = AllTRow(self.T, self.first, p.all_t_stride, p.all_t_every, p.num_selected)
        a0 = INIT_BIAS if p.init_alpha is None else inverse_softplus(p.init_alpha - ALPHA_OFFSET)
        b0 = INIT_BIAS if p.init_beta is None else inverse_softplus(p.init_beta - ALPHA_OFFSET)
        self.init_bias = (a0, b0)
        self.alpha0 = softplus(a0) + ALPHA_OFFSET
        self.beta0 = softplus(b0) + ALPHA_OFFSET
        self.policy: BetaPolicy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.S: list[int] = list(range(self.first, self.first + p.num_selected))
        self.baseline_value: float | None = None  # the ema baseline (None before the first)
        self.queue: list[Tensor] = []            # rows ΔKL_t, float64 [T], oldest first
        self.n_updates = 0
        self.ref_x0: Tensor | None = None
        self.history: list[dict] = []
        self.last_reward: Tensor | None = None   # per-example reward of the last update (local)

    # ------------------------------------------------------------------ the policy
    def _build_policy(self, shape: tuple[int, ...]) -> None:
        p = self.params
        with torch.device("meta"):        # no init here: the global RNG is not touched
            policy = BetaPolicy(shape, p.hidden_dim, p.hidden_depth, p.conv_channels,
                                self.init_bias)
        self.policy = policy.to_empty(device="cpu")
        self.policy.reset_parameters(torch.Generator().manual_seed(
            derive_seed(p.seed, "adaptive_beta", "policy_init")))
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=p.lr, betas=(0.9, 0.999))
        self.input_shape = tuple(shape)

    def _ensure_policy(self, x0: Tensor) -> BetaPolicy:
        shape = tuple(x0.shape[1:])
        if self.policy is None:
            self._build_policy(shape)
        elif shape != self.input_shape:
            raise ValueError(f"adaptive_beta: the policy was built for x0 of shape "
                             f"{self.input_shape}, got {shape}")
        dev = next(self.policy.parameters()).device
        if dev != x0.device:
            self.policy.to(x0.device)
            for st in self.optimizer.state.values():
                for k, v in st.items():
                    if isinstance(v, Tensor) and k != "step":
                        st[k] = v.to(x0.device)
        return self.policy

    def policy_params(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """(α, β) of the current policy for each row of x0 (no grad)."""
        policy = self._ensure_policy(x0)
        with torch.inference_mode():
            return policy(x0)

    # ------------------------------------------------------------------ the contract
    def sample(self, x0: Tensor, generator: torch.Generator) -> Draw:
        alpha, beta = self.policy_params(x0)
        v = self.uniforms(x0.shape[0], generator)
        u = special.betaincinv(alpha.double().cpu().numpy(), beta.double().cpu().numpy(),
                               v.cpu().numpy())
        u = torch.from_numpy(np.clip(u, U_EPS, 1.0 - U_EPS))
        t = torch.round(u * (self.T - 1)).long().clamp_(0, self.T - 1)
        # a view on x0's device, no copy (state_dict copies it to the host); the trainer passes
        # a fresh x0 every step, so the view keeps this step's batch
        self.ref_x0 = x0[: self.params.reference_size].detach()
        ones = torch.ones(x0.shape[0])
        return Draw(t=t.to(x0.device), importance=ones.to(x0.device),
                    loss_weight=ones.to(x0.device), aux={"u": u.to(x0.device)})

    def probabilities(self) -> Tensor:
        if self.ref_x0 is None or self.policy is None:
            return beta_index_pmf(torch.tensor(self.alpha0, dtype=torch.float64),
                                  torch.tensor(self.beta0, dtype=torch.float64), self.T)
        dev = next(self.policy.parameters()).device
        alpha, beta = self.policy_params(self.ref_x0.to(dev))
        return beta_index_pmf(alpha, beta, self.T).mean(dim=0)

    def planned_passes(self, batch_size: int, iterations: int) -> tuple[int, int]:
        """Each policy update (steps 0, f_S, 2f_S, …) evaluates θ_k and θ_{k+1} at |S|
        timesteps per example, and every ``all_t_every``-th update (the 1st, (k+1)-th, …) the
        feature image at all T (``all_t_stride`` s > 1: at one t per block, ⌈(T − first)/s⌉):
        2·(|S|·B·updates + n_row·rows) forwards."""
        p = self.params
        updates = -(-iterations // p.update_every)
        rows = -(-updates // p.all_t_every)
        return 2 * (updates * p.num_selected * batch_size + rows * self.all_t.size), 0

    def _is_update_step(self, ctx: StepContext) -> bool:
        return ctx.step % self.params.update_every == 0

    def before_update(self, ctx: StepContext) -> None:
        if not self._is_update_step(ctx):
            return
        p = self.params
        refresh = self.all_t.due(ctx.step // p.update_every)    # all_t_every: not always
        x_f = self._feature_image(ctx) if refresh else None
        ts = self._rank_timesteps(ctx) if refresh else None
        s_idx = torch.tensor(self.S, dtype=torch.long)
        noise_r = self._noise(ctx, ctx.x0, len(self.S)) if p.common_noise else None
        noise_f = self._noise(ctx, x_f[None], len(ts)) if p.common_noise and refresh else None
        sc = ctx.scratch["adaptive_beta"] = {
            "S": s_idx, "x_f": x_f, "ts": ts, "noise_r": noise_r, "noise_f": noise_f,
            "kl_r": self._kl_at(ctx, ctx.x0, s_idx, noise_r)}
        if refresh:
            sc["kl_f"] = self._kl_at(ctx, x_f[None], ts, noise_f)[0]

    def after_update(self, ctx: StepContext) -> None:
        sc = ctx.scratch.pop("adaptive_beta", None)
        if sc is None:
            return
        kl_r = self._kl_at(ctx, ctx.x0, sc["S"], sc["noise_r"])
        kl_f = (None if sc["ts"] is None else
                self._kl_at(ctx, sc["x_f"][None], sc["ts"], sc["noise_f"])[0])
        delta = sc["kl_r"] - kl_r                                    # [B_local, |S|]
        reward = delta.sum(1) if self.params.reward_reduction == "sum" else delta.mean(1)
        row = None if kl_f is None else self.all_t.row(
            sc["ts"], (sc["kl_f"] - kl_f).double(), ctx.reduce, ctx.rank, ctx.world_size)
        stats, ab = self._policy_step(ctx, reward.detach())
        if row is not None:                       # all_t_every > 1: other updates keep Q and S
            self.queue.append(row)
            del self.queue[: max(0, len(self.queue) - self.params.queue_size)]
            if len(self.queue) >= self.params.min_rows_for_selection:
                self.S = self.all_t.select(self.queue, self.params.num_selected)
        self.n_updates += 1
        self.history.append({"step": int(ctx.step), "S_used": sc["S"].tolist(), "S": list(self.S),
                             "queue_rows": len(self.queue),
                             "row_sum": None if row is None else float(row.sum()), **stats})
        ctx.adapted = adaptation_record(ctx.draw.t, sc["S"], reward.detach(), *ab)

    # ------------------------------------------------------------------ update pieces
    def _feature_image(self, ctx: StepContext) -> Tensor:
        """One x0 of the global batch, the same on every rank (Algorithm 2 line 1)."""
        B, W = ctx.x0.shape[0], ctx.world_size
        g = torch.Generator().manual_seed(derive_seed(self.params.seed, "adaptive_beta",
                                                      "feature", int(ctx.step)))
        j = int(torch.randint(0, B * W, (1,), generator=g))
        if W == 1:
            return ctx.x0[j].detach().clone()
        owner, local = divmod(j, B)
        x = ctx.x0[local].detach().clone() if ctx.rank == owner else torch.zeros_like(ctx.x0[0])
        return ctx.reduce(x)

    def _rank_timesteps(self, ctx: StepContext) -> Tensor:
        """This rank's timesteps of the all-T row (``AllTRow.timesteps``)."""
        return self.all_t.timesteps(ctx.generator, ctx.rank, ctx.world_size)

    def _noise(self, ctx: StepContext, x0: Tensor, n_t: int) -> Tensor:
        shape = (n_t * x0.shape[0], *x0.shape[1:])
        return torch.randn(shape, generator=ctx.generator).to(x0.device)

    def _kl_at(self, ctx: StepContext, x0: Tensor, ts: Tensor, noise: Tensor | None) -> Tensor:
        """KL_t(x0_b) in bits/dim for every row b of x0 and every t in ts: float [B, len(ts)].

        Flattened t-major ([t0: all b], [t1: all b], ...) and evaluated in chunks."""
        B, n = x0.shape[0], len(ts)
        tt = ts.to(x0.device).repeat_interleave(B)
        chunk = max(B * n, 1) if self.params.chunk_size == "all" else self.params.chunk_size
        out = []
        for lo in range(0, B * n, chunk):
            hi = min(lo + chunk, B * n)
            idx = torch.arange(lo, hi, device=x0.device) % B
            args = (x0[idx], tt[lo:hi], None if noise is None else noise[lo:hi],
                    self.params.reward_train_mode)
            out.append(ctx.losses_at(*args) if self.params.reward_terms == "loss" else
                       ctx.likelihood_at(*args, decoder="discretized"
                                         if self.params.zero_term == "decoder" else "kl"))
        if not out:                               # no timesteps on this rank
            return torch.zeros(B, 0, device=x0.device)
        return torch.cat(out).view(n, B).t()

    def advantage(self, reward: Tensor, reduce=lambda x: x, world_size: int = 1) -> Tensor:
        """The reward the policy gradient uses (``_beta_policy.advantage``; the ema baseline's
        value carries over updates)."""
        R, self.baseline_value = advantage(self.params, reward, self.baseline_value, reduce,
                                           world_size)
        return R

    def _policy_step(self, ctx: StepContext, reward: Tensor) -> tuple[dict, tuple]:
        """One REINFORCE step on the rank-local batch; gradients averaged across ranks. Returns
        the stats and (α, β) of the policy on the batch before the step."""
        p, W = self.params, ctx.world_size
        policy = self._ensure_policy(ctx.x0)
        u = ctx.draw.aux["u"].to(ctx.x0.device).double()
        A = self.advantage(reward, ctx.reduce, W)
        with torch.enable_grad():
            alpha, beta = policy(ctx.x0)
            dist = torch.distributions.Beta(alpha.double(), beta.double())
            logp, ent = dist.log_prob(u), dist.entropy()
            R = A.to(logp.device)
            if p.entropy_mode == "in_reward":
                loss = -(logp * (R + p.ent_coef * ent)).mean()
            else:
                loss = -(logp * R).mean() - p.ent_coef * ent.mean()
            params = list(policy.parameters())
            grads = torch.autograd.grad(loss, params)
        grad_norm = set_mean_gradients(params, grads, ctx.reduce, W)
        if p.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
        before = [prm.detach().clone() for prm in params] if p.max_log_change > 0 else []
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if p.max_log_change > 0:
            limit_change(self.policy, ctx.x0, params, before, alpha.detach(), beta.detach(),
                         p.max_log_change, ctx.reduce, ctx.rank, W)
        self.last_reward = (R + p.ent_coef * ent).detach().cpu()
        local = torch.stack([alpha.detach().double().mean(), beta.detach().double().mean(),
                             reward.double().to(R.device).mean(), ent.detach().mean(),
                             (R + p.ent_coef * ent).detach().mean(),
                             loss.detach()]).cpu()
        if W > 1:
            local = ctx.reduce(local.to(ctx.x0.device)).cpu() / W
        keys = ("mean_alpha", "mean_beta", "mean_kl_reward", "mean_entropy", "mean_reward",
                "policy_loss")
        stats = {**{k: float(v) for k, v in zip(keys, local)}, "policy_grad_norm": grad_norm}
        return stats, (alpha.detach(), beta.detach())

    # ------------------------------------------------------------------ inspection / state
    def diagnostics(self) -> list[dict]:
        """One dict per policy update: step, S_used (for the reward), S (after re-selection),
        queue_rows, row_sum, mean_alpha, mean_beta (policy on the batch before its step),
        mean_kl_reward, mean_entropy, mean_reward (= kl + c·H), policy_loss, policy_grad_norm."""
        return [dict(h) for h in self.history]

    def state_dict(self) -> dict[str, Any]:
        def cpu(sd):
            return {k: (v.detach().cpu().clone() if isinstance(v, Tensor) else v)
                    for k, v in sd.items()}
        opt = None
        if self.optimizer is not None:
            o = self.optimizer.state_dict()
            opt = {"state": {k: cpu(v) for k, v in o["state"].items()},
                   "param_groups": o["param_groups"]}
        return {
            "version": 1,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "policy": None if self.policy is None else cpu(self.policy.state_dict()),
            "optimizer": opt,
            "S": torch.tensor(self.S, dtype=torch.long),
            "queue": (torch.stack(self.queue) if self.queue
                      else torch.zeros(0, self.T, dtype=torch.float64)),
            "n_updates": self.n_updates,
            "baseline_value": self.baseline_value,
            "ref_x0": None if self.ref_x0 is None else self.ref_x0.cpu().clone(),
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy, self.optimizer, self.input_shape = None, None, None
        if state["input_shape"] is not None:
            self._build_policy(tuple(state["input_shape"]))
            self.policy.load_state_dict(state["policy"])
            if state["optimizer"] is not None:
                self.optimizer.load_state_dict(state["optimizer"])
        self.S = [int(s) for s in state["S"]]
        self.queue = [r.clone().double() for r in state["queue"]]
        self.n_updates = int(state["n_updates"])
        self.baseline_value = state.get("baseline_value")
        self.ref_x0 = None if state["ref_x0"] is None else state["ref_x0"].clone()
        self.history = [dict(h) for h in state["history"]]
