"""KID (bench.evaluation.fid.kernel_distance, clean-fid's unbiased MMD² with the cubic kernel)
beside FD: its value against clean-fid and an independent formula, ≈ 0 for one distribution and
clearly > 0 for two, the cached reference features (and their invariants), ``kid`` in
``eval.metrics`` through the evaluator and a real run (fd_cnn and kid_cnn rows from one batch of
samples), and the bad inputs (2-D toys, too few samples, explicit statistics without features).
Offline, CNN extractor on 8×8 digits; clean-fid is never mocked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench import config as C
from bench import experiment
from bench.config.sections import EVAL_METRICS
from bench.core.rng import derive_seed
from bench.evaluation import callbacks as E
from bench.evaluation import extractor, fid, reference, small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cubic(a, b):
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x, y):
    """Bińkowski et al. 2018 eq. (KID): U-statistic MMD² with k(x, y) = (x·y/d + 1)³."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = _cubic(x, x), _cubic(y, y), _cubic(x, y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


# ---------------------------------------------------------------------------- the estimator
def test_kid_is_clean_fids_kernel_distance_seeded():
    from cleanfid.fid import kernel_distance as cleanfid_kd

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(700, 12)), rng.normal(size=(300, 12)) + 0.2
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    got = fid.kernel_distance(a, b, seed=7)
    np.testing.assert_array_equal(np.random.get_state()[1], before)    # global state untouched
    np.random.seed(7)
    assert got == cleanfid_kd(a, b, num_subsets=fid.KID_SUBSETS,
                              max_subset_size=fid.KID_SUBSET_SIZE)
    assert fid.kernel_distance(a, b, seed=7) == got                     # reproducible
    assert fid.kernel_distance(a, b, seed=8) != got                     # the seed picks the subsets


