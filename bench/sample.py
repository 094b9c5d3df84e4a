"""``python -m bench.sample``: draw and plot samples of a trained run (bench.tools.sample)."""

import sys

from bench.tools.sample import main

if __name__ == "__main__":
    sys.exit(main())
