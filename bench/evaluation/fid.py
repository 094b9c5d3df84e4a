"""Fréchet and kernel distances through clean-fid: FD and KID of generated images to a
dataset's reference statistics and features, from one pass of a feature extractor; the metric
names. The pieces have their own modules: the extractor object, ``features`` and ``stats``
(``bench.evaluation.extractor``), the two extractors (``bench.evaluation.inception``,
``bench.evaluation.small_cnn``) and the cached reference statistics and features
(``bench.evaluation.reference``).

Two extractors:

* ``inception`` — clean-fid's TorchScript Inception-V3 (``InceptionV3W``) in clean-fid's "clean"
  mode: images are quantised to uint8, grey images repeated to RGB, resized to 299×299 by
  clean-fid's own PIL-bicubic resizer (``cleanfid.resize.build_resizer("clean")``), 2048-d pool
  features. The metric is ``fid_inception``. Weights come from ``eval.inception_weights`` (the
  ``inception-2015-12-05.pt`` file or its folder), ``CACHE/inception-2015-12-05.pt`` or clean-fid's
  own place ``/tmp/inception-2015-12-05.pt``, else are downloaded into CACHE if allowed.
* ``cnn`` — an offline extractor meaningful for the data: a small CNN classifier trained once,
  deterministically, on the dataset's train split and labels, cached under CACHE/extractors/ with a
  content hash of (code version, hyperparameters, training images, labels). Its 64-d penultimate
  (pre-activation) features feed the same Fréchet distance. The metric is ``fd_cnn``: its values are
  **not** comparable to Inception FIDs.

Reference statistics (μ, Σ of the extractor's features of a dataset split) are computed once and
cached as ``CACHE/ref_stats/<dataset>-<params hash>_<C>x<H>x<W>_<extractor id>_<split>_n<N>.npz``
with the shape, extractor id and count stored inside, never in site-packages. The distance itself is
``cleanfid.fid.frechet_distance`` (Heusel et al. 2017, eq. 6).

KID (Bińkowski et al. 2018) is ``cleanfid.fid.kernel_distance``: the unbiased MMD² with the cubic
polynomial kernel k(x, y) = (x·y/d + 1)³ on the same features, averaged over ``KID_SUBSETS``
random subsets of ``min(n_samples, n_ref, KID_SUBSET_SIZE)`` points a side (clean-fid's defaults,
100 × 1000; for n_samples ≤ 1000 every subset holds all the samples and a fresh random draw of
as many reference features). Its subset draws are seeded (the run seed), so a value is
reproducible. It needs the reference *features*, not only μ, Σ: they are cached on request beside
the statistics as ``<the statistics' name>_feats.npz`` (float32, the networks' own precision, with
the same shape, extractor id and count inside). Its metric is named after the extractor like FD's:
``kid_inception`` / ``kid_<extractor>``.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from bench.evaluation.extractor import Extractor, features, stats
from bench.evaluation.reference import RefStats

KID_SUBSETS = 100                       # clean-fid's kernel_distance defaults (num_subsets,
KID_SUBSET_SIZE = 1000                  # max_subset_size)


def metric_name(extractor: str, kind: str = "fid") -> str:
    """The metric of an extractor. ``kind="fid"``: ``fid_inception`` for clean-fid's Inception,
    ``fd_<extractor>`` for anything else; ``kind="kid"``: ``kid_inception`` /
    ``kid_<extractor>``."""
    if kind == "kid":
        return f"kid_{extractor}"
    if kind != "fid":
        raise ValueError(f"unknown metric kind {kind!r}; valid: fid, kid")
    return "fid_inception" if extractor == "inception" else f"fd_{extractor}"


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), via ``cleanfid.fid.frechet_distance``."""
    import warnings

    from cleanfid.fid import frechet_distance as fd

    with warnings.catch_warnings():     # clean-fid's sqrtm(disp=False) is deprecated in SciPy
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        return float(fd(mu1, sigma1, mu2, sigma2))


def kernel_distance(feats1: np.ndarray, feats2: np.ndarray, seed: int = 0,
                    num_subsets: int = KID_SUBSETS,
                    max_subset_size: int = KID_SUBSET_SIZE) -> float:
    """KID: ``cleanfid.fid.kernel_distance`` (unbiased MMD², kernel (x·y/d + 1)³, mean over
    ``num_subsets`` subsets of min(n1, n2, max_subset_size) rows a side), its subset draws seeded by
    ``seed`` without touching NumPy's global random state. Needs ≥ 2 rows a side."""
    from cleanfid.fid import kernel_distance as kd

    f1, f2 = np.asarray(feats1, dtype=np.float64), np.asarray(feats2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs two feature matrices of the same width, got shapes "
                         f"{f1.shape} and {f2.shape}")
    if min(f1.shape[0], f2.shape[0]) < 2:
        raise ValueError(f"KID (an unbiased MMD²) needs at least 2 feature rows a side, got "
                         f"{f1.shape[0]} and {f2.shape[0]}; raise eval.n_samples")
    state = np.random.get_state()
    try:
        np.random.seed(seed % 2**32)
        return float(kd(f1, f2, num_subsets=num_subsets, max_subset_size=max_subset_size))
    finally:
        np.random.set_state(state)


def distances(ref: RefStats, extractor: Extractor, images: Tensor, kinds: tuple[str, ...],
              seed: int = 0, batch_size: int = 256, progress: bool = False) -> dict[str, float]:
    """{kind: value} for ``kinds`` among "fid" (the Fréchet distance to the reference statistics)
    and "kid" (the KID to the reference features ``ref.feats``, subsets seeded by ``seed``) of
    ``images`` ([-1, 1] or uint8, NCHW), from one pass of the extractor over them."""
    ref.check(tuple(images.shape[1:]), extractor)
    if "kid" in kinds and ref.feats is None:
        raise ValueError("kid needs the reference features: load them with "
                         "reference_stats(..., with_feats=True) or load_ref_feats")
    f = features(extractor, images, batch_size, progress, desc="sample features")
    out = {}
    if "fid" in kinds:
        out["fid"] = frechet_distance(*stats(f), ref.mu, ref.sigma)
    if "kid" in kinds:
        out["kid"] = kernel_distance(ref.feats, f, seed)
    return out


def fd_against(ref: RefStats, extractor: Extractor, images: Tensor, batch_size: int = 256,
               progress: bool = False) -> float:
    """The Fréchet distance of ``images`` ([-1, 1] or uint8, NCHW) to the reference statistics."""
    return distances(ref, extractor, images, ("fid",), 0, batch_size, progress)["fid"]


def kid_against(ref: RefStats, extractor: Extractor, images: Tensor, seed: int = 0,
                batch_size: int = 256, progress: bool = False) -> float:
    """The KID of ``images`` ([-1, 1] or uint8, NCHW) to the reference features ``ref.feats``."""
    return distances(ref, extractor, images, ("kid",), seed, batch_size, progress)["kid"]
