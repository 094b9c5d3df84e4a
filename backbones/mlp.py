"""A residual MLP ε-network for 2-D toys and flattened tiny images."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from backbones.common import timestep_embedding


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(),
                                 nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class MLP(nn.Module):
    def __init__(self, shape: tuple[int, ...], width: int = 128, depth: int = 3,
                 time_dim: int = 64, dropout: float = 0.0):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(self.shape)
        self.time_dim = time_dim
        self.inp = nn.Linear(d + time_dim, width)
        self.blocks = nn.Sequential(*[_Block(width, dropout) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, d))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = torch.cat([x.flatten(1), timestep_embedding(t, self.time_dim)], dim=1)
        return self.out(self.blocks(self.inp(h))).view(x.shape)
