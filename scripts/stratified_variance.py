"""The variance of the batch-mean training loss with plain and stratified (antithetic) timestep
draws, on one fixed network (compose's ``stratified`` option; docs/strategies.md):

    python scripts/stratified_variance.py [--iterations 300] [--batches 2000] [--batch 128]

Per process (DDPM, flow) the digits MLP is trained for ``--iterations`` steps with uniform t and
then held fixed; for each sampler (uniform, mode, u_shaped) ``--batches`` batches of ``--batch``
examples (data, noise and t drawn afresh for each) give the weighted batch-mean loss, plain and
stratified. Prints its mean and variance per sampler and the variance ratio stratified / plain:
the means agree (same marginal), the variance is what stratification changes.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

import strategies
from bench import config as C
from bench.core.rng import generator
from bench.train.trainer import Trainer

SAMPLERS = ("uniform", "mode", "u_shaped")


def trained(process: str, iterations: int) -> Trainer:
    cfg = C.resolve({
        "seed": 0, "process": {"name": process},
        "dataset": {"name": "digits"}, "backbone": {"name": "mlp", "width": 128, "depth": 3},
        "diffusion": {"timesteps": 1000},
        "train": {"iterations": iterations, "batch_size": 128, "lr": 2e-3, "device": "cpu",
                  "log_every": iterations, "ckpt_every": iterations},
        **({"eval": {"sampler": "euler"}} if process == "flow" else {})})
    tr = Trainer(cfg, tempfile.mkdtemp(), progress=False)
    for _ in range(iterations):
        tr.train_step()
    return tr


@torch.no_grad()
def batch_means(tr: Trainer, sampler: str, stratified: bool, batches: int, B: int) -> torch.Tensor:
    s = strategies.build("compose", tr.process, {"sampler": {"name": sampler},
                                                 "stratified": stratified})
    net, pr, data = tr.ema.eval(), tr.process, tr.data.train
    out = torch.empty(batches, dtype=torch.float64)
    for b in range(batches):
        g = generator(1, "measure", b)
        x0 = data.get(torch.randint(0, len(data), (B,), generator=g), generator=g)
        d = s.sample(x0, generator(1, "t", sampler, b))
        t = pr.train_times(d.t, g)
        noise = torch.randn(x0.shape, generator=g)
        losses = pr.loss(net(pr.noised(x0, t, noise), pr.model_time(t)), pr.target(x0, noise))
        out[b] = (d.weight * losses).mean()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| process | sampler | mean (plain) | mean (stratified) | var (plain) | var (stratified) "
          "| ratio |\n|---|---|---|---|---|---|---|")
    for process in ("ddpm", "flow"):
        tr = trained(process, args.iterations)
        for sampler in SAMPLERS:
            plain, strat = (batch_means(tr, sampler, s, args.batches, args.batch)
                            for s in (False, True))
            print(f"| {process} | {sampler} | {plain.mean():.5f} | {strat.mean():.5f} | "
                  f"{plain.var():.3e} | {strat.var():.3e} | {strat.var() / plain.var():.3f} |")


if __name__ == "__main__":
    main()
