"""``python -m bench.eval``: evaluate a run's checkpoint or kept snapshot (bench.evaluation)."""

import sys

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the import below: one line

from bench.evaluation.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
