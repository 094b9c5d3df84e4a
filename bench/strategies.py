"""``python -m bench.strategies``: list strategies, tabulate or plot p(t) and weights
(bench.tools.strategies)."""

import sys

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the import below: one line

from bench.tools.strategies import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
