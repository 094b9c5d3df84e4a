"""The data, model, diffusion process and strategy a config names, built through their
registries."""

from __future__ import annotations

from collections.abc import Mapping

import torch

import backbones
import strategies
from bench.config.sections import Config
from bench.core import processes
from bench.data import datasets


def build_components(cfg: Mapping | Config, device: torch.device | None = None):
    """(data, model, process, strategy) from a resolved config; raises on bad names/params."""
    cfg = Config.of(cfg)
    data = datasets.build(cfg.dataset.name, cfg.dataset.params)
    model = backbones.build(cfg.backbone.name, data.shape, cfg.backbone.params)
    process = processes.build(cfg.diffusion, cfg.process)
    strategy = strategies.build(cfg.strategy.name, process, cfg.strategy.params)
    if device is not None:
        model.to(device)
    return data, model, process, strategy
