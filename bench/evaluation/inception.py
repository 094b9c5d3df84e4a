"""clean-fid's Inception-V3 as a feature extractor: where its weights are found (or downloaded),
``InceptionUnavailable`` saying how to provide them, and ``inception_extractor`` in clean-fid's
"clean" mode (uint8 images, grey repeated to RGB, clean-fid's PIL-bicubic resize to 299×299,
2048-d pool features; the metric ``fid_inception``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.evaluation.extractor import Extractor

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 + INCEPTION_FILE)
CLEANFID_DEFAULT_DIR = Path("/tmp")     # where clean-fid itself downloads the weights


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
