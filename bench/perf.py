"""``python -m bench.perf``: measure training throughput per strategy (bench.tools.perf); ``--out``
writes a cost table (bench.tools.cost_table)."""

import sys

from bench.tools.perf import main

if __name__ == "__main__":
    sys.exit(main())
