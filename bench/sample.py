"""``python -m bench.sample``: draw and plot samples of a trained run (bench.tools.sample)."""

import sys

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the import below: one line

from bench.tools.sample import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(main))
