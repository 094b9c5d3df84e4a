"""Multi-process training: 2 gloo ranks on the CPU equal 1 process with the same global batch.

Every rank draws the same global batch, timesteps and noise and trains on its half; gradients are
averaged across ranks (torch DistributedDataParallel) and strategies get a cross-rank SUM. So the
logged metrics and the final weights of a 2-process run match the 1-process run up to
floating-point reduction order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bench import config as C
from bench.core import dist

REPO = Path(__file__).resolve().parent.parent

CFG = {
    "name": "ddp",
    "seed": 3,
    "dataset": {"name": "toy2d", "kind": "8gaussians", "n_train": 4096, "n_test": 256},
    "backbone": {"name": "mlp", "width": 64, "depth": 2},
    "diffusion": {"schedule": "linear", "timesteps": 100},
    "train": {"iterations": 50, "batch_size": 128, "lr": 1e-3, "warmup": 5, "ema_decay": 0.99,
              "log_every": 10, "ckpt_every": 50, "device": "cpu"},
}

WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from bench import experiment
    from bench.core import dist
    rank, world, port, run_dir, cfg = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                       sys.argv[4], json.loads(sys.argv[5]))
    torch.set_num_threads(1)
    env = dist.DistEnv(rank=rank, world_size=world, local_rank=rank, master_port=port)
    dist.init(env, timeout_s=120)
    try:
        experiment.run(cfg, run_dir, progress=False, rank=rank, world_size=world,
                  reduce=dist.all_reduce_sum if world > 1 else None)
    finally:
        dist.teardown()
""")


def _train(cfg: dict, run_dir: Path, world: int) -> None:
    port = dist.free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(world), str(port),
                               str(run_dir), json.dumps(cfg)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    for r, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {r} failed:\n{out}"


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_ranks_equal_one_process(tmp_path):
    from bench import experiment

    cfg = C.resolve({**CFG, "strategy": {"name": "p2", "k": 1, "gamma": 1}})
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # as the ranks; more threads than free cores spin
    try:
        experiment.run(cfg, one, progress=False)
    finally:
        torch.set_num_threads(threads)
    _train(cfg, two, 2)
    assert (one / "DONE").exists() and (two / "DONE").exists()
    m1, m2 = _metrics(one), _metrics(two)
    assert [r["step"] for r in m1] == [r["step"] for r in m2] == [10, 20, 30, 40, 50]
    for a, b in zip(m1, m2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4, abs=1e-6)
        for x, y in zip(a["loss_bins"], b["loss_bins"]):
            assert (x is None) == (y is None)
            if x is not None:
                assert y == pytest.approx(x, rel=1e-4, abs=1e-6)
    s1 = torch.load(one / "ckpt" / "last.pt", weights_only=False)
    s2 = torch.load(two / "ckpt" / "last.pt", weights_only=False)
    assert s1["step"] == s2["step"] == 50
    for k, v in s1["model"].items():
        torch.testing.assert_close(s2["model"][k], v, rtol=1e-4, atol=1e-5)
    # Only rank 0 writes: one metrics file, one DONE, and no stray files from rank 1.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_single_process_reduce_is_identity():

    x = torch.arange(4.0)
    assert dist.sum_reduce(1)(x) is x


def test_adaptive_sampler_runs_on_two_gloo_ranks(tmp_path):
    """The adaptive sampler's policy updates and all-T evaluation (split across ranks, combined
    through the injected reduce) run under 2 processes; rank 0 saves its state."""
    cfg = C.resolve({**CFG, "train": {**CFG["train"], "iterations": 30},
                     "strategy": {"name": "adaptive_beta", "update_every": 5, "queue_size": 4}})
    run_dir = tmp_path / "two"
    _train(cfg, run_dir, 2)
    rows = _metrics(run_dir)
    assert [r["step"] for r in rows] == [10, 20, 30]
    assert all(r["loss"] == r["loss"] and r["loss"] < 10 for r in rows)
    state = torch.load(run_dir / "ckpt" / "last.pt", weights_only=False)["strategy"]
    assert state, "the adaptive sampler's state is checkpointed"
