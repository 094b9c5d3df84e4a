"""One prepared performance check for one GPU (issue 28, item 6): ≤ 8 minutes on an H200.

    python scripts/gpu_perf_check.py [--budget-s 450] [--cifar-root data/cifar10] [--synthetic]
        [--window 10] [--rounds 5] [--cheap-stride 8] [--cheap-every 2] [--peak-tflops P]
    python scripts/gpu_perf_check.py --device cpu --quick        # the CPU smoke run (< 1 min)

Everything in one process, printed as it is measured and again as tables at the end:

1. Throughput of the DDPM CIFAR-10 UNet (``backbones.unet.CIFAR10``, 35.7M) at batch 128: the bare
   loop (bench.tools.bare_loop) vs the trainer (strategy uniform) in each precision — fp32, TF32,
   bf16 (+ TF32, channels_last, fused Adam) — and each compile mode: eager, ``torch.compile``
   (default), ``reduce-overhead`` (CUDA graphs). Per cell the two participants alternate in
   windows of ``--window`` steps with one synchronisation each (bench.tools.perf_window),
   ``--rounds`` windows each. Columns: ms/it (median window / N), the ratio to the bare loop of
   the same cell, the speed-up over the eager bare loop of the same precision, MFU (FLOPs of one
   bare step by torch's counter / step time / the bf16 dense peak), syncs/step (``SyncWatch``
   over 3 steady steps) and, on CUDA, 3 steps under ``torch.cuda.set_sync_debug_mode("error")``.
2. adaptive_beta's policy update (fp32, TF32 off): one update's extra time over an ordinary step
   and its counted forwards, with ``chunk_size`` 256 (today), batched (one evaluation per phase)
   and the cheap estimator (``all_t_stride``, ``all_t_every``), and what each adds at f_S = 40.
3. The reward (Σ_S ΔKL per example) and the all-T row ΔKL_t, in eval mode with fixed noise on
   the same (θ_k, θ_k+1), in fp32 vs TF32 vs bf16 autocast: max |difference| vs fp32.

Data: CIFAR-10 from ``--cifar-root`` when it is there, else (or with ``--synthetic``) a fixed
random tensor of CIFAR's shape (throughput does not depend on the pixels); the output says which.
Every section runs under the remaining ``--budget-s`` (counted from the end of the setup: data,
model, FLOP count; skipped when its estimate no longer fits,
stopped by an alarm when the budget runs out) and inside try/except, so one failure never loses
the others. Cheapest first: the eager cells, the adaptive update, the reward, then the compiled
cells (bf16 first). CUDA-only rows (TF32, compile, CUDA graphs, the sync debug mode) are skipped
on the CPU with the reason printed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sklearn.feature_selection  # noqa: E402,F401  (adaptive_beta's one-off import, up front)

import strategies  # noqa: E402
from backbones.unet import CIFAR10  # noqa: E402
from bench.core.cost import forward_equivalents  # noqa: E402
from bench.data import datasets  # noqa: E402
from bench.tools import perf  # noqa: E402
from bench.tools.bare_loop import BareLoop  # noqa: E402
from bench.tools.perf_window import (default_peak, mfu, sync, syncs_per_step,  # noqa: E402
                                     timed_window)
from bench.train.trainer import Trainer  # noqa: E402

PRECISIONS = {  # name -> speed options (bench.tools.perf opts)
    "fp32": {"bf16": False, "tf32": False, "channels_last": False, "fused_adam": False},
    "tf32": {"bf16": False, "tf32": True, "channels_last": False, "fused_adam": False},
    "bf16": {"bf16": True, "tf32": True, "channels_last": True, "fused_adam": True},
}
MODES = {"eager": False, "compile": "default", "cuda-graphs": "reduce-overhead"}
CELLS = ([(p, "eager") for p in PRECISIONS]
         + [(p, m) for p in ("bf16", "tf32", "fp32") for m in ("compile", "cuda-graphs")])
EST_S = {"eager": 25, "compile": 90, "cuda-graphs": 100, "adaptive": 60, "reward": 20}
QUICK_UNET = {"name": "unet", "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
              "attn_resolutions": [], "dropout": 0.1}
QUICK_POLICY = {"conv_channels": [4, 4, 4], "hidden_dim": 16}   # adaptive_beta's, --quick
COLUMNS = ("precision", "compile", "run", "ms/it", "ratio vs bare", "speed-up vs eager bare",
           "MFU", "syncs/step", "sync debug")
ADAPTIVE_HEAD = ("| adaptive_beta update | update ms (extra over a step) | ordinary step ms | "
                 "counted forwards / update | + time at f_S = 40 | counted ratio at f_S = 40 |\n"
                 "|---|---:|---:|---:|---:|---:|")
REWARD_HEAD = ("| reward precision | max abs diff of the reward vs fp32 | relative to max abs "
               "fp32 reward | max abs diff of the all-T row vs fp32 | same top-k of the row as "
               "fp32 |\n|---|---:|---:|---:|---|")


class OutOfBudget(Exception):
    pass


class Budget:
    def __init__(self, seconds: float, quick: bool):
        self.end, self.quick = time.monotonic() + seconds, quick

    def left(self) -> float:
        return self.end - time.monotonic()

    def run(self, name: str, kind: str, fn):
        """fn() if its estimate fits the budget left; failures and the alarm printed, not raised."""
        est, left = (1 if self.quick else EST_S[kind]), self.left()
        if left < est:
            print(f"[{name}] skipped: {max(left, 0):.0f} s of the budget left, it needs ~{est} s",
                  flush=True)
            return None
        t0 = time.monotonic()
        alarm = hasattr(signal, "setitimer")
        if alarm:
            def ring(*_):
                raise OutOfBudget()
            old = signal.signal(signal.SIGALRM, ring)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1.0))
        try:
            return fn()
        except OutOfBudget:
            print(f"[{name}] stopped: the budget ran out", flush=True)
        except Exception as e:                     # one failure never loses the rest
            where = [f for f in traceback.extract_tb(e.__traceback__)
                     if "/torch/" not in f.filename][-1:]
            at = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
            print(f"[{name}] FAILED{at}: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                  flush=True)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            print(f"[{name}] {time.monotonic() - t0:.1f} s", flush=True)
        return None


# ---------------------------------------------------------------------------- setting
def pick_data(args) -> tuple[dict, str]:
    """The dataset section and a sentence saying which data is used."""
    why = "--synthetic"
    if not args.synthetic:
        try:
            n = len(datasets.build("cifar10", {"root": args.cifar_root}).train)
            return ({"name": "cifar10", "root": args.cifar_root},
                    f"CIFAR-10 from {args.cifar_root} ({n} training images)")
        except FileNotFoundError:
            why = f"CIFAR-10 not found under {args.cifar_root!r}"
        except Exception as e:                     # e.g. torchvision missing
            why = f"CIFAR-10 not usable: {type(e).__name__}: {str(e).splitlines()[0][:100]}"
    n = 256 if args.quick else 2048
    if "synthetic_cifar" not in datasets.names():
        @datasets.register("synthetic_cifar")
        def synthetic_cifar(n: int = n) -> datasets.DataSource:
            x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
            return datasets.DataSource("synthetic_cifar", datasets.TensorSplit(x),
                                       datasets.TensorSplit(x[:64]), (3, 32, 32))
    return {"name": "synthetic_cifar"}, f"synthetic random ({n}, 3, 32, 32) in [-1, 1] ({why})"


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def cpu_skip(cuda: bool, precision: str, mode: str) -> str | None:
    """Why a cell does not run here, or None."""
    if cuda:
        return None
    if precision == "tf32":
        return "TF32 is a CUDA setting"
    if mode != "eager":
        return ("CUDA graphs need CUDA" if mode == "cuda-graphs" else
                "compile rows run on CUDA only here (inductor's CPU build takes minutes)")
    return None


# ---------------------------------------------------------------------------- 1. throughput
def sync_debug(step, cuda: bool) -> str:
    """3 steps under torch.cuda.set_sync_debug_mode("error"): pass, or the first failure."""
    if not cuda:
        return "– (CUDA only)"
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            step()
        sync(cuda)
        return "pass"
    except RuntimeError as e:
        where = [f for f in traceback.extract_tb(e.__traceback__) if "/torch/" not in f.filename]
        at = f" at {Path(where[-1].filename).name}:{where[-1].lineno}" if where else ""
        return f"FAIL{at}: {str(e).splitlines()[0][:120]}"
    finally:
        torch.cuda.set_sync_debug_mode(0)


def run_cell(env: dict, precision: str, mode: str) -> list[dict]:
    cuda, dev = env["cuda"], env["device"]
    torch._dynamo.reset()                        # fresh compile caches per cell
    opts = {**PRECISIONS[precision], "compile": MODES[mode]}
    cfg = perf.run_config(env["setup"], {"name": "uniform"}, env["T"], dev.type, opts)
    bare = BareLoop(cfg, dev, opts)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, tmp, progress=False)
        set_tf32(opts["tf32"] and cuda)
        parts = {"bare": bare.step, "trainer: uniform": perf.trainer_step(tr)}
        for step in parts.values():              # warm-up (compiles, captures graphs)
            for _ in range(env["warmup"] + (2 if mode != "eager" else 0)):
                step()
        sync(cuda)
        times = {n: [] for n in parts}
        names = list(parts)
        for r in range(env["rounds"]):
            for n in names[r % 2:] + names[:r % 2]:
                times[n].append(timed_window(parts[n], env["window"], cuda))
        rows = []
        for n, step in parts.items():
            s = statistics.median(times[n]) / env["window"]
            try:
                syncs = syncs_per_step(step, 3)
            except Exception as e:
                syncs = f"n/a ({type(e).__name__})"
            rows.append({"precision": precision, "compile": mode, "run": n, "s": s,
                         "mfu": mfu(env["flops"], s, env["peak"]), "syncs": syncs,
                         "sync_debug": sync_debug(step, cuda)})
    bare_s = rows[0]["s"]
    if mode == "eager":
        env["eager_bare"][precision] = bare_s
    eager = env["eager_bare"].get(precision)
    for r in rows:
        r["ratio"] = r["s"] / bare_s
        r["speedup"] = eager / r["s"] if eager else None
        print(table_line(r), flush=True)
    env["rows"] += rows
    return rows


def fmt(v, spec: str, unit: str = "") -> str:
    return "–" if v is None else v if isinstance(v, str) else f"{v:{spec}}{unit}"


def table_line(r: dict) -> str:
    cells = [r["precision"], r["compile"], r["run"], fmt(1e3 * r["s"], ".1f"),
             fmt(r["ratio"], ".3f", "×"), fmt(r["speedup"], ".2f", "×"),
             fmt(None if r["mfu"] is None else 100 * r["mfu"], ".1f", " %"),
             fmt(r["syncs"], "g"), r["sync_debug"]]
    return "| " + " | ".join(cells) + " |"


# ---------------------------------------------------------------------------- 2. the update
def adaptive_update(env: dict, args) -> None:
    """One policy update's extra time and counted forwards, per evaluation setting."""
    cuda, dev, B, T = env["cuda"], env["device"], env["setup"]["batch_size"], env["T"]
    P = strategies.get("adaptive_beta").Params
    fields = {f.name for f in dataclasses.fields(P)}
    k = P().num_selected
    try:
        P(chunk_size="all")
        batched = "all"
    except Exception:                            # no "all" option (yet): one chunk holds all
        batched = k * B + T
    variants = [("chunked (chunk_size 256)", {"chunk_size": 256}),
                (f"batched (chunk_size {batched})", {"chunk_size": batched})]
    if {"all_t_stride", "all_t_every"} <= fields:
        variants.append((f"cheap (all_t_stride {args.cheap_stride}, all_t_every "
                         f"{args.cheap_every}, chunk_size {batched})",
                         {"chunk_size": batched, "all_t_stride": args.cheap_stride,
                          "all_t_every": args.cheap_every}))
    else:
        print("[adaptive update] cheap estimator skipped: adaptive_beta has no all_t_stride / "
              "all_t_every parameters in this tree", flush=True)
    F, n_upd = 3 if args.quick else 5, 2 * args.cheap_every
    opts = {**PRECISIONS["fp32"], "compile": False}
    print(ADAPTIVE_HEAD, flush=True)
    for label, params in variants:
        strat = {"name": "adaptive_beta", "update_every": F, **params,
                 **(QUICK_POLICY if args.quick else {})}
        cfg = perf.run_config(env["setup"], strat, T, dev.type, opts)
        with tempfile.TemporaryDirectory() as tmp:
            tr = Trainer(cfg, tmp, progress=False)
            set_tf32(False)
            step = perf.trainer_step(tr)
            step()                               # step 0: the first update (builds the policy)
            sync(cuda)
            c0, plain, upd = dict(tr.cost), [], []
            for _ in range(F * n_upd):
                is_update = tr.step % F == 0
                (upd if is_update else plain).append(timed_window(step, 1, cuda))
            fwd = (tr.cost["fwd_strategy"] - c0["fwd_strategy"]) / len(upd)
            bwd = (tr.cost["bwd_strategy"] - c0["bwd_strategy"]) / len(upd)
        med = statistics.median(plain)
        extra = statistics.mean(upd) - med
        base = 40 * forward_equivalents(B, B)
        row = {"variant": label, "update_ms": 1e3 * extra, "step_ms": 1e3 * med, "fwd": fwd,
               "time_share": extra / (40 * med),
               "fe_ratio": (base + forward_equivalents(fwd, bwd)) / base}
        env["adaptive"].append(row)
        print(adaptive_line(row), flush=True)


