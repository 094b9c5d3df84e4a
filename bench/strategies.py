"""``python -m bench.strategies``: list strategies, tabulate or plot p(t) and weights
(bench.tools.strategies)."""

import sys

from bench.tools.strategies import main

if __name__ == "__main__":
    sys.exit(main())
