"""The validated expansion of a sweep: ``bench.sweep.spec.expand`` with every run config checked
by ``bench.experiment.validate`` as it is resolved (components and their parameters, trackers,
metrics, evaluation steps), so a bad sweep fails — naming the run's grid coordinates — before
anything is planned or submitted. The commands (``python -m bench.sweep``, ``bench.tools``)
expand through here; the report reads committed sweeps with the pure ``spec.expand``.
"""

from __future__ import annotations

from collections.abc import Mapping

from bench.experiment import validate
from bench.sweep.spec import RunConfig, expand as expand_pure


def expand(sweep: Mapping) -> list[RunConfig]:
    """The runs of ``sweep`` (``spec.expand``), each validated in grid order; the first invalid
    run raises SweepError("run [axis=value ...]: ...")."""
    return expand_pure(sweep, check=validate)