def adaptive_line(r: dict) -> str:
    return (f"| {r['variant']} | {r['update_ms']:.1f} | {r['step_ms']:.1f} | {r['fwd']:.0f} | "
            f"+{100 * r['time_share']:.1f} % | {r['fe_ratio']:.3f}× |")


# ---------------------------------------------------------------------------- 3. the reward
def reward_precision(env: dict) -> None:
    """Σ_S ΔKL per example and the all-T row ΔKL_t on the same (θ_k, θ_k+1) and noise, in fp32,
    TF32 and bf16 autocast (eval mode: no dropout, so only the arithmetic differs)."""
    cuda, dev, T = env["cuda"], env["device"], env["T"]
    opts = {**PRECISIONS["fp32"], "compile": False}
    cfg = perf.run_config(env["setup"], {"name": "uniform"}, T, dev.type, opts)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, tmp, progress=False)
        set_tf32(False)
        for _ in range(3):
            tr._phases(10**9)
        x0 = tr.batch(tr.step).to(dev)
        before = copy.deepcopy(tr.model.state_dict())
        tr._phases(10**9)
        after = copy.deepcopy(tr.model.state_dict())
        model, process = tr.model, tr.process
    k = strategies.get("adaptive_beta").Params().num_selected
    S, B = torch.arange(k), x0.shape[0]
    g = torch.Generator().manual_seed(0)
    noise_r = torch.randn((k * B, *x0.shape[1:]), generator=g).to(dev)
    noise_f = torch.randn((T, *x0.shape[1:]), generator=g).to(dev)
    precisions = [("fp32", False, False), ("tf32", True, False), ("bf16", False, True)]
    if not cuda:
        print("[reward] TF32 skipped: a CUDA setting", flush=True)
        precisions = [p for p in precisions if p[0] != "tf32"]

    def kl(state, x, ts, noise, bf16):
        model.load_state_dict(state)
        ctx = strategies.StepContext(step=0, x0=x, draw=None, losses=None, model=model,
                                     process=process, generator=g)
        n, out = x.shape[0], []
        tt = ts.to(dev).repeat_interleave(n)
        for lo in range(0, len(tt), 512):
            idx = torch.arange(lo, min(lo + 512, len(tt)), device=dev) % n
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                out.append(ctx.likelihood_at(x[idx], tt[lo:lo + 512], noise[lo:lo + 512],
                                             False, decoder="kl").float())
        return torch.cat(out).view(len(ts), n).t()

    got = {}
    for name, tf32, bf16 in precisions:
        set_tf32(tf32)
        reward = (kl(before, x0, S, noise_r, bf16) - kl(after, x0, S, noise_r, bf16)).sum(1)
        row = (kl(before, x0[:1], torch.arange(T), noise_f, bf16)
               - kl(after, x0[:1], torch.arange(T), noise_f, bf16))[0]
        got[name] = (reward.double().cpu(), row.double().cpu())
    set_tf32(False)
    r32, row32 = got["fp32"]
    print(f"S = {S.tolist()}, B = {B}, T = {T}; fp32: max abs reward "
          f"{float(got['fp32'][0].abs().max()):.3g}, max abs row "
          f"{float(got['fp32'][1].abs().max()):.3g}\n\n{REWARD_HEAD}", flush=True)
    for name, (r, row) in got.items():
        top = set(row.topk(k).indices.tolist()) == set(row32.topk(k).indices.tolist())
        line = {"precision": name, "reward": float((r - r32).abs().max()),
                "row": float((row - row32).abs().max()), "top": top,
                "rel": float((r - r32).abs().max() / r32.abs().max().clamp(min=1e-30))}
        env["reward"].append(line)
        print(reward_line(line), flush=True)


