"""adaptive_beta's all-T row (Kim et al. 2025, Algorithm 2; ``strategies.adaptive_beta``): at which
timesteps the feature image is evaluated — every t (the official row) or, with a stride s > 1,
one t drawn uniformly within each block of s consecutive candidates (the cheap row) — at which
policy updates (every k-th), the row ΔKL_t built from those evaluations and summed over ranks
(a block's columns all hold its one value, so the row's sum is the stratified estimate), and S
selected from a queue of rows (column-wise as the official code, block-wise for a strided row).
Not a strategy: no registration here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from strategies._beta_policy import select_blocks, select_timesteps


class AllTRow:
    """The all-T row of T timesteps whose candidates for S start at ``first`` (1 when t = 0 is
    excluded): every t (``stride`` 1) or one per block of ``stride``, at every ``every``-th
    update. Blocks [start, start + size) tile [first, T), the last one shorter."""

    def __init__(self, T: int, first: int, stride: int, every: int, num_selected: int):
        self.T, self.first, self.stride, self.every = T, first, stride, every
        self.starts = torch.arange(first, T, stride)
        self.sizes = (self.starts + stride).clamp(max=T) - self.starts
        if stride > 1 and num_selected > len(self.starts):
            raise ValueError(f"adaptive_beta: num_selected (|S|) must be in "
                             f"[1, {len(self.starts)}] with all_t_stride={stride} (S takes one "
                             f"timestep per block of the strided all-T row; T={T}), got "
                             f"{num_selected}")

    @property
    def size(self) -> int:
        """Forwards per row and phase, all ranks together: T, or one per block."""
        return self.T if self.stride == 1 else len(self.starts)

    def due(self, update: int) -> bool:
        """Whether the policy update with this index (step // f_S) evaluates the row: the 1st,
        the (k+1)-th, … ."""
        return update % self.every == 0

    def _share(self, rank: int, world_size: int) -> tuple[Tensor, Tensor]:
        return (self.starts.tensor_split(world_size)[rank],
                self.sizes.tensor_split(world_size)[rank])

    def timesteps(self, generator: torch.Generator, rank: int = 0,
                  world_size: int = 1) -> Tensor:
        """This rank's timesteps: its contiguous share of 0..T−1, or with a stride one t per
        block of its contiguous share of the blocks, uniform within the block, from
        ``generator`` (drawn only then: the official stream is untouched)."""
        if self.stride == 1:
            return torch.arange(self.T).tensor_split(world_size)[rank]
        starts, sizes = self._share(rank, world_size)
        v = torch.rand(len(starts), generator=generator, dtype=torch.float64)
        return starts + torch.minimum((v * sizes).long(), sizes - 1)

    def row(self, ts: Tensor, delta: Tensor, reduce=lambda x: x, rank: int = 0,
            world_size: int = 1) -> Tensor:
        """The row ΔKL_t (float64 [T], on the host, summed over ranks by ``reduce``) from this
        rank's ΔKL at ``ts`` (``timesteps``). Strided: each block's columns all hold its value,
        so the row's sum is Σ_b size_b·ΔKL_{t_b}, unbiased for the full row's sum. Columns below
        ``first`` are 0: neither candidates nor part of the sum."""
        row = torch.zeros(self.T, dtype=torch.float64, device=delta.device)
        if self.stride == 1:
            row[ts.to(row.device)] = delta
        elif len(ts):                             # this rank's blocks are contiguous
            starts, sizes = self._share(rank, world_size)
            lo = int(starts[0])
            row[lo: lo + int(sizes.sum())] = delta.repeat_interleave(sizes.to(delta.device))
        row = reduce(row).cpu()
        row[: self.first] = 0.0
        return row

    def select(self, queue: list[Tensor], k: int) -> list[int]:
        """S from the queue's rows: SelectKBest(f_regression) on the timesteps (official), or on
        the blocks of a strided row, each chosen block standing as its centre
        (``select_blocks``: a block's columns are copies of one value, so column-wise
        selection would spend all of S on one block)."""
        rows = torch.stack(queue).numpy()
        if self.stride == 1:
            return select_timesteps(rows, k, self.first)
        return select_blocks(rows, k, self.starts.numpy(), self.sizes.numpy())
