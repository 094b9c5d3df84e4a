"""Latent-space data: images encoded once by a frozen first-stage autoencoder, cached on disk.

The ``latent`` dataset (registered in ``bench.data.datasets``) wraps any image dataset
(``source``) and a
local autoencoder checkpoint (``backbones.autoencoder``: the LDM VQ-f4 of Table 2, the KL-f8 of
Table 3). Every image of both splits is encoded once — the per-image statistics (KL: posterior
mean and log-variance; VQ: the pre-quantisation encoding) go to
``CACHE/latents/<key>/{train,test}.npy``, memory-mapped afterwards. ``key`` hashes the source's
config, the checkpoint's bytes and the architecture, so a changed checkpoint is never mistaken for
the cached one. Concurrent builders (DDP ranks, array tasks on one node) serialise on a lock file;
the cache appears atomically (written under a temporary name, then renamed).

Training draws are what the official code does: a KL latent is a fresh posterior sample per batch
(U-ViT samples its stored moments each step; LDM samples at encoding time each step), drawn from
the trainer's seeded generator; a VQ latent is the encoding itself (LDM trains on the
pre-quantisation ``h``). With ``hflip`` the train split holds the encodings of every image and of
its mirror image (rows ``i`` and ``N + i``), so a uniform draw over rows flips with probability
1/2, as U-ViT's stored features of both orientations do. Evaluation decodes generated latents with
the same autoencoder and compares pixels with the source's images.

``python -m bench.latent CONFIG_OR_SWEEP.yaml`` encodes (or checks) the cache for a run config or
for every latent dataset of a sweep before anything is submitted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from backbones import autoencoder as ae_mod
from bench.core.io import file_lock

CACHE_VERSION = 1          # bump when the stored layout or the encoding changes


class LatentSplit:
    """Rows of stored statistics; ``get(idx, generator)`` returns scaled latents."""

    def __init__(self, stats: np.ndarray, ae: ae_mod.Autoencoder):
        self.stats, self.ae = stats, ae

    def __len__(self) -> int:
        return self.stats.shape[0]

    def get(self, idx: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Latents of rows ``idx``; a KL posterior sample when ``generator`` is given (training),
        the posterior mean without one."""
        s = torch.from_numpy(np.ascontiguousarray(self.stats[np.asarray(idx, dtype=np.int64)]))
        noise = None
        if generator is not None and self.ae.kind == "kl":
            noise = torch.randn(s.shape[0], s.shape[1] // 2, *s.shape[2:], generator=generator)
        return self.ae.latent(s, noise)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(source: dict, checkpoint_digest: str, arch: dict, hflip: bool) -> str:
    blob = json.dumps(dict(v=CACHE_VERSION, source=source, ckpt=checkpoint_digest, arch=arch,
                           hflip=hflip), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _batches(split, batch_size: int, num_workers: int):
    """Pixel batches of a source split in order."""
    if hasattr(split, "ds") and num_workers > 0:        # a torchvision dataset: decode in workers
        loader = torch.utils.data.DataLoader(split.ds, batch_size=batch_size,
                                             num_workers=num_workers)
        for x, _ in loader:
            yield x
        return
    for i in range(0, len(split), batch_size):
        yield split.get(torch.arange(i, min(i + batch_size, len(split))))


@torch.no_grad()
def encode_split(split, ae: ae_mod.Autoencoder, out: Path, flips: bool, batch_size: int,
                 num_workers: int, device: torch.device, desc: str, progress: bool) -> None:
    """Write the statistics of every image of ``split`` (then of every mirrored one) to ``out``."""
    n = len(split)
    c, h, w = ae.stats_channels, *ae.latent_shape(tuple(split.get(torch.arange(1)).shape[1:]))[1:]
    arr = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32,
                                    shape=((2 if flips else 1) * n, c, h, w))
    bar = tqdm(total=n, desc=f"encode {desc}", unit="img", dynamic_ncols=True, mininterval=2,
               disable=not progress)
    pos = 0
    for x in _batches(split, batch_size, num_workers):
        x = x.to(device)
        k = x.shape[0]
        arr[pos:pos + k] = ae.encode(x).float().cpu().numpy()
        if flips:
            arr[n + pos:n + pos + k] = ae.encode(x.flip(-1)).float().cpu().numpy()
        pos += k
        bar.update(k)
    bar.close()
    arr.flush()
    del arr


def encoded(source_name: str, source_params: dict, source_data, ae: ae_mod.Autoencoder,
            checkpoint: Path, arch: dict, hflip: bool, cache_root: Path, batch_size: int,
            num_workers: int, device: torch.device, progress: bool = True
            ) -> tuple[np.ndarray, np.ndarray, Path]:
    """(train stats, test stats, cache folder): read from the cache, encoding first if absent."""
    src = dict(name=source_name, **{k: v for k, v in source_params.items() if k != "hflip"})
    key = cache_key(src, file_digest(checkpoint), arch, hflip)
    final = cache_root / "latents" / key
    with file_lock(cache_root / "latents" / f"{key}.lock"):
        if not (final / "meta.json").exists():
            tmp = final.with_name(f"{key}.tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            ae.to(device)
            try:
                for split, flips in (("train", hflip), ("test", False)):
                    encode_split(getattr(source_data, split), ae, tmp / f"{split}.npy", flips,
                                 batch_size, num_workers, device, f"{source_name} {split}",
                                 progress)
                (tmp / "meta.json").write_text(json.dumps(dict(
                    source=src, checkpoint=str(checkpoint), arch=arch, hflip=hflip,
                    n_train=len(source_data.train), n_test=len(source_data.test)),
                    indent=1, default=str))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            finally:
                ae.cpu()
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
    return (np.load(final / "train.npy", mmap_mode="r"), np.load(final / "test.npy", mmap_mode="r"),
            final)
