"""Train one run into the results layout.

    python -m bench.train CONFIG.yaml [--set key=value ...] [--results-dir DIR]

The run directory is ``DIR/<run_id>`` (run_id = hash of the resolved config) and holds config.yaml,
meta.json, metrics.jsonl, ckpt/ and, when finished, DONE (bench.rundir). Rerunning the same
command resumes from the checkpoint; on SIGTERM (or Ctrl-C) the run checkpoints and exits with
status 143 (130). Exit status 1: the run failed (diverged: see its FAILED file) or another process
trains it; 2: bad input (the message names it), checked before anything is written.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bench import experiment
from bench.config.fields import ConfigError
from bench.config.files import load
from bench.config.identity import run_id
from bench.rundir.runpaths import check_folder
from bench.rundir.runstate import RunBusy
from bench.train.trainer import Diverged, Interrupted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="run config YAML")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set strategy.name=p2 (repeatable)")
    ap.add_argument("--results-dir", default="results/single", help="parent of the run directory")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    holder: dict = {}

    def on_signal(signum, frame):
        """SIGTERM or the first Ctrl-C: checkpoint at the end of the step; a second Ctrl-C (or
        one before training started) stops at once."""
        if "trainer" not in holder or holder["trainer"].stop_requested:
            raise KeyboardInterrupt
        holder["trainer"].stop_requested = True
        holder["signal"] = signum

    def hook(trainer):                      # the data and model are built, run_dir written
        holder["trainer"] = trainer
        print(f"run dir: {run_dir}", flush=True)

    run_dir = None
    try:
        cfg = load(args.config, args.set)
        experiment.validate(cfg)
        run_dir = Path(args.results_dir) / run_id(cfg)
        check_folder(run_dir, "--results-dir")
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        final = experiment.run(cfg, run_dir, progress=not args.no_progress, trainer_hook=hook)
    except Interrupted as e:
        print(f"interrupted: {e}; rerun the same command to resume", file=sys.stderr)
        return 130 if holder.get("signal") == signal.SIGINT else 143
    except KeyboardInterrupt:
        print("interrupted" + ("" if "trainer" in holder else " before training started")
              + "; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except (Diverged, RunBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"run_dir": str(run_dir), **{k: v for k, v in final.items()
                                                   if k != "loss_bins"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
