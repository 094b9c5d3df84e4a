"""What every strategy costs per training iteration, against a bare PyTorch DDPM loop (issue 8).

    python -m bench.perf [--iters 40] [--threads 1] [--device cpu|cuda] [--only a,b]
        [--backbone-config YAML] [--batch N] [--timesteps T] [--process ddpm|flow|both] [--bf16]
        [--channels-last] [--fused-adam] [--compile]
    python -m bench.perf --eval-share RESULTS_DIR

One process, one model/batch configuration, interleaved: every round runs one iteration of each
participant, in an order rotated each round, so machine load hits all of them alike. Participants:

* ``bare``: a dozen lines of plain PyTorch (q_sample, forward, MSE, backward, Adam) — no strategy,
  no grad clip, no EMA, no logging;
* ``trainer:<strategy>`` for every registered strategy (``strategies.names()``; ``compose`` as
  compose(adaptive_beta + min_snr)): ``Trainer.train_step`` + the per-step log accumulation, i.e.
  what ``Trainer.run`` does per iteration (checkpoints and log rows excluded).

Periodic work is amortised over its real period: ``adaptive_beta`` (and the compose) update the
policy every f_S = 40 steps and the timed window is a whole multiple of 40 steps, so it holds exactly
``iters / 40`` updates; ``grad_variance`` is built with ``refresh_every = iters`` so the window holds
one refresh, whose extra cost is then spread over the default period of 500 steps. Amortised cost =
median(ordinary steps) + (mean(periodic steps) − median(ordinary steps)) / period; ratios are
amortised / median(bare). The window mean of the adaptive runs is printed too. Beside the
measured times: the counted forward-equivalents per iteration (bench.core.cost, fwd + 2·bwd through
the diffusion network, amortised the same way; the bare loop counts B forwards and B backwards) and
their ratio to the bare loop's, so how well the count predicts time on this machine is visible (the
difference is the work the count leaves out: a policy network, EMA, clipping, Python overhead).

Defaults: CPU, the digits UNet (ch 32, ch_mult [1, 2], 1 res block, no attention, dropout 0.1),
batch 64, T = 1000; on CUDA the CIFAR-10 UNet (``backbones.unet.CIFAR10``) at batch 128.
``--eval-share`` instead reads a results tree (``bench.analysis``) and prints the share of the
wall-clock spent evaluating (evals.csv ``wall_s_eval``) vs training (metrics.jsonl ``wall_s_train``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import yaml

import backbones
import strategies
from backbones.unet import CIFAR10
from bench.analysis.eval_share import eval_share
from bench.config.files import resolve, yaml_load
from bench.core.cost import forward_equivalents
from bench.core import processes
from bench.data import datasets
from bench.tools import cost_table
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
                  "bf16": opts["bf16"], "channels_last": opts["channels_last"]}})


class BareLoop:
    """The reference: plain PyTorch DDPM training on the same data, model and batch size."""

    def __init__(self, cfg: dict, device: torch.device, opts: dict):
        torch.manual_seed(0)
        self.data = datasets.build(cfg["dataset"]["name"],
                                   {k: v for k, v in cfg["dataset"].items() if k != "name"})
        self.model = backbones.build(cfg["backbone"]["name"], self.data.shape,
                                     {k: v for k, v in cfg["backbone"].items() if k != "name"})
        self.model.to(device)
        self.cl = opts["channels_last"] and self.data.is_image
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.process = processes.build(cfg["diffusion"], cfg["process"])
        kw = {"fused": True} if opts["fused_adam"] and device.type == "cuda" else {}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg["train"]["lr"], **kw)
        self.net = torch.compile(self.model) if opts["compile"] else self.model
        self.B, self.device, self.bf16 = cfg["train"]["batch_size"], device, opts["bf16"]
        self.g = torch.Generator().manual_seed(1)
        self.perm, self.pos = None, 0

    def step(self) -> None:
        n = len(self.data.train)
        if self.perm is None or self.pos + self.B > n:
            self.perm, self.pos = torch.randperm(n, generator=self.g), 0
        x0 = self.data.train.get(self.perm[self.pos:self.pos + self.B]).to(self.device)
        self.pos += self.B
        pr = self.process
        t = torch.randint(0, pr.grid.size, (self.B,), device=self.device)
        noise = torch.randn_like(x0)
        x_t = pr.noised(x0, t, noise)
        if self.cl:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.net(x_t, pr.model_time(t))
        loss = pr.loss(pred, pr.target(x0, noise)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _trainer_step(tr) -> Callable[[], None]:
    def step() -> None:
        out = tr.train_step()
        tr._accumulate(out)
    return step


def _timed(fn: Callable[[], None], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def split_label(label: str) -> tuple[str, str]:
    """``uniform@flow`` → (uniform, flow); a label without ``@`` is DDPM's."""
    name, _, process = label.partition("@")
    return name, process or "ddpm"


