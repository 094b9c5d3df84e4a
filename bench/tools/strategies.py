"""Inspect the registered timestep strategies.

    python -m bench.strategies
        every registered strategy with its paper and parameters (defaults)
    python -m bench.strategies show NAME [NAME ...] [--schedule linear|cosine|quad] [--timesteps T]
                                   [--process ddpm|flow] [--batch-size B] [--set key=value ...]
                                   [--plot OUT.png [--csv]] [--x t|logsnr]
        one name: CSV ``t,prob,loss_weight``, one row per index t = 0..T−1 (``--process flow``:
        one row per cell of [0, 1], t its centre, K = ``--timesteps``/``--grid`` cells, the
        loss weight on the velocity MSE; ``--process both --x logsnr``: both, a leading
        ``process`` column, and with ``--plot`` the two overlaid on one log-SNR axis, see
        ``figure_lambda``; docs/processes.md); several names: CSV
        ``strategy,t,prob,loss_weight``, one block of T rows per strategy in the order named (a
        block is that name's one-name output with the name in front):
        prob        = expected fraction of a batch of B drawn at t, in the strategy's initial state
                      (the batch marginal: SpeeD's includes its mirrored half);
        loss_weight = λ(t) on the ε-MSE (1 where none); on stderr its mean Σ p·λ·importance.
        The importance correction of a sampler (``Strategy.importance_weights()``, e.g. 1/(T·p) of
        loss_second_moment) is neither.
        ``--plot`` writes a figure and prints one line (the CSV too with ``--csv``), three
        panels sharing x, the strategies
        overlaid, each in its fixed report style (bench.analysis.style) and labelled with its
        non-default parameters (bench.labels.strategy_label):
            T·p(t) (1 = uniform, dotted; y from 0),
            λ(t) (log y),
            the effective weight T·p(t)·λ(t)·importance(t) (log y): the factor on the ε-MSE at t
            in expectation, relative to uniform sampling without weights.
        A log panel spans at least a decade, so a constant is a flat line. ``--x logsnr`` puts
        log SNR(t) = log(ᾱ_t/(1 − ᾱ_t)) on the x axis instead of t.
    python -m bench.strategies trace RUN_DIR [--threshold 0.1] [--rows]
        a learned strategy's adaptation: its first and last adaptation rows (``--rows``: all;
        RUN_DIR/timesteps/adaptation.csv), then the verdict the report gives (bench.analysis).

``--set`` values are parsed as YAML; dotted keys nest (``--set sampler.name=speed`` for compose).
A ``--set`` key goes to every named strategy that has that parameter (``show p2 min_snr --set
gamma=1`` sets both gammas); a key that none of them has is an error. A strategy with a
``batch_size`` parameter (also one nested in compose) gets ``--batch-size`` unless ``--set`` gives
it. Each strategy is named at most once.
Bad input prints the problem and the valid choices on stderr and exits with status 2, before
anything is computed or written. A closed stdout (``| head``) ends quietly with status 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from torch import Tensor

import strategies
from bench.rundir import runpaths
from bench.analysis import adaptation
from bench.analysis.style import plain_log_axis, style
from bench.config.fields import ConfigError
from bench.config.files import parse_set
from bench.core.checks import check_keys
from bench.core import processes
from bench.core.ddpm import SCHEDULES
from bench.core.process import Process
from bench.labels import strategy_label
from bench.tools import trace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

def param_defaults(cls: type[strategies.Strategy]) -> dict[str, Any]:
    """Every parameter's default, ``(required)`` for those without one."""
    have = strategies.defaults(cls.name)
    return {f.name: have.get(f.name, "(required)") for f in dataclasses.fields(cls.Params)}


def listing(out: TextIO) -> None:
    names = strategies.names()
    width = max(len(n) for n in names)
    built = {n: processes.build({"schedule": "linear", "timesteps": 1000}, n)
             for n in processes.PROCESSES}
    for name in names:
        cls = strategies.get(name)
        params = ", ".join(f"{k}={v!r}" for k, v in param_defaults(cls).items()) or "(none)"
        means = ", ".join(f"{pn} {_mean_weight(name, pr)}" for pn, pr in built.items())
        out.write(f"{name:<{width}}  {cls.paper}\n{'':<{width}}  params: {params}\n"
                  f"{'':<{width}}  mean loss weight under its p(t), T = 1000: {means}\n")