def test_kid_is_the_unbiased_mmd2_with_the_cubic_kernel():
    """With subsets as large as the sets, every subset is all the rows: the exact U-statistic."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(150, 8)), rng.normal(size=(150, 8)) * 1.2 + 0.1
    want = _unbiased_mmd2(a, b)
    assert fid.kernel_distance(a, b, num_subsets=3) == pytest.approx(want, rel=1e-9)


def test_kid_near_zero_for_one_distribution_and_clearly_positive_for_two():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2000, 16))
    same = fid.kernel_distance(f, f)                                   # subsets of one set
    twin = fid.kernel_distance(f, rng.normal(size=(1000, 16)))         # a fresh draw of it
    shifted = fid.kernel_distance(f, rng.normal(size=(1000, 16)) + 0.5)
    wider = fid.kernel_distance(f, rng.normal(size=(1000, 16)) * 1.3)
    assert shifted > 0.5 and wider > 0.04, (shifted, wider)
    assert abs(same) < 0.02 * shifted and abs(twin) < 0.02 * shifted, (same, twin, shifted)
    assert abs(same) < 0.2 * wider and abs(twin) < 0.2 * wider, (same, twin, wider)
    # small n (CPU runs: 100 samples), still unbiased around 0 and separating
    small = [fid.kernel_distance(f, rng.normal(size=(100, 16)), seed=s) for s in range(5)]
    assert abs(np.mean(small)) < 0.05 and fid.kernel_distance(
        f, rng.normal(size=(100, 16)) + 0.5) > 0.5, small


def test_kid_needs_two_rows_a_side_and_matching_widths():
    f = np.zeros((10, 4))
    with pytest.raises(ValueError, match="at least 2 feature rows.*eval.n_samples"):
        fid.kernel_distance(f, f[:1])
    with pytest.raises(ValueError, match="same width"):
        fid.kernel_distance(f, np.zeros((10, 5)))


def test_metric_names_record_the_extractor():
    assert fid.metric_name("inception", "kid") == "kid_inception"
    assert fid.metric_name("cnn", "kid") == "kid_cnn"
    assert fid.metric_name("cnn") == "fd_cnn"
    with pytest.raises(ValueError, match="valid: fid, kid"):
        fid.metric_name("cnn", "is")


# ---------------------------------------------------------------------------- digits, CNN features
def test_reference_features_cached_beside_the_statistics(digits, cnn, tmp_path):
    """Stats first (an FD-only run), then KID: the features are computed once more and cached
    beside the untouched statistics; the next call loads both."""
    cache = tmp_path
    rs = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache)
    assert rs.feats is None and not reference.ref_feats_path(rs.path).exists()
    mtime = rs.path.stat().st_mtime_ns
    with_f = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache, with_feats=True)
    fpath = reference.ref_feats_path(rs.path)
    assert fpath.is_file() and fpath.name == rs.path.stem + "_feats.npz"
    assert rs.path.stat().st_mtime_ns == mtime
    direct = extractor.features(cnn, digits.train.get(torch.arange(len(digits.train))))
    np.testing.assert_array_equal(with_f.feats, direct.astype(np.float32))
    np.testing.assert_array_equal(with_f.feats.astype(np.float64), direct)    # float32 is lossless
    np.testing.assert_array_equal(with_f.mu, rs.mu)
    fmtime = fpath.stat().st_mtime_ns
    again = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache, with_feats=True)
    assert fpath.stat().st_mtime_ns == fmtime and rs.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.feats, with_f.feats)


def test_reference_features_of_other_statistics_are_refused(digits, cnn, cache, tmp_path):
    rs = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache, with_feats=True)
    other = reference.RefStats(rs.mu, rs.sigma, rs.shape, rs.extractor, 100, tmp_path / "s.npz",
                         rs.feats[:100])
    reference.save_ref_stats(other.path, other)
    reference.save_ref_feats(reference.ref_feats_path(other.path), other)
    wrong = reference.RefStats(rs.mu, rs.sigma, rs.shape, rs.extractor, len(rs.feats), other.path)
    with pytest.raises(ValueError, match="do not belong to the statistics"):
        reference.load_ref_feats(wrong)
    np.testing.assert_array_equal(reference.load_ref_feats(reference.load_ref_stats(other.path)),
                                  rs.feats[:100])


def test_kid_of_digits_test_split_small_and_corruption_larger(digits, cnn, cache):
    ref = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache, with_feats=True)
    x = digits.test.get(torch.arange(len(digits.test)))
    g = torch.Generator().manual_seed(0)
    clean, mild, heavy = (fid.kid_against(ref, cnn, (x + s * torch.randn(x.shape, generator=g))
                                          .clamp(-1, 1)) for s in (0.0, 0.2, 0.8))
    assert clean < mild < heavy and clean < 0.25 * mild, (clean, mild, heavy)
    with pytest.raises(ValueError, match=r"resolution mismatch.*1×16×16.*1×8×8"):
        fid.kid_against(ref, cnn, torch.zeros(4, 1, 16, 16))


# ---------------------------------------------------------------------------- through the evaluator
def _digits_cfg(tmp_path, **ev):
    base = {"metrics": ["fid", "kid"], "n_samples": 64, "ddim_steps": 5, "batch_size": 64,
            "cache_dir": str(tmp_path / "cache")}
    base.update(ev)
    return C.resolve({
        "name": "digits_kid", "dataset": {"name": "digits"},
        "backbone": {"name": "unet", "ch": 8, "ch_mult": [1], "num_res_blocks": 1,
                     "attn_resolutions": [], "dropout": 0.0},
        "diffusion": {"timesteps": 50},
        "train": {"iterations": 2, "batch_size": 16, "log_every": 1, "ckpt_every": 2,
                  "device": "cpu"},
        "eval": base})


def _components(cfg):
    from bench.train.components import build_components

    return build_components(cfg, torch.device("cpu"))


def test_fd_and_kid_share_one_set_of_sample_features(tmp_path, monkeypatch):
    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 60)
    cfg = _digits_cfg(tmp_path)
    data, model, diffusion, _ = _components(cfg)
    ev, cpu = E.Evaluator(cfg), torch.device("cpu")
    ref = ev.reference(data, cpu, feats=True)
    ex = ev.extractor(data, cpu)
    seen = []
    fn = ex.fn
    monkeypatch.setattr(ex, "fn", lambda x: seen.append(x.clone()) or fn(x))
    rows = ev.evaluate(model, diffusion, data, 0, cpu)
    assert [r["metric"] for r in rows] == ["fd_cnn", "kid_cnn"]
    assert len(seen) == 1 and seen[0].shape == (64, 1, 8, 8)          # one batch, one pass
    fd, kid = rows
    for col in ("n_samples", "sampler", "wall_s_eval", "fwd_eval"):
        assert fd[col] == kid[col], col
    assert (kid["n_samples"], kid["sampler"]) == (64, "ddim5_eta0")
    f = fn(seen[0])
    assert fd["value"] == pytest.approx(fid.frechet_distance(*extractor.stats(f), ref.mu, ref.sigma))
    assert kid["value"] == fid.kernel_distance(ref.feats, f, derive_seed(ev.seed, "eval_kid"))
    # kid alone: the same samples, features computed once, the same value, no FD row
    ev2 = E.Evaluator(_digits_cfg(tmp_path, metrics=["kid"]))
    ev2.reference(data, cpu, feats=True)
    ex2, seen2 = ev2.extractor(data, cpu), []
    fn2 = ex2.fn
    monkeypatch.setattr(ex2, "fn", lambda x: seen2.append(x) or fn2(x))
    alone = ev2.evaluate(model, diffusion, data, 0, cpu)
    assert [r["metric"] for r in alone] == ["kid_cnn"] and len(seen2) == 1
    assert alone[0]["value"] == pytest.approx(kid["value"], rel=1e-9)
    assert list((tmp_path / "cache" / "ref_stats").glob("digits-*_1×8×8_cnn-*_train_n1438.npz"))
    assert list((tmp_path / "cache" / "ref_stats").glob("digits-*_cnn-*_train_n1438_feats.npz"))


def test_a_run_writes_fd_cnn_and_kid_cnn_rows(tmp_path, monkeypatch):
    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 60)
    cfg = _digits_cfg(tmp_path, at=[2], metrics=["fid", "kid", "nll"],
                      nll={"n_images": 16, "timesteps": 4, "batch_size": 16})
    experiment.run(cfg, tmp_path / "r", progress=False)
    ev = pd.read_csv(tmp_path / "r" / "evals.csv")
    assert list(ev["metric"]) == ["fd_cnn", "kid_cnn", "nll_bpd"] and set(ev["step"]) == {2}
    fd, kid = ev.iloc[0], ev.iloc[1]
    for col in ("n_samples", "sampler", "nimg", "wall_s_eval", "fwd_eval"):
        assert fd[col] == kid[col], col
    assert kid["sampler"] == "ddim5_eta0" and kid["n_samples"] == 64
    assert np.isfinite(ev["value"]).all() and kid["value"] > 0      # an untrained model: far off


def test_kid_bad_inputs_are_clear_errors(tmp_path, monkeypatch):
    assert "kid" in EVAL_METRICS and E.resolve_metrics(["auto"], True) == ["fid", "nll"]
    assert E.resolve_metrics(["kid", "auto"], True) == ["kid", "fid", "nll"]
    with pytest.raises(C.ConfigError, match="eval.metrics"):
        C.resolve({"eval": {"metrics": ["kids"]}})
    with pytest.raises(ValueError, match="kid needs image data; use swd, mmd and nll"):
        E.resolve_metrics(["kid"], False)
    toy = C.resolve({"dataset": {"name": "toy2d", "n_train": 64, "n_test": 32},
                     "backbone": {"name": "mlp", "width": 8, "depth": 1},
                     "diffusion": {"timesteps": 50}, "train": {"device": "cpu"},
                     "eval": {"metrics": ["kid"], "n_samples": 8}})
    data, model, diffusion, _ = _components(toy)
    with pytest.raises(ValueError, match="kid needs image data"):
        E.Evaluator(toy).evaluate(model, diffusion, data, 0, torch.device("cpu"))

    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 20)
    cfg = _digits_cfg(tmp_path, n_samples=1)
    data, model, diffusion, _ = _components(cfg)
    with pytest.raises(ValueError, match="kid .*needs eval.n_samples >= 2"):
        E.Evaluator(cfg).evaluate(model, diffusion, data, 0, torch.device("cpu"))
    # explicit statistics without their features: fid works, kid says what is missing
    ev = E.Evaluator(_digits_cfg(tmp_path))
    ref = ev.reference(data, torch.device("cpu"))
    path = tmp_path / "stats.npz"
    reference.save_ref_stats(path, ref)
    cfg2 = _digits_cfg(tmp_path, ref_stats=str(path), metrics=["fid"], n_samples=8,
                       batch_size=8)
    assert [r["metric"] for r in E.Evaluator(cfg2).evaluate(model, diffusion, data, 0,
                                                            torch.device("cpu"))] == ["fd_cnn"]
    cfg3 = _digits_cfg(tmp_path, ref_stats=str(path), n_samples=8, batch_size=8)
    with pytest.raises(FileNotFoundError, match=r"kid needs the reference features.*stats_feats"
                                                r"\.npz.*eval\.ref_stats"):
        E.Evaluator(cfg3).evaluate(model, diffusion, data, 0, torch.device("cpu"))
