"""adaptive_beta's ordinary step (no policy update) against uniform's, and its ``sample()`` alone.

    python scripts/adaptive_step_profile.py [--rounds 20] [--steps 50] [--threads 1] [--profile]

Two trainers on the same config but the strategy (digits, MLP 128×3 backbone, batch 128, T = 1000,
CPU; adaptive_beta with ``update_every`` beyond the window, so no update is timed), and
adaptive_beta's ``sample()`` on one batch; ``--rounds`` rounds of ``--steps`` calls of each,
interleaved so that machine load hits all alike; the medians over rounds are printed, with
adaptive/uniform per round. ``--profile``: cProfile of 300 ``sample()`` calls (what dominates).
Printed, not asserted. Runs on any commit that has ``Trainer.train_step`` (to measure a
"before", run it from a checkout of the older commit).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as C  # noqa: E402
from bench.core.rng import generator  # noqa: E402
from bench.train.trainer import Trainer  # noqa: E402


def trainer(strategy: dict) -> Trainer:
    cfg = C.resolve({
        "name": "adaptive-step", "seed": 0, "dataset": {"name": "digits"},
        "backbone": {"name": "mlp", "width": 128, "depth": 3}, "strategy": strategy,
        "diffusion": {"schedule": "linear", "timesteps": 1000},
        "train": {"iterations": 10**9, "batch_size": 128, "lr": 2e-4, "log_every": 10**9,
                  "ckpt_every": 10**9, "device": "cpu"}})
    return Trainer(cfg, tempfile.mkdtemp(prefix="adaptive-step-"), progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tu = trainer({"name": "uniform"})
    ta = trainer({"name": "adaptive_beta", "update_every": 10**6})  # an update at step 0 only
    x0 = ta.batch(0)

    def step(t):
        t.train_step()

    def sample():
        ta.strategy.sample(x0, generator(0, "t", 0))

    for _ in range(20):                     # warm-up, past adaptive_beta's update at step 0
        step(tu), step(ta), sample()
    runs = {"uniform step": lambda: step(tu), "adaptive_beta step": lambda: step(ta),
            "adaptive_beta sample()": sample}
    ms = {k: [] for k in runs}
    for r in range(args.rounds):
        order = list(runs)[r % 3:] + list(runs)[:r % 3]
        for k in order:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                runs[k]()
            ms[k].append((time.perf_counter() - t0) / args.steps * 1e3)
    ratio = statistics.median(a / u for a, u in zip(ms["adaptive_beta step"], ms["uniform step"]))
    for k, v in ms.items():
        print(f"{k:24s} median {statistics.median(v):7.2f} ms  (min {min(v):.2f}, "
              f"max {max(v):.2f}, {args.rounds} rounds of {args.steps})")
    print(f"adaptive_beta / uniform per round: median {ratio:.2f}×")
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(300):
            sample()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
