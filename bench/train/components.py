"""The data, model, diffusion process and strategy a config names, built through their
registries."""

from __future__ import annotations

from collections.abc import Mapping

import torch

import backbones
import strategies
from bench.config import Config
from bench.core.diffusion import Diffusion
from bench.data import datasets


def build_components(cfg: Mapping | Config, device: torch.device | None = None):
    """(data, model, diffusion, strategy) from a resolved config; raises on bad names/params."""
    cfg = Config.of(cfg)
    data = datasets.build(cfg.dataset.name, cfg.dataset.params)
    model = backbones.build(cfg.backbone.name, data.shape, cfg.backbone.params)
    d = cfg.diffusion
    diffusion = Diffusion(d.schedule, d.timesteps, d.variance)
    strategy = strategies.build(cfg.strategy.name, diffusion, cfg.strategy.params)
    if device is not None:
        model.to(device)
    return data, model, diffusion, strategy
