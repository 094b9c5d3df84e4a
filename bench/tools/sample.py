"""Load a run and draw samples from its EMA weights; optionally plot them next to the data.

    python -m bench.sample RUN_DIR [--n N] [--sampler ddpm|ddim|euler|heun] [--steps K] [--seed S]
                               [--out PNG]

2-D toys: a scatter plot of samples beside held-out data; images: a grid of samples beside data.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.rundir import runfiles, runpaths
from bench.config.sections import Config
from bench.core.process import Process
from bench.evaluation.sampling import decode, generate
from bench.train.components import build_components


@dataclass
class LoadedRun:
    cfg: Config
    data: object
    ema: torch.nn.Module
    process: Process
    step: int


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """The config, data source, EMA model and diffusion process of a run with a checkpoint."""
    run_dir = Path(run_dir)
    ckpt = runpaths.ckpt_path(run_dir)
    if not runpaths.config_path(run_dir).exists() or not ckpt.exists():
        raise FileNotFoundError(f"{run_dir} is not a run with a checkpoint "
                                f"(needs {runpaths.CONFIG} and "
                                f"{runpaths.CKPT_DIR}/{runpaths.CKPT})")
    cfg = Config.of(runfiles.read_config(run_dir))
    data, model, process, _ = build_components(cfg, torch.device(device))
    st = torch.load(ckpt, map_location=device, weights_only=False)
    model.load_state_dict(st["ema"])
    return LoadedRun(cfg, data, model.eval(), process, st["step"])


def draw_samples(run: LoadedRun, n: int, sampler: str = "ddim", steps: int = 100,
                 seed: int = 0, batch_size: int = 1024, device: str = "cpu",
                 progress: bool = False) -> torch.Tensor:
    """n samples from the EMA model (``bench.evaluation.sampling.generate``; x̂0 clipped for pixel images
    only); latent data is decoded to images."""
    run.process.check_sampler(sampler)
    x = generate(run.ema, run.process, run.data.shape, n, sampler=sampler, steps=steps,
                 eta=0.0, batch_size=batch_size, seed=seed, device=torch.device(device),
                 clip=run.data.clip, progress=progress)
    if run.data.decode is not None:                 # latent data: decode to images
        x = decode(run.data, x, batch_size, torch.device(device))
    return x


def plot_samples(samples: torch.Tensor, data: torch.Tensor, out: str | Path, title: str = ""):
    """Scatter (2-D) or image grids (C×H×W) of samples beside data; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, x, name in ((axes[0], data, "data (held-out)"), (axes[1], samples, "samples (EMA)")):
        if x.dim() == 2:
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
            ax.set_xlim(-1.5, 1.5)
            ax.set_ylim(-1.5, 1.5)
            ax.set_aspect("equal")
        else:
            from torchvision.utils import make_grid

            grid = make_grid(((x[:64] + 1) / 2).clamp(0, 1), nrow=8, padding=1)
            ax.imshow(grid.permute(1, 2, 0).numpy())
            ax.axis("off")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sample", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sampler", default=None, choices=["ddpm", "ddim", "euler", "heun"],
                    help="default: ddim for a DDPM run, euler for a flow run")
    ap.add_argument("--steps", type=int, default=100, help="DDIM / Euler / Heun steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="PNG path (default RUN_DIR/samples.png)")
    args = ap.parse_args(argv)
    for name in ("n", "steps"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    out = Path(args.out or Path(args.run_dir) / "samples.png")
    try:
        if out.is_dir() or not out.suffix:
            raise ValueError(f"--out {out}: a folder or a name without a type; give a file "
                             f"such as {out / 'samples.png'}")
        run = load_run(args.run_dir)
        if not out.parent.is_dir():
            raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
        sampler = args.sampler or {"flow": "euler"}.get(run.process.name, "ddim")
        x = draw_samples(run, args.n, sampler, args.steps, args.seed, progress=True)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    px = run.data.pixels or run.data
    test = px.test.get(torch.arange(min(args.n, len(px.test))))
    plot_samples(x, test, out, title=f"{run.cfg.name} step {run.step} "
                                     f"({sampler})")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
