"""Fréchet and kernel distances through clean-fid: feature extractors, cached reference
statistics and features, FD and KID.

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

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from bench.data import datasets

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 + INCEPTION_FILE)
CLEANFID_DEFAULT_DIR = Path("/tmp")     # where clean-fid itself downloads the weights
EXTRACTORS = ("inception", "cnn")
CNN_VERSION = 2                         # bump when the classifier or its training changes
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


# ---------------------------------------------------------------------------- image conversions
def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats → uint8 [0, 255] (what saving a PNG would do: clamp, scale, round)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


# ---------------------------------------------------------------------------- the extractor object
@dataclass
class Extractor:
    """A feature function on uint8 NCHW images, with the input shape it accepts and its id."""

    name: str                      # "inception" | "cnn"
    ident: str                     # name plus content hash, keys the reference statistics
    in_shape: tuple[int, ...] | None  # (C, H, W) it was built for; None = any
    dim: int
    fn: Callable[[Tensor], np.ndarray]   # uint8 [B, C, H, W] → float64 [B, dim]

    def check_shape(self, shape: tuple[int, ...]) -> None:
        if self.in_shape is not None and tuple(shape) != tuple(self.in_shape):
            raise ValueError(
                f"resolution mismatch: the {self.name!r} extractor was built for images of shape "
                f"{fmt_shape(self.in_shape)}, got {fmt_shape(shape)}")


def fmt_shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def features(extractor: Extractor, images: Tensor, batch_size: int = 256, progress: bool = False,
             desc: str = "features") -> np.ndarray:
    """Features [N, dim] of uint8 or [-1, 1] float images [N, C, H, W], in batches."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    extractor.check_shape(tuple(images.shape[1:]))
    starts = range(0, images.shape[0], batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
    out = [extractor.fn(images[i:i + batch_size]) for i in starts]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, extractor.dim))


def stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ and Σ (unbiased, rows = samples), as clean-fid computes them."""
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


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


# ---------------------------------------------------------------------------- Inception (clean-fid)
class InceptionUnavailable(FileNotFoundError):
    """No Inception weights: says how to provide them or to pick the offline extractor."""


def _inception_help(tried: list[Path], why: str) -> str:
    return (f"clean-fid's Inception weights ({INCEPTION_FILE}) are not available ({why}); "
            f"looked in: {', '.join(str(p) for p in tried)}. Either download {INCEPTION_URL} on "
            f"a machine with internet and set eval.inception_weights=/path/to/{INCEPTION_FILE} "
            f"(or place the file in one of the folders above), or use the offline extractor with "
            f"eval.extractor=cnn (metric fd_cnn, not comparable to Inception FID)")


def find_inception(weights: str | os.PathLike | None, cache_dir: Path, download: bool) -> Path:
    """The folder holding ``inception-2015-12-05.pt``; raises InceptionUnavailable if none.

    An explicit ``weights`` path must exist; otherwise CACHE, then clean-fid's /tmp, then a
    download into CACHE (if ``download``).
    """
    tried: list[Path] = []
    if weights:
        p = Path(weights).expanduser()
        folder = p if p.is_dir() or p.suffix != ".pt" else p.parent
        if p.is_file() and p.name != INCEPTION_FILE:
            raise InceptionUnavailable(_inception_help(
                [p], f"eval.inception_weights must be named {INCEPTION_FILE} (clean-fid loads "
                     f"it by that name); rename or link it"))
        if (folder / INCEPTION_FILE).is_file():
            return folder
        raise InceptionUnavailable(_inception_help([folder / INCEPTION_FILE],
                                                   "eval.inception_weights does not exist"))
    for folder in (cache_dir, CLEANFID_DEFAULT_DIR):
        if (folder / INCEPTION_FILE).is_file():
            return folder
        tried.append(folder / INCEPTION_FILE)
    if not download:
        raise InceptionUnavailable(_inception_help(tried, "eval.inception_download is false"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        from cleanfid.downloads_helper import check_download_inception

        check_download_inception(fpath=str(cache_dir))
    except Exception as e:          # URLError offline, HTTP errors, partial files
        partial = cache_dir / INCEPTION_FILE
        if partial.exists() and partial.stat().st_size < 1_000_000:
            partial.unlink()
        raise InceptionUnavailable(_inception_help(tried, f"download failed: {e}")) from e
    return cache_dir


def inception_extractor(weights: str | None, cache_dir: Path, download: bool,
                        device: torch.device) -> Extractor:
    """clean-fid's Inception in "clean" mode (its resizer, its TorchScript network)."""
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    folder = find_inception(weights, cache_dir, download)
    model = InceptionV3W(str(folder), download=False, resize_inside=False).to(device).eval()
    resize = build_resizer("clean")

    def fn(x: Tensor) -> np.ndarray:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        imgs = [resize(im.permute(1, 2, 0).numpy()) for im in x]          # HWC float32 [0, 255]
        batch = torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2)).float().to(device)
        with torch.no_grad():
            return model(batch).double().cpu().numpy()

    return Extractor("inception", "inception", None, 2048, fn)


