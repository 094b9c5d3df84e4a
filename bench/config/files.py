"""Configs from files and the command line: the one YAML loader (``yaml_load``), where a config or
sweep given by name is looked for (``search_dirs``, ``find_file``), ``load_yaml``, ``parse_set``
(``--set key=value``), ``resolve`` (DEFAULTS ⊕ overrides, checked: the mapping config.yaml holds)
and ``load`` (a config file with ``--set`` overrides, resolved)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

from bench.config.fields import ConfigError
from bench.config.sections import DEFAULTS, Config, deep_update


# ---------------------------------------------------------------------------- YAML and --set
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text: str):
    """The one YAML loader of configs, sweeps and config.yaml files."""
    return yaml.load(text, Loader=_Loader)


REPO = Path(__file__).resolve().parents[2]


def search_dirs(kind: str) -> list[Path]:
    """Where ``find_file`` looks for a config (``kind`` configs) or sweep (sweeps) given by
    name: $TSB_HOME/<kind>, the source checkout's <kind>/ (an editable install), and
    <prefix>/share/timestep-bench/<kind> (a wheel: pyproject's data-files)."""
    home = os.environ.get("TSB_HOME")
    dirs = [Path(home) / kind] if home else []
    return dirs + [REPO / kind, Path(sys.prefix) / "share" / "timestep-bench" / kind]


def find_file(path: str | Path, kinds: tuple[str, ...] = ("sweeps", "configs")) -> Path:
    """``path`` itself when it exists, else the first ``search_dirs`` match of its name (with or
    without ``.yaml``: ``quickstart``, ``sweeps/quickstart.yaml``); ConfigError listing the
    places searched."""
    path = Path(path)
    if path.is_file():
        return path
    looked = [str(path)]
    if not path.is_absolute():
        names = [path.name] if path.suffix in (".yaml", ".yml") else [f"{path.name}.yaml",
                                                                        path.name]
        for kind in kinds:
            for d in search_dirs(kind):
                for n in names:
                    if (d / n).is_file():
                        return d / n
                looked.append(str(d / names[0]))
    raise ConfigError(f"config file not found: {path} (looked in "
                      f"{', '.join(dict.fromkeys(looked))})")


def load_yaml(path: str | Path, kinds: tuple[str, ...] = ("configs", "sweeps")) -> dict:
    """A YAML mapping from ``path`` (or a file of that name in ``kinds``: ``find_file``)."""
    path = find_file(path, kinds)
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"malformed YAML in {path}: {e}") from e
    if data is None:
        raise ConfigError(f"{path} is empty; write {{}} in it for a run on all defaults")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def parse_set(items: list[str]) -> dict:
    """``["train.lr=1e-3", "strategy.name=p2"]`` → a nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: cannot parse value: {e}") from e
        node = out
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is already set to "
                                  f"{node!r} by an earlier --set, so it has no key "
                                  f"{parts[i + 1]!r}")
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------------------- resolving
def resolve(overrides: dict) -> dict:
    """DEFAULTS ⊕ overrides, checked (keys and values; component parameters are their
    registries' business). Returns the mapping that config.yaml holds and run ids hash."""
    cfg = deep_update(DEFAULTS, overrides)
    Config.of(cfg)
    return cfg


def load(path: str | Path, sets: list[str] = ()) -> dict:
    """A config file with ``--set`` overrides, resolved."""
    return resolve(deep_update(load_yaml(path, ("configs",)), parse_set(list(sets))))
