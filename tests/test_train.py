"""The trainer and the single-run CLI: learning, exact resume, the results layout, bad inputs."""

import datetime
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bench import config as C
from bench import experiment
from bench.train import __main__ as train_cli

REPO = Path(__file__).resolve().parent.parent
TOY = {
    "name": "toy", "seed": 1,
    "dataset": {"name": "toy2d", "kind": "8gaussians", "n_train": 4000, "n_test": 500},
    "backbone": {"name": "mlp", "width": 64, "depth": 2},
    "diffusion": {"schedule": "linear", "timesteps": 100},
    "train": {"iterations": 300, "batch_size": 128, "lr": 2e-3, "warmup": 10,
              "log_every": 50, "ckpt_every": 100, "ema_decay": 0.99},
}


def rows(run_dir):
    return [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_toy_run_learns_and_writes_the_results_layout(tmp_path):
    cfg = C.resolve(TOY)
    final = experiment.run(cfg, tmp_path / "run", progress=False)
    r = rows(tmp_path / "run")
    assert [x["step"] for x in r] == [50, 100, 150, 200, 250, 300]
    assert r[-1]["loss"] < 0.75 * r[0]["loss"]
    assert final["step"] == 300 and len(final["loss_bins"]) == 10
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "ckpt/last.pt", "DONE"):
        assert (tmp_path / "run" / name).exists(), name
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == cfg
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert {"git_sha", "git_dirty", "torch", "device", "host", "slurm_job_id", "cuda", "cpu",
            "gpu", "command"} <= set(meta)
    assert datetime.datetime.fromisoformat(meta["started"]).tzinfo is not None   # ISO-8601
    assert meta["device_name"] == meta["cpu"] and meta["cpu"] not in ("", "cpu")
    packages = (tmp_path / "run" / meta["packages"]).read_text().splitlines()
    assert any(p.startswith("torch==") for p in packages) and packages == sorted(
        packages, key=lambda p: p.split("==")[0].lower())
    # A finished run is not retrained.
    assert experiment.run(cfg, tmp_path / "run", progress=False)["step"] == 300


def test_digits_run_learns(tmp_path):
    cfg = C.resolve({
        "dataset": {"name": "digits"},
        "backbone": {"name": "unet", "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1,
                     "attn_resolutions": [], "dropout": 0.0},
        "diffusion": {"timesteps": 200},
        "train": {"iterations": 120, "batch_size": 32, "lr": 2e-3, "log_every": 20,
                  "ckpt_every": 1000},
    })
    experiment.run(cfg, tmp_path, progress=False)
    r = rows(tmp_path)
    assert r[-1]["loss"] < 0.6 * r[0]["loss"]


