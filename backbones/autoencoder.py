"""The latent-diffusion first stage (Rombach et al. 2022): KL and VQ autoencoders, frozen.

Written from the architecture of the CompVis ``ldm`` first-stage models so that their checkpoints
load as they are: the module and parameter names follow that layout (``encoder.down.0.block.1.
norm1.weight``, ``quant_conv``, ``post_quant_conv``, ``quantize.embedding``), and the training-only
``loss.*`` entries of a Lightning checkpoint are ignored. Two presets are the checkpoints the
paper's latent experiments use:

- ``kl-f8``: 256×256×3 → 32×32×4 (Stable Diffusion's VAE; U-ViT's ``autoencoder_kl.pth``, ImageNet
  256, Table 3), latents scaled by 0.18215;
- ``vq-f4``: 256×256×3 → 64×64×3 (LDM's ``first_stage_models/vq-f4``, CelebA-HQ, Table 2); the
  diffusion model sees the pre-quantisation encoding, decoding quantises first (as LDM does),
  scale 1.0.

Only inference is implemented (encode → latent statistics, decode → pixels); the trainer never
updates these weights.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

PRESETS: dict[str, dict] = {
    "kl-f8": dict(kind="kl", ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4,
                  embed_dim=4, attn_resolutions=(), resolution=256, scale_factor=0.18215),
    "vq-f4": dict(kind="vq", ch=128, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=3,
                  embed_dim=3, n_embed=8192, attn_resolutions=(), resolution=256,
                  scale_factor=1.0),
}
KINDS = ("kl", "vq")


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head attention over pixels with separate 1×1 q/k/v convolutions."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v = (nn.Conv2d(c, c, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))       # asymmetric padding, as in ldm


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Level(nn.Module):
    """One resolution level: res blocks (each followed by attention where the level has it), then
    the level's ``downsample`` or ``upsample`` if it has one (attribute names as in ldm)."""

    def __init__(self, blocks: list[nn.Module], attns: list[nn.Module]):
        super().__init__()
        self.block, self.attn = nn.ModuleList(blocks), nn.ModuleList(attns)

    def forward(self, h: Tensor) -> Tensor:
        for j, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[j](h)
        for name in ("downsample", "upsample"):
            if hasattr(self, name):
                h = getattr(self, name)(h)
        return h


