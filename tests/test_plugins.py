"""Extending without forking: a strategy from a package outside the suite, found through the
``timestep_bench.strategies`` entry-point group or named in a config's/sweep's ``imports:``,
listed by ``bench.strategies`` and trained by a ``--cluster local`` sweep (real subprocesses,
real package metadata: a dist-info directory on PYTHONPATH, as pip would write it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

MODULE = textwrap.dedent('''
    """A user's sampler: all mass on the first half of the timesteps."""
    import torch
    from strategies import Strategy, register


    @register
    class FirstHalf(Strategy):
        name = "first_half"
        paper = "a test plug-in"

        def sample(self, x0, generator):
            t = torch.randint(0, self.T // 2, (x0.shape[0],), generator=generator)
            return self.draw(t).select(slice(None), x0.device)

        def probabilities(self):
            p = torch.zeros(self.T, dtype=torch.float64)
            p[: self.T // 2] = 1.0
            return p / p.sum()
''')


def plugin(tmp_path: Path, entry_point: bool) -> dict:
    """The plug-in package in ``tmp_path/site`` (optionally with its entry point) and the env
    that puts it on PYTHONPATH."""
    site = tmp_path / "site"
    (site / "mypkg").mkdir(parents=True)
    (site / "mypkg" / "__init__.py").write_text("")
    (site / "mypkg" / "first_half.py").write_text(MODULE)
    if entry_point:
        info = site / "mypkg-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(
            "[timestep_bench.strategies]\nfirst_half = mypkg.first_half\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    return env


def run(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_an_entry_point_strategy_is_listed_and_shown(tmp_path):
    env = plugin(tmp_path, entry_point=True)
    r = run(["-m", "bench.strategies"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "first_half" in r.stdout and "a test plug-in" in r.stdout
    r = run(["-m", "bench.strategies", "show", "first_half", "--timesteps", "40"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    probs = [float(line.split(",")[1]) for line in r.stdout.splitlines()[1:]]
    assert probs == [0.05] * 20 + [0.0] * 20
    # without the package on the path the name is unknown, with the valid choices
    r = run(["-m", "bench.strategies", "show", "first_half"], dict(os.environ), tmp_path)
    assert r.returncode == 2 and "unknown strategy 'first_half'" in r.stderr


def test_a_strategy_named_in_imports_trains_in_a_local_sweep(tmp_path):
    env = plugin(tmp_path, entry_point=False)
    sweep = {"name": "plug", "base": {
        "imports": ["mypkg.first_half"],
        "dataset": {"name": "toy2d", "n_train": 256, "n_test": 64},
        "backbone": {"name": "mlp", "width": 16, "depth": 1}, "diffusion": {"timesteps": 50},
        "train": {"iterations": 20, "batch_size": 32, "log_every": 10, "ckpt_every": 10}},
        "grid": {"strategy": [{"name": "first_half"}, {"name": "uniform"}]},
        "executor": {"parallel": 2, "cpus_per_task": 1}}
    (tmp_path / "plug.yaml").write_text(yaml.safe_dump(sweep))
    r = run(["-m", "bench.sweep", "plug.yaml", "--cluster", "local", "--results-dir", "res"],
            env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = {yaml.safe_load((d / "config.yaml").read_text())["strategy"]["name"]: d
            for d in (tmp_path / "res" / "plug").iterdir() if (d / "config.yaml").exists()}
    assert set(runs) == {"first_half", "uniform"}
    assert all((d / "DONE").exists() for d in runs.values())
    final = json.loads((runs["first_half"] / "DONE").read_text())
    assert final["step"] == 20
    # without the module on the path, the sweep is refused before anything runs
    r = run(["-m", "bench.sweep", "plug.yaml", "--cluster", "local", "--results-dir", "res2"],
            dict(os.environ), tmp_path)
    assert r.returncode == 2 and "cannot import 'mypkg.first_half'" in r.stderr
    assert not (tmp_path / "res2").exists()


def test_tsbench_runs_each_tool_and_finds_sweeps_by_name(tmp_path, capsys):
    from bench import cli
    from bench import config as C

    assert cli.main(["nope"]) == 2 and "valid: train, sweep" in capsys.readouterr().err
    assert cli.main(["strategies"]) == 0 and "uniform" in capsys.readouterr().out
    # the console script pip installed (scripts/setup.sh: pip install -e .)
    script = Path(sys.executable).with_name("tsbench")
    r = subprocess.run([str(script), "sweep", "quickstart", "--dry-run"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "quickstart" in r.stdout.splitlines()[0] and "108 runs" in r.stdout.splitlines()[0]
    assert C.find_file("quickstart") == REPO / "sweeps" / "quickstart.yaml"
    assert C.find_file("configs/digits.yaml").name == "digits.yaml"
    with pytest.raises(C.ConfigError, match="config file not found: nope.yaml .looked in"):
        C.find_file("nope.yaml")
