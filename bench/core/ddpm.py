"""The discrete DDPM process (Ho et al. 2020; Nichol & Dhariwal 2021), ε-prediction: the
``Process`` (bench.core.process) the suite trains by default.

Index convention (docs/official_code.md#index-convention): arrays are 0-indexed, index i is DDPM
step i + 1; ``abar_prev[0] = 1``; the model is fed the integer index i (``model_time`` is the
identity) and the time grid is the T indices. The process knows nothing about strategies:
strategies read the schedule tensors (``alphas_cumprod``, ``snr``) at construction.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from bench.core.process import Process, TimeGrid, mean_flat, on_device

SCHEDULES = ("linear", "cosine", "quad")
VARIANCES = ("fixed_large", "fixed_small")


def make_betas(schedule: str, T: int) -> np.ndarray:
    """β_i, float64, for i in [0, T).

    linear: linspace(1e-4, 0.02)·1000/T as in IDDPM (identity at T = 1000); quad: the ATS code's
    linspace(√1e-4, √0.02)²; cosine: Nichol & Dhariwal eq. 17, s = 0.008, β clipped at 0.999.
    """
    if T < 2:
        raise ValueError(f"timesteps must be >= 2, got {T}")
    if schedule == "linear":
        scale = 1000 / T
        if scale * 0.02 >= 1.0:
            raise ValueError(f"the linear schedule needs timesteps >= 21 (beta_T = 20/T < 1), "
                             f"got {T}")
        return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)
    if schedule == "quad":
        return np.linspace(1e-4**0.5, 0.02**0.5, T, dtype=np.float64) ** 2
    if schedule == "cosine":
        def f(u):
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
    raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: Tensor, means: Tensor, log_scales: Tensor) -> Tensor:
    """log p(x) of 8-bit data in [-1, 1] under a Gaussian discretised into 256 bins (IDDPM losses.py)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def gaussian_decoder_bpd(mean: Tensor, logvar: Tensor, x0: Tensor) -> Tensor:
    """−log N(x0; mean, e^logvar), mean over dims, in bits."""
    nll = 0.5 * (math.log(2 * math.pi) + logvar + (x0 - mean) ** 2 * torch.exp(-logvar))
    return mean_flat(nll) / math.log(2.0)


DECODERS = ("discretized", "gaussian", "kl")


def vlb_is_full(T: int, timesteps: int) -> bool:
    """Whether a VLB estimate with ``timesteps`` terms is the full loop over all T (``timesteps``
    <= 0 or >= T − 1) rather than the stratified estimate (bench.evaluation.nll)."""
    return timesteps <= 0 or timesteps >= T - 1


