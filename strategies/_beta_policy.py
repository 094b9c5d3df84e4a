"""The adaptive sampler's Beta policy and its S selection (strategies.adaptive_beta, Kim et al.
2025, official code ku-dmlab/Adaptive-Timestep-Sampler @ 4b2eae4): the policy network x0 → (α, β)
(``BetaPolicy``, the official ActorNetwork generalised), the pmf of the rounded Beta index
(``beta_index_pmf``), and the choice of the timesteps S whose KL terms explain the VLB
(``select_timesteps``, the official feature selector; ``select_blocks``, its block-wise form for
the cheap all-T row on a stride), and the two pieces of its REINFORCE step
that act on the policy's parameters: the gradient averaged over ranks (``set_mean_gradients``)
and the guard against a one-update jump (``limit_change``); the reward's control variate
(``advantage``); and an update's adaptation record (``adaptation_record``). Not a strategy: no
registration here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special
from torch import Tensor, nn

ALPHA_OFFSET = 1e-5          # (α, β) = softplus(out) + 1e-5 (official ActorNetwork)
INIT_BIAS = 0.5              # official output-layer bias init


def softplus(x: float) -> float:
    return math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def beta_index_pmf(alpha: Tensor, beta: Tensor, T: int) -> Tensor:
    """pmf of t = round(u·(T−1)), u ~ Beta(α, β): float64 [..., T] for α, β of shape [...].

    P(t = i) = F((i + ½)/(T−1)) − F((i − ½)/(T−1)) with the edges clipped to [0, 1], F the Beta CDF.
    """
    a = torch.as_tensor(alpha, dtype=torch.float64).detach().cpu().numpy()[..., None]
    b = torch.as_tensor(beta, dtype=torch.float64).detach().cpu().numpy()[..., None]
    edges = np.clip((np.arange(T + 1, dtype=np.float64) - 0.5) / (T - 1), 0.0, 1.0)
    cdf = special.betainc(a, b, edges)
    cdf[..., 0], cdf[..., -1] = 0.0, 1.0
    return torch.from_numpy(np.diff(cdf, axis=-1))


class BetaPolicy(nn.Module):
    """x0 → (α, β). Images: the official CNN generalised to any C×H×W; flat data: an MLP."""

    def __init__(self, shape: tuple[int, ...], hidden_dim: int, hidden_depth: int,
                 conv_channels: tuple[int, ...], init_bias: tuple[float, float]):
        super().__init__()
        self.shape = tuple(shape)
        if len(self.shape) == 3:
            layers: list[nn.Module] = []
            c, h, w = self.shape
            for cout in conv_channels:
                layers += [nn.Conv2d(c, cout, 3, padding=1), nn.ReLU()]
                if h >= 8 and w >= 8:           # never pool below 4×4 (32×32 = the official net)
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                c = cout
            layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten()]
            self.features = nn.Sequential(*layers)
            d = c * 16
        else:
            self.features = nn.Flatten()
            d = math.prod(self.shape)
        mlp: list[nn.Module] = []
        for _ in range(hidden_depth):
            mlp += [nn.Linear(d, hidden_dim), nn.ReLU()]
            d = hidden_dim
        self.mlp = nn.Sequential(*mlp)
        self.head = nn.Linear(d, 2)
        self.init_bias = tuple(float(b) for b in init_bias)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default Linear/Conv init (kaiming-uniform a = √5, bias U(±1/√fan_in)) drawn from
        ``generator``; then the official output layer: weight 0, bias 0.5 (or ``init_bias``)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        self.head.weight.zero_()
        self.head.bias.copy_(torch.tensor(self.init_bias))

    def forward(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        h = x0.float()
        # Without autograd (``sample``, every step) the same numbers, less work: the 2×2
        # max-pools as ``max_pool_2x2`` (~6× faster on CPU) and the ReLUs in place (each
        # follows a conv or linear layer, whose output nothing else holds).
        fast = not torch.is_grad_enabled()
        features = self.features if isinstance(self.features, nn.Sequential) else [self.features]
        for m in (*features, *self.mlp):
            # AdaptiveAvgPool2d(4) of a 4×4 map averages one element per window: the identity
            # (same values; slow on CPU), so it is skipped there — e.g. at 8×8 and at 32×32.
            if isinstance(m, nn.AdaptiveAvgPool2d) and h.dim() == 4 and h.shape[-2:] == (4, 4):
                continue
            if fast and isinstance(m, nn.MaxPool2d):
                h = max_pool_2x2(h)
            elif fast and isinstance(m, nn.ReLU):
                h = h.relu_()
            else:
                h = m(h)
        out = self.head(h)
        ab = F.softplus(out) + ALPHA_OFFSET
        return ab[:, 0], ab[:, 1]


def max_pool_2x2(h: Tensor) -> Tensor:
    """``F.max_pool2d(h, 2)`` (kernel 2, stride 2, an odd last row/column dropped) as the
    elementwise maximum of the four strided quarters: the maximum of the same four values, so the
    same numbers (NaN propagates in both); a contiguous result. Without autograd only: where a
    window holds a tie, ``max_pool2d`` sends the gradient to one element, ``torch.maximum``
    splits it."""
    H, W = h.shape[-2] // 2 * 2, h.shape[-1] // 2 * 2
    h = h[..., :H, :W]
    return torch.maximum(torch.maximum(h[..., 0::2, 0::2], h[..., 0::2, 1::2]),
                         torch.maximum(h[..., 1::2, 0::2], h[..., 1::2, 1::2]))


def select_timesteps(rows: np.ndarray, k: int, first: int = 0) -> list[int]:
    """S: the k columns of ``rows`` [n, T] that best explain the row sums, by scikit-learn's
    SelectKBest(f_regression) (the official ``Trainer.feature_selector``); sorted indices. Only
    columns ≥ ``first`` are candidates (1: t = 0 excluded, ``zero_term="exclude"``)."""
    from sklearn.feature_selection import SelectKBest, f_regression

    X = np.asarray(rows, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # 0 dof at 2 rows, constant columns: scores 0 / nan
        sel = SelectKBest(score_func=f_regression, k=k).fit(X[:, first:], X.sum(axis=1))
    return [int(i) + first for i in sel.get_support(indices=True)]


def block_centres(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The timestep that stands for each block of the strided all-T row: its centre (the lower
    one for an even size)."""
    return np.asarray(starts) + (np.asarray(sizes) - 1) // 2


