"""bench.evaluation.fid with the offline CNN extractor on 8×8 digits: sanity of the Fréchet distance, an
independent FD formula, reference-statistics caching, and the bad-input errors (no Inception weights
offline, resolution mismatch). Never needs the internet, CIFAR-10 or Inception weights."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.data import datasets

from bench.evaluation import extractor, fid, inception, reference, small_cnn


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ref(digits, cnn, cache):
    return reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache)


def _all(split):
    return split.get(torch.arange(len(split)))


def test_extractor_is_a_real_classifier_and_cached(digits, cnn, cache):
    """The offline extractor classifies held-out digits well, and a second build reuses the file."""
    files = list((cache / "extractors").glob("cnn_digits_1×8×8_*.pt"))
    assert len(files) == 1
    st = torch.load(files[0], weights_only=True)
    model = small_cnn.SmallCNN(1, st["n_classes"])
    model.load_state_dict(st["model"])
    _, y_test = datasets.labels("digits")
    assert small_cnn.cnn_accuracy(model.eval(), _all(digits.test), y_test) > 0.9
    mtime = files[0].stat().st_mtime_ns
    again = small_cnn.cnn_extractor("digits", {}, _all(digits.train), cache, torch.device("cpu"))
    assert again.ident == cnn.ident and files[0].stat().st_mtime_ns == mtime
    x = _all(digits.test)[:16]
    np.testing.assert_array_equal(again.fn(extractor.to_uint8(x)), cnn.fn(extractor.to_uint8(x)))


def test_train_vs_test_small_and_corruption_monotone(digits, cnn, ref):
    """FD(test ‖ train) is small; noise and blur of growing strength raise FD monotonically."""
    import torchvision.transforms.functional as TF

    x = _all(digits.test)
    clean = fid.fd_against(ref, cnn, x)
    g = torch.Generator().manual_seed(0)
    noise = [fid.fd_against(ref, cnn, (x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1))
             for s in (0.1, 0.2, 0.4, 0.8)]
    blur = [fid.fd_against(ref, cnn, TF.gaussian_blur(x, 5, s)) for s in (0.5, 1.0, 1.5, 2.0)]
    assert all(a < b for a, b in zip([clean] + noise, noise)), (clean, noise)
    assert all(a < b for a, b in zip([clean] + blur, blur)), (clean, blur)
    # "small": under half of the mildest clearly visible corruption, and tiny next to heavy ones
    assert clean < 0.5 * noise[2] and clean < 0.2 * blur[1], (clean, noise, blur)


def test_frechet_distance_matches_independent_formula():
    """cleanfid's FD equals ‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2 tr √(Σ1Σ2) computed here with scipy."""
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(400, 12))
    f2 = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    r1 = scipy.linalg.sqrtm(s1)
    cross = scipy.linalg.sqrtm(r1 @ s2 @ r1).real       # tr √(Σ1Σ2) = tr √(Σ1^½ Σ2 Σ1^½)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross)
    assert fid.frechet_distance(*extractor.stats(f1), *extractor.stats(f2)) == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def test_reference_stats_cached_and_equal_to_direct_features(digits, cnn, ref, cache):
    path = reference.ref_stats_path(cache, "digits", {}, (1, 8, 8), cnn, "train", len(digits.train))
    assert path.is_file() and ref.path == path and ref.shape == (1, 8, 8)
    mu, sigma = extractor.stats(extractor.features(cnn, _all(digits.train)))
    np.testing.assert_allclose(ref.mu, mu, rtol=1e-10)
    np.testing.assert_allclose(ref.sigma, sigma, rtol=1e-10)
    loaded = reference.reference_stats(digits.train, "digits", {}, "train", cnn, cache)
    np.testing.assert_array_equal(loaded.sigma, ref.sigma)
    assert "site-packages" not in str(path)


