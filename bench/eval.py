"""``python -m bench.eval``: evaluate a run's checkpoint or kept snapshot (bench.evaluation)."""

import sys

from bench.evaluation.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