def select_blocks(rows: np.ndarray, k: int, starts: np.ndarray, sizes: np.ndarray) -> list[int]:
    """S from rows of the strided all-T row (``all_t_stride`` > 1): every column of a block holds
    that block's one evaluated ΔKL, so a block is one feature. SelectKBest(f_regression, k) on the
    blocks' values against the row sums (the stratified estimates Σ_b size_b·ΔKL_b), and each
    chosen block's centre (``block_centres``) is its element of S; sorted. Column-wise selection
    would score a block's copies alike and spend all of S on one block."""
    from sklearn.feature_selection import SelectKBest, f_regression

    X = np.asarray(rows, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # as select_timesteps: 0 dof at 2 rows
        sel = SelectKBest(score_func=f_regression, k=k).fit(X[:, starts], X.sum(axis=1))
    centres = block_centres(starts, sizes)
    return sorted(int(centres[i]) for i in sel.get_support(indices=True))


def set_mean_gradients(params: list, grads, reduce, world_size: int) -> float:
    """Set each parameter's ``.grad`` to its gradient averaged over ranks (``reduce`` sums a
    tensor across ranks; one flat vector, one reduction); returns the averaged gradient's norm."""
    flat = torch.cat([g.reshape(-1) for g in grads])
    if world_size > 1:
        flat = reduce(flat) / world_size
    off = 0
    for prm in params:
        n = prm.numel()
        prm.grad = flat[off:off + n].view_as(prm).to(prm.dtype).clone()
        off += n
    return float(flat.norm())


def limit_change(policy: nn.Module, x0: Tensor, params: list, before: list, alpha: Tensor,
                 beta: Tensor, cap: float, reduce, rank: int, world_size: int) -> None:
    """The guard against a one-update jump: while some example's |Δ log α| or |Δ log β| exceeds
    ``cap``, halve the parameter step (at most 20 times; the same decision on every rank, from
    the global maximum). ``before``: the parameters before the step; (α, β) the policy's then."""
    new = [prm.detach().clone() for prm in params]
    for _ in range(20):
        with torch.no_grad():
            a, b = policy(x0)
            worst = torch.stack([(a.log() - alpha.log()).abs().max(),
                                 (b.log() - beta.log()).abs().max()]).max().double()
        if world_size > 1:         # a max through the sum-reduce: the largest of a one-hot
            parts = torch.zeros(world_size, dtype=torch.float64, device=worst.device)
            parts[rank] = worst
            worst = reduce(parts).max()
        if float(worst) <= cap:
            return
        with torch.no_grad():
            for prm, b0, b1 in zip(params, before, new):
                b1.copy_(b0 + 0.5 * (b1 - b0))
                prm.copy_(b1)


def advantage(p, reward: Tensor, baseline_value: float | None, reduce=lambda x: x,
              world_size: int = 1) -> tuple[Tensor, float | None]:
    """The reward the policy gradient uses: minus the control-variate baseline (none;
    batch_mean: the leave-one-out mean of the other examples of the global batch, unbiased;
    ema: an EMA over updates of the batch-mean reward, decay ``baseline_decay``, 0 at the
    first update), divided by the batch std when ``normalize_reward``. Returns it and the ema
    baseline's new value (the others leave it unchanged)."""
    R = reward.double()
    n = torch.tensor([float(R.numel()), float(R.sum()), float((R ** 2).sum())],
                     dtype=torch.float64, device=R.device)
    if world_size > 1:
        n = reduce(n)
    count, total, sq = (float(v) for v in n)
    mean = total / count
    if p.baseline == "batch_mean" and count > 1:
        R = R - (total - R) / (count - 1)
    elif p.baseline == "ema":
        b = 0.0 if baseline_value is None else baseline_value
        R = R - b
        baseline_value = mean if baseline_value is None else (
            p.baseline_decay * baseline_value + (1 - p.baseline_decay) * mean)
    if p.normalize_reward and count > 1:
        var = max(sq / count - mean ** 2, 0.0) * count / (count - 1)
        R = R / (math.sqrt(var) + 1e-12)
    return R, baseline_value


def adaptation_record(t: Tensor, S: Tensor, reward: Tensor, alpha: Tensor, beta: Tensor) -> dict:
    """An update's columns of timesteps/adaptation.csv (the rank-local batch, its drawn t): S
    used for the reward; the KL reward's mean and std (the entropy bonus and any baseline
    excluded); its correlation with the distance of each example's t to the nearest s ∈ S; α and
    β of the policy on the batch before its step."""
    R = reward.double().cpu()
    dist = (t.cpu()[:, None] - S.cpu()[None, :]).abs().min(dim=1).values.double()
    ok = R.numel() > 1 and float(R.std()) > 0 and float(dist.std()) > 0
    corr = float(torch.corrcoef(torch.stack([R, dist]))[0, 1]) if ok else math.nan
    a, b = alpha.double().cpu(), beta.double().cpu()
    return {"s_set": " ".join(str(int(s)) for s in S.tolist()),
            "reward_mean": float(R.mean()),
            "reward_std": float(R.std()) if R.numel() > 1 else math.nan,
            "reward_t_corr": corr,
            **{f"{n}_{f}": float(getattr(v, f)()) for n, v in (("alpha", a), ("beta", b))
               for f in ("mean", "min", "max")}}
