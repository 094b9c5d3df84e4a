"""Inspect the registered timestep strategies.

    python -m bench.strategies
        every registered strategy with its paper and parameters (defaults)
    python -m bench.strategies show NAME [--schedule linear|cosine|quad] [--timesteps T]
                                         [--batch-size B] [--set key=value ...] [--plot out.png]
        CSV ``t,prob,loss_weight``, one row per index t = 0..T−1:
        prob        = expected fraction of a batch of B drawn at t, in the strategy's initial state
                      (the batch marginal: SpeeD's includes its mirrored half);
        loss_weight = the per-timestep factor on the ε-MSE (1 where there is none).
        The importance correction of a sampler (e.g. 1/(T·p) of loss_second_moment) is neither.
    python -m bench.strategies trace RUN_DIR [--threshold 0.1]
        a learned strategy's adaptation, one line per adaptation row (an update, or a log tick
        for an every-step updater; RUN_DIR/timesteps/adaptation.csv,
        bench.evaluation.adaptation), then the verdict the report gives (bench.analysis).

``--set`` values are parsed as YAML; dotted keys nest (``--set sampler.name=speed`` for compose).
A strategy with a ``batch_size`` parameter (also one nested in compose) gets ``--batch-size`` unless
``--set`` gives it.
Bad input prints the problem and the valid choices on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, TextIO

import strategies
from bench import rundir
from bench.analysis import adaptation
from bench.config import ConfigError, parse_set
from bench.core.diffusion import SCHEDULES, Diffusion


def param_defaults(cls: type[strategies.Strategy]) -> dict[str, Any]:
    """Every parameter's default, ``(required)`` for those without one."""
    have = strategies.defaults(cls.name)
    return {f.name: have.get(f.name, "(required)") for f in dataclasses.fields(cls.Params)}


def listing(out: TextIO) -> None:
    names = strategies.names()
    width = max(len(n) for n in names)
    for name in names:
        cls = strategies.get(name)
        params = ", ".join(f"{k}={v!r}" for k, v in param_defaults(cls).items()) or "(none)"
        out.write(f"{name:<{width}}  {cls.paper}\n{'':<{width}}  params: {params}\n")


def with_batch_size(name: str, params: dict, batch_size: int) -> dict:
    """``params`` with ``batch_size`` filled in wherever a strategy (also one nested in a
    composition, e.g. compose's sampler) has that parameter and it is not given."""
    cls = strategies.get(name)
    out = dict(params)
    if "batch_size" in {f.name for f in dataclasses.fields(cls.Params)}:
        out.setdefault("batch_size", batch_size)
    for key, value in out.items():
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            sub = {k: v for k, v in value.items() if k != "name"}
            out[key] = {"name": value["name"], **with_batch_size(value["name"], sub, batch_size)}
    return out


def table(name: str, schedule: str, timesteps: int, batch_size: int, sets: list[str]):
    """(t, prob, loss_weight) float64 tensors of ``name`` in its initial state."""
    params = with_batch_size(name, parse_set(sets), batch_size)
    strategy = strategies.build(name, Diffusion(schedule, timesteps), params)
    prob = strategy.probabilities()
    if prob is None:
        raise ValueError(f"strategy {name!r} has no tabulable p(t) (probabilities() is None); "
                         f"strategies with one: {', '.join(_tabulable())}")
    return prob.double().cpu(), strategy.loss_weights().double().cpu()


def _tabulable() -> list[str]:
    ok = []
    for n in strategies.names():
        try:
            if strategies.build(n, Diffusion("linear", 50)).probabilities() is not None:
                ok.append(n)
        except Exception:      # a strategy that cannot be built with defaults is just not listed
            pass
    return ok


def plot(path: str, name: str, prob, weight) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    a.plot(prob.numpy())
    a.set_ylabel("sampling density p(t)")
    a.set_title(name)
    b.plot(weight.numpy())
    b.set_ylabel("loss weight on ε-MSE")
    b.set_xlabel("t (index = DDPM step − 1)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


TRACE_COLUMNS = ["step", "event", "tv_uniform", "tv_initial", "q1", "q2", "q3", "q4",
                 "eff_tv_initial", "drawn_tv", "drawn_tv_initial", "s_set", "reward_mean", "reward_std",
                 "reward_t_corr", "alpha_mean", "beta_mean"]


def trace(run_dir: str, threshold: float, out: TextIO) -> None:
    """Print the adaptation rows of ``run_dir`` and the verdict; ValueError if there are none."""
    from pathlib import Path

    path = Path(run_dir)
    if not rundir.config_path(path).exists():
        raise ValueError(f"{run_dir}: not a run directory (no {rundir.CONFIG})")
    adaptation.check_threshold(threshold, "--threshold")
    rows = rundir.read_timesteps(path)["adaptation"]
    if rows.empty:
        name = rundir.read_config(path).get("strategy", {}).get("name", "?")
        learned = [n for n in strategies.names() if strategies.get(n).learned is True]
        raise ValueError(f"{rundir.timesteps_path(path, 'adaptation')}: absent or empty — "
                         f"strategy {name!r} is not learned or has not updated yet (learned: "
                         f"{', '.join(learned)}, and compose with one of them as sampler)")
    cols = [c for c in TRACE_COLUMNS if c in rows and rows[c].notna().any()]
    out.write(rows[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}") + "\n")
    s = adaptation.summary(rows, threshold)
    verdict = "adapted" if s["adapted"] else adaptation.MARK
    out.write(f"{s['rows']} update rows; TV of the drawn t from uniform {s['drawn_tv']:.4g}, "
              f"from the initial p(t) {s['drawn_tv_initial']:.4g}, "
              f"of p(t) mean {s['tv_uniform_mean']:.4g} / final {s['tv_uniform_final']:.4g}, "
              f"p·w vs initial median {s['eff_tv_median']:.4g}: {verdict} (threshold "
              f"{threshold:g})\n")


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="python -m bench.strategies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    sh = sub.add_parser("show", help="CSV t,prob,loss_weight of one strategy")
    sh.add_argument("name")
    sh.add_argument("--schedule", default="linear", choices=SCHEDULES)
    sh.add_argument("--timesteps", type=int, default=1000)
    sh.add_argument("--batch-size", type=int, default=128)
    sh.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a strategy parameter, e.g. --set gamma=0.5 (repeatable)")
    sh.add_argument("--plot", metavar="OUT.png", help="also save a figure of both columns")
    tr = sub.add_parser("trace", help="a learned strategy's adaptation in a run directory")
    tr.add_argument("run_dir")
    tr.add_argument("--threshold", type=float, default=adaptation.THRESHOLD,
                    help="the 'did not adapt' total-variation threshold (default %(default)g)")
    args = ap.parse_args(argv)
    if args.cmd is None:
        listing(out)
        return 0
    if args.cmd == "trace":
        try:
            trace(args.run_dir, args.threshold, out)
        except (ValueError, rundir.RunFileError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.timesteps < 2:
            raise ValueError(f"--timesteps must be >= 2, got {args.timesteps}")
        prob, weight = table(args.name, args.schedule, args.timesteps, args.batch_size, args.set)
    except (ConfigError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.write("t,prob,loss_weight\n")
    for t, (p, w) in enumerate(zip(prob.tolist(), weight.tolist())):
        out.write(f"{t},{p:.17g},{w:.17g}\n")
    if args.plot:
        plot(args.plot, args.name, prob, weight)
    return 0


if __name__ == "__main__":
    sys.exit(main())
