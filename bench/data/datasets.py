"""Dataset registry. Every dataset maps to [-1, 1] and has a held-out ``test`` split for evaluation.

A source gives ``train``/``test`` splits with ``len()`` and ``get(indices) -> Tensor``; the trainer
draws batch indices itself from a seeded generator, so data order is a function of (seed, step) and a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import gzip
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
import torch
from torch import Tensor

from backbones import autoencoder as ae_mod
from bench.core.checks import Bound, NonNegativeInt, PositiveInt, check_keys, check_params
from bench.core.io import default_cache_dir, pick_device
from bench.data import latent as lat


class TensorSplit:
    def __init__(self, data: Tensor):
        self.data = data.float().contiguous()

    def __len__(self) -> int:
        return self.data.shape[0]

    def get(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.data[idx]


class TorchvisionSplit:
    """Wraps a torchvision dataset whose transform yields tensors in [-1, 1]."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def get(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack([self.ds[int(i)][0] for i in idx])


class Uint8ImageSplit:
    """8-bit images held decoded, N×H×W×C uint8 (e.g. torchvision's ``CIFAR10.data``); a batch
    is converted as torchvision's ``ToTensor`` + ``Normalize(0.5, 0.5)`` convert one image (÷255,
    −0.5, ÷0.5 in float32: the same numbers), without a PIL round trip per image."""

    def __init__(self, images, targets=None):
        self.targets = targets              # class labels, when the source has them
        self.data = torch.as_tensor(np.asarray(images))
        if self.data.dtype != torch.uint8 or self.data.dim() != 4:
            raise ValueError(f"expected N×H×W×C uint8 images, got {self.data.dtype} "
                             f"{tuple(self.data.shape)}")

    def __len__(self) -> int:
        return self.data.shape[0]

    def get(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = self.data[idx].permute(0, 3, 1, 2).contiguous()
        return x.float().div(255).sub(0.5).div(0.5)


@dataclass
class DataSource:
    name: str
    train: Any
    test: Any
    shape: tuple[int, ...]
    hflip: bool = False          # random horizontal flip at training time (DDPM on CIFAR-10)
    # latent data (bench.data.latent): the image source, latents → images in [-1, 1], the cache folder
    pixels: "DataSource | None" = None
    decode: Callable[[Tensor], Tensor] | None = None
    cache: Path | None = None

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    @property
    def clip(self) -> bool:
        """Whether samplers clip x̂0 to [-1, 1]: pixel images only (latents are unbounded)."""
        return self.is_image and self.decode is None


_REGISTRY: dict[str, Callable[..., DataSource]] = {}


_KINDS: dict[str, str] = {}
# name -> params (defaults filled) -> (example shape, training examples or None when only the
# data knows): what the checks before any work need, without loading the data
_INFO: dict[str, Callable[[dict], tuple[tuple[int, ...], int | None]]] = {}
KINDS = ("image", "vector", "latent")      # what a dataset's examples are (evaluation needs it)
LABELLED = ("cifar10", "digits", "fashion_mnist")   # class labels for the offline extractor


def register(name: str, kind: str = "image", info=None):
    """Register a dataset builder; ``info(params) -> (shape, n_train | None)`` (parameters with
    their defaults filled) lets the checks before any work see the shape and size."""
    if kind not in KINDS:
        raise ValueError(f"dataset {name!r}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name], _KINDS[name] = fn, kind
        if info is not None:
            _INFO[name] = info
        return fn
    return deco


def kind(name: str) -> str:
    """image (C, H, W pixels), vector (2-D points) or latent, without building the data."""
    if name not in _KINDS:
        check(name)                 # raises: unknown dataset, with the valid names
    return _KINDS[name]


def names() -> list[str]:
    return sorted(_REGISTRY)


def parameters(name: str) -> list[str]:
    return list(inspect.signature(_REGISTRY[name]).parameters)


def defaults(name: str) -> dict[str, Any]:
    """The default parameters of dataset ``name``."""
    if name not in _REGISTRY:
        check(name)                 # raises: unknown dataset, with the valid names
    return {p.name: p.default for p in inspect.signature(_REGISTRY[name]).parameters.values()
            if p.default is not inspect.Parameter.empty}


def check(name: str, params: dict[str, Any] | None = None, prefix: str = "dataset.") -> None:
    """Name, parameter names and their declared types and ranges (for ``latent``: its source's
    too); raises ValueError naming the key (``prefix`` + parameter)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown {prefix}name {name!r}; valid: {', '.join(names())}")
    params = dict(params or {})
    check_keys(params, parameters(name), "parameter(s)", where=f"dataset {name!r}")
    check_params(_REGISTRY[name], params, prefix)
    if name == "latent":
        src = params.get("source")
        if not isinstance(src, dict) or "name" not in src:
            raise ValueError("dataset 'latent': dataset.source must be a mapping with the image "
                             "dataset's name and parameters, e.g. {name: image_folder, root: DIR}")
        if src["name"] == "latent":
            raise ValueError("dataset 'latent': its source cannot itself be latent")
        check(src["name"], {k: v for k, v in src.items() if k != "name"}, f"{prefix}source.")


def info(name: str, params: dict[str, Any] | None = None
         ) -> tuple[tuple[int, ...], int | None] | None:
    """(example shape, training examples or None) of a checked dataset spec without loading it;
    None when the dataset does not declare it."""
    fn = _INFO.get(name)
    return fn({**defaults(name), **(params or {})}) if fn else None


def build(name: str, params: dict[str, Any] | None = None) -> DataSource:
    check(name, params)
    return _REGISTRY[name](**dict(params or {}))


def pixel_config(ds: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, params) of the images a dataset section stands for: a latent dataset's source."""
    ds = ds["source"] if ds["name"] == "latent" else ds
    return ds["name"], {k: v for k, v in ds.items() if k != "name"}


def _split(x: Tensor, test_fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed, seeded train/test split (the same for every run and strategy)."""
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = int(round(x.shape[0] * test_fraction))
    return x[perm[n_test:]], x[perm[:n_test]]


# ---------------------------------------------------------------------------- image data
N_DIGITS = 1797
TestFraction = Annotated[float, Bound(0.0, 1.0, low_open=True, high_open=True)]


@register("digits", info=lambda p: ((1, 8, 8),
                                    N_DIGITS - int(round(N_DIGITS * p["test_fraction"]))))
def digits(test_fraction: TestFraction = 0.2) -> DataSource:
    """scikit-learn's UCI 8×8 digits (1,797 images, values 0..16), offline."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images).float()[:, None] / 16.0 * 2.0 - 1.0
    train, test = _split(x, test_fraction)
    return DataSource("digits", TensorSplit(train), TensorSplit(test), (1, 8, 8))


FASHION_ROOT = "/usr/share/datasets/fashion-mnist"


def _read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


@register("fashion_mnist", info=lambda p: ((1, 32, 32) if p["pad_to_32"] else (1, 28, 28),
                                          min(p["limit"] or 60000, 60000)))
def fashion_mnist(root: str = FASHION_ROOT, pad_to_32: bool = False,
                  limit: PositiveInt | None = None) -> DataSource:
    """Fashion-MNIST read offline from IDX files (Debian package ``dataset-fashion-mnist``)."""
    files = {s: Path(root) / f"{p}-images-idx3-ubyte.gz" for s, p in (("train", "train"),
                                                                     ("test", "t10k"))}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found: {', '.join(missing)}. Install it with "
            f"`apt-get install dataset-fashion-mnist` (Debian) or pass dataset.root=DIR holding "
            f"train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz")
    splits = []
    for s in ("train", "test"):
        x = torch.from_numpy(_read_idx_images(files[s]).copy()).float()[:, None] / 127.5 - 1.0
        if pad_to_32:
            x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
        splits.append(TensorSplit(x[:limit] if limit else x))
    res = 32 if pad_to_32 else 28
    return DataSource("fashion_mnist", splits[0], splits[1], (1, res, res))


def _to_unit_tensor():
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])