class DDPM(Process):
    """Schedule tensors and the closed forms of the forward/reverse process."""

    name = "ddpm"
    SAMPLERS = ("ddpm", "ddim")

    def __init__(self, schedule: str = "linear", timesteps: int = 1000,
                 variance: str = "fixed_large"):
        if variance not in VARIANCES:
            raise ValueError(f"unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
        self.schedule, self.T, self.variance = schedule, timesteps, variance
        b = make_betas(schedule, timesteps)
        a = 1.0 - b
        abar = np.cumprod(a)
        abar_prev = np.append(1.0, abar[:-1])
        post_var = b * (1.0 - abar_prev) / (1.0 - abar)
        post_logvar_clipped = np.log(np.append(post_var[1], post_var[1:]))
        if variance == "fixed_large":
            model_var = np.append(post_var[1], b[1:])
            model_logvar = np.log(model_var)
        else:
            model_var, model_logvar = post_var, post_logvar_clipped
        arrays = dict(
            betas=b, alphas=a, alphas_cumprod=abar, alphas_cumprod_prev=abar_prev,
            snr=abar / (1.0 - abar), posterior_variance=post_var,
            posterior_log_variance_clipped=post_logvar_clipped,
            posterior_mean_coef1=b * np.sqrt(abar_prev) / (1.0 - abar),
            posterior_mean_coef2=np.sqrt(a) * (1.0 - abar_prev) / (1.0 - abar),
            model_variance=model_var, model_log_variance=model_logvar,
        )
        # float64 master copies: strategies read these read-only.
        for name, arr in arrays.items():
            t = torch.from_numpy(np.ascontiguousarray(arr))
            t.requires_grad_(False)
            setattr(self, name, t)
        self.grid = TimeGrid(timesteps)
        self.eps_to_loss = torch.ones(timesteps, dtype=torch.float64)   # the loss is the ε-MSE

    # ------------------------------------------------------------------ helpers
    def _at(self, arr: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """arr[t] as ``like``'s dtype/device, broadcastable against ``like`` (shape [B, 1, ...]).
        A table goes to a device once (cached), not at every call."""
        out = on_device(arr, like.device)[t.to(like.device)].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    # ------------------------------------------------------------------ the Process contract
    def noised(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return self.q_sample(x0, t, noise)

    def target(self, x0: Tensor, noise: Tensor) -> Tensor:
        """ε: the network predicts the noise."""
        return noise

    def model_time(self, t: Tensor) -> Tensor:
        """The integer index itself."""
        return t

    def model_cell(self, model_t: Tensor) -> Tensor:
        return model_t.long()

    def train_times(self, cells: Tensor, generator: torch.Generator) -> Tensor:
        """The drawn indices themselves (DDPM's time is discrete; nothing is drawn)."""
        return cells

    def log_snr(self, t: Tensor) -> Tensor:
        return torch.log(self.snr[t.long().cpu()])

    def elbo_weights(self) -> Tensor:
        """c_t of Kim et al. eq. 7 with σ_t² = the model variance: L_t = c_t·‖ε − ε̂‖²/D."""
        return self.betas**2 / (2.0 * self.model_variance * self.alphas
                                * (1.0 - self.alphas_cumprod))

    def sample_passes(self, sampler: str, steps: int) -> int:
        """ddpm: T passes; ddim: one per distinct index of ``ddim_timesteps(steps)``."""
        self.check_sampler(sampler)
        return self.T if sampler == "ddpm" else len(self.ddim_timesteps(steps))

    def sample(self, model, shape, generator: torch.Generator, *, sampler: str, steps: int,
               eta: float = 0.0, device="cpu", clip: bool = True, progress=None) -> Tensor:
        self.check_sampler(sampler)
        if sampler == "ddpm":
            return self.sample_ddpm(model, shape, generator, device=device, clip=clip,
                                    progress=progress)
        return self.sample_ddim(model, shape, generator, steps=steps, eta=eta, device=device,
                                clip=clip, progress=progress)

    def likelihood_passes(self, timesteps: int) -> int:
        """Network passes per image of the VLB: all T terms (``timesteps`` <= 0 or >= T − 1) or
        the stratified estimate's K + 1 (bench.evaluation.nll)."""
        return self.T if vlb_is_full(self.T, timesteps) else timesteps + 1

    def likelihood_terms(self, pred: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, *,
                         decoder: str = "discretized", clip: bool = False) -> Tensor:
        """L_t per example in bits/dim: the KL terms at t ≥ 1 and, at t = 0, the decoder NLL —
        ``discretized`` (8-bit data), ``gaussian`` (continuous data: N(x0; μ_θ, σ_1²)) — or
        ``kl``: the same KL formula at t = 0 (what the ATS code evaluates)."""
        if decoder == "discretized":
            return self.vb_terms_bpd(pred, x0, x_t, t, clip=clip, decoder_at_zero=True)
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; valid: {', '.join(DECODERS)}")
        kl = self.vb_terms_bpd(pred, x0, x_t, t, clip=clip, decoder_at_zero=False)
        if decoder == "kl" or not bool((t == 0).any()):
            return kl
        mean, logvar, _ = self.p_mean_var(pred, x_t, t, clip=clip)
        dec = gaussian_decoder_bpd(mean, logvar.expand_as(x0), x0)
        return torch.where(t == 0, dec, kl)

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = √abar_t·x0 + √(1 − abar_t)·ε (DDPM eq. 4)."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clipped log-variance of q(x_{t-1} | x_t, x0) (DDPM eqs. 6-7)."""
        mean = (self._at(self.posterior_mean_coef1, t, x_t) * x0
                + self._at(self.posterior_mean_coef2, t, x_t) * x_t)
        return mean, self._at(self.posterior_log_variance_clipped, t, x_t)

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        abar = self._at(self.alphas_cumprod, t, x_t)
        return (1.0 / abar).sqrt() * x_t - (1.0 / abar - 1.0).sqrt() * eps

    def predict_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        abar = self._at(self.alphas_cumprod, t, x_t)
        return ((1.0 / abar).sqrt() * x_t - x0) / (1.0 / abar - 1.0).sqrt()

    def p_mean_var(self, eps: Tensor, x_t: Tensor, t: Tensor, clip: bool = False
                   ) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, log-variance and x̂0 of p_θ(x_{t-1} | x_t) from an ε-prediction."""
        x0_hat = self.predict_x0(x_t, t, eps)
        if clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        mean, _ = self.q_posterior(x0_hat, x_t, t)
        return mean, self._at(self.model_log_variance, t, x_t), x0_hat

    # ------------------------------------------------------------------ variational bound
    def vb_terms_bpd(self, eps: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, clip: bool = False,
                     decoder_at_zero: bool = True) -> Tensor:
        """Per-example L_t in bits/dim (IDDPM ``_vb_terms_bpd``).

        t >= 1: KL(q(x_{t-1}|x_t,x0) ‖ p_θ(x_{t-1}|x_t)); t = 0: the discretised-Gaussian decoder NLL,
        or, with ``decoder_at_zero=False``, the same KL formula (what the ATS code evaluates at t = 0).
        """
        true_mean, true_logvar = self.q_posterior(x0, x_t, t)
        mean, logvar, _ = self.p_mean_var(eps, x_t, t, clip=clip)
        kl = mean_flat(normal_kl(true_mean, true_logvar, mean, logvar)) / math.log(2.0)
        if not decoder_at_zero:
            return kl
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * logvar)
        nll = mean_flat(nll) / math.log(2.0)
        return torch.where(t.to(kl.device) == 0, nll, kl)

    def prior_bpd(self, x0: Tensor) -> Tensor:
        """KL(q(x_{T-1}|x0) ‖ N(0, I)) per example, bits/dim."""
        t = torch.full((x0.shape[0],), self.T - 1, dtype=torch.long, device=x0.device)
        abar = self._at(self.alphas_cumprod, t, x0)
        kl = normal_kl(abar.sqrt() * x0, (1.0 - abar).log().expand_as(x0),
                       torch.zeros_like(x0), torch.zeros_like(x0))
        return mean_flat(kl) / math.log(2.0)

    # ------------------------------------------------------------------ samplers
    @torch.no_grad()
    def sample_ddpm(self, model, shape, generator: torch.Generator, device="cpu",
                    clip: bool = True, progress=None) -> Tensor:
        """Ancestral sampling over all T steps (DDPM Algorithm 2)."""
        x = torch.randn(shape, generator=generator, device=device)
        for i in reversed(range(self.T)):
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            mean, logvar, _ = self.p_mean_var(model(x, t), x, t, clip=clip)
            x = mean
            if i > 0:
                x = x + torch.exp(0.5 * logvar) * torch.randn(shape, generator=generator, device=device)
            if progress is not None:
                progress.update(1)
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        if not 1 <= steps <= self.T:
            raise ValueError(f"DDIM steps must be in [1, {self.T}], got {steps}")
        return sorted(set(np.linspace(0, self.T - 1, steps).round().astype(int).tolist()))

    @torch.no_grad()
    def sample_ddim(self, model, shape, generator: torch.Generator, steps: int = 50,
                    eta: float = 0.0, device="cpu", clip: bool = True, progress=None) -> Tensor:
        """DDIM (Song et al. 2021, eq. 12) over ``steps`` evenly spaced indices; eta = 1 is DDPM-like."""
        seq = self.ddim_timesteps(steps)
        x = torch.randn(shape, generator=generator, device=device)
        abar_all = self.alphas_cumprod
        for k in reversed(range(len(seq))):
            i = seq[k]
            t = torch.full((shape[0],), i, dtype=torch.long, device=device)
            x0 = self.predict_x0(x, t, model(x, t))
            if clip:
                x0 = x0.clamp(-1.0, 1.0)
            eps = self.predict_eps(x, t, x0)
            abar = float(abar_all[i])
            abar_prev = float(abar_all[seq[k - 1]]) if k > 0 else 1.0
            sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
            x = (math.sqrt(abar_prev) * x0
                 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps)
            if sigma > 0 and k > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device=device)
            if progress is not None:
                progress.update(1)
        return x
