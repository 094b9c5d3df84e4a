"""A residual MLP ε-network for 2-D toys and flattened tiny images.

The timestep embedding conditions every residual block (added after the first linear layer).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from backbones.common import timestep_embedding
from bench.core.checks import PositiveInt, Probability


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.norm, self.lin1 = nn.LayerNorm(width), nn.Linear(width, width)
        self.temb = nn.Linear(width, width)
        self.lin2 = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h + self.lin2(self.lin1(self.norm(h)) + self.temb(temb))


class MLP(nn.Module):
    def __init__(self, shape: tuple[int, ...], width: PositiveInt = 128, depth: PositiveInt = 3,
                 time_dim: PositiveInt = 64, dropout: Probability = 0.0):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(self.shape)
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(d, width)
        self.blocks = nn.ModuleList([_Block(width, dropout) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, d))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time(timestep_embedding(t, self.time_dim))
        h = self.inp(x.flatten(1))
        for blk in self.blocks:
            h = blk(h, temb)
        return self.out(h).view(x.shape)
