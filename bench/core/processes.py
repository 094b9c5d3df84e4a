"""The one constructor of a diffusion process from its config (``build``), and the processes
there are (``PROCESSES``). Every part of the suite that needs the process — the trainer's
components, the run validation, the sweep plan's cost, the report's weight curves, the tools —
builds it here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bench.core.ddpm import DDPM
from bench.core.flow import Flow
from bench.core.process import Process

PROCESSES: dict[str, type[Process]] = {"ddpm": DDPM, "flow": Flow}
FLOW_FIXED = {"schedule": "linear", "variance": "fixed_large"}   # DDPM keys flow has no use for


def samplers(process: str) -> tuple[str, ...]:
    """The samplers of process ``process`` (``eval.sampler``'s valid values there)."""
    return PROCESSES.get(process).SAMPLERS


def build(section: Any, process: str = "ddpm") -> Process:
    """The process named ``process`` (a config's ``process.name``) on its ``diffusion`` section
    (a mapping or the typed section): DDPM reads ``schedule``, ``timesteps``, ``variance``; flow
    reads ``timesteps`` as its grid's cells and refuses another schedule or variance (its path is
    the straight line)."""
    spec = dict(section) if isinstance(section, Mapping) else dataclasses.asdict(section)
    if process not in PROCESSES:
        raise ValueError(f"unknown process.name {process!r}; valid: {', '.join(PROCESSES)}")
    if process == "flow":
        for key, fixed in FLOW_FIXED.items():
            if spec.get(key, fixed) != fixed:
                raise ValueError(f"diffusion.{key}={spec[key]!r} has no meaning for process "
                                 f"flow (its path is linear: x_t = (1-t)·x0 + t·noise); leave it "
                                 f"at {fixed}")
        args = (spec["timesteps"],)
    else:
        args = (spec["schedule"], spec["timesteps"], spec.get("variance", "fixed_large"))
    return PROCESSES[process](*args)
