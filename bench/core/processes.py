"""The one constructor of a diffusion process from its config section (``build``), and the
processes there are (``PROCESSES``). Every part of the suite that needs the process — the
trainer's components, the run validation, the sweep plan's cost, the report's weight curves, the
tools — builds it here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bench.core.ddpm import DDPM
from bench.core.process import Process

PROCESSES: dict[str, type[Process]] = {"ddpm": DDPM}


def build(section: Any) -> Process:
    """The process of a config's ``diffusion`` section (a mapping or the typed section):
    ``schedule``, ``timesteps``, ``variance``."""
    spec = dict(section) if isinstance(section, Mapping) else dataclasses.asdict(section)
    return PROCESSES["ddpm"](spec["schedule"], spec["timesteps"], spec.get("variance", "fixed_large"))
