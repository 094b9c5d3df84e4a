"""Train one run into the results layout.

    python -m bench.train CONFIG.yaml [--set key=value ...] [--results-dir DIR]

The run directory is ``DIR/<run_id>`` (run_id = hash of the resolved config) and holds config.yaml,
meta.json, metrics.jsonl, ckpt/ and, when finished, DONE (bench.rundir). Rerunning the same
command resumes from the checkpoint; on SIGTERM the run checkpoints and exits with status 143.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bench import config as C
from bench import experiment
from bench.train.trainer import Interrupted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="run config YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set strategy.name=p2 (repeatable)")
    ap.add_argument("--results-dir", default="results/single", help="parent of the run directory")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        cfg = C.load(args.config, args.set)
        run_dir = Path(args.results_dir) / C.run_id(cfg)
        holder: dict = {}

        def on_term(signum, frame):
            if "trainer" in holder:
                holder["trainer"].stop_requested = True

        def hook(trainer):                  # the data and model are built, run_dir written
            holder["trainer"] = trainer
            print(f"run dir: {run_dir}", flush=True)

        signal.signal(signal.SIGTERM, on_term)
        final = experiment.run(cfg, run_dir, progress=not args.no_progress, trainer_hook=hook)
    except Interrupted as e:
        print(f"interrupted: {e}; rerun the same command to resume", file=sys.stderr)
        return 143
    except (C.ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"run_dir": str(run_dir), **{k: v for k, v in final.items()
                                                   if k != "loss_bins"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