def test_ema_warmup_and_lr_warmup(tmp_path):
    from bench.train.trainer import Trainer

    tr = Trainer(C.resolve({**TOY, "train": {**TOY["train"], "warmup": 4, "lr": 1e-3}}),
                 tmp_path, progress=False)
    assert [tr.lr_at(s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    p0 = [p.detach().clone() for p in tr.model.parameters()]
    tr.train_step()  # step 0: EMA decay min(0.99, 1/10) = 0.1
    for e, m, old in zip(tr.ema.parameters(), tr.model.parameters(), p0):
        assert e.detach().numpy() == pytest.approx((0.1 * old + 0.9 * m.detach()).numpy(), abs=1e-6)


def _cli(tmp_path, cfg, results, *extra):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.Popen([sys.executable, "-m", "bench.train", str(path), "--results-dir",
                             str(results), "--no-progress", *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_identical_metrics(tmp_path, sig):
    cfg = {**TOY, "train": {**TOY["train"], "iterations": 1200, "ckpt_every": 100}}
    ref = _cli(tmp_path, cfg, tmp_path / "ref")
    assert ref.wait(timeout=600) == 0, ref.stderr.read()
    proc = _cli(tmp_path, cfg, tmp_path / "cut")
    run_dir = tmp_path / "cut" / C.run_id(C.resolve(cfg))
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until it is part-way: a checkpoint exists
        if (run_dir / "ckpt" / "last.pt").exists() and len(rows(run_dir)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert not (run_dir / "DONE").exists(), "the run finished before the signal; make it longer"
    assert code == (143 if sig == signal.SIGTERM else -9), proc.stderr.read()
    again = _cli(tmp_path, cfg, tmp_path / "cut")
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "resumed from step" in out + err
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_s_train"} for r in rs]  # noqa
    assert strip(rows(run_dir)) == strip(rows(tmp_path / "ref" / run_dir.name))


BAD = [
    ({"backbone": {"name": "resnet"}}, "unknown backbone.name 'resnet'; valid: mlp, unet, uvit"),
    ({"dataset": {"name": "mnist"}}, "unknown dataset.name 'mnist'; valid: cifar10, digits"),
    ({"strategy": {"name": "nope"}}, "unknown strategy 'nope'; valid: "),
    ({"diffusion": {"schedule": "sigmoid"}}, "valid: linear, cosine, quad"),
    ({"train": {"iterations": 0}}, "train.iterations must be a positive integer"),
    ({"train": {"iterations": -5}}, "train.iterations must be a positive integer"),
    ({"train": {"learning_rate": 1e-3}}, "unknown config key train.'learning_rate'; valid: batch_size"),
    ({"trian": {}}, "unknown config key 'trian'; valid: backbone"),
    ({"dataset": {"name": "fashion_mnist", "root": "/nonexistent"}}, "apt-get install dataset-fashion-mnist"),
    ({"strategy": {"name": "uniform", "gamma": 1}}, "strategy 'uniform': unknown parameter(s) gamma"),
    ({"backbone": {"name": "mlp", "widht": 3}}, "backbone 'mlp': unknown parameter(s) widht"),
]


@pytest.mark.parametrize("override,message", BAD)
def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, capsys, override, message):
    cfg = C.deep_update(TOY, override)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code = train_cli.main([str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "out"),
                       "--no-progress"])
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err and "run dir:" not in captured.out
    assert not (tmp_path / "out").exists()


def test_malformed_yaml_missing_file_and_bad_set(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("train: {iterations: 3\n  lr: [")
    assert train_cli.main([str(tmp_path / "bad.yaml"), "--results-dir", str(tmp_path / "o")]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert train_cli.main([str(tmp_path / "none.yaml"), "--results-dir", str(tmp_path / "o")]) == 2
    assert "config file not found" in capsys.readouterr().err
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(TOY))
    assert train_cli.main([str(tmp_path / "ok.yaml"), "--set", "train.iterations", "--results-dir",
                       str(tmp_path / "o")]) == 2
    assert "--set expects key=value" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_set_overrides_and_scientific_floats(tmp_path):
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(TOY))
    cfg = C.load(str(tmp_path / "ok.yaml"), ["train.lr=3e-4", "strategy.name=uniform",
                                                        "diffusion.schedule=cosine"])
    assert cfg["train"]["lr"] == 3e-4 and cfg["diffusion"]["schedule"] == "cosine"
    assert C.run_id(cfg) != C.run_id(C.resolve(TOY)) and len(C.run_id(cfg)) == 10


def test_common_random_numbers_across_strategies(tmp_path):
    """Same seed → same data order and noise for every strategy (only t and weights differ)."""
    from bench.train.trainer import Trainer

    a = Trainer(C.resolve(TOY), tmp_path / "a", progress=False)
    b = Trainer(C.resolve(C.deep_update(TOY, {"diffusion": {"schedule": "cosine"}})),
                tmp_path / "b", progress=False)
    for step in (0, 31, 32, 500):
        assert (a.batch(step) == b.batch(step)).all()


def test_sample_cli_plots_samples_beside_the_data(tmp_path, capsys):
    from bench.tools import sample

    cfg = C.resolve({**TOY, "train": {**TOY["train"], "iterations": 20}})
    experiment.run(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "s.png"
    assert sample.main([str(tmp_path / "run"), "--n", "200", "--steps", "10", "--out",
                        str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sample.main([str(tmp_path), "--n", "10"]) == 2
    assert "is not a run with a checkpoint" in capsys.readouterr().err


def test_no_progress_prints_a_plain_line_per_log_tick_and_each_evaluation(tmp_path, capsys):
    """A job log (SLURM, a redirect) gets one line per log_every and every evaluation's results,
    with no terminal control codes."""
    cfg = {**TOY, "train": {**TOY["train"], "iterations": 100},
           "eval": {"every": 50, "metrics": ["swd"], "n_samples": 200, "ddim_steps": 10}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert train_cli.main([str(tmp_path / "c.yaml"), "--results-dir", str(tmp_path / "out"),
                           "--no-progress"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("[toy] step")]
    assert [ln.split(" · ")[0] for ln in lines] == ["[toy] step 50/100 (50%)",
                                                    "[toy] step 100/100 (100%)"]
    assert all("loss " in ln and "it/s" in ln and "ETA" in ln for ln in lines)
    assert "eval swd=" in lines[1]                           # the latest evaluation, at 50
    evals = [ln for ln in err.splitlines() if ln.startswith("[toy] eval at step")]
    assert [ln.split(":")[0] for ln in evals] == ["[toy] eval at step 50", "[toy] eval at step 100"]
    assert "\x1b" not in err and "\r" not in err