def _mean_weight(name: str, process: Process) -> str:
    try:                            # the listing's column
        return f"{table({'name': name}, process).mean_weight:.4g}"
    except ValueError:              # refused on this process, or no tabulable p(t)
        return "—"


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


def specs(names: list[str], sets: list[str], batch_size: int) -> list[dict]:
    """The strategy spec of each of ``names``: the ``--set`` parameters it has, ``batch_size``
    filled in (``with_batch_size``). ValueError for an unknown or repeated name or a parameter
    that none of them has."""
    fields = {n: {f.name for f in dataclasses.fields(strategies.get(n).Params)} for n in names}
    if len(fields) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"strategy {twice!r} is named twice; name each strategy once")
    params = parse_set(sets)
    where = (f"strategy {names[0]!r}" if len(names) == 1
             else "strategies " + ", ".join(map(repr, names)))
    check_keys(params, sorted(set().union(*fields.values())), "parameter(s)", where=where)
    return [{"name": n, **with_batch_size(n, {k: v for k, v in params.items() if k in fields[n]},
                                          batch_size)} for n in names]


@dataclasses.dataclass(frozen=True)
class Table:
    """One strategy in its initial state; float64 [T] tensors."""
    name: str
    label: str                # bench.labels.strategy_label of its spec
    prob: Tensor
    loss_weight: Tensor
    importance: Tensor

    @property
    def mean_weight(self) -> float:
        """Σ p·λ·importance: the mean factor on the loss (it scales the effective lr)."""
        return float(self.effective.mean())

    @property
    def effective(self) -> Tensor:
        """T·p(t)·λ(t)·importance(t): the factor on the ε-MSE at t, relative to uniform."""
        return len(self.prob) * self.prob * self.loss_weight * self.importance


def table(spec: dict, process: Process) -> Table:
    name = spec["name"]
    strategy = strategies.build(name, process, {k: v for k, v in spec.items() if k != "name"})
    prob = strategy.probabilities()
    if prob is None:
        raise ValueError(f"strategy {name!r} has no tabulable p(t) (probabilities() is None); "
                         f"strategies with one: {', '.join(_tabulable())}")
    return Table(name, strategy_label(spec), prob.double().cpu(),
                 strategy.loss_weights().double().cpu(),
                 strategy.importance_weights().double().cpu())


def _tabulable() -> list[str]:
    ok, process = [], processes.build({"schedule": "linear", "timesteps": 50})
    for n in strategies.names():
        try:
            if strategies.build(n, process).probabilities() is not None:
                ok.append(n)
        except Exception:      # a strategy that cannot be built with defaults is just not listed
            pass
    return ok


def times(process) -> list:
    """The ``t`` column: DDPM's indices, or the flow's cell centres (i + ½)/K."""
    cells = torch.arange(process.grid.size)
    return cells.tolist() if process.name == "ddpm" else [
        f"{t:.17g}" for t in process.time(cells).tolist()]


def write_csv(blocks: list[tuple[Process, list[Table]]], out: TextIO) -> None:
    """The one-name CSV ``t,prob,loss_weight``, or ``strategy,t,prob,loss_weight`` blocks; with
    both processes a leading ``process`` column (DDPM's blocks first)."""
    several, both = len(blocks[0][1]) > 1, len(blocks) > 1
    out.write(("process," if both else "") + ("strategy," if several else "")
              + "t,prob,loss_weight\n")
    for process, tables in blocks:
        for tb in tables:
            lead = (f"{process.name}," if both else "") + (f"{tb.name}," if several else "")
            out.writelines(f"{lead}{t},{p:.17g},{w:.17g}\n" for t, p, w in
                           zip(times(process), tb.prob.tolist(), tb.loss_weight.tolist()))


X_AXES = {"t": "t (index = DDPM step − 1)", "logsnr": "log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))"}
FLOW_X_AXES = {"t": "cell i of K (t ∈ [i/K, (i+1)/K), t = 1 is noise)",
               "logsnr": "log SNR(t) = 2·log((1 − t)/t)"}
PANELS = (("T·p(t)  (1 = uniform)", "linear"), ("loss weight λ(t) on the ε-MSE", "log"),
          ("effective weight T·p(t)·λ(t)·importance", "log"))
FLOW_PANELS = (("K·p(cell)  (1 = uniform)", "linear"),
               ("loss weight λ(t) on the velocity MSE", "log"),
               ("effective weight K·p·λ·importance", "log"))


