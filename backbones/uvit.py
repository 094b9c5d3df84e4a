"""U-ViT (Bao et al. 2023, arXiv 2209.12152): all inputs as tokens, long skip connections.

Patch tokens plus the timestep as one extra token; ``depth // 2`` in-blocks, one mid-block,
``depth // 2`` out-blocks each taking a long skip from its mirror (concat + linear); a 3×3 conv
after unpatchifying, as in the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backbones.common import timestep_embedding
from bench.core.checks import PositiveFloat, PositiveInt


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, skip: bool):
        super().__init__()
        self.skip = nn.Linear(2 * dim, dim) if skip else None
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class UViT(nn.Module):
    def __init__(self, shape: tuple[int, int, int], patch_size: PositiveInt = 2,
                 dim: PositiveInt = 128, depth: PositiveInt = 6, heads: PositiveInt = 4,
                 mlp_ratio: PositiveFloat = 4.0):
        super().__init__()
        c, h, w = shape
        if h % patch_size or w % patch_size:
            raise ValueError(f"uvit: resolution {h}x{w} is not divisible by patch_size {patch_size}")
        self.c, self.p, self.dim = c, patch_size, dim
        self.grid = (h // patch_size, w // patch_size)
        n = self.grid[0] * self.grid[1]
        self.patch = nn.Conv2d(c, dim, patch_size, stride=patch_size)
        self.time = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + n, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.inb = nn.ModuleList([Block(dim, heads, mlp_ratio, False) for _ in range(depth // 2)])
        self.mid = Block(dim, heads, mlp_ratio, False)
        self.outb = nn.ModuleList([Block(dim, heads, mlp_ratio, True) for _ in range(depth // 2)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch_size * patch_size * c)
        self.final = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        tok = self.patch(x).flatten(2).transpose(1, 2)
        temb = self.time(timestep_embedding(t, self.dim))[:, None]
        h = torch.cat([temb, tok], dim=1) + self.pos
        skips = []
        for blk in self.inb:
            h = blk(h)
            skips.append(h)
        h = self.mid(h)
        for blk in self.outb:
            h = blk(h, skips.pop())
        out = self.head(self.norm(h))[:, 1:]
        gh, gw = self.grid
        out = out.reshape(b, gh, gw, self.p, self.p, self.c).permute(0, 5, 1, 3, 2, 4)
        return self.final(out.reshape(b, self.c, gh * self.p, gw * self.p))
