"""Record the golden values of tests/test_perf_equivalence.py (run ONCE, on the code before the
performance work of issue 8; re-running it later would only re-record whatever the code does now).
Bit-exact values belong to one CPU model: to add one, run this script from a worktree of the
pre-optimisation commit 0437afb (``git worktree add /tmp/preopt 0437afb``, then this venv's
python on ``/tmp/preopt/scripts/make_perf_golden.py --out FILE``) and put FILE's content under
``platforms[<CPU model name>]`` of the fixture (``bench.train.run.cpu_model()``).

    OMP_NUM_THREADS=1 python scripts/make_perf_golden.py [--out tests/fixtures/perf_golden.json]

Fixed-seed short CPU runs (toy2d + MLP with dropout 0.1, T = 100, 60 steps, batch 128, log every
10 steps): adaptive_beta with f_S = 5 (12 policy updates, the KLs in train mode, so dropout masks
and the global RNG are part of what is compared) and uniform. Recorded per run: the metrics.jsonl
rows without ``wall_s_train`` and the final strategy state, the model and the EMA as JSON
(tensors of <= 512 elements as nested lists, float32/float64 values round-trip exactly through
JSON; larger ones as the SHA-256 of their bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as C  # noqa: E402
from bench.rundir import runtables  # noqa: E402
from bench.train.trainer import Trainer  # noqa: E402

SMALL = 512          # tensors with more elements are recorded by hash
RUNS = {
    "adaptive_beta": {"name": "adaptive_beta", "update_every": 5},
    "uniform": {"name": "uniform"},
}


def make_cfg(strategy: dict) -> dict:
    return C.resolve({
        "name": "perf-golden", "seed": 3,
        "dataset": {"name": "toy2d", "kind": "8gaussians"},
        "backbone": {"name": "mlp", "width": 64, "depth": 2, "dropout": 0.1},
        "strategy": dict(strategy),
        "diffusion": {"schedule": "linear", "timesteps": 100},
        "train": {"iterations": 60, "batch_size": 128, "lr": 1e-3, "log_every": 10,
                  "ckpt_every": 1000, "device": "cpu"},
    })


def jsonable(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().contiguous()
        rec = {"dtype": str(x.dtype), "shape": list(x.shape)}
        if x.numel() <= SMALL:
            return {**rec, "values": x.tolist()}
        # large tensors: the SHA-256 of their bytes (as strict as the values, much smaller)
        return {**rec, "sha256": hashlib.sha256(x.numpy().tobytes()).hexdigest()}
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def run_one(strategy: dict) -> dict:
    """Train one fixed-seed run; returns its comparable record (JSON round-tripped)."""
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(make_cfg(strategy), Path(d), progress=False)
        tr.run()
        rows, _ = runtables.metric_rows(Path(d))
    for r in rows:
        r.pop("wall_s_train", None)
    rec = {"metrics": rows, "strategy_state": jsonable(tr.strategy.state_dict()),
           "model": jsonable(tr.model.state_dict()), "ema": jsonable(tr.ema.state_dict()),
           "global_rng_next": torch.rand(4, dtype=torch.float64).tolist()}
    return json.loads(json.dumps(rec))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                         / "tests" / "fixtures" / "perf_golden.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = {"torch": torch.__version__, "runs": {k: run_one(s) for k, s in RUNS.items()}}
    Path(args.out).write_text(json.dumps(out) + "\n")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
