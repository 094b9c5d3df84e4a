"""The offline feature extractor: a small CNN classifier trained once, deterministically, on a
dataset's train split and labels, cached under CACHE/extractors/ with a content hash of (code
version, hyperparameters, training images, labels). Its 64-d penultimate (pre-activation) features
feed the Fréchet distance as ``fd_cnn`` (not comparable to Inception FIDs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bench.core.io import atomic_save
from bench.data import datasets
from bench.evaluation.extractor import Extractor, fmt_shape, to_uint8

CNN_VERSION = 2                         # bump when the classifier or its training changes
CNN_HPARAMS = dict(steps=600, batch_size=128, lr=2e-3, dim=64, seed=0)


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
        atomic_save({"model": model.state_dict(), "n_classes": int(y_train.max()) + 1,
                     "shape": list(x_train.shape[1:]), "dataset": dataset, "hparams": hp}, path,
                    shared=True)
    model = model.to(device).eval()

    def fn(x: Tensor) -> np.ndarray:
        with torch.no_grad():
            return model.features(x.float().to(device) / 127.5 - 1.0).double().cpu().numpy()

    return Extractor("cnn", f"cnn-{key}", tuple(x_train.shape[1:]), hp["dim"], fn)


def cnn_accuracy(extractor_model: SmallCNN, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        pred = extractor_model(to_uint8(x).float() / 127.5 - 1.0).argmax(1)
    return float((pred == y).float().mean())
