"""Timestep strategies. Importing this package registers every strategy module listed below."""

from strategies.base import Draw, StepContext, Strategy, build, get, make_params, names, register

from strategies import uniform  # noqa: F401  (one import line per strategy registers it)

__all__ = ["Draw", "StepContext", "Strategy", "build", "get", "make_params", "names", "register"]
