"""What every strategy costs per training iteration, against a bare PyTorch DDPM loop (issue 8).

    python -m bench.perf [--iters 40] [--window N] [--threads 1] [--device cpu|cuda] [--only a,b]
        [--backbone-config YAML] [--batch N] [--timesteps T] [--process ddpm|flow|both] [--bf16]
        [--channels-last] [--fused-adam] [--tf32] [--compile | --compile-mode MODE]
        [--sync-steps 3] [--peak-tflops P]
    python -m bench.perf --eval-share RESULTS_DIR

One process, one model/batch configuration, interleaved: every round runs one window of each
participant, in an order rotated each round, so machine load hits all of them alike. A window is
one step (the default, ``--window 1``: every step timed and waited for) or N consecutive steps
timed with one synchronisation at the end (``--window N``, bench.tools.perf_window: on a GPU the
host queues ahead as in a real run, so overlap shows); per-step times are window time / N.
Participants:

* ``bare``: a dozen lines of plain PyTorch (q_sample, forward, MSE, backward, Adam) — no strategy,
  no grad clip, no EMA, no logging;
* ``trainer:<strategy>`` for every registered strategy (``strategies.names()``; ``compose`` as
  compose(adaptive_beta + min_snr)): one iteration as ``Trainer.run`` makes it (``_phases``: the
  step, the on-device log tally, the hooks; no log row or checkpoint is due).

Periodic work is amortised over its real period: ``adaptive_beta`` (and the compose) update the
policy every f_S = 40 steps and the timed window is a whole multiple of 40 steps, so it holds exactly
``iters / 40`` updates; ``grad_variance`` is built with ``refresh_every = iters`` so the window holds
one refresh, whose extra cost is then spread over the default period of 500 steps. Amortised cost =
median(ordinary steps) + (mean(periodic steps) − median(ordinary steps)) / period (windows:
``perf_window.amortise``, per step of the windows without periodic work); ratios are
amortised / median(bare). The window mean of the adaptive runs is printed too. Beside the
measured times: the counted forward-equivalents per iteration (bench.core.cost, fwd + 2·bwd through
the diffusion network, amortised the same way; the bare loop counts B forwards and B backwards) and
their ratio to the bare loop's, so how well the count predicts time on this machine is visible (the
difference is the work the count leaves out: a policy network, EMA, clipping, Python overhead).
``syncs/step``: host synchronisations per steady-state step, counted by ``SyncWatch`` over
``--sync-steps`` steps of each participant after the warm-up (outside the timed windows). MFU
(CUDA, or wherever ``--peak-tflops`` is given): the FLOPs of one bare training step (forward and
backward, torch's FLOP counter, eager) / amortised step time / the bf16 dense peak (default: a
table by GPU name, bench.tools.perf_window.PEAK_BF16_TFLOPS).

Defaults: CPU, the digits UNet (ch 32, ch_mult [1, 2], 1 res block, no attention, dropout 0.1),
batch 64, T = 1000; on CUDA the CIFAR-10 UNet (``backbones.unet.CIFAR10``) at batch 128.
``--eval-share`` instead reads a results tree (``bench.analysis``) and prints the share of the
wall-clock spent evaluating (evals.csv ``wall_s_eval``) vs training (metrics.jsonl ``wall_s_train``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
import yaml

import strategies
from backbones.unet import CIFAR10
from bench.analysis.eval_share import eval_share
from bench.config.files import resolve, yaml_load
from bench.config.sections import COMPILE_MODES
from bench.core.cost import forward_equivalents
from bench.tools import cost_table
from bench.tools.bare_loop import BareLoop
from bench.tools.perf_window import amortise, default_peak, mfu, sync, syncs_per_step, \
    timed_window
from bench.train.trainer import Trainer

DIGITS_UNET = {"name": "unet", "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
               "attn_resolutions": [], "dropout": 0.1}
GRAD_VARIANCE_PERIOD = 500          # grad_variance's default refresh_every


def default_setup(device: str) -> dict:
    if device == "cuda":
        bb = {"name": "unet", **{k: list(v) if isinstance(v, tuple) else v
                                 for k, v in CIFAR10.items()}}
        return {"dataset": {"name": "cifar10"}, "backbone": bb, "batch_size": 128}
    return {"dataset": {"name": "digits"}, "backbone": dict(DIGITS_UNET), "batch_size": 64}


def strategy_configs(iters: int) -> dict[str, dict]:
    """name → strategy config, for every registered strategy."""
    out = {}
    for name in strategies.names():
        if name == "compose":
            out["compose(adaptive_beta+min_snr)"] = {
                "name": "compose", "sampler": {"name": "adaptive_beta"},
                "weighting": {"name": "min_snr"}}
        elif name == "grad_variance":
            out[name] = {"name": name, "refresh_every": iters}
        else:
            out[name] = {"name": name}
    return out


def period_of(label: str) -> tuple[int, int] | None:
    """(period in the run, period to amortise over) of a strategy's periodic work, or None."""
    if "adaptive_beta" in label:
        return 40, 40
    if label == "grad_variance":
        return None          # set by the caller (refresh_every = iters)
    return None


