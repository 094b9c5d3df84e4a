"""Run configuration: typed sections (defaults + validation in one place), YAML, ``--set``, run id.

On disk and in sweeps a run config is a plain nested mapping (config.yaml); ``resolve`` merges it
over ``DEFAULTS``, checks it, and returns that mapping, whose canonical JSON gives the ``run_id``.
``Config.of(cfg)`` is its typed, frozen view — what the trainer and the evaluators read
(``cfg.train.batch_size``). Each section is a frozen dataclass whose fields carry their default,
one line of documentation and their check; ``DEFAULTS`` and the docs' config tables are generated
from them. ``dataset``, ``backbone`` and ``strategy`` are open sections: a ``name`` plus that
component's parameters, validated by its registry.

Who owns what:

* ``bench.config.fields``   — ``ConfigError``, the value checks (``Rule``, ``choice``, ...),
  ``opt``/``sub`` and the ``Section`` base;
* ``bench.config.sections`` — the typed sections (``Diffusion``, ``Train``, ``Eval``, ``NLL``,
  ``Toy``, ``Diagnostics``, ``Executor``), ``Component``, the top-level keys, ``Config``,
  ``DEFAULTS``, ``deep_update`` and ``import_modules``;
* ``bench.config.files``    — the YAML loader, ``find_file``/``search_dirs``, ``load_yaml``,
  ``parse_set`` (``--set``), ``resolve`` and ``load``;
* ``bench.config.identity`` — ``canonical_form``, ``canonical`` and ``run_id``;
* ``bench.config.docs``     — the configuration reference (``python -m bench.config`` writes
  docs/config.md).

This package re-exports only the small public API that commands, plug-in authors and the tests
use most (``from bench import config as C``; ``C.resolve``, ``C.run_id``). bench's own modules
import the owning submodule (``from bench.config.sections import Config``).
"""

from bench.config.fields import ConfigError
from bench.config.files import find_file, load, load_yaml, resolve
from bench.config.identity import run_id
from bench.config.sections import (DEFAULTS, NLL, Config, Diagnostics, Diffusion, Eval, Executor,
                                   Toy, Train, deep_update)

__all__ = ["DEFAULTS", "NLL", "Config", "ConfigError", "Diagnostics", "Diffusion", "Eval",
           "Executor", "Toy", "Train", "deep_update", "find_file", "load", "load_yaml", "resolve",
           "run_id"]