@register("cifar10", info=lambda p: ((3, 32, 32), 50000))
def cifar10(root: str = "data/cifar10", download: bool = False) -> DataSource:
    """CIFAR-10 through torchvision; random horizontal flip at training time as in DDPM."""
    from torchvision.datasets import CIFAR10

    try:
        tr = CIFAR10(root, train=True, download=download, transform=_to_unit_tensor())
        te = CIFAR10(root, train=False, download=download, transform=_to_unit_tensor())
    except RuntimeError as e:
        raise FileNotFoundError(f"CIFAR-10 not found under {root!r} ({e}); set dataset.download=true "
                                f"on a machine with internet, or dataset.root=DIR") from e
    return DataSource("cifar10", Uint8ImageSplit(tr.data, tr.targets),
                      Uint8ImageSplit(te.data, te.targets), (3, 32, 32), hflip=True)


@register("image_folder", info=lambda p: ((3, p["resolution"], p["resolution"]), None))
def image_folder(root: str = "", resolution: PositiveInt = 256, test_root: str = "",
                 hflip: bool = True) -> DataSource:
    """Images in class sub-folders (torchvision ImageFolder), centre-cropped to ``resolution``.

    CelebA-HQ / ImageNet: ``root`` = the train folder; ``test_root`` = a held-out folder (else 1 %
    of ``root``, fixed split).
    """
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    if not root or not Path(root).is_dir():
        raise FileNotFoundError(f"image_folder: dataset.root={root!r} is not a directory; point it at "
                                f"a folder of class sub-folders of images (e.g. CelebA-HQ, ImageNet)")
    tf = transforms.Compose([transforms.Resize(resolution), transforms.CenterCrop(resolution),
                             _to_unit_tensor()])
    tr = ImageFolder(root, transform=tf)
    if test_root:
        te = ImageFolder(test_root, transform=tf)
    else:
        perm = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0)).tolist()
        n_test = max(1, len(tr) // 100)
        tr, te = (torch.utils.data.Subset(tr, perm[n_test:]),
                  torch.utils.data.Subset(tr, perm[:n_test]))
    c = 3
    return DataSource("image_folder", TorchvisionSplit(tr), TorchvisionSplit(te),
                      (c, resolution, resolution), hflip=hflip)


@register("latent", kind="latent")
def latent(source: dict | None = None, autoencoder: str = "", preset: str = "kl-f8",
           arch: dict | None = None, hflip: bool | None = None, cache_dir: str = "",
           device: Literal["auto", "cpu", "cuda"] = "auto", batch_size: PositiveInt = 64,
           num_workers: NonNegativeInt = 0) -> DataSource:
    """Latents of ``source``'s images under a frozen first-stage autoencoder (``bench.data.latent``).

    ``autoencoder``: the checkpoint file (CompVis layout: Lightning .ckpt, .pth or .safetensors);
    ``preset``: its architecture (``backbones.autoencoder.PRESETS``: kl-f8, vq-f4), ``arch``:
    overrides of it (e.g. scale_factor); ``hflip``: store mirrored encodings too (default: the
    source's own hflip); ``cache_dir``: default ~/.cache/timestep-bench.
    """
    if not autoencoder or not Path(autoencoder).is_file():
        raise FileNotFoundError(
            f"latent: dataset.autoencoder={autoencoder!r} is not a file; point it at a local "
            f"first-stage checkpoint (presets: {', '.join(ae_mod.PRESETS)}; see docs/latent.md)")
    ae = ae_mod.build(autoencoder, preset, arch)
    src_params = {k: v for k, v in source.items() if k != "name"}
    pix = build(source["name"], src_params)
    if not pix.is_image:
        raise ValueError(f"latent: dataset.source must hold images (C, H, W); "
                         f"{source['name']!r} has shape {pix.shape}")
    flips = pix.hflip if hflip is None else bool(hflip)
    cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    arch_key = dict(preset=preset, **(arch or {}))
    train, test, where = lat.encoded(source["name"], src_params, pix, ae, Path(autoencoder),
                                     arch_key, flips, cache_root, batch_size, num_workers,
                                     pick_device(device))

    def decode(z: Tensor) -> Tensor:
        ae.to(z.device)
        return ae.decode(z).clamp(-1.0, 1.0)

    return DataSource("latent", lat.LatentSplit(train, ae), lat.LatentSplit(test, ae),
                      (ae.embed_dim, *train.shape[2:]),
                      pixels=pix, decode=decode, cache=where)


# ---------------------------------------------------------------------------- 2-D toys
TOYS = ("8gaussians", "checkerboard", "moons", "swissroll")


def toy_points(kind: str, n: int, generator: torch.Generator) -> Tensor:
    """n points of a standard 2-D distribution, scaled to lie roughly in [-1, 1]²."""
    g = generator
    if kind == "8gaussians":
        k = torch.randint(0, 8, (n,), generator=g).float()
        centers = torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1) * 0.8
        return centers + 0.05 * torch.randn(n, 2, generator=g)
    if kind == "checkerboard":
        x1 = torch.rand(n, generator=g) * 4 - 2
        x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g).float() * 2
        x2 = x2 + (torch.floor(x1) % 2)
        return torch.stack([x1, x2], 1) * 0.45
    if kind == "moons":
        k = torch.randint(0, 2, (n,), generator=g)
        a = torch.rand(n, generator=g) * math.pi
        x = torch.where(k == 0, torch.cos(a), 1 - torch.cos(a))
        y = torch.where(k == 0, torch.sin(a), 0.5 - torch.sin(a))
        pts = torch.stack([x - 0.5, y - 0.25], 1) * 0.8
        return pts + 0.04 * torch.randn(n, 2, generator=g)
    if kind == "swissroll":
        r = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        pts = torch.stack([r * torch.cos(r), r * torch.sin(r)], 1) / 15.0
        return pts + 0.02 * torch.randn(n, 2, generator=g)
    raise ValueError(f"unknown toy distribution {kind!r}; valid: {', '.join(TOYS)}")


