"""The DDPM UNet (Ho et al. 2020, arXiv 2006.11239, Appendix B), ε-prediction.

Configurable base channels, channel multipliers, res blocks per level, attention resolutions and
dropout. ``CIFAR10`` is the paper's 35.7M-parameter configuration.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from backbones.common import timestep_embedding
from bench.core.checks import PositiveInt, Probability

CIFAR10 = dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1)


def _norm(c: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (DDPM), or the largest divisor of ``c`` below that for small nets."""
    return nn.GroupNorm(math.gcd(32, c), c)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.drop = _norm(cout), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over pixels."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, shape: tuple[int, int, int], ch: PositiveInt = 128,
                 ch_mult: tuple[PositiveInt, ...] = (1, 2, 2, 2), num_res_blocks: PositiveInt = 2,
                 attn_resolutions: tuple[PositiveInt, ...] = (16,), dropout: Probability = 0.1):
        super().__init__()
        cin, res, _ = shape
        self.ch, temb = ch, 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cin, ch, 3, padding=1)
        self.down = nn.ModuleList()
        chans, c = [ch], ch
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                blocks = [ResBlock(c, ch * mult, temb, dropout)]
                c = ch * mult
                if res in attn_resolutions:
                    blocks.append(AttnBlock(c))
                self.down.append(nn.ModuleList(blocks))
                chans.append(c)
            if level != len(ch_mult) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                chans.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(c, c, temb, dropout), AttnBlock(c),
                                  ResBlock(c, c, temb, dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                blocks = [ResBlock(c + chans.pop(), ch * mult, temb, dropout)]
                c = ch * mult
                if res in attn_resolutions:
                    blocks.append(AttnBlock(c))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.Conv2d(c, c, 3, padding=1))  # after nearest ×2 upsampling
                res *= 2
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, cin, 3, padding=1))

    @staticmethod
    def _run(blocks: nn.ModuleList, h: Tensor, temb: Tensor) -> Tensor:
        for blk in blocks:
            h = blk(h, temb) if isinstance(blk, ResBlock) else blk(h)
        return h

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.temb(timestep_embedding(t, self.ch))
        hs = [self.conv_in(x)]
        for mod in self.down:
            hs.append(mod(hs[-1]) if isinstance(mod, nn.Conv2d) else self._run(mod, hs[-1], temb))
        h = self._run(self.mid, hs[-1], temb)
        for mod in self.up:
            if isinstance(mod, nn.Conv2d):
                h = mod(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            else:
                h = self._run(mod, torch.cat([h, hs.pop()], dim=1), temb)
        return self.out(h)