def test_resolution_mismatch_is_a_clear_error(digits, cnn, ref):
    big = torch.zeros(8, 1, 16, 16)
    with pytest.raises(ValueError, match=r"resolution mismatch.*1×16×16.*1×8×8"):
        fid.fd_against(ref, cnn, big)
    with pytest.raises(ValueError, match="resolution mismatch"):
        extractor.features(cnn, big)


def test_no_inception_weights_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "CLEANFID_DEFAULT_DIR", tmp_path / "tmp")
    with pytest.raises(inception.InceptionUnavailable) as e:
        inception.find_inception("", tmp_path / "cache", download=False)
    msg = str(e.value)
    assert "eval.inception_weights" in msg and "eval.extractor=cnn" in msg
    with pytest.raises(inception.InceptionUnavailable, match="eval.inception_weights"):
        inception.find_inception(str(tmp_path / "nowhere" / inception.INCEPTION_FILE), tmp_path, download=False)

    # a download that fails (as offline: URLError) ends in the same advice, not a traceback
    import cleanfid.downloads_helper as dh
    from urllib.error import URLError

    def offline(**kw):
        raise URLError("no network")

    monkeypatch.setattr(dh, "check_download_inception", offline)
    with pytest.raises(inception.InceptionUnavailable, match="download failed.*eval.extractor=cnn"):
        inception.find_inception("", tmp_path / "cache", download=True)


def test_inception_weights_found_in_configured_place(tmp_path, monkeypatch):
    monkeypatch.setattr(inception, "CLEANFID_DEFAULT_DIR", tmp_path / "tmp")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / inception.INCEPTION_FILE).write_bytes(b"stub")
    assert inception.find_inception(str(tmp_path / "w" / inception.INCEPTION_FILE), tmp_path, False) == \
        tmp_path / "w"
    assert inception.find_inception(str(tmp_path / "w"), tmp_path, False) == tmp_path / "w"
    assert inception.find_inception("", tmp_path / "w", False) == tmp_path / "w"   # the cache dir


def test_metric_names_record_the_extractor():
    assert fid.metric_name("inception") == "fid_inception"
    assert fid.metric_name("cnn") == "fd_cnn"


class _StubInceptionLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(48, 2048)

    def forward(self, x):
        return self.fc(self.pool(x).flatten(1))


class _StubInception(torch.nn.Module):
    """Stands in for inception-2015-12-05.pt: the same TorchScript interface, random weights."""

    def __init__(self):
        super().__init__()
        self.layers = _StubInceptionLayers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


def test_inception_path_runs_clean_fid_preprocessing_offline(tmp_path, monkeypatch, digits):
    """With a local weights file, the extractor is clean-fid's InceptionV3W fed clean-mode images:
    uint8 → RGB → clean-fid's PIL-bicubic 299×299 resizer → (x − 128)/128 (on a stub network)."""
    from cleanfid.resize import build_resizer

    monkeypatch.setattr(inception, "CLEANFID_DEFAULT_DIR", tmp_path / "nothing")
    torch.manual_seed(0)
    stub = torch.jit.script(_StubInception())
    stub.save(str(tmp_path / inception.INCEPTION_FILE))
    ex = inception.inception_extractor(str(tmp_path / inception.INCEPTION_FILE), tmp_path / "cache", False,
                                 torch.device("cpu"))
    assert ex.name == "inception" and ex.dim == 2048 and fid.metric_name(ex.name) == "fid_inception"
    x = extractor.to_uint8(digits.test.get(torch.arange(3)))
    got = extractor.features(ex, x)
    resize = build_resizer("clean")
    imgs = np.stack([resize(im.repeat(3, 1, 1).permute(1, 2, 0).numpy()) for im in x])
    assert imgs.shape == (3, 299, 299, 3)
    batch = (torch.from_numpy(imgs.transpose(0, 3, 1, 2)).float() - 128) / 128
    with torch.no_grad():
        want = stub.layers(batch).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
