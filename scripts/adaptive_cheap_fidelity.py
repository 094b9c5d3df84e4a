"""How faithful is adaptive_beta's cheap all-T row (``all_t_stride``, ``all_t_every``)? A replay on
one real training run (issue 28, Build 5).

    python scripts/adaptive_cheap_fidelity.py [--iterations 2000] [--replicas 5] [--out F.json]

Trains adaptive_beta ``variant: low_variance`` with the faithful row (stride 1, every update) on
8×8 digits (MLP 128×3, batch 128, T = 1000 linear, f_S = ``update_every`` = 40, the quickstart's
optimiser settings; CPU, one thread). At every policy update it replays the update's model pair
(θ_k, θ_{k+1}) for each cheap estimator, ``--replicas`` times (independent stratified offsets):

* the row: the run's own full row ΔKL_t (t = 1..T−1, one ε per t, the same ε before and after)
  is the reference. A stride-s row evaluates one t per block; with the same model pair and the
  same ε at that t it *is* the full row's value there, so the strided row is built from the full
  row by the strategy's own code (``AllTRow.timesteps``, ``AllTRow.row``): its difference from the full
  row is the subsampling alone. An every-k estimator pushes the full row at every k-th update.
  Each estimator keeps its own queue (|Q| = 20) and selects its own S with the strategy's code
  (``AllTRow.select``: column-wise for stride 1, block-wise for stride > 1).
* "full, fresh ε" is the full estimator again with its own ε draws (2·T extra forwards per
  update): how much two equally valid full estimators disagree — the noise floor the cheap
  rows are judged against.
* the reward: every S in use at this update (each estimator's S before its re-selection, and
  the run's) is evaluated on the run's batch at θ_k and θ_{k+1} with one shared ε per (example,
  t); reward_b(S) = Σ_{s∈S} ΔKL_s(x0_b). Its Pearson correlation with the run's reward across the
  batch (the leave-one-out baseline and the normalisation are affine in the reward: the
  advantage's correlation is the same).

Reported per estimator (means over the compared updates — those at which the run's queue has
≥ 3 rows, i.e. S is a selected one — and the replicas): |S∩S_full|/|S|; the share of S_full
within ±s of the estimator's S (s = its stride, 1 for stride 1); Pearson and Spearman
correlation of the f_regression scores of the candidate timesteps (a block's score stands for its
columns) with the full queue's; the Pearson correlation of the row sums with the full row's sums
across updates (a stride's stratified estimate; for every-k the rows it has are the full rows);
the reward correlation; and the counted cost: forward-equivalents per iteration (fwd + 2·bwd) of
the trainer (3B) plus the strategy's planned forwards (``planned_passes``) per iteration, relative
to uniform's 3B, at f_S = 40, B = 128, T = 1000.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from scipy import stats
from sklearn.feature_selection import f_regression

import strategies
from bench import config as C
from bench.train.trainer import Trainer

ESTIMATORS = [  # label, the cheap parameters, the ±tolerance for "S within ±s"
    ("full, fresh ε", {}, 1),
    ("stride 2", {"all_t_stride": 2}, 2),
    ("stride 4", {"all_t_stride": 4}, 4),
    ("stride 8", {"all_t_stride": 8}, 8),
    ("every 2", {"all_t_every": 2}, 1),
    ("every 4", {"all_t_every": 4}, 1),
    ("stride 2 · every 2", {"all_t_stride": 2, "all_t_every": 2}, 2),
]
FRESH = ESTIMATORS[0][0]


def config(args) -> dict:
    return C.resolve({
        "name": "adaptive-cheap-fidelity", "seed": args.seed,
        "dataset": {"name": "digits"}, "backbone": {"name": "mlp", "width": 128, "depth": 3},
        "diffusion": {"schedule": "linear", "timesteps": args.timesteps},
        "strategy": {"name": "adaptive_beta", "variant": "low_variance",
                     "update_every": args.update_every},
        "train": {"iterations": args.iterations, "batch_size": args.batch_size, "lr": 2.0e-3,
                  "warmup": 50, "ema_decay": 0.995, "grad_clip": 1.0,
                  "log_every": args.iterations, "ckpt_every": args.iterations,
                  "device": "cpu"}})


def f_scores(est, queue: list) -> np.ndarray:
    """f_regression scores of the candidate timesteps first..T−1 (a block's score for each of its
    columns when strided); NaN (a constant column) as 0."""
    X = torch.stack(queue).numpy()
    y = X.sum(axis=1)
    if est.params.all_t_stride == 1:
        F = f_regression(X[:, est.first:], y)[0]
    else:
        F = np.repeat(f_regression(X[:, est.all_t.starts.numpy()], y)[0],
                      est.all_t.sizes.numpy())
    return np.nan_to_num(F, nan=0.0)


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--update-every", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="", help="also write the per-update records as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    cfg = config(args)
    tr = Trainer(cfg, tempfile.mkdtemp(prefix="adaptive-cheap-"), progress=False)
    run = tr.strategy
    params = {k: v for k, v in cfg["strategy"].items() if k != "name"}
    est = {lab: [strategies.build("adaptive_beta", tr.process, {**params, **extra})
                 for _ in range(args.replicas)] for lab, extra, _ in ESTIMATORS}
    gens = {lab: [torch.Generator().manual_seed(1000 * i + r) for r in range(args.replicas)]
            for i, (lab, _, _) in enumerate(ESTIMATORS)}
    g_eval = torch.Generator().manual_seed(7)
    T, min_rows = run.T, run.params.min_rows_for_selection
    records, pending = [], {}

    before_orig, after_orig = run.before_update, run.after_update

    def before(ctx):
        before_orig(ctx)
        sc = ctx.scratch.get("adaptive_beta")
        if sc is None:
            return
        used = {lab: [list(e.S) for e in es] for lab, es in est.items()}
        U = sorted({s for ss in used.values() for S in ss for s in S} | set(sc["S"].tolist()))
        Ut = torch.tensor(U)
        noise = torch.randn((len(U) * ctx.x0.shape[0], *ctx.x0.shape[1:]), generator=g_eval)
        fresh_noise = [torch.randn((T, *ctx.x0.shape[1:]), generator=g_eval)
                       for _ in range(args.replicas)]
        pending.update(
            used=used, run_used=sc["S"].tolist(), U=U, Ut=Ut, noise=noise,
            kl_before=run._kl_at(ctx, ctx.x0, Ut, noise), fresh_noise=fresh_noise,
            fresh_before=[run._kl_at(ctx, sc["x_f"][None], torch.arange(T), n)[0]
                          for n in fresh_noise], x_f=sc["x_f"],
            queue_before=len(run.queue))

    def after(ctx):
        after_orig(ctx)
        if not pending:
            return
        p = dict(pending)
        pending.clear()
        full_row = run.queue[-1]
        delta = (p["kl_before"] - run._kl_at(ctx, ctx.x0, p["Ut"], p["noise"])).double()
        col = {s: i for i, s in enumerate(p["U"])}

        def reward(S):
            return delta[:, [col[s] for s in S]].sum(1).numpy()

        r_run = reward(p["run_used"])
        compared = p["queue_before"] >= min_rows          # the run's S_used was a selected S
        F_full = f_scores(run, run.queue) if len(run.queue) >= min_rows else None
        rec = {"step": int(ctx.step), "compared": compared, "S_full": list(run.S),
               "row_sum_full": float(full_row.sum()), "est": {}}
        for lab, _, tol in ESTIMATORS:
            out = []
            for r, e in enumerate(est[lab]):
                if e.all_t.due(ctx.step // args.update_every):
                    if lab == FRESH:
                        kl_after = run._kl_at(ctx, p["x_f"][None], torch.arange(T),
                                              p["fresh_noise"][r])[0]
                        row = e.all_t.row(torch.arange(T),
                                          (p["fresh_before"][r] - kl_after).double())
                    elif e.params.all_t_stride > 1:
                        ts = e.all_t.timesteps(gens[lab][r])
                        row = e.all_t.row(ts, full_row[ts])
                    else:
                        row = full_row.clone()
                    e.queue.append(row)
                    del e.queue[: max(0, len(e.queue) - e.params.queue_size)]
                    if len(e.queue) >= min_rows:
                        e.S = e.all_t.select(e.queue, e.params.num_selected)
                    row_sum = float(row.sum())
                else:
                    row_sum = None
                S, Sf = set(e.S), set(run.S)
                m = {"S": list(e.S), "row_sum": row_sum,
                     "overlap": len(S & Sf) / len(Sf),
                     "near": float(np.mean([min(abs(s - x) for x in S) <= tol for s in Sf])),
                     "reward_corr": pearson(reward(p["used"][lab][r]), r_run)}
                if F_full is not None and len(e.queue) >= min_rows:
                    F = f_scores(e, e.queue)
                    m["F_pearson"] = pearson(F, F_full)
                    m["F_spearman"] = float(stats.spearmanr(F, F_full)[0])
                out.append(m)
            rec["est"][lab] = out
        records.append(rec)

    run.before_update, run.after_update = before, after
    tr.run()
    wall = time.perf_counter() - t0

    B, f = args.batch_size, args.update_every
    uniform = 3 * B
    iters = 1000 * f                                   # a whole number of updates and rows
    cost = {"full (the run)": 1 + run.planned_passes(B, iters)[0] / iters / uniform}
    for lab, _, _ in ESTIMATORS:
        e = est[lab][0]
        cost[lab] = 1 + e.planned_passes(B, iters)[0] / iters / uniform

    cmp = [r for r in records if r["compared"]]

    def mean(lab, key):
        v = [m[key] for r in cmp for m in r["est"][lab] if m.get(key) is not None]
        v = [x for x in v if x == x]
        return float(np.mean(v)) if v else float("nan")

    def sum_corr(lab):
        cs = []
        for r in range(args.replicas):
            pairs = [(rec["est"][lab][r]["row_sum"], rec["row_sum_full"]) for rec in records
                     if rec["est"][lab][r]["row_sum"] is not None]
            cs.append(pearson(*zip(*pairs)) if len(pairs) > 2 else float("nan"))
        return float(np.nanmean(cs)) if any(c == c for c in cs) else float("nan")

    full_stable = np.mean([a["S_full"] == b["S_full"] for a, b in zip(records, records[1:])])
    print(f"adaptive_beta low_variance on digits, MLP 128x3, B = {B}, T = {args.timesteps}, "
          f"f_S = {f}: {args.iterations} iterations, {len(records)} updates, {len(cmp)} compared "
          f"(the run's S selected), {args.replicas} replicas; {wall:.0f} s. The full S kept "
          f"from one update to the next: {full_stable:.0%}.\n")
    print("| estimator | row forwards per update | counted fwd-eq/it vs uniform | "
          "S overlap | S_full within ±s | f-score Pearson | f-score Spearman | "
          "row-sum corr | reward corr |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| full (the run) | 2·{run.all_t.size} | {cost['full (the run)']:.3f}× | 1 | 1 | 1 | 1 | "
          f"1 | 1 |")
    for lab, extra, tol in ESTIMATORS:
        e = est[lab][0]
        every = e.params.all_t_every
        fwd = f"2·{e.all_t.size}" + (f" / {every}" if every > 1 else "")
        rs = "—" if extra.get("all_t_stride", 1) == 1 and lab != FRESH else f"{sum_corr(lab):.3f}"
        print(f"| {lab} | {fwd} | {cost[lab]:.3f}× | {mean(lab, 'overlap'):.2f} | "
              f"{mean(lab, 'near'):.2f} (±{tol}) | {mean(lab, 'F_pearson'):.3f} | "
              f"{mean(lab, 'F_spearman'):.3f} | {rs} | {mean(lab, 'reward_corr'):.3f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "wall_s": wall, "cost": cost, "records": records},
                      fh, indent=1)


if __name__ == "__main__":
    main()
