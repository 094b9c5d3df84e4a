"""Reference statistics and features: μ, Σ of an extractor's features of a dataset split
(``RefStats``), computed once and cached as
``CACHE/ref_stats/<dataset>-<params hash>_<C>x<H>x<W>_<extractor id>_<split>_n<N>.npz`` with the
shape, extractor id and count stored inside; on request (KID) the features themselves beside them
as ``<the statistics' name>_feats.npz`` (float32, the networks' own precision). Their paths, the
atomic writers and checked readers of both files, and ``reference_stats`` (from the cache, else
computed and cached)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.core.io import atomic_savez
from bench.evaluation.extractor import Extractor, features, fmt_shape, stats


@dataclass
class RefStats:
    mu: np.ndarray
    sigma: np.ndarray
    shape: tuple[int, ...]
    extractor: str
    n: int
    path: Path | None = None
    feats: np.ndarray | None = None     # the features themselves (for KID), when loaded/asked

    def check(self, shape: tuple[int, ...], extractor: Extractor) -> None:
        """Raise a clear error when samples or extractor do not match these statistics."""
        if tuple(shape) != tuple(self.shape):
            raise ValueError(
                f"resolution mismatch: model samples are {fmt_shape(shape)} but the reference "
                f"statistics{f' in {self.path}' if self.path else ''} were computed from "
                f"{fmt_shape(self.shape)} images; evaluate against statistics of the same dataset "
                f"at the model's resolution")
        if extractor.ident != self.extractor:
            raise ValueError(f"the reference statistics were computed with extractor "
                             f"{self.extractor!r}, not {extractor.ident!r}")


def dataset_key(dataset: str, params: dict) -> str:
    h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{dataset}-{h}"


def ref_stats_path(cache_dir: Path, dataset: str, params: dict, shape, extractor: Extractor,
                   split: str, n: int) -> Path:
    return (cache_dir / "ref_stats" /
            f"{dataset_key(dataset, params)}_{fmt_shape(shape)}_{extractor.ident}_{split}_n{n}.npz")


def save_ref_stats(path: Path, rs: RefStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, shared=True, mu=rs.mu, sigma=rs.sigma, shape=np.array(rs.shape),
                 extractor=rs.extractor, n=rs.n)


def ref_feats_path(stats_path: Path) -> Path:
    """Where the reference features behind the statistics at ``stats_path`` live."""
    return stats_path.with_name(f"{stats_path.stem}_feats.npz")


def save_ref_feats(path: Path, rs: RefStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_savez(path, shared=True, feats=np.asarray(rs.feats, dtype=np.float32),
                 shape=np.array(rs.shape), extractor=rs.extractor, n=rs.n)


def load_ref_feats(rs: RefStats, path: Path | None = None) -> np.ndarray:
    """The reference features of the statistics ``rs`` (from ``path``, default
    ``ref_feats_path(rs.path)``), checked to be the same images and extractor."""
    if path is None and rs.path is None:
        raise ValueError("kid needs the reference features; these statistics have no file")
    path = path or ref_feats_path(rs.path)
    if not path.is_file():
        raise FileNotFoundError(
            f"kid needs the reference features, not only their statistics: {rs.path} has no "
            f"features file {path} beside it (the cache writes one when kid is asked); drop "
            f"eval.ref_stats to use the cache, or drop kid from eval.metrics")
    with np.load(path) as z:
        missing = {"feats", "shape", "extractor", "n"} - set(z.files)
        if missing:
            raise ValueError(f"{path} is not a timestep-bench reference-features file "
                             f"(missing {', '.join(sorted(missing))})")
        feats, shape = z["feats"], tuple(int(s) for s in z["shape"])
        extractor, n = str(z["extractor"]), int(z["n"])
    if (shape, extractor) != (tuple(rs.shape), rs.extractor) or (rs.n >= 0 and n != rs.n) \
            or feats.ndim != 2 or feats.shape[0] != n or feats.shape[1] != len(rs.mu):
        raise ValueError(
            f"the reference features {path} ({feats.shape[0]} × {feats.shape[-1]} of "
            f"{fmt_shape(shape)} images, extractor {extractor!r}) do not belong to the statistics "
            f"{rs.path} ({rs.n} of {fmt_shape(rs.shape)} images, {len(rs.mu)}-d, extractor "
            f"{rs.extractor!r}); delete the features file to recompute it")
    return feats


def load_ref_stats(path: Path) -> RefStats:
    with np.load(path) as z:
        missing = {"mu", "sigma", "shape", "extractor"} - set(z.files)
        if missing:
            raise ValueError(f"{path} is not a timestep-bench reference-statistics file "
                             f"(missing {', '.join(sorted(missing))})")
        return RefStats(z["mu"], z["sigma"], tuple(int(s) for s in z["shape"]),
                        str(z["extractor"]), int(z["n"]) if "n" in z.files else -1, path)


def reference_stats(split_data, dataset: str, params: dict, split: str, extractor: Extractor,
                    cache_dir: Path, n: int = 0, batch_size: int = 256,
                    progress: bool = False, with_feats: bool = False) -> RefStats:
    """μ, Σ of ``split_data`` (a split with len/get) under ``extractor``, cached on disk.

    ``n`` > 0 uses the first n images of the split, 0 all of them. ``with_feats`` also returns the
    features themselves (``.feats``, for KID), cached beside the statistics (``ref_feats_path``);
    when only the statistics are cached the features are computed (and cached) once more, the
    cached statistics kept.
    """
    n_all = len(split_data)
    n = n_all if n <= 0 else min(n, n_all)
    shape = tuple(split_data.get(torch.arange(1)).shape[1:])
    path = ref_stats_path(cache_dir, dataset, params, shape, extractor, split, n)
    fpath = ref_feats_path(path)
    if path.is_file() and (not with_feats or fpath.is_file()):
        rs = load_ref_stats(path)
        if with_feats:
            rs.feats = load_ref_feats(rs, fpath)
        return rs
    x = split_data.get(torch.arange(n))
    f = features(extractor, x, batch_size, progress, desc=f"ref features {dataset}/{split}")
    if path.is_file():
        rs = load_ref_stats(path)
    else:
        mu, sigma = stats(f)
        rs = RefStats(mu, sigma, shape, extractor.ident, n, path)
        save_ref_stats(path, rs)
    if with_feats:
        rs.feats = f.astype(np.float32)         # as stored: the cached and fresh values agree
        save_ref_feats(fpath, rs)
    return rs
