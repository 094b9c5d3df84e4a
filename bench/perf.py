"""``python -m bench.perf``: measure training throughput per strategy (bench.tools.perf); ``--out``
writes a cost table (bench.tools.cost_table)."""

import sys

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the import below: one line

from bench.tools.perf import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
