"""Evaluate a run's last checkpoint, or a kept snapshot, into its evals.csv.

    python -m bench.evaluation RUN_DIR [--step N] [--n-samples N] [--extractor NAME]
                               [--set eval.key=value ...]
    (python -m bench.eval and tsbench eval are the same command)

``--step N`` evaluates the weights kept at step N (``train.keep``: ckpt/step_<N>.safetensors),
e.g. FID at the 0.2M budget with 50k samples or another extractor long after the run moved on:
``--step 200000 --n-samples 50000 --extractor inception`` (``--n-samples`` and ``--extractor`` are
short for ``--set eval.n_samples=`` and ``--set eval.extractor=``). With the run's own
eval settings it reproduces the in-run evaluation exactly (same weights, same sampling seed) and
replaces its rows; another sample count or extractor adds rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.core.command import guard_startup, run_main

guard_startup(__name__ == "__main__")        # Ctrl-C during the imports below: one line

import torch  # noqa: E402

from bench.rundir import runfiles, runpaths, runstate, runtables  # noqa: E402
from bench.config.fields import ConfigError  # noqa: E402
from bench.config.files import parse_set, resolve  # noqa: E402
from bench.config.sections import Config, deep_update  # noqa: E402
from bench.core.io import pick_device  # noqa: E402
from bench.evaluation.callbacks import Evaluator, stamp  # noqa: E402
from bench.train.components import build_components  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override an eval setting, e.g. --set eval.n_samples=5000")
    ap.add_argument("--step", type=int, help="evaluate the weights kept at this step "
                                             "(train.keep) instead of ckpt/last.pt")
    ap.add_argument("--n-samples", type=int, help="short for --set eval.n_samples=N")
    ap.add_argument("--extractor", help="short for --set eval.extractor=NAME (cnn, inception)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    args.set += [f"eval.{k}={v}" for k, v in (("n_samples", args.n_samples),
                                              ("extractor", args.extractor)) if v is not None]
    run_dir = Path(args.run_dir)
    try:
        cfg = runfiles.read_config(run_dir)
        sets = parse_set(args.set)
        if set(sets) - {"eval"}:
            raise ConfigError("--set may only change eval.* settings here")
        cfg = Config.of(resolve(deep_update(cfg, sets)))
        holder = runstate.lock_holder(run_dir)
        if holder:          # evals.csv is the trainer's while it runs (and a resume truncates it)
            raise ValueError(f"{run_dir} is training ({holder}); evaluate it when that process "
                             f"has stopped")
        if args.step is not None:
            weights, st = runfiles.read_snapshot(run_dir, args.step)
            if st.get("weights") != ("ema" if cfg.eval.use_ema else "model"):
                raise ValueError(f"step {args.step} kept the {st.get('weights')} weights; "
                                 f"eval.use_ema={cfg.eval.use_ema} asks for the other ones")
        else:
            ckpt = runpaths.ckpt_path(run_dir)
            if not ckpt.exists():
                raise FileNotFoundError(f"{ckpt} does not exist")
            st = torch.load(ckpt, map_location="cpu", weights_only=False)
            weights = st["ema"] if cfg.eval.use_ema else st["model"]
        device = pick_device(cfg.train.device)
        data, model, process, _ = build_components(cfg, device)
        model.load_state_dict(weights)
        rows = Evaluator(cfg).evaluate(model.eval(), process, data, st["step"], device,
                                       progress=not args.no_progress)
        stamp(rows, st["step"] * cfg.train.batch_size, st["wall_s_train"], st.get("cost"))
        runtables.append_evals(run_dir, rows)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