@register("toy2d", kind="vector", info=lambda p: ((2,), p["n_train"]))
def toy2d(kind: Literal[TOYS] = "8gaussians", n_train: PositiveInt = 20000,
          n_test: PositiveInt = 5000, seed: NonNegativeInt = 0) -> DataSource:
    """A 2-D toy distribution; points generated from ``seed`` (test points from seed + 1)."""
    train = toy_points(kind, n_train, torch.Generator().manual_seed(seed))
    test = toy_points(kind, n_test, torch.Generator().manual_seed(seed + 1))
    return DataSource("toy2d", TensorSplit(train), TensorSplit(test), (2,))


# ---------------------------------------------------------------------------- class labels
def _read_idx_labels(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    return np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64)


def labels(name: str, params: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    """Class labels (int64) aligned with ``build(name, params).train`` / ``.test``.

    Used by evaluation to train its offline feature extractor. Supported: digits, fashion_mnist,
    cifar10; other datasets raise ValueError (they have no labels, or none this loader knows).
    """
    params = dict(params or {})
    if name == "digits":
        from sklearn.datasets import load_digits

        y = torch.from_numpy(load_digits().target.astype(np.int64))
        return _split(y, params.get("test_fraction", 0.2))      # the same permutation as digits()
    if name == "fashion_mnist":
        root, limit = Path(params.get("root", FASHION_ROOT)), params.get("limit")
        out = []
        for p in ("train", "t10k"):
            path = root / f"{p}-labels-idx1-ubyte.gz"
            if not path.exists():
                raise FileNotFoundError(f"Fashion-MNIST labels not found: {path}")
            y = torch.from_numpy(_read_idx_labels(path).copy())
            out.append(y[:limit] if limit else y)
        return out[0], out[1]
    if name == "cifar10":
        data = build(name, params)
        return (torch.tensor(data.train.targets, dtype=torch.long),
                torch.tensor(data.test.targets, dtype=torch.long))
    raise ValueError(f"dataset {name!r} has no class labels for the offline feature extractor; "
                     f"labelled datasets: {', '.join(LABELLED)}")