def benchmark(iters: int = 40, device: str = "cpu", only: list[str] | None = None,
              setup: dict | None = None, T: int = 1000, warmup: int = 2,
              opts: dict | None = None, log: Callable[[str], None] | None = None,
              process: str = "ddpm") -> list[dict]:
    """Rows {run, median_ms, amortised_ms, ratio, fe_per_it, fe_ratio, periodic_ms, n_periodic,
    period, window_mean_ms}."""
    opts = {"bf16": False, "channels_last": False, "fused_adam": False, "compile": False,
            **(opts or {})}
    if iters <= 0 or iters % 40:
        raise ValueError(f"--iters must be a multiple of 40 (adaptive_beta's f_S) and "
                         f"positive, got {iters}")
    dev = torch.device(device)
    cuda = dev.type == "cuda"
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
    with tempfile.TemporaryDirectory() as tmp:
        for b in bares:
            bare_cfg = run_config(setup, {"name": "uniform"}, T, device, opts, split_label(b)[1])
            steps[b] = BareLoop(bare_cfg, dev, opts).step
        for label, scfg in configs.items():
            cfg = run_config(setup, scfg, T, device, opts, split_label(label)[1])
            try:
                tr = Trainer(cfg, Path(tmp) / label.replace("(", "_").replace(")", "_").replace(
                    "+", "_").replace("@", "_"), progress=False)
            except ValueError as e:              # a strategy refused on this process
                if log:
                    log(f"  {label}: skipped ({e})")
                continue
            if cuda and opts["fused_adam"]:
                tr.opt = torch.optim.Adam(tr.model.parameters(), lr=tr.tr.lr,
                                          betas=tuple(tr.tr.betas), fused=True)
            if opts["compile"]:
                tr.net = torch.compile(tr.model)
            trainers[label] = tr
            steps[label] = _trainer_step(tr)
        names = list(steps)
        for _ in range(warmup):
            for n in names:
                steps[n]()
        cost0 = {n: dict(tr.cost) for n, tr in trainers.items()}
        times = {n: [] for n in names}
        flags = {n: [] for n in names}
        for r in range(iters):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                per = _period(n, iters)
                if n in trainers and per is not None:
                    flags[n].append(trainers[n].step % per[0] == 0)
                else:
                    flags[n].append(False)
                times[n].append(_timed(steps[n], cuda))
            if log and (r + 1) % 10 == 0:
                log(f"  round {r + 1}/{iters}")
    bare_ms = 1e3 * statistics.median(times["bare"])
    B = setup["batch_size"]
    bare_fe = forward_equivalents(B, B)            # the bare loop: B forwards, B backwards
    rows = []
    for n in names:
        ts, fl = times[n], flags[n]
        plain = [t for t, f in zip(ts, fl) if not f]
        periodic = [t for t, f in zip(ts, fl) if f]
        med = statistics.median(plain)
        per = _period(n, iters)
        amort = med
        if periodic:
            amort = med + (statistics.mean(periodic) - med) / per[1]
        fe = bare_fe if n in bares else _counted_fe(cost0[n], trainers[n].cost, iters,
                                                    len(periodic), per)
        rows.append({"run": n if n in bares else f"trainer: {n}", "median_ms": 1e3 * med,
                     "amortised_ms": 1e3 * amort, "ratio": 1e3 * amort / bare_ms,
                     "fe_per_it": fe, "fe_ratio": fe / bare_fe,
                     "periodic_ms": 1e3 * statistics.mean(periodic) if periodic else None,
                     "n_periodic": len(periodic), "period": per[1] if per else None,
                     "window_mean_ms": 1e3 * statistics.mean(ts)})
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
    out = ["| run | median ms/it | periodic step ms (n, amortised over) | amortised ms/it | "
           "ratio vs bare | counted fwd-equiv./it | counted ratio vs bare |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per = (f"{r['periodic_ms']:.0f} ({r['n_periodic']}, every {r['period']})"
               if r["periodic_ms"] is not None else "–")
        out.append(f"| {r['run']} | {r['median_ms']:.1f} | {per} | {r['amortised_ms']:.1f} | "
                   f"{r['ratio']:.3f}× | {r['fe_per_it']:.1f} | {r['fe_ratio']:.3f}× |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=40, help="timed rounds (multiple of 40)")
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
    ap.add_argument("--fused-adam", action="store_true", help="CUDA: Adam(fused=True) everywhere")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    ap.add_argument("--tf32", action="store_true", help="CUDA: TF32 matmul/conv")
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
    for name in ("warmup", "batch"):
        if getattr(args, name) < 0:
            ap.error(f"--{name} must be >= 0, got {getattr(args, name)}")
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
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
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
            "fused_adam": args.fused_adam, "compile": args.compile}
    only = [s for s in args.only.split(",") if s] or None
    print(f"device={args.device} threads={args.threads} dataset={setup['dataset']['name']} "
          f"backbone={json.dumps(setup['backbone'])} batch={setup['batch_size']} "
          f"T={args.timesteps} iters={args.iters} opts={opts} torch={torch.__version__}",
          flush=True)
    rows = benchmark(args.iters, args.device, only, setup, args.timesteps, args.warmup, opts,
                     log=lambda s: print(s, file=sys.stderr, flush=True), process=args.process)
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
