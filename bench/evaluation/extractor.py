"""Feature extractors, whatever the network: the ``Extractor`` object (a feature function on uint8
images, the input shape it accepts and the id that keys its reference statistics), the [-1, 1] →
uint8 conversion every extractor sees, ``features`` (an extractor over a batch of images, in
batches) and ``stats`` (μ, Σ of features). The extractors themselves: ``bench.evaluation.inception``
and ``bench.evaluation.small_cnn``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] floats → uint8 [0, 255] (what saving a PNG would do: clamp, scale, round)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


def fmt_shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


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
