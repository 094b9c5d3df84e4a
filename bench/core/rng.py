"""Explicit random streams derived from (seed, purpose, rank, step).

Every random draw of a run comes from such a generator, so a resumed run draws the same timesteps,
noise and data order as an uninterrupted one, and two strategies with the same seed see the same
data order and noise (common random numbers).
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys) -> int:
    h = hashlib.blake2b(repr((seed,) + keys).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def generator(seed: int, *keys, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *keys))
    return g
