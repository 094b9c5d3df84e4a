"""``tsbench``: one console command for the suite's tools (installed with the package).

    tsbench train CONFIG [...]       python -m bench.train
    tsbench sweep SWEEP [...]        python -m bench.sweep
    tsbench status SWEEP [...]       python -m bench.sweep SWEEP --status
    tsbench report RESULTS [...]     python -m bench.report
    tsbench eval RUN_DIR [...]       python -m bench.eval (bench.evaluation)
    tsbench strategies [...]         python -m bench.strategies
    tsbench perf [...]               python -m bench.perf

Each subcommand takes the arguments of its module (``tsbench sweep --help``). Config and sweep
files are found by path, or by name in the suite's configs/ and sweeps/ (``tsbench sweep
quickstart``: bench.config.find_file).
"""

from __future__ import annotations

import sys

from bench import perf
from bench.evaluation import __main__ as evaluation
from bench.report import __main__ as report
from bench.sweep import __main__ as sweep
from bench.tools import strategies
from bench.train import __main__ as train

COMMANDS = {"train": train.main, "sweep": sweep.main, "report": report.main,
            "eval": evaluation.main, "strategies": strategies.main, "perf": perf.main,
            "status": lambda argv: sweep.main([*argv, "--status"])}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"tsbench: unknown command {argv[0]!r}; valid: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