def log_limits(curves: list[Tensor], decades: float = 1.0) -> tuple[float, float]:
    """y limits of a log panel around the positive finite values of ``curves``, at least
    ``decades`` wide (a constant is a flat line, not magnified noise), 5 % padding."""
    v = torch.cat(curves).numpy()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return 10 ** -decades, 10 ** decades
    lo, hi = np.log10(v.min()), np.log10(v.max())
    pad = max(decades - (hi - lo), 0) / 2 + 0.05 * max(hi - lo, decades)
    return 10 ** (lo - pad), 10 ** (hi + pad)


def figure(tables: list[Table], process: Process, x: str = "t") -> Figure:
    """The ``--plot`` figure (a matplotlib Figure, see the module docstring)."""
    from matplotlib.figure import Figure

    T = process.grid.size
    xs = np.arange(T) if x == "t" else torch.log(process.snr).numpy()
    fig = Figure(figsize=(7, 8.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    curves = ([T * tb.prob for tb in tables], [tb.loss_weight for tb in tables],
              [tb.effective for tb in tables])
    flow = process.name != "ddpm"
    for ax, (ylabel, scale), ys in zip(axes, FLOW_PANELS if flow else PANELS, curves):
        for tb, y in zip(tables, ys):
            ax.plot(xs, y.numpy(), label=tb.label, linewidth=1.2, markersize=4,
                    markevery=max(1, T // 10), **style(tb.label).line())
        ax.set_ylabel(ylabel)
        ax.set_yscale(scale)
        if scale == "log":
            ax.set_ylim(*log_limits(ys))
            plain_log_axis(ax)
    axes[0].axhline(1.0, color="0.4", linestyle=":", linewidth=1)
    axes[0].set_ylim(0, 1.1 * max(1.0, *(float(y.max()) for y in curves[0])))
    axes[0].legend(fontsize="small")
    axes[-1].set_xlabel((FLOW_X_AXES if flow else X_AXES)[x])
    where = (f"{process.schedule} schedule, T = {T}" if process.name == "ddpm"
             else f"flow matching, K = {T} cells")
    fig.suptitle(textwrap.fill(f"{where}: "
                               + "; ".join(tb.label for tb in tables), 80), fontsize="medium")
    return fig


LAMBDA_PANELS = (("density p(λ) per unit log SNR", "log"),
                 ("loss weight on the ε-MSE, w(λ)", "log"),
                 ("implied weighting p(λ)·w(λ)·importance", "log"))


def figure_lambda(blocks: list[tuple[Process, list[Table]]]) -> Figure:
    """``--process both --x logsnr``: each strategy on DDPM (solid) and on flow (dashed) over one
    log-SNR axis, so "the same strategy" on the two processes can be compared as what it does
    to noise levels: the density over λ (a cell's probability over its width in λ), the weight
    put back on the ε-MSE (flow's velocity-loss weight over (1 − t)²), and their product."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 8.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    curves: list[list[Tensor]] = [[], [], []]
    for process, tables in blocks:
        lam = torch.log(process.snr.double())
        width = torch.from_numpy(np.abs(np.gradient(lam.numpy())))
        for tb in tables:
            dens = tb.prob / width
            w_eps = tb.loss_weight / process.eps_to_loss
            ys = (dens, w_eps, dens * w_eps * tb.importance)
            for ax, y, c in zip(axes, ys, curves):
                c.append(y)
                kw = {**style(tb.label).line(), "marker": None,
                      "linestyle": "-" if process.name == "ddpm" else "--"}
                ax.plot(lam.numpy(), y.numpy(), label=f"{tb.label} ({process.name})",
                        linewidth=1.2, **kw)
    for ax, (ylabel, scale), ys in zip(axes, LAMBDA_PANELS, curves):
        ax.set_ylabel(ylabel)
        ax.set_yscale(scale)
        ax.set_ylim(*log_limits(ys))
        plain_log_axis(ax)
    axes[0].legend(fontsize="small")
    axes[-1].set_xlabel("log SNR λ (DDPM: log(ᾱ/(1 − ᾱ)); flow: 2·log((1 − t)/t))")
    ddpm = blocks[0][0]
    fig.suptitle(textwrap.fill(f"DDPM ({ddpm.schedule} schedule, T = {ddpm.grid.size}, solid) "
                               f"vs flow matching (K = {blocks[1][0].grid.size} cells, dashed)",
                               80), fontsize="medium")
    return fig


def check_plot_path(path: str) -> None:
    """ValueError unless ``path`` names a new or existing file, of a type matplotlib writes, in
    a directory that exists."""
    from matplotlib.backend_bases import FigureCanvasBase

    p, types = Path(path), FigureCanvasBase.get_supported_filetypes()
    if p.is_dir():
        raise ValueError(f"--plot {path}: is a directory; give a file such as {p / 'show.png'}")
    if not p.parent.is_dir():
        raise ValueError(f"--plot {path}: directory {p.parent} does not exist")
    if p.suffix[1:].lower() not in types:
        raise ValueError(f"--plot {path}: unknown file type {p.suffix or '(none)'!r}; valid: "
                         f"{', '.join('.' + t for t in sorted(types))}")


def show(args: argparse.Namespace, out: TextIO) -> None:
    """The ``show`` command: checks, then the plot (if asked), then the CSV."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.timesteps < 2:
        raise ValueError(f"--timesteps must be >= 2, got {args.timesteps}")
    if args.plot:
        check_plot_path(args.plot)
    if args.process == "both" and args.x != "logsnr":
        raise ValueError("--process both overlays DDPM and flow on one log-SNR axis: add "
                         "--x logsnr (and --plot OUT.png for the figure)")
    named = specs(args.names, args.set, args.batch_size)
    blocks = []
    for name in (("ddpm", "flow") if args.process == "both" else (args.process,)):
        process = processes.build({"schedule": args.schedule if name == "ddpm" else "linear",
                                   "timesteps": args.timesteps}, name)
        blocks.append((process, [table(s, process) for s in named]))
    means = [f"{tb.label} on {pr.name}: mean loss weight under its own p(t) = "
             f"{tb.mean_weight:.6g}" for pr, tables in blocks for tb in tables]
    if args.plot:
        fig = (figure_lambda(blocks) if len(blocks) > 1
               else figure(blocks[0][1], blocks[0][0], args.x))
        fig.savefig(args.plot)
        if not args.csv:                # the figure and one line; the CSV when asked
            out.write(f"wrote {args.plot}; " + "; ".join(means) + "\n")
            return
    for line in means:                  # on stderr: the CSV on stdout stays a table
        print(f"# {line}", file=sys.stderr)
    write_csv(blocks, out)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.strategies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    sh = sub.add_parser("show", help="CSV of p(t) and loss weights of strategies, and a plot")
    sh.add_argument("names", nargs="+", metavar="NAME",
                    help="registered strategies (python -m bench.strategies lists them)")
    sh.add_argument("--schedule", default="linear", choices=SCHEDULES)
    sh.add_argument("--timesteps", "--grid", type=int, default=1000,
                    help="DDPM's T, or the flow's K cells of [0, 1] (default %(default)s)")
    sh.add_argument("--process", default="ddpm", choices=(*processes.PROCESSES, "both"),
                    help="ddpm (t = index), flow (t = cell centre, loss weight on the velocity "
                         "MSE), or both (with --x logsnr: the two overlaid on one λ axis)")
    sh.add_argument("--batch-size", type=int, default=128)
    sh.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a parameter of every named strategy that has it, e.g. --set gamma=0.5 "
                         "(repeatable)")
    sh.add_argument("--plot", metavar="OUT.png",
                    help="write a figure of T·p(t), λ(t) and T·p(t)·λ(t)·importance and print "
                         "one line (the CSV too with --csv)")
    sh.add_argument("--csv", action="store_true", help="with --plot: print the CSV as well")
    sh.add_argument("--x", default="t", choices=tuple(X_AXES),
                    help="the plot's x axis: the index t or log SNR(t) (default %(default)s)")
    tr = sub.add_parser("trace", help="a learned strategy's adaptation in a run directory")
    tr.add_argument("run_dir")
    tr.add_argument("--threshold", type=float, default=adaptation.THRESHOLD,
                    help="the 'did not adapt' total-variation threshold (default %(default)g)")
    tr.add_argument("--rows", action="store_true", help="print every adaptation row (default: "
                    "the first and the last)")
    return ap


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        if args.cmd is None:
            listing(out)
        elif args.cmd == "trace":
            trace.trace(args.run_dir, args.threshold, out, args.rows)
        else:
            show(args, out)
        out.flush()
    except (ConfigError, ValueError, TypeError, runpaths.RunFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:        # the reader left (| head): no traceback, no error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
