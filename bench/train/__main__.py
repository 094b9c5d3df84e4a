"""Train one run into the results layout.

    python -m bench.train CONFIG.yaml [--set key=value ...] [--results-dir DIR]

The run directory is ``DIR/<run_id>`` (run_id = hash of the resolved config) and holds config.yaml,
meta.json, metrics.jsonl, ckpt/ and, when finished, DONE (bench.rundir). Rerunning the same
command resumes from the checkpoint; on SIGTERM (or Ctrl-C) the run checkpoints and exits with
status 143 (130), also before training started (then at once). Exit status 1: the run failed
after its work started (diverged, a full disk, …: its FAILED file says why, when it could be
written) or another process trains it; 2: bad input (the message names it), refused before
anything is written.
"""

from __future__ import annotations

from bench.core.command import guard_startup

guard_startup(__name__ == "__main__")            # Ctrl-C during the imports below: one line

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import experiment  # noqa: E402
from bench.config.fields import ConfigError  # noqa: E402
from bench.config.files import load  # noqa: E402
from bench.config.identity import run_id  # noqa: E402
from bench.core.command import exit_status, interrupt_for, run_main, stopped_word  # noqa: E402
from bench.rundir.runpaths import FAILED, check_folder  # noqa: E402
from bench.rundir.runstate import RunBusy, failure  # noqa: E402
from bench.train.trainer import Diverged, Interrupted  # noqa: E402


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
            raise interrupt_for(signum)
        holder["trainer"].stop_requested = True
        holder["signal"] = signum

    def hook(trainer):                      # the run is accepted: its work starts
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
    except KeyboardInterrupt as e:          # also Terminated: SIGTERM (bench.core.command)
        print(stopped_word(e) + ("" if "trainer" in holder else " before training started")
              + "; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return exit_status(e)
    except (Diverged, RunBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        if "trainer" not in holder:         # refused before any work: bad input
            print(f"error: {e}", file=sys.stderr)
            return 2
        recorded = (f"recorded in {run_dir / FAILED}" if failure(run_dir)
                    else f"{FAILED} could not be written")
        print(f"error: the run failed: {type(e).__name__}: {e} ({recorded}); fix the cause and "
              f"rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 1
    print(json.dumps({"run_dir": str(run_dir), **{k: v for k, v in final.items()
                                                   if k != "loss_bins"}}))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