def reward_line(r: dict) -> str:
    return (f"| {r['precision']} | {r['reward']:.3g} | {r['rel']:.3g} | {r['row']:.3g} | "
            f"{'yes' if r['top'] else 'no'} |")


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a CPU smoke run)")
    ap.add_argument("--budget-s", type=float, default=450.0)
    ap.add_argument("--cifar-root", default="data/cifar10")
    ap.add_argument("--synthetic", action="store_true",
                    help="random data even if CIFAR-10 is there")
    ap.add_argument("--window", type=int, default=0, help="steps per timed window (10; quick 2)")
    ap.add_argument("--rounds", type=int, default=0, help="windows per participant (5; quick 2)")
    ap.add_argument("--cheap-stride", type=int, default=8, help="the cheap row's all_t_stride")
    ap.add_argument("--cheap-every", type=int, default=2, help="the cheap row's all_t_every")
    ap.add_argument("--peak-tflops", type=float, default=0.0,
                    help="peak for MFU (default: the GPU's bf16 dense peak; none on the CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("no CUDA device here: run with --device cpu --quick", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.monotonic()
    dev = torch.device(args.device)
    data, data_text = pick_data(args)
    bb = (dict(QUICK_UNET) if args.quick else
          {"name": "unet", **{k: list(v) if isinstance(v, tuple) else v
                              for k, v in CIFAR10.items()}})
    env = {"cuda": cuda, "device": dev, "T": 40 if args.quick else 1000,
           "setup": {"dataset": data, "backbone": bb, "batch_size": 4 if args.quick else 128},
           "window": args.window or (2 if args.quick else 10),
           "rounds": args.rounds or (2 if args.quick else 5), "warmup": 1 if args.quick else 3,
           "peak": args.peak_tflops or default_peak(dev), "rows": [], "eager_bare": {},
           "adaptive": [], "reward": []}
    name = torch.cuda.get_device_name(dev) if cuda else "CPU"
    print(f"# gpu_perf_check: {name}, torch {torch.__version__}, {torch.get_num_threads()} CPU "
          f"threads, budget {args.budget_s:.0f} s{' (quick)' if args.quick else ''}")
    print(f"data: {data_text}")
    flops_cfg = perf.run_config(env["setup"], {"name": "uniform"}, env["T"], dev.type,
                                {**PRECISIONS["fp32"], "compile": False})
    bare = BareLoop(flops_cfg, dev, {**PRECISIONS["fp32"], "compile": False})
    env["flops"] = bare.flops()
    n_par = sum(p.numel() for p in bare.model.parameters())
    del bare
    peak = f"{env['peak']:g} TFLOP/s" if env["peak"] else "none (no MFU)"
    print(f"model: {bb} ({n_par / 1e6:.2f}M parameters), batch {env['setup']['batch_size']}, "
          f"T = {env['T']}; FLOPs per training step (forward + backward, torch's counter): "
          f"{env['flops'] / 1e9:.4g} GFLOP; MFU peak: {peak}; windows of {env['window']} "
          f"steps × {env['rounds']} per participant and cell", flush=True)
    budget = Budget(args.budget_s, args.quick)    # the sections' time (the setup above: seconds)
    print("\n## 1. bare loop vs trainer\n\n| " + " | ".join(COLUMNS) + " |\n|---|---|---"
          + "|---:" * 5 + "|---|", flush=True)
    eager_cells = [c for c in CELLS if c[1] == "eager"]
    for precision, mode in eager_cells:
        why = cpu_skip(cuda, precision, mode)
        if why:
            print(f"[{precision} {mode}] skipped: {why}", flush=True)
            continue
        budget.run(f"{precision} {mode}", mode, lambda p=precision, m=mode: run_cell(env, p, m))
    print("\n## 2. adaptive_beta policy update\n", flush=True)
    budget.run("adaptive update", "adaptive", lambda: adaptive_update(env, args))
    print("\n## 3. reward precision\n", flush=True)
    budget.run("reward precision", "reward", lambda: reward_precision(env))
    print("\n## 1b. compiled cells\n", flush=True)
    for precision, mode in [c for c in CELLS if c[1] != "eager"]:
        why = cpu_skip(cuda, precision, mode)
        if why:
            print(f"[{precision} {mode}] skipped: {why}", flush=True)
            continue
        budget.run(f"{precision} {mode}", mode, lambda p=precision, m=mode: run_cell(env, p, m))
    print("\n## Summary\n\n| " + " | ".join(COLUMNS) + " |\n|---|---|---" + "|---:" * 5
          + "|---|")
    for r in env["rows"]:
        print(table_line(r))
    if env["adaptive"]:
        print("\n" + ADAPTIVE_HEAD)
        for r in env["adaptive"]:
            print(adaptive_line(r))
    if env["reward"]:
        print("\n" + REWARD_HEAD)
        for r in env["reward"]:
            print(reward_line(r))
    print(f"\ndone in {time.monotonic() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
