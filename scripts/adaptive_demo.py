"""adaptive_beta on CPU: a 2-D toy (MLP) and 8×8 digits (small UNet), in one process each.

    python scripts/adaptive_demo.py [--out results/adaptive_demo] [--runs toy,digits]
        [--toy-iters 3000] [--digits-iters 2000] [--timesteps 1000] [--update-every 40]
        [--snapshot-every 250] [--threads 1]

Per run, under OUT/<run>/: pt_snapshots.csv (step,t,prob: the strategy's probabilities(), i.e. the
current policy's batch marginal on the last batch, every --snapshot-every steps), history.csv (one
row per policy update: step, S used for the reward, S after re-selection, mean α, mean β, rewards,
policy grad norm), pt.png (p(t) over training, S over updates, mean α/β) and summary.json. The
training run itself (config, metrics, checkpoint) is in OUT/<run>/run/.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as C  # noqa: E402
from bench.train.trainer import Trainer  # noqa: E402


def run_config(name: str, iters: int, T: int, update_every: int) -> dict:
    common = {"name": f"adaptive-demo-{name}", "seed": 0,
              "strategy": {"name": "adaptive_beta", "update_every": update_every},
              "diffusion": {"schedule": "linear", "timesteps": T}}
    if name == "toy":
        return C.resolve({**common, "dataset": {"name": "toy2d", "kind": "8gaussians"},
                          "backbone": {"name": "mlp", "width": 128, "depth": 3},
                          "train": {"iterations": iters, "batch_size": 256, "lr": 1e-3,
                                    "warmup": 100, "ema_decay": 0.999, "log_every": 100,
                                    "ckpt_every": iters, "device": "cpu"}})
    if name == "digits":
        return C.resolve({**common, "dataset": {"name": "digits"},
                          "backbone": {"name": "unet", "ch": 16, "ch_mult": [1, 2],
                                       "num_res_blocks": 1, "attn_resolutions": [],
                                       "dropout": 0.1},
                          "train": {"iterations": iters, "batch_size": 32, "lr": 1e-3,
                                    "warmup": 50, "ema_decay": 0.999, "log_every": 100,
                                    "ckpt_every": iters, "device": "cpu"}})
    raise ValueError(f"unknown run {name!r}; valid: toy, digits")


class Snapshots:
    """Trainer callback: p(t) of the strategy at step 0, every ``every`` steps and at the end."""

    def __init__(self, every: int):
        self.every, self.rows, self.seen = every, [], set()

    def _take(self, tr) -> None:
        if tr.step in self.seen:
            return
        self.seen.add(tr.step)
        p = tr.strategy.probabilities()
        self.rows += [(tr.step, t, float(v)) for t, v in enumerate(p)]

    def on_start(self, tr) -> None:
        self._take(tr)

    def on_step_end(self, tr) -> None:
        if tr.step % self.every == 0:
            self._take(tr)

    def on_end(self, tr) -> None:
        self._take(tr)


def write_outputs(out: Path, snaps: Snapshots, hist: list[dict], T: int) -> dict:
    with open(out / "pt_snapshots.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "t", "prob"])
        w.writerows(snaps.rows)
    keys = ["step", "S_used", "S", "mean_alpha", "mean_beta", "mean_kl_reward", "mean_entropy",
            "mean_reward", "policy_loss", "policy_grad_norm", "row_sum", "queue_rows"]
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for h in hist:
            w.writerow([" ".join(map(str, h[k])) if isinstance(h[k], list) else h[k]
                        for k in keys])
    plot(out / "pt.png", snaps.rows, hist, T, out.name)
    by_step: dict[int, list[float]] = {}
    for s, _, p in snaps.rows:
        by_step.setdefault(s, []).append(p)
    first, last = by_step[min(by_step)], by_step[max(by_step)]
    q = T // 4

    def quarters(p):
        return [round(sum(p[i * q:(i + 1) * q if i < 3 else T]), 4) for i in range(4)]

    return {"updates": len(hist), "distinct_S": len({tuple(h["S"]) for h in hist}),
            "S_first": hist[0]["S"] if hist else None, "S_last": hist[-1]["S"] if hist else None,
            "mean_alpha_last": hist[-1]["mean_alpha"] if hist else None,
            "mean_beta_last": hist[-1]["mean_beta"] if hist else None,
            "p_quarters_first": quarters(first), "p_quarters_last": quarters(last),
            "p_max_last": max(last), "argmax_t_last": last.index(max(last))}


def plot(path: Path, rows, hist, T: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({r[0] for r in rows})
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    norm = matplotlib.colors.Normalize(vmin=steps[0], vmax=max(steps[-1], steps[0] + 1))
    for s in steps:
        p = [r[2] for r in rows if r[0] == s]
        ax[0].plot(range(T), [v * T for v in p], color=cmap(norm(s)), lw=1)
    ax[0].set(xlabel="t", ylabel="T·p(t)  (1 = uniform)", title=f"{title}: p(t) over training")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax[0], label="step")
    for h in hist:
        ax[1].scatter([h["step"]] * len(h["S"]), h["S"], s=6, color="C0")
    ax[1].set(xlabel="step", ylabel="t ∈ S", ylim=(-0.02 * T, 1.02 * T),
              title="S after each update")
    ax[2].plot([h["step"] for h in hist], [h["mean_alpha"] for h in hist], label="mean α")
    ax[2].plot([h["step"] for h in hist], [h["mean_beta"] for h in hist], label="mean β")
    ax[2].set(xlabel="step", title="policy on the update batch")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/adaptive_demo")
    ap.add_argument("--runs", default="toy,digits")
    ap.add_argument("--toy-iters", type=int, default=3000)
    ap.add_argument("--digits-iters", type=int, default=2000)
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--update-every", type=int, default=40)
    ap.add_argument("--snapshot-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = {}
    for name in args.runs.split(","):
        iters = args.toy_iters if name == "toy" else args.digits_iters
        cfg = run_config(name, iters, args.timesteps, args.update_every)
        out = Path(args.out) / name
        shutil.rmtree(out / "run", ignore_errors=True)       # a fresh run, not a resume
        (out / "run").mkdir(parents=True, exist_ok=True)
        snaps = Snapshots(args.snapshot_every)
        tr = Trainer(cfg, out / "run", progress=True, callbacks=[snaps])
        t0 = time.perf_counter()
        final = tr.run()
        wall = time.perf_counter() - t0
        s = {**write_outputs(out, snaps, tr.strategy.diagnostics(), args.timesteps),
             "iterations": tr.step, "wall_s": round(wall, 1), "final_loss": final.get("loss")}
        (out / "summary.json").write_text(json.dumps(s, indent=1))
        summary[name] = s
        print(name, json.dumps(s), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
