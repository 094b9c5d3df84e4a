"""bench.evaluation wired into the trainer: evals.csv format, toy metrics, resume truncation and
idempotency, rank 0 only, training unaffected by evaluation, config validation, and the FID path's
bad inputs (no Inception weights offline, resolution mismatch) through the config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.rundir import runfiles, runtables
from bench import config as C
from bench.evaluation import callbacks as E
from bench.evaluation import __main__ as eval_cli
from bench import experiment
from bench.evaluation import inception, reference, small_cnn


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _toy(iterations=40, **ev):
    base = {"at": [20], "final": True, "n_samples": 300, "ddim_steps": 10, "batch_size": 300,
            "nll": {"n_images": 64, "timesteps": 10, "batch_size": 64},
            "toy": {"n_proj": 64, "mmd_n": 300}}
    base.update(ev)
    return C.resolve({
        "name": "toy_eval", "dataset": {"name": "toy2d", "n_train": 512, "n_test": 128},
        "backbone": {"name": "mlp", "width": 32, "depth": 2},
        "diffusion": {"timesteps": 100},
        "train": {"iterations": iterations, "batch_size": 64, "log_every": 20, "ckpt_every": 20,
                  "device": "cpu"},
        "eval": base})


def test_default_config_has_no_callbacks_and_unknown_keys_fail():
    # evaluation off: only Adaptation, which is a no-op for a fixed strategy
    assert [type(cb).__name__ for cb in E.callbacks(C.resolve({}))] == ["Adaptation"]
    with pytest.raises(C.ConfigError, match=r"eval\.'n_sample'.*n_samples"):
        C.resolve({"eval": {"n_sample": 10}})
    with pytest.raises(C.ConfigError, match=r"eval\.diagnostics\.'binz'.*bins"):
        C.resolve({"eval": {"diagnostics": {"binz": 3}}})
    with pytest.raises(C.ConfigError, match="eval.extractor"):
        C.resolve({"eval": {"extractor": "clip"}})
    with pytest.raises(C.ConfigError, match="eval.every"):
        C.resolve({"eval": {"every": -1}})


def test_toy_run_writes_evals_csv_in_the_documented_format(tmp_path):
    cfg = _toy()
    kinds = [type(cb).__name__ for cb in E.callbacks(cfg)]
    assert kinds == ["Adaptation", "Evaluator"]
    experiment.run(cfg, tmp_path / "r", progress=False)
    ev = pd.read_csv(tmp_path / "r" / "evals.csv")
    assert list(ev.columns) == runtables.EVAL_COLUMNS
    assert sorted(ev["step"].unique()) == [20, 40]                # at + final
    assert set(ev["metric"]) == {"swd", "mmd2_rbf", "nll_bpd"}
    assert (ev.groupby("step").size() == 3).all()
    s = ev[ev.metric == "swd"]
    assert set(s["sampler"]) == {"ddim10_eta0"} and set(s["n_samples"]) == {300}
    assert set(ev[ev.metric == "nll_bpd"]["sampler"]) == {"stratified_K10"}
    assert (ev["nimg"] == ev["step"] * 64).all()
    assert np.isfinite(ev["value"]).all() and (ev["wall_s_eval"] > 0).all()
    metrics = [__import__("json").loads(x) for x in (tmp_path / "r" / "metrics.jsonl").open()]
    train_clock = {m["step"]: m["wall_s_train"] for m in metrics}
    for _, row in ev.iterrows():                                   # training clock, not eval time
        assert row["wall_s_train"] == pytest.approx(train_clock[row["step"]], abs=1e-3)


def test_evaluation_does_not_change_training(tmp_path):
    """Same final weights with and without evaluation + diagnostics (no shared random state)."""
    off = _toy(at=[], final=False)
    on = _toy(at=[0, 20], diagnostics={"at": [0, 20], "bins": 4, "loss_per_bin": 8, "per_bin": 4,
                                       "pool": 32, "hist_bins": 5})
    experiment.run(off, tmp_path / "off", progress=False)
    experiment.run(on, tmp_path / "on", progress=False)
    a = torch.load(tmp_path / "off" / "ckpt" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "on" / "ckpt" / "last.pt", weights_only=False)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (tmp_path / "on" / "evals.csv").exists()
    assert not (tmp_path / "off" / "evals.csv").exists()


def test_resume_drops_later_rows_and_reevaluation_is_idempotent(tmp_path):
    from helpers import StopAt

    from bench.train.trainer import Interrupted

    cfg = _toy(iterations=40, at=[20, 40], final=False)
    run = tmp_path / "r"
    with pytest.raises(Interrupted):                  # evaluated at 20, checkpointed, stopped
        experiment.run(cfg, run, progress=False, extra_callbacks=[StopAt(20)])
    first = pd.read_csv(run / "evals.csv")
    # a hard kill after an eval at step 30 that never reached a checkpoint: stale rows
    stale = first.assign(step=30, value=-1.0)
    pd.concat([first, stale]).to_csv(run / "evals.csv", index=False)
    experiment.run(cfg, run, progress=False)          # resumes from step 20
    ev = pd.read_csv(run / "evals.csv")
    assert sorted(ev["step"].unique()) == [20, 40] and (ev["value"] != -1.0).all()
    assert len(ev) == 6
    # re-evaluating the same step replaces its rows instead of duplicating them
    runtables.append_evals(run, ev[ev.step == 40].to_dict("records"))
    assert len(pd.read_csv(run / "evals.csv")) == 6


def test_only_rank_zero_evaluates(tmp_path):
    class FakeTrainer:
        rank, step, run_dir = 1, 20, tmp_path

    for cb in E.callbacks(_toy(diagnostics={"at": [20]})):
        for hook in ("on_start", "on_step_end", "on_end"):
            getattr(cb, hook, lambda tr: None)(FakeTrainer())
    assert not any(tmp_path.iterdir())


def test_metric_selection_errors():
    assert E.resolve_metrics(["auto"], True) == ["fid", "nll"]
    assert E.resolve_metrics(["auto", "nll"], False) == ["swd", "mmd", "nll"]
    with pytest.raises(ValueError, match="fid needs image data"):
        E.resolve_metrics(["fid"], False)
    with pytest.raises(ValueError, match="2-D toy metrics"):
        E.resolve_metrics(["swd"], True)


# ---------------------------------------------------------------------------- FID path, digits
def _digits(tmp_path, **ev):
    base = {"metrics": ["fid"], "n_samples": 64, "ddim_steps": 5, "batch_size": 64,
            "cache_dir": str(tmp_path / "cache")}
    base.update(ev)
    return C.resolve({
        "name": "digits_fid", "dataset": {"name": "digits"},
        "backbone": {"name": "unet", "ch": 8, "ch_mult": [1], "num_res_blocks": 1,
                     "attn_resolutions": [], "dropout": 0.0},
        "diffusion": {"timesteps": 50}, "train": {"batch_size": 16, "device": "cpu"},
        "eval": base})


def _components(cfg):
    from bench.train.components import build_components

    return build_components(cfg, torch.device("cpu"))


def test_fd_cnn_through_the_evaluator(tmp_path, monkeypatch):
    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 60)              # a quick, still-cached extractor
    cfg = _digits(tmp_path)
    data, model, diffusion, _ = _components(cfg)
    rows = E.Evaluator(cfg).evaluate(model, diffusion, data, 0, torch.device("cpu"))
    assert [r["metric"] for r in rows] == ["fd_cnn"]
    assert rows[0]["sampler"] == "ddim5_eta0" and rows[0]["n_samples"] == 64
    assert np.isfinite(rows[0]["value"]) and rows[0]["value"] > 0
    assert list((tmp_path / "cache" / "ref_stats").glob("digits-*_1×8×8_cnn-*_train_n1438.npz"))


def test_resolution_mismatch_with_reference_stats_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 20)
    cfg = _digits(tmp_path)
    data, model, diffusion, _ = _components(cfg)
    ev = E.Evaluator(cfg)
    ex = ev.extractor(data, torch.device("cpu"))
    other = reference.RefStats(np.zeros(ex.dim), np.eye(ex.dim), (1, 28, 28), ex.ident, 10)
    path = tmp_path / "fashion_stats.npz"
    reference.save_ref_stats(path, other)
    cfg2 = _digits(tmp_path, ref_stats=str(path))
    with pytest.raises(ValueError, match=r"resolution mismatch: model samples are 1×8×8.*1×28×28"):
        E.Evaluator(cfg2).evaluate(model, diffusion, data, 0, torch.device("cpu"))


def test_inception_without_weights_offline_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "CLEANFID_DEFAULT_DIR", tmp_path / "nothing")
    cfg = _digits(tmp_path, extractor="inception", inception_download=False)
    data, model, diffusion, _ = _components(cfg)
    with pytest.raises(inception.InceptionUnavailable,
                       match=r"eval.inception_weights=.*eval.extractor=cnn"):
        E.Evaluator(cfg).evaluate(model, diffusion, data, 0, torch.device("cpu"))


def test_cli_evaluates_the_last_checkpoint(tmp_path, capsys):
    run = tmp_path / "r"
    experiment.run(_toy(iterations=20, at=[], final=False), run, progress=False)
    assert eval_cli.main([str(run), "--set", "eval.metrics=[nll, swd]", "--no-progress"]) == 0
    ev = pd.read_csv(run / "evals.csv")
    assert set(ev["metric"]) == {"nll_bpd", "swd"} and set(ev["step"]) == {20}
    assert eval_cli.main([str(run), "--set", "train.lr=0.1"]) == 2
    assert "only change eval" in capsys.readouterr().err


def test_a_kept_snapshot_re_evaluated_reproduces_the_in_run_evaluation(tmp_path, capsys):
    run = tmp_path / "r"
    cfg = _toy(iterations=40, at=[20], final=True)
    cfg["train"]["keep"] = "at_evals"
    experiment.run(cfg, run, progress=False)
    assert runfiles.snapshot_steps(run) == [20, 40]
    before = pd.read_csv(run / "evals.csv")
    assert eval_cli.main([str(run), "--step", "20", "--no-progress"]) == 0
    after = pd.read_csv(run / "evals.csv")
    cols = ["step", "metric", "value", "n_samples", "sampler", "nimg", "wall_s_train",
            "fwd_train", "bwd_train"]
    pd.testing.assert_frame_equal(before[cols], after[cols])         # the same rows, exactly
    # another sample count adds rows, keeping the in-run ones
    assert eval_cli.main([str(run), "--step", "20", "--n-samples", "200", "--no-progress"]) == 0
    more = pd.read_csv(run / "evals.csv")
    at20 = more[(more["step"] == 20) & (more["metric"] == "swd")]
    assert sorted(at20["n_samples"]) == [200, 300]
    capsys.readouterr()
    assert eval_cli.main([str(run), "--step", "30"]) == 2
    assert "kept steps of this run: 20, 40" in capsys.readouterr().err


def test_keep_is_not_part_of_the_run_id():
    a, b = _toy(), _toy()
    b["train"]["keep"] = [10, 20]
    assert C.run_id(a) == C.run_id(b)
    with pytest.raises(C.ConfigError, match="train.keep"):
        C.resolve({"train": {"keep": "sometimes"}})
