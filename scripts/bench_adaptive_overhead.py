"""Amortised step-time overhead of adaptive_beta over uniform on the same model and batch.

    python scripts/bench_adaptive_overhead.py [--setups toy,digits] [--cycles 2]
        [--timesteps 1000] [--update-every 40] [--threads 1] [--device cpu]

Two trainers with the same config except the strategy; their steps are interleaved (uniform step,
adaptive step, ...) so both see the same machine load. After a warm-up of f_S + 1 steps (two
policy updates; the second imports scikit-learn, a one-off cost) ``cycles`` × f_S steps are
timed, so the adaptive mean includes exactly ``cycles`` policy updates (Algorithm 2 + the
REINFORCE step) amortised over f_S steps. Printed, not asserted.
Kim et al. App. 8 estimate ≈ 1.41× (observed ≈ 1.5×) at |S| = 3, |B| = 128, T = 1000, f_S = 40.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as C  # noqa: E402
from bench.train.trainer import Trainer  # noqa: E402

SETUPS = {
    "toy": {"dataset": {"name": "toy2d", "kind": "8gaussians"},
            "backbone": {"name": "mlp", "width": 128, "depth": 3}, "batch_size": 256},
    "digits": {"dataset": {"name": "digits"},
               "backbone": {"name": "unet", "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                            "attn_resolutions": [], "dropout": 0.1}, "batch_size": 64},
}


def make_cfg(setup: str, strategy: dict, T: int, device: str) -> dict:
    s = SETUPS[setup]
    return C.resolve({"name": f"overhead-{setup}", "seed": 0, "dataset": s["dataset"],
                      "backbone": s["backbone"], "strategy": strategy,
                      "diffusion": {"schedule": "linear", "timesteps": T},
                      "train": {"iterations": 10**6, "batch_size": s["batch_size"], "lr": 1e-3,
                                "device": device}})


def timed(tr: Trainer) -> float:
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tr.train_step()
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(setup: str, T: int, f_s: int, cycles: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        uni = Trainer(make_cfg(setup, {"name": "uniform"}, T, device), Path(d) / "u",
                      progress=False)
        ada = Trainer(make_cfg(setup, {"name": "adaptive_beta", "update_every": f_s}, T, device),
                      Path(d) / "a", progress=False)
        for _ in range(f_s + 1):     # warm-up: two updates (the 2nd imports scikit-learn)
            uni.train_step()
            ada.train_step()
        tu, ta, flags = [], [], []
        for _ in range(cycles * f_s):
            tu.append(timed(uni))
            flags.append(ada.step % f_s == 0)
            ta.append(timed(ada))
    upd = [t for t, f in zip(ta, flags) if f]
    plain = [t for t, f in zip(ta, flags) if not f]
    return {"setup": setup, "T": T, "f_S": f_s, "batch": SETUPS[setup]["batch_size"],
            "steps": len(tu), "uniform_ms": 1e3 * statistics.mean(tu),
            "adaptive_ms": 1e3 * statistics.mean(ta),
            "adaptive_plain_ms": 1e3 * statistics.median(plain),
            "uniform_median_ms": 1e3 * statistics.median(tu),
            "update_step_ms": 1e3 * statistics.mean(upd),
            "ratio": statistics.mean(ta) / statistics.mean(tu)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setups", default="toy,digits")
    ap.add_argument("--cycles", type=int, default=2, help="timed policy-update cycles")
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--update-every", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"device={args.device} threads={args.threads} T={args.timesteps} "
          f"f_S={args.update_every} cycles={args.cycles}")
    print(f"{'setup':8} {'batch':>5} {'uniform ms':>10} {'adaptive ms':>11} "
          f"{'(non-update med)':>16} {'update step ms':>14} {'ratio':>6}")
    for setup in args.setups.split(","):
        r = bench(setup, args.timesteps, args.update_every, args.cycles, args.device)
        print(f"{r['setup']:8} {r['batch']:5d} {r['uniform_ms']:10.1f} {r['adaptive_ms']:11.1f} "
              f"{r['adaptive_plain_ms']:16.1f} {r['update_step_ms']:14.1f} {r['ratio']:6.2f}x",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
