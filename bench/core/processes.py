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


def _as_dict(section: Any) -> dict:
    return dict(section) if isinstance(section, Mapping) else dataclasses.asdict(section)


def build(section: Any, process: Any = "ddpm") -> Process:
    """The process a config's ``process`` section (a mapping or the typed section, or just its
    ``name``) names, on its ``diffusion`` section (likewise): DDPM reads ``schedule``,
    ``timesteps``, ``variance`` and refuses a ``cell_time`` (its time is the discrete index);
    flow reads ``timesteps`` as its grid's cells and ``cell_time``, and refuses another schedule
    or variance (its path is the straight line)."""
    spec = _as_dict(section)
    options = {"name": process} if isinstance(process, str) else _as_dict(process)
    process, cell_time = options.get("name", "ddpm"), options.get("cell_time", "uniform")
    if process not in PROCESSES:
        raise ValueError(f"unknown process.name {process!r}; valid: {', '.join(PROCESSES)}")
    if process == "flow":
        for key, fixed in FLOW_FIXED.items():
            if spec.get(key, fixed) != fixed:
                raise ValueError(f"diffusion.{key}={spec[key]!r} has no meaning for process "
                                 f"flow (its path is linear: x_t = (1-t)·x0 + t·noise); leave it "
                                 f"at {fixed}")
        args = (spec["timesteps"], cell_time)
    else:
        if cell_time != "uniform":
            raise ValueError(f"process.cell_time={cell_time!r} has no meaning for process ddpm "
                             "(its time is the discrete index itself); leave it at uniform")
        args = (spec["schedule"], spec["timesteps"], spec.get("variance", "fixed_large"))
    return PROCESSES[process](*args)