class Encoder(nn.Module):
    def __init__(self, in_channels: int, ch: int, ch_mult, num_res_blocks: int, attn_resolutions,
                 resolution: int, out_channels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down, c, res = nn.ModuleList(), ch, resolution
        for i, mult in enumerate(ch_mult):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(c, ch * mult))
                c = ch * mult
                if res in attn_resolutions:
                    attns.append(AttnBlock(c))
            level = Level(blocks, attns)
            if i != len(ch_mult) - 1:
                level.downsample, res = Downsample(c), res // 2
            self.down.append(level)
        self.mid = Mid(c)
        self.norm_out, self.conv_out = _norm(c), nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, out_channels: int, ch: int, ch_mult, num_res_blocks: int, attn_resolutions,
                 resolution: int, z_channels: int):
        super().__init__()
        c, res = ch * ch_mult[-1], resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, c, 3, padding=1)
        self.mid = Mid(c)
        up = []
        for i in reversed(range(len(ch_mult))):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(c, ch * ch_mult[i]))
                c = ch * ch_mult[i]
                if res in attn_resolutions:
                    attns.append(AttnBlock(c))
            level = Level(blocks, attns)
            if i != 0:
                level.upsample, res = Upsample(c), res * 2
            up.insert(0, level)                      # indexed by resolution level, as in ldm
        self.up = nn.ModuleList(up)
        self.norm_out, self.conv_out = _norm(c), nn.Conv2d(c, out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantisation (decode side only)."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z: Tensor) -> Tensor:
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        idx = torch.cdist(flat, self.embedding.weight).argmin(1)
        return self.embedding(idx).reshape(b, h, w, c).permute(0, 3, 1, 2)


class Autoencoder(nn.Module):
    """A frozen first-stage model. ``encode`` gives the statistics stored per image — (mean, logvar)
    concatenated on channels for ``kl``, the pre-quantisation encoding for ``vq`` — and
    ``latent(stats, noise)`` turns them into the scaled latent the diffusion model trains on."""

    def __init__(self, kind: str = "kl", ch: int = 128, ch_mult=(1, 2, 4, 4),
                 num_res_blocks: int = 2, z_channels: int = 4, embed_dim: int = 4,
                 n_embed: int = 8192, attn_resolutions=(), resolution: int = 256,
                 in_channels: int = 3, scale_factor: float = 1.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"autoencoder kind {kind!r}; valid: {', '.join(KINDS)}")
        self.kind, self.scale_factor = kind, float(scale_factor)
        self.embed_dim, self.factor = embed_dim, 2 ** (len(ch_mult) - 1)
        double = 2 if kind == "kl" else 1
        arch = dict(ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                    attn_resolutions=tuple(attn_resolutions), resolution=resolution)
        self.encoder = Encoder(in_channels, out_channels=double * z_channels, **arch)
        self.decoder = Decoder(in_channels, z_channels=z_channels, **arch)
        self.quant_conv = nn.Conv2d(double * z_channels, double * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        if kind == "vq":
            self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.requires_grad_(False)
        self.eval()

    @property
    def stats_channels(self) -> int:
        return self.embed_dim * (2 if self.kind == "kl" else 1)

    def latent_shape(self, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        _, h, w = image_shape
        return (self.embed_dim, h // self.factor, w // self.factor)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] → per-image statistics (unscaled)."""
        return self.quant_conv(self.encoder(x))

    def latent(self, stats: Tensor, noise: Tensor | None = None) -> Tensor:
        """Scaled latent from statistics: a posterior sample (kl, with ``noise``; its mean without)
        or the encoding itself (vq)."""
        if self.kind == "vq":
            return stats * self.scale_factor
        return latent_from_moments(stats, noise) * self.scale_factor

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Scaled latents → images (roughly [-1, 1])."""
        z = z / self.scale_factor
        if self.kind == "vq":
            z = self.quantize(z)
        return self.decoder(self.post_quant_conv(z))


def latent_from_moments(moments: Tensor, noise: Tensor | None) -> Tensor:
    """mean + std·noise of a diagonal Gaussian given as (mean, logvar) on channels; logvar clamped
    to [-30, 20] as in ldm's DiagonalGaussianDistribution. ``noise=None`` gives the mean."""
    mean, logvar = moments.chunk(2, dim=1)
    if noise is None:
        return mean
    return mean + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * noise


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The autoencoder weights of a checkpoint: a Lightning ``.ckpt`` (``state_dict`` inside), a
    plain ``.pth``/``.pt`` state dict, or ``.safetensors``; ``loss.*`` entries dropped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict (got {type(sd).__name__})")
    sd = {k.removeprefix("first_stage_model."): v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if not k.startswith("loss.")}


def build(checkpoint: str | Path, preset: str = "kl-f8", overrides: dict | None = None
          ) -> Autoencoder:
    """A preset's architecture (with ``overrides``) loaded strictly from ``checkpoint``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown autoencoder preset {preset!r}; valid: {', '.join(PRESETS)}")
    valid = list(inspect.signature(Autoencoder).parameters)
    unknown = sorted(set(overrides or {}) - set(valid))
    if unknown:
        raise ValueError(f"autoencoder: unknown architecture parameter(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(valid)}")
    arch = {**PRESETS[preset], **(overrides or {})}
    model = Autoencoder(**arch)
    where = (f"autoencoder checkpoint {checkpoint} does not match preset {preset!r} "
             f"({arch['kind']}, ch={arch['ch']}, ch_mult={list(arch['ch_mult'])})")
    hint = "pick the matching preset or override its architecture"
    try:
        missing, unexpected = model.load_state_dict(load_state_dict(checkpoint), strict=False)
    except RuntimeError as e:                          # shape mismatches
        raise ValueError(f"{where}: {str(e).splitlines()[-1].strip()}; {hint}") from e
    if missing or unexpected:
        raise ValueError(f"{where}: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}); {hint}")
    return model
