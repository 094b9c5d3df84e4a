"""Drawing samples from a model for evaluation (the process's samplers: DDPM or DDIM), and
decoding latent samples."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from bench.core.process import Process
from bench.core.rng import generator


def weights_suffix(e) -> str:
    """The evaluated weights in evals.csv's ``sampler`` (part of the row's key): nothing for the
    EMA weights (the default, and every row before the suffix existed), ``_live`` for the live
    ones (eval.use_ema=false), so the two are never one protocol and never replace each other."""
    return "" if e.use_ema else "_live"


def sampler_name(e, T: int) -> str:
    """How sample metrics were produced (evals.csv ``sampler``): ddpm_T1000, ddim100_eta0,
    euler50, heun50, and ``weights_suffix`` (ddim100_eta0_live)."""
    if e.sampler == "ddpm":
        return f"ddpm_T{T}{weights_suffix(e)}"
    if e.sampler in ("euler", "heun"):
        return f"{e.sampler}{e.steps}{weights_suffix(e)}"
    return f"ddim{e.ddim_steps}_eta{e.eta:g}{weights_suffix(e)}"


@torch.no_grad()
def generate(model, process: Process, shape: tuple[int, ...], n: int, *, sampler: str,
             steps: int, eta: float, batch_size: int, seed: int, device: torch.device,
             clip: bool, progress: bool = False) -> Tensor:
    """n samples (CPU float32) from ``model``; batch b from generator(seed, "eval_sample", b)."""
    passes = process.sample_passes(sampler, steps)
    n_batches = math.ceil(n / batch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=passes * n_batches, desc=f"sample {sampler}", unit="pass", leave=False,
                   dynamic_ncols=True, mininterval=1.0)
    out = []
    was_training = model.training
    model.eval()
    try:
        for b in range(n_batches):
            m = min(batch_size, n - b * batch_size)
            g = generator(seed, "eval_sample", b, device=device)
            x = process.sample(model, (m, *shape), g, sampler=sampler, steps=steps,
                               eta=eta, device=device, clip=clip, progress=bar)
            out.append(x.float().cpu())
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return torch.cat(out)


@torch.no_grad()
def decode(data, z: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """A latent dataset's samples → images in [-1, 1] (CPU float32), in batches on ``device``."""
    return torch.cat([data.decode(z[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, z.shape[0], batch_size)])
