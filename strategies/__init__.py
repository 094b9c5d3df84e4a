"""Timestep strategies. Importing this package registers every strategy module listed below,
then those of installed packages that declare an entry point in the group
``timestep_bench.strategies`` (``name = "module"``: loading the module registers its classes; one
that fails to load is skipped with a warning):

    [project.entry-points."timestep_bench.strategies"]
    my_sampler = "mypkg.my_sampler"

A module not installed as a package can be named in a config's or sweep's ``imports:``.

The names below are the plug-in author's API, owned by ``strategies.base`` (the contract),
``strategies.registry`` and ``strategies.params``."""

from strategies.base import Draw, StepContext, Strategy
from strategies.params import build, defaults, identity, label_defaults, late, make_params
from strategies.registry import get, load_entry_points, names, register, registered

from strategies import uniform  # noqa: F401  (one import line per strategy registers it)
from strategies import p2  # noqa: F401
from strategies import min_snr  # noqa: F401
from strategies import lognormal  # noqa: F401
from strategies import speed  # noqa: F401
from strategies import loss_second_moment  # noqa: F401
from strategies import laplace  # noqa: F401
from strategies import compose  # noqa: F401
from strategies import edm2_uncertainty  # noqa: F401
from strategies import adaptive_beta  # noqa: F401
from strategies import grad_variance  # noqa: F401
from strategies import uniform_range  # noqa: F401
from strategies import mode  # noqa: F401
from strategies import cosmap  # noqa: F401
from strategies import beta_t  # noqa: F401
from strategies import u_shaped  # noqa: F401
from strategies import power_law  # noqa: F401
from strategies import debiased  # noqa: F401
from strategies import soft_min_snr  # noqa: F401
from strategies import sigma_sqrt  # noqa: F401
from strategies import fm_curriculum  # noqa: F401
from strategies import uniform_of  # noqa: F401

load_entry_points()

__all__ = ["Draw", "StepContext", "Strategy", "build", "defaults", "get", "identity",
           "label_defaults", "late", "make_params", "names", "register", "registered"]