def run_config(setup: dict, strategy: dict, T: int, device: str, opts: dict,
               process: str = "ddpm") -> dict:
    return resolve({
        "name": "perf", "seed": 0, "dataset": setup["dataset"], "backbone": setup["backbone"],
        "strategy": strategy, "diffusion": {"schedule": "linear", "timesteps": T},
        "process": {"name": process},
        "eval": {"sampler": "euler" if process == "flow" else "ddim"},
        "train": {"iterations": 10**9, "batch_size": setup["batch_size"], "lr": 2e-4,
                  "log_every": 10**9, "ckpt_every": 10**9, "device": device,
                  "bf16": opts["bf16"], "channels_last": opts["channels_last"],
                  "fused_optimizer": opts["fused_adam"], "tf32": opts.get("tf32", False),
                  "compile": opts["compile"]}})


def trainer_step(tr) -> Callable[[], None]:
    """One iteration as ``Trainer.run`` makes it (nothing written: no log row or checkpoint is
    due before step 10⁹)."""
    return lambda: tr._phases(10**9)


def split_label(label: str) -> tuple[str, str]:
    """``uniform@flow`` → (uniform, flow); a label without ``@`` is DDPM's."""
    name, _, process = label.partition("@")
    return name, process or "ddpm"


def benchmark(iters: int = 40, device: str = "cpu", only: list[str] | None = None,
              setup: dict | None = None, T: int = 1000, warmup: int = 2,
              opts: dict | None = None, log: Callable[[str], None] | None = None,
              process: str = "ddpm", window: int = 1, sync_steps: int = 3,
              peak: float | None = None) -> list[dict]:
    """Rows {run, median_ms, amortised_ms, ratio, fe_per_it, fe_ratio, periodic_ms, n_periodic,
    period, window_mean_ms, window, syncs_per_step, flops_per_step, mfu}: ``iters`` steps of each
    participant in windows of ``window`` steps (one synchronisation each); ``peak`` (TFLOP/s)
    defaults to the GPU's bf16 peak (none on the CPU: no MFU)."""
    opts = {"bf16": False, "channels_last": False, "fused_adam": False, "compile": False,
            "tf32": False, **(opts or {})}
    if iters <= 0 or iters % 40:
        raise ValueError(f"--iters must be a multiple of 40 (adaptive_beta's f_S) and "
                         f"positive, got {iters}")
    if window <= 0 or iters % window:
        raise ValueError(f"--window must be a positive divisor of --iters ({iters}), got {window}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    peak = peak or default_peak(dev)
    setup = setup or default_setup(device)
    import sklearn.feature_selection  # noqa: F401  (one-off import outside the timed window)

    suffixes = {"ddpm": [""], "flow": ["@flow"], "both": ["", "@flow"]}[process]
    configs = {f"{k}{s}": v for s in suffixes for k, v in strategy_configs(iters).items()}
    bares = ["bare"] + (["bare@flow"] if "@flow" in suffixes else [])   # ratios: against bare
    if only:
        unknown = [o for o in only if o not in configs and o not in bares]
        if unknown:
            raise ValueError(f"--only: unknown {', '.join(unknown)}; valid: "
                             f"{', '.join([*bares, *configs])}")
        configs = {k: v for k, v in configs.items() if k in only}
    steps: dict[str, Callable[[], None]] = {}
    trainers = {}
    flops = None
    with tempfile.TemporaryDirectory() as tmp:
        for b in bares:
            bare_cfg = run_config(setup, {"name": "uniform"}, T, device, opts, split_label(b)[1])
            loop = BareLoop(bare_cfg, dev, opts)
            steps[b] = loop.step
            if b == "bare" and peak:
                flops = loop.flops()
        for label, scfg in configs.items():
            cfg = run_config(setup, scfg, T, device, opts, split_label(label)[1])
            try:
                tr = Trainer(cfg, Path(tmp) / label.replace("(", "_").replace(")", "_").replace(
                    "+", "_").replace("@", "_"), progress=False)
            except ValueError as e:              # a strategy refused on this process
                if log:
                    log(f"  {label}: skipped ({e})")
                continue
            trainers[label] = tr
            steps[label] = trainer_step(tr)
        names = list(steps)
        for _ in range(warmup):
            for n in names:
                steps[n]()
        syncs = {n: syncs_per_step(steps[n], sync_steps) for n in names}
        sync(cuda)
        cost0 = {n: dict(tr.cost) for n, tr in trainers.items()}
        times = {n: [] for n in names}
        flags = {n: [] for n in names}           # periodic steps in each window
        rounds = iters // window
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                per = _period(n, iters)
                k = 0
                if n in trainers and per is not None:
                    s0 = trainers[n].step
                    k = sum((s0 + i) % per[0] == 0 for i in range(window))
                flags[n].append(k)
                times[n].append(timed_window(steps[n], window, cuda))
            if log and (r + 1) % max(1, 10 // window) == 0:
                log(f"  round {r + 1}/{rounds}")
    B = setup["batch_size"]
    bare_fe = forward_equivalents(B, B)            # the bare loop: B forwards, B backwards
    stats = {n: amortise(times[n], flags[n], window, (_period(n, iters) or (0, 1))[1])
             for n in names}
    bare_ms = 1e3 * stats["bare"]["median"]
    rows = []
    for n in names:
        a, per = stats[n], _period(n, iters)
        fe = bare_fe if n in bares else _counted_fe(cost0[n], trainers[n].cost, iters,
                                                    a["n_periodic"], per)
        rows.append({"run": n if n in bares else f"trainer: {n}", "median_ms": 1e3 * a["median"],
                     "amortised_ms": 1e3 * a["amortised"], "ratio": 1e3 * a["amortised"] / bare_ms,
                     "fe_per_it": fe, "fe_ratio": fe / bare_fe,
                     "periodic_ms": None if a["periodic"] is None else 1e3 * a["periodic"],
                     "n_periodic": a["n_periodic"], "period": per[1] if per else None,
                     "window_mean_ms": 1e3 * a["mean"], "window": window,
                     "syncs_per_step": syncs[n], "flops_per_step": flops,
                     "mfu": mfu(flops, a["amortised"], peak)})
    return rows


def _counted_fe(before: dict, after: dict, iters: int, n_periodic: int,
                per: tuple[int, int] | None) -> float:
    """Counted forward-equivalents per iteration over the timed window (bench.core.cost), the
    strategy's periodic passes amortised over the same period as the times."""
    d = {k: after[k] - before[k] for k in after}
    train = forward_equivalents(d["fwd_train"], d["bwd_train"]) / iters
    strat = forward_equivalents(d["fwd_strategy"], d["bwd_strategy"])
    if per is not None and n_periodic:
        return train + strat / n_periodic / per[1]
    return train + strat / iters


def _period(label: str, iters: int) -> tuple[int, int] | None:
    name = split_label(label)[0]
    if name == "grad_variance":
        return iters, GRAD_VARIANCE_PERIOD
    return period_of(name)


def markdown(rows: list[dict]) -> str:
    """The table; the syncs/step column when counted, the MFU column when known."""
    has_syncs = any(r.get("syncs_per_step") is not None for r in rows)
    has_mfu = any(r.get("mfu") is not None for r in rows)
    head = ["run", "median ms/it", "periodic step ms (n, amortised over)", "amortised ms/it",
            "ratio vs bare", "counted fwd-equiv./it", "counted ratio vs bare"]
    head += ["syncs/step"] * has_syncs + ["MFU (bf16 peak)"] * has_mfu
    out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for r in rows:
        per = (f"{r['periodic_ms']:.0f} ({r['n_periodic']}, every {r['period']})"
               if r["periodic_ms"] is not None else "–")
        cells = [r["run"], f"{r['median_ms']:.1f}", per, f"{r['amortised_ms']:.1f}",
                 f"{r['ratio']:.3f}×", f"{r['fe_per_it']:.1f}", f"{r['fe_ratio']:.3f}×"]
        if has_syncs:
            s = r.get("syncs_per_step")
            cells.append("–" if s is None else f"{s:g}")
        if has_mfu:
            cells.append("–" if r.get("mfu") is None else f"{100 * r['mfu']:.1f} %")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=40,
                    help="timed steps of each participant (multiple of 40)")
    ap.add_argument("--window", type=int, default=1,
                    help="steps per timed window, one synchronisation at its end (divides "
                         "--iters; 1: every step timed and waited for)")
    ap.add_argument("--sync-steps", type=int, default=3,
                    help="steps of each participant counted by SyncWatch (0: no syncs/step)")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="peak TFLOP/s for the MFU column (default on CUDA: the bf16 dense peak "
                         "of H100/H200/A100 by device name; none on the CPU)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--only", default="", help="comma-separated labels (bare is always run)")
    ap.add_argument("--backbone-config", default="",
                    help="YAML/JSON mapping (or a file holding one) for the backbone section")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--process", default="ddpm", choices=["ddpm", "flow", "both"],
                    help="flow: every participant on flow matching (labels end in @flow; the "
                         "ratios stay against DDPM's bare loop); both: DDPM and flow interleaved")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--fused-adam", action="store_true",
                    help="CUDA: Adam(fused=True) everywhere (train.fused_optimizer)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the training forward (mode default)")
    ap.add_argument("--compile-mode", default="", choices=["", *COMPILE_MODES],
                    help="torch.compile with this mode (train.compile; reduce-overhead: CUDA "
                         "graphs); implies --compile")
    ap.add_argument("--tf32", action="store_true", help="CUDA: TF32 matmul/conv (train.tf32)")
    ap.add_argument("--eval-share", default="", metavar="RESULTS_DIR",
                    help="print the evaluation share of a results tree instead")
    ap.add_argument("--out", default="", metavar="FILE",
                    help="also write the measured table as a cost table (JSON) for `python -m "
                         "bench.sweep SWEEP --dry-run --cost-table FILE`; an existing table "
                         "keeps its rows of other settings")
    args = ap.parse_args(argv)
    if args.out and args.eval_share:
        ap.error("--out writes the measured table; it does not go with --eval-share")
    for name in ("threads", "timesteps"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here; use --device cpu")
    for name in ("warmup", "batch", "sync_steps", "peak_tflops"):
        if getattr(args, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    try:
        if args.out:
            cost_table.check_out(Path(args.out))      # before measuring
        return _run(args)
    except (FileNotFoundError, ValueError) as e:      # ConfigError, ReportError, YAML alike
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args) -> int:
    if args.eval_share:
        r = eval_share(args.eval_share)
        print(f"{args.eval_share}: {r['runs']} runs, evaluation {r['eval_s']:.1f} s, training "
              f"{r['train_s']:.1f} s → evaluation share {100 * r['eval_share']:.1f} %")
        return 0
    torch.set_num_threads(args.threads)
    setup = default_setup(args.device)
    if args.backbone_config:
        p = Path(args.backbone_config)
        try:
            setup["backbone"] = yaml_load(p.read_text() if p.exists() else args.backbone_config)
        except yaml.YAMLError as e:
            raise ValueError(f"--backbone-config: not YAML ({e})") from e
        if not isinstance(setup["backbone"], dict) or "name" not in setup["backbone"]:
            raise ValueError(f"--backbone-config must be a mapping with a 'name', got "
                             f"{args.backbone_config!r}")
    if args.dataset:
        setup["dataset"] = {"name": args.dataset}
    if args.batch:
        setup["batch_size"] = args.batch
    opts = {"bf16": args.bf16, "channels_last": args.channels_last,
            "fused_adam": args.fused_adam, "tf32": args.tf32,
            "compile": args.compile_mode or args.compile}
    only = [s for s in args.only.split(",") if s] or None
    print(f"device={args.device} threads={args.threads} dataset={setup['dataset']['name']} "
          f"backbone={json.dumps(setup['backbone'])} batch={setup['batch_size']} "
          f"T={args.timesteps} iters={args.iters} window={args.window} opts={opts} "
          f"torch={torch.__version__}", flush=True)
    rows = benchmark(args.iters, args.device, only, setup, args.timesteps, args.warmup, opts,
                     log=lambda s: print(s, file=sys.stderr, flush=True), process=args.process,
                     window=args.window, sync_steps=args.sync_steps,
                     peak=args.peak_tflops or None)
    if rows[0]["flops_per_step"]:
        print(f"FLOPs per training step (bare, forward + backward, torch's counter): "
              f"{rows[0]['flops_per_step'] / 1e9:.2f} GFLOP")
    print(markdown(rows))
    if args.out:
        table = cost_table.table_rows(rows, strategy_configs(args.iters), setup, args.device,
                                      opts, args.timesteps, args.iters, args.tf32)
        try:
            cost_table.write_cost_table(args.out, table)
        except OSError as e:
            print(f"error: --out {args.out}: {e}", file=sys.stderr)
            return 2
        print(f"cost table: {len(table)} rows ({table[0]['device_name']}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