# ------------------------------------------------------------------------ offline CNN classifier
class SmallCNN(nn.Module):
    """conv3×3(C→16) – conv3×3/2(16→32) – conv3×3/2(32→64) – avgpool 2×2 – fc 256→dim – fc→classes.

    The first conv has stride 2 for images of 16 px or more (28×28 → 14 → 7 → 4). ``features`` is
    the ``dim``-d output of the first fc layer, before its ReLU.
    """

    def __init__(self, channels: int, n_classes: int, dim: int = 64, first_stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=first_stride, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, dim))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, n_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


CNN_HPARAMS = dict(steps=600, batch_size=128, lr=2e-3, dim=64, seed=0)


def _first_stride(shape) -> int:
    return 2 if shape[-1] >= 16 else 1


def _tensor_digest(*tensors: Tensor) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def train_cnn(x: Tensor, y: Tensor, steps: int, batch_size: int, lr: float, dim: int, seed: int,
              progress: bool = False) -> SmallCNN:
    """Train SmallCNN on uint8-quantised images x [N, C, H, W] with labels y, deterministically."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(x.shape[1], int(y.max()) + 1, dim, _first_stride(x.shape))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xf = to_uint8(x).float() / 127.5 - 1.0
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="train cnn extractor", unit="it", leave=False, dynamic_ncols=True)
    model.train()
    for _ in it:
        idx = torch.randint(0, xf.shape[0], (batch_size,), generator=g)
        loss = nn.functional.cross_entropy(model(xf[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def cnn_extractor(dataset: str, dataset_params: dict, x_train: Tensor, cache_dir: Path,
                  device: torch.device, progress: bool = False,
                  hparams: dict | None = None) -> Extractor:
    """The offline CNN extractor for a dataset (trained once on its train split, then cached)."""
    hp = {**CNN_HPARAMS, **(hparams or {})}
    y_train, _ = datasets.labels(dataset, dataset_params)
    if y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"{dataset}: {x_train.shape[0]} train images but "
                         f"{y_train.shape[0]} labels")
    key = hashlib.sha1(json.dumps({"v": CNN_VERSION, "hp": hp,
                                   "data": _tensor_digest(to_uint8(x_train), y_train)},
                                  sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / "extractors" / f"cnn_{dataset}_{fmt_shape(x_train.shape[1:])}_{key}.pt"
    if path.is_file():
        st = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(x_train.shape[1], st["n_classes"], hp["dim"], _first_stride(x_train.shape))
        model.load_state_dict(st["model"])
    else:
        model = train_cnn(x_train, y_train, progress=progress, **hp)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"model": model.state_dict(), "n_classes": int(y_train.max()) + 1,
                    "shape": list(x_train.shape[1:]), "dataset": dataset, "hparams": hp}, tmp)
        os.replace(tmp, path)
    model = model.to(device).eval()

    def fn(x: Tensor) -> np.ndarray:
        with torch.no_grad():
            return model.features(x.float().to(device) / 127.5 - 1.0).double().cpu().numpy()

    return Extractor("cnn", f"cnn-{key}", tuple(x_train.shape[1:]), hp["dim"], fn)


def cnn_accuracy(extractor_model: SmallCNN, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        pred = extractor_model(to_uint8(x).float() / 127.5 - 1.0).argmax(1)
    return float((pred == y).float().mean())


# ---------------------------------------------------------------------------- reference statistics
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
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, mu=rs.mu, sigma=rs.sigma, shape=np.array(rs.shape), extractor=rs.extractor,
             n=rs.n)
    os.replace(tmp, path)


def ref_feats_path(stats_path: Path) -> Path:
    """Where the reference features behind the statistics at ``stats_path`` live."""
    return stats_path.with_name(f"{stats_path.stem}_feats.npz")


def save_ref_feats(path: Path, rs: RefStats) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, feats=np.asarray(rs.feats, dtype=np.float32), shape=np.array(rs.shape),
             extractor=rs.extractor, n=rs.n)
    os.replace(tmp, path)


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
