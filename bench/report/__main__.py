"""The paper's tables and figures, with statistics, from any results tree.

    python -m bench.report RESULTS_DIR [--out DIR] [--format md,csv,tex] [--metric NAME[,NAME]]
                           [--budgets 50000,100000] [--baseline uniform] [--pair A B ...]

Reads every run below RESULTS_DIR (bench.analysis.load: several sweeps, partial runs, runs in
progress) and writes into --out (default RESULTS_DIR/report):

    index.md                 every table and figure with a one-line caption, and the runs section
                             (missing, partial, not started and duplicate runs listed explicitly)
    tables/<name>.{md,csv,tex}
    figures/<name>.{png,pdf}

Tables per setting (dataset × backbone) and evaluation protocol (metric × sampler × n_samples):
Table 1 (best value up to each iteration budget, mean ± 95 % CI over seeds and the per-seed
values, best in bold), time-to-target (counted compute in forward-equivalents relative to the
baseline's 1D, iterations and measured wall-clock to the baseline's final value, speed-ups) and
Table 4 pairs (default: each strategy against the baseline); for learned strategies an adaptation
table (runs that did not adapt are marked in every table and legend). Figures: metric vs
iteration, metric vs relative compute and vs relative wall-clock (Fig. 1/7), training loss,
per-timestep loss and gradient variance (Fig. 2/6), p(t) across training (Fig. 5), adaptation
(TV from uniform vs iteration); a figure without data is skipped with a note. A note warns when
runs of equal counted cost per iteration disagree in wall-clock (machine load).
See docs/report.md. Exit status 2 on an unreadable results tree (the message names the file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")     # Ctrl-C during the imports: one line, exit 130

from bench.analysis.adaptation import THRESHOLD  # noqa: E402
from bench.analysis.cost import LOAD_TOLERANCE  # noqa: E402
from bench.analysis.load import ReportError, Results, load  # noqa: E402
from bench.core.cost import BWD_FACTOR  # noqa: E402
from bench.report.build import FORMATS, Report, build  # noqa: E402
from bench.report.index import index_md  # noqa: E402


def write(rep: Report, R: Results, out: Path, formats: list[str], command: str) -> Path:
    """Write tables, figures and index.md under ``out``; returns the index path."""
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for t in rep.tables:
        if "md" in formats:
            (out / "tables" / f"{t.slug}.md").write_text(f"{t.caption}\n\n{t.md}")
        if "csv" in formats:
            t.table.to_csv(out / "tables" / f"{t.slug}.csv", index=False)
        if "tex" in formats:
            (out / "tables" / f"{t.slug}.tex").write_text(t.tex)
    for f in rep.figures:
        for ext in ("png", "pdf"):
            f.figure.savefig(out / "figures" / f"{f.slug}.{ext}", dpi=120,
                                 bbox_inches="tight")
    index = out / "index.md"
    index.write_text(index_md(rep, R, formats, command))
    return index


# ---------------------------------------------------------------------------- CLI


def _csv_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results_dir", help="a results tree (any folder above run directories)")
    ap.add_argument("--out", help="output folder (default: RESULTS_DIR/report)")
    ap.add_argument("--format", default="md,csv,tex",
                    help="table files to write, comma-separated: md, csv, tex (default: all)")
    ap.add_argument("--metric", action="append", default=[],
                    help="only these metrics (comma-separated or repeated; default: every metric "
                         "present, one table per metric)")
    ap.add_argument("--budgets", help="iteration budgets, comma-separated (default: the "
                                      "evaluated steps)")
    ap.add_argument("--baseline", default=None, help="baseline strategy label (default "
                                                       "uniform, where present)")
    ap.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"),
                    help="a Table 4 pair of strategy labels (repeatable; default: each strategy "
                         "vs the baseline)")
    ap.add_argument("--no-figures", action="store_true", help="tables and index only")
    ap.add_argument("--bwd-factor", type=float, default=BWD_FACTOR,
                    help="forwards one backward pass costs on the compute axis: "
                         "forward-equivalents = fwd + F·bwd (default %(default)g)")
    ap.add_argument("--adapt-threshold", type=float, default=THRESHOLD,
                    help="a learned run whose drawn-t total variation from uniform (and median "
                         "p·w change) stays below this is marked 'did not adapt' (default "
                         "%(default)g)")
    ap.add_argument("--load-tolerance", type=float, default=LOAD_TOLERANCE,
                    help="warn when runs of equal counted cost per iteration differ by more "
                         "than this in measured wall-clock per iteration (default %(default)g)")
    args = ap.parse_args(argv)
    args.formats = _csv_list(args.format)
    bad = [f for f in args.formats if f not in FORMATS]
    if bad or not args.formats:
        ap.error(f"--format: unknown {', '.join(bad) or '(empty)'}; valid: {', '.join(FORMATS)}")
    try:
        args.budget_list = ([int(b) for b in _csv_list(args.budgets)] if args.budgets else None)
    except ValueError:
        ap.error(f"--budgets expects comma-separated integers, got {args.budgets!r}")
    args.metrics = [m for text in args.metric for m in _csv_list(text)] or None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench.report " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        R = load(args.results_dir)
        rep = build(R, metrics=args.metrics, budgets=args.budget_list, baseline=args.baseline,
                    pairs=[tuple(p) for p in args.pair] if args.pair else None,
                    figures=not args.no_figures, bwd_factor=args.bwd_factor,
                    adapt_threshold=args.adapt_threshold, load_tolerance=args.load_tolerance)
        out = Path(args.out) if args.out else Path(args.results_dir) / "report"
        index = write(rep, R, out, args.formats, command)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write the report: {e}", file=sys.stderr)
        return 2
    status = ", ".join(f"{n} {s}" for s, n in R.runs["status"].value_counts().items())
    print(f"{len(rep.tables)} tables, {len(rep.figures)} figures, {len(rep.skipped)} skipped; "
          f"{len(R.runs)} runs ({status})")
    print(f"index: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
