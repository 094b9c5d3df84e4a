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
from pathlib import Path

from bench.core.command import guard_startup, run_main

# As the console script (imported by its wrapper) or ``python -m bench.cli``: Ctrl-C during the
# imports below prints one line (bench.core.command); imported by anything else, nothing changes.
guard_startup(__name__ == "__main__" or Path((sys.argv or [""])[0]).name == "tsbench")

from bench import perf  # noqa: E402
from bench.evaluation import __main__ as evaluation  # noqa: E402
from bench.report import __main__ as report  # noqa: E402
from bench.sweep import __main__ as sweep  # noqa: E402
from bench.tools import strategies  # noqa: E402
from bench.train import __main__ as train  # noqa: E402

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
    return run_main(COMMANDS[argv[0]], argv[1:])     # Ctrl-C / SIGTERM: one line, 130 / 143


if __name__ == "__main__":
    sys.exit(main())
