"""Backbone registry. Every backbone is called as ``model(x_t, t) -> eps``."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from backbones.mlp import MLP
from backbones.unet import UNet
from backbones.uvit import UViT
from bench.core.checks import check_keys, check_params

BACKBONES: dict[str, type[nn.Module]] = {"unet": UNet, "uvit": UViT, "mlp": MLP}
IMAGE_ONLY = {"unet", "uvit"}


def names() -> list[str]:
    return sorted(BACKBONES)


def parameters(name: str) -> list[str]:
    return [p for p in inspect.signature(BACKBONES[name]).parameters if p != "shape"]


def defaults(name: str) -> dict[str, Any]:
    """The default parameters of backbone ``name``."""
    check(name)
    return {p.name: p.default for p in inspect.signature(BACKBONES[name]).parameters.values()
            if p.name != "shape" and p.default is not inspect.Parameter.empty}


def check(name: str, params: dict[str, Any] | None = None) -> None:
    """Name, parameter names and their declared types and ranges; raises ValueError naming the
    key and listing the valid choices."""
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"unknown backbone.name {name!r}; valid: {', '.join(names())}")
    check_keys(params or {}, parameters(name), "parameter(s)", where=f"backbone {name!r}")
    check_params(BACKBONES[name], params or {}, "backbone.")


def build(name: str, shape: tuple[int, ...], params: dict[str, Any] | None = None) -> nn.Module:
    """Build backbone ``name`` for data of ``shape`` ((C, H, W) or (D,)); errors list valid choices."""
    check(name, params)
    params = dict(params or {})
    if name in IMAGE_ONLY and len(shape) != 3:
        raise ValueError(f"backbone {name!r} needs image data (C, H, W), got shape {tuple(shape)}; "
                         f"use 'mlp' for 2-D toys")
    return BACKBONES[name](tuple(shape), **params)
