"""Experiment trackers (bench.train.loggers), for real: a TensorBoard event file read back with
tensorboard's own reader; W&B in offline mode where the package is installed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench import config as C
from bench import experiment
from bench.rundir import runpaths
from bench.train import loggers

TOY = {
    "name": "toy", "seed": 1,
    "dataset": {"name": "toy2d", "kind": "8gaussians", "n_train": 2000, "n_test": 500},
    "backbone": {"name": "mlp", "width": 32, "depth": 2},
    "diffusion": {"schedule": "linear", "timesteps": 50},
    "train": {"iterations": 60, "batch_size": 64, "log_every": 20, "ckpt_every": 30},
    "eval": {"every": 30, "metrics": ["swd"], "n_samples": 200, "ddim_steps": 5},
}


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = runpaths.tensorboard_dir(run_dir).iterdir()        # one TensorBoard run per run
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]}, acc


def test_tensorboard_event_file_holds_the_logged_scalars(tmp_path):
    cfg = C.resolve({**TOY, "strategy": {"name": "loss_second_moment"},
                     "train": {**TOY["train"], "loggers": ["tensorboard"]}})
    assert C.run_id(cfg) == C.run_id(C.resolve({**TOY, "strategy": {"name":
                                                                    "loss_second_moment"}}))
    experiment.run(cfg, tmp_path / "run", progress=False)
    tb, acc = scalars(tmp_path / "run")
    assert [s for s, _ in tb["train/loss"]] == [20, 40, 60]
    jsonl = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [v for _, v in tb["train/loss"]] == pytest.approx([r["loss"] for r in jsonl],
                                                             rel=1e-6)
    assert {"train/grad_norm", "train/lr", "train/loss_t00-04", "train/loss_t45-49",
            "cost/fwd_train", "eval/swd", "adapt/tv_uniform"} <= set(tb)
    assert [s for s, _ in tb["eval/swd"]] == [30, 60]
    assert tb["cost/fwd_train"][-1] == (60, 60 * 64)
    hist = acc.Histograms("t_drawn")
    assert [h.step for h in hist] == [20, 40, 60] and hist[0].histogram_value.num == 20 * 64


class CrashAt:
    """A hard failure at ``step``, after the last log tick and past the last checkpoint."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, tr) -> None:
        if tr.step == self.step:
            raise RuntimeError("crash")


def test_tensorboard_resume_purges_what_came_after_the_checkpoint(tmp_path):
    cfg = C.resolve({**TOY, "eval": {"every": 0},
                     "train": {**TOY["train"], "log_every": 10, "loggers": ["tensorboard"]}})
    with pytest.raises(RuntimeError, match="crash"):      # logged 10 … 50; checkpoint at 30
        experiment.run(cfg, tmp_path / "run", progress=False, extra_callbacks=[CrashAt(55)])
    assert [s for s, _ in scalars(tmp_path / "run")[0]["train/loss"]] == [10, 20, 30, 40, 50]
    experiment.run(cfg, tmp_path / "run", progress=False)  # resumes at 30: 40, 50 logged again
    tb, _ = scalars(tmp_path / "run")
    assert [s for s, _ in tb["train/loss"]] == [10, 20, 30, 40, 50, 60]   # each once, 30 kept
    jsonl = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [v for _, v in tb["train/loss"]] == pytest.approx([r["loss"] for r in jsonl],
                                                             rel=1e-6)


def test_an_unknown_or_missing_logger_is_refused_before_any_work(tmp_path):
    cfg = C.resolve({**TOY, "train": {**TOY["train"], "loggers": ["mlflw"]}})
    with pytest.raises(ValueError, match="unknown logger 'mlflw'; valid: tensorboard, wandb"):
        experiment.run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    if importlib.util.find_spec("wandb") is None:
        cfg = C.resolve({**TOY, "train": {**TOY["train"], "loggers": ["wandb"]}})
        with pytest.raises(ValueError, match="needs the 'wandb' package"):
            experiment.run(cfg, tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()
    assert loggers.names() == ["tensorboard", "wandb"]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = C.resolve({**TOY, "eval": {"every": 0},
                     "train": {**TOY["train"], "loggers": ["wandb"]}})
    experiment.run(cfg, tmp_path / "run", progress=False)
    runs = list(runpaths.wandb_dir(tmp_path / "run").rglob("*.wandb"))
    assert runs and runs[0].stat().st_size > 0


def test_a_tensorboard_run_is_named_and_carries_its_hparams(tmp_path):
    """The run's folder says strategy, seed and setting; the HPARAMS tab (read back from the
    event file with tensorboard's own protos) holds strategy, label, variant and seed; flow's loss
    bins carry their t-range."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    cfg = C.resolve({**TOY, "seed": 4, "process": {"name": "flow"},
                     "strategy": {"name": "adaptive_beta", "variant": "low_variance"},
                     "eval": {"every": 0, "sampler": "euler"},
                     "train": {**TOY["train"], "iterations": 20, "loggers": ["tensorboard"]}})
    experiment.run(cfg, tmp_path / "sweep" / "run", progress=False)
    (run,) = runpaths.tensorboard_dir(tmp_path / "sweep" / "run").iterdir()
    assert run.name == ("adaptive_beta(variant=low_variance) · seed 4 · toy2d(kind=8gaussians,"
                        "n_test=500,n_train=2000) · mlp(depth=2,width=32) · flow")
    tb, acc = scalars(tmp_path / "sweep" / "run")
    assert {"train/loss_t0-0.1", "train/loss_t0.9-1"} <= set(tb)
    content = acc.PluginTagToContent("hparams")
    data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = {k: v.string_value or v.number_value for k, v in data.session_start_info.hparams.items()}
    assert hp["strategy"] == "adaptive_beta" and hp["seed"] == 4 and hp["variant"] == \
        "low_variance" and hp["process"] == "flow" and hp["sweep"] == "sweep"
    assert "q1" in acc.Tensors("about/tags/text_summary")[0].tensor_proto.string_val[0].decode()
