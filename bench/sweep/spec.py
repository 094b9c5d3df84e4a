"""The sweep file — a YAML grid of runs — and its pure expansion into run configs (``expand``);
``python -m bench.sweep`` (bench/sweep/__main__.py) plans or launches them.

A sweep file::

    name: table1                       # results go to DIR/<name>/<run_id>/
    description: ...                   # optional
    base: {...}                        # a run config (bench.config), shared by every run
    grid:                              # axes: dotted config paths -> lists of values
      diffusion.schedule: [linear, cosine, quad]
      strategy: [{name: uniform}, {name: p2, k: 1, gamma: 1}]
      seed: [0, 1, 2]
    cells:                             # optional per-cell overrides, applied in order
      - match: {strategy.name: adaptive_beta}      # dotted path -> value (a list = any of)
        set: {train.batch_size: 64}                # dotted path -> value
      - match: {diffusion.schedule: quad, strategy.name: p2}
        skip: true                                 # drop these cells from the grid
    requires:                          # optional: files the runs need (checked at launch)
      - {path: data/cifar10, what: "CIFAR-10", how: "set dataset.download: true once"}
    executor: {partition: gpu, timeout_min: 1440, gpus_per_node: 1, ...}   # bench.config.Executor
    cluster: slurm                     # optional: where it runs without --cluster (default local)

``grid`` may also be a list of such mappings: the runs are the union of their products. Values
are merged into the base with ``bench.config.deep_update`` in axis order, so an axis value
``{name: p2, gamma: 1}`` replaces the base strategy (another name) and ``strategy.gamma: [1, 2]``
changes one parameter of it. Every run is resolved through ``bench.config.resolve``. The
commands expand through ``bench.sweep.check.expand``, which also validates every run config
(``bench.experiment.validate``: components and their parameters, trackers, metrics), so a bad
sweep fails before anything is submitted; ``expand`` here stays pure (the report expands a
committed sweep.yaml with it, without the training stack). Run ids are ``bench.config.run_id``
of the resolved config.

Launching (``bench.launch.launcher``) is idempotent: DONE runs are skipped, runs with a checkpoint
resume, SLURM jobs still in flight from an earlier launch are not submitted again.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config.fields import ConfigError
from bench.config.files import load_yaml, resolve
from bench.config.identity import canonical, run_id
from bench.config.sections import DEFAULTS, OPEN_SECTIONS, Executor, deep_update
from bench.core.checks import check_keys
from bench.labels import conditions, value_label

TOP_KEYS = ("name", "description", "base", "grid", "cells", "requires", "executor", "cluster")
CELL_KEYS = ("match", "set", "skip")
REQUIRE_KEYS = ("path", "what", "how")
CLUSTERS = ("local", "slurm", "debug")
DEFAULT_CLUSTER = "local"

class SweepError(ConfigError):
    """A bad sweep file or launch request; the message names the problem and the fix."""




_MISSING = object()


# ---------------------------------------------------------------------------- the run config
@dataclass(frozen=True)
class RunConfig:
    """One run of a sweep: its id, its grid coordinates and its resolved config (immutable: the
    config is stored in canonical JSON; ``config`` returns a fresh dict each time)."""

    run_id: str
    axes: tuple[tuple[str, str], ...]   # (axis path, value label), in axis order
    config_json: str
    condition: str = ""                 # bench.labels: what the plan, launch and report call it
    display: str = ""                   # the grid entries' ``label:`` (figure legends), if any

    @property
    def config(self) -> dict:
        return json.loads(self.config_json)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.axes)


# ---------------------------------------------------------------------------- paths into configs
def check_path(path: str, where: str) -> None:
    """A dotted path must name a config key: closed sections against DEFAULTS; below an open
    section (dataset/backbone/strategy) any parameter name (validated by its registry later)."""
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise SweepError(f"{where}: {path!r} is not a dotted config path (e.g. train.lr)")
    node: Any = DEFAULTS
    parts = path.split(".")
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if isinstance(node, dict) and not node and i > 0:
            return                          # an open mapping (e.g. eval: {} before its keys exist)
        if not isinstance(node, dict):
            raise SweepError(f"{where}: {prefix!r} is a value, not a section ({path!r})")
        if part not in node:
            valid = ", ".join(sorted(node))
            raise SweepError(f"{where}: unknown config key {part!r}"
                             f"{' in ' + prefix if prefix else ''} ({path!r}); valid: {valid}")
        if i == 0 and part in OPEN_SECTIONS:
            return
        node = node[part]


def nest(path: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = copy.deepcopy(value)
    return out


def get_path(cfg: Mapping, path: str) -> Any:
    node: Any = cfg
    for p in path.split("."):
        if not isinstance(node, Mapping) or p not in node:
            return _MISSING
        node = node[p]
    return node


def matches(actual: Any, wanted: Any) -> bool:
    """Equality, a list of alternatives, or a sub-mapping (every given key equal)."""
    if actual is _MISSING:
        return False
    if isinstance(wanted, list) and not (isinstance(actual, list) and actual == wanted):
        return any(matches(actual, w) for w in wanted)
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            matches(actual.get(k, _MISSING), v) for k, v in wanted.items())
    return actual == wanted or (isinstance(actual, float) and isinstance(wanted, int)
                                and actual == float(wanted))


# ---------------------------------------------------------------------------- the sweep file
def load_sweep(path: str | Path) -> dict:
    """Read a sweep file (YAML); its structure is checked by ``expand``."""
    spec = load_yaml(path, ("sweeps",))
    check_spec(spec)
    return spec


def check_spec(spec: Mapping) -> None:
    if not isinstance(spec, Mapping):
        raise SweepError(f"a sweep must be a mapping, got {type(spec).__name__}")
    check_keys(spec, TOP_KEYS, "sweep key(s)", quote=True, error=SweepError)
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise SweepError(f"sweep 'name' must be a directory-safe string of at most 100 "
                         f"characters (letters, digits, _ . -), got {name!r}")
    for key, kind in (("base", Mapping), ("executor", Mapping), ("cells", list),
                      ("requires", list)):
        if spec.get(key) is not None and not isinstance(spec[key], kind):
            raise SweepError(f"sweep {key!r} must be a {'mapping' if kind is Mapping else 'list'}, "
                             f"got {type(spec[key]).__name__}")
    if spec.get("cluster") is not None and spec["cluster"] not in CLUSTERS:
        raise SweepError(f"unknown sweep cluster {spec['cluster']!r}; valid: "
                         f"{', '.join(CLUSTERS)}")
    executor_params(spec)
    requirements(spec)


def grid_blocks(spec: Mapping) -> list[list[tuple[str, list]]]:
    """The grid as a list of blocks, each a list of (axis path, values); checked."""
    grid = spec.get("grid")
    if not grid:
        raise SweepError("the sweep's grid is empty: give at least one axis with a non-empty list "
                         "of values, e.g.  grid: {seed: [0]}")
    blocks = grid if isinstance(grid, list) else [grid]
    out = []
    for i, block in enumerate(blocks):
        where = f"grid[{i}]" if isinstance(grid, list) else "grid"
        if not isinstance(block, Mapping) or not block:
            raise SweepError(f"{where} must be a non-empty mapping of axis -> list of values")
        axes = []
        for path, values in block.items():
            check_path(path, f"{where} axis {path!r}")
            if not isinstance(values, list):
                raise SweepError(f"{where} axis {path!r} must be a list of values, got {values!r} "
                                 f"(write [{values}] for a single value)")
            if not values:
                raise SweepError(f"{where} axis {path!r} has no values: the grid would be empty")
            axes.append((path, values))
        out.append(axes)
    return out


def _cells(spec: Mapping) -> list[dict]:
    cells = spec.get("cells") or []
    for i, cell in enumerate(cells):
        where = f"cells[{i}]"
        if not isinstance(cell, Mapping):
            raise SweepError(f"{where} must be a mapping with 'match' and 'set' or 'skip'")
        check_keys(cell, CELL_KEYS, "key(s)", where=where, quote=True, error=SweepError)
        if not isinstance(cell.get("match"), Mapping) or not cell["match"]:
            raise SweepError(f"{where} needs a non-empty 'match' mapping (config path -> value)")
        has_set, skip = bool(cell.get("set")), cell.get("skip", False)
        if not isinstance(skip, bool) or has_set == skip:
            raise SweepError(f"{where} needs exactly one of a non-empty 'set' mapping or "
                             f"'skip: true'")
        if has_set and not isinstance(cell["set"], Mapping):
            raise SweepError(f"{where}: 'set' must be a mapping (config path -> value)")
        for path in cell["match"]:
            check_path(path, f"{where} match {path!r}")
        for path in cell.get("set") or {}:
            check_path(path, f"{where} set {path!r}")
    return list(cells)


def requirements(spec: Mapping) -> list[dict]:
    out = []
    for i, req in enumerate(spec.get("requires") or []):
        if not isinstance(req, Mapping) or not isinstance(req.get("path"), str):
            raise SweepError(f"requires[{i}] must be a mapping with a 'path' (and 'what', 'how')")
        check_keys(req, REQUIRE_KEYS, "key(s)", where=f"requires[{i}]", quote=True,
                   error=SweepError)
        out.append(dict(req))
    return out


def missing_requirements(spec: Mapping, root: str | Path = ".") -> list[str]:
    """One message per required path that does not exist (relative paths: from ``root``)."""
    msgs = []
    for req in requirements(spec):
        path = Path(req["path"])
        if not (path if path.is_absolute() else Path(root) / path).exists():
            what = req.get("what", "a required file")
            how = f" — {req['how']}" if req.get("how") else ""
            msgs.append(f"{what} not found at {req['path']}{how}")
    return msgs


def cluster_choice(spec: Mapping, flag: str | None) -> tuple[str, str]:
    """(cluster, where the choice came from): ``--cluster`` wins over the sweep file's
    ``cluster:``, which wins over the default (local)."""
    if flag:
        return flag, f"from --cluster {flag}"
    if spec.get("cluster"):
        return spec["cluster"], f"from the sweep file's 'cluster: {spec['cluster']}'"
    return DEFAULT_CLUSTER, "the default: no --cluster given, no 'cluster:' in the sweep file"


def executor_params(spec: Mapping, overrides: Mapping | None = None) -> dict:
    """The executor block over its defaults, checked; ``overrides`` win (--executor)."""
    block = {**(spec.get("executor") or {}), **(overrides or {})}
    if isinstance(block.get("setup"), str):
        block["setup"] = [block["setup"]]
    try:
        return Executor.from_dict(block).to_dict()
    except ConfigError as e:
        raise SweepError(str(e)) from e


# ---------------------------------------------------------------------------- expansion
def _resolve_run(merged: dict, label: str, check: Callable[[dict], None] | None) -> dict:
    try:
        cfg = resolve(merged)
        if check is not None:
            check(cfg)
    except (ValueError, TypeError) as e:
        raise SweepError(f"run [{label}]: {e}") from e
    return cfg


def expand(sweep: Mapping, check: Callable[[dict], None] | None = None) -> list[RunConfig]:
    """The runs of a sweep, in grid order (first axis slowest). Pure: reads no files, writes
    nothing, imports no training code; raises SweepError on an unknown key or axis, an empty
    grid, a cell that matches no run, duplicate runs, or a config that does not resolve (with
    the run's grid coordinates). ``check(cfg)`` is called on each resolved config as it is made
    (its ValueError/TypeError raised the same way): ``bench.sweep.check.expand`` passes the run
    validation (``bench.experiment.validate``)."""
    check_spec(sweep)
    base = copy.deepcopy(dict(sweep.get("base") or {}))
    base.setdefault("name", sweep["name"])
    cells, blocks = _cells(sweep), grid_blocks(sweep)
    used = [0] * len(cells)
    runs: list[RunConfig] = []
    seen: dict[str, str] = {}
    for axes in blocks:
        for combo in itertools.product(*(values for _, values in axes)):
            combo, shown = zip(*(_display(v, p) for (p, _), v in zip(axes, combo)))
            merged = base
            for (path, _), value in zip(axes, combo):
                merged = deep_update(merged, nest(path, value))
            label = " ".join(f"{p}={value_label(v)}" for (p, _), v in zip(axes, combo))
            merged = _apply_cells(merged, cells, used)
            if merged is None:
                continue
            cfg = _resolve_run(merged, label, check)
            rid = run_id(cfg)
            if rid in seen:
                raise SweepError(f"duplicate runs: [{seen[rid]}] and [{label}] resolve to the "
                                 f"same config (run id {rid}); remove a repeated value or make "
                                 f"them differ")
            seen[rid] = label
            runs.append(RunConfig(rid, tuple((p, value_label(v)) for (p, _), v in zip(axes, combo)),
                                  canonical(cfg), display=" ".join(x for x in shown if x)))
    for i, n in enumerate(used):
        if n == 0:
            raise SweepError(f"cells[{i}] (match {dict(cells[i]['match'])}) matches no run of the "
                             f"grid; check its paths and values")
    if not runs:
        raise SweepError("the grid is empty: every cell was skipped")
    names = conditions([r.config for r in runs])
    return [dataclasses.replace(r, condition=c) for r, c in zip(runs, names)]


def _display(value: Any, path: str) -> tuple[Any, str]:
    """A grid value without its ``label:`` (a mapping entry's name in figure legends; not part
    of the config or the run id), and that label ('' if none)."""
    if not isinstance(value, Mapping) or "label" not in value:
        return value, ""
    label = value["label"]
    if not isinstance(label, str) or not label.strip():
        raise SweepError(f"grid axis {path!r}: label must be a non-empty string, got {label!r}")
    return {k: v for k, v in value.items() if k != "label"}, label.strip()


def _apply_cells(merged: dict, cells: list[dict], used: list[int]) -> dict | None:
    """Apply every matching cell's ``set`` (None if a matching cell says ``skip``). Cells match
    the grid cell's config over the defaults, before any cell changed it."""
    full = deep_update(DEFAULTS, merged)
    out = merged
    for i, cell in enumerate(cells):
        if all(matches(get_path(full, p), w) for p, w in cell["match"].items()):
            used[i] += 1
            if cell.get("skip"):
                return None
            for path, value in cell["set"].items():
                out = deep_update(out, nest(path, value))
    return out


def select(runs: list[RunConfig], pattern: str | None) -> list[RunConfig]:
    """``--only``: runs whose id or label matches the glob (``*`` added around a plain word)."""
    if not pattern:
        return runs
    pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    chosen = [r for r in runs if fnmatch.fnmatchcase(r.run_id, pat)
              or fnmatch.fnmatchcase(r.label, pat)
              or any(fnmatch.fnmatchcase(f"{k}={v}", pat) for k, v in r.axes)]
    if not chosen:
        raise SweepError(f"--only {pattern!r} matches none of the {len(runs)} runs "
                         f"(it is matched against run ids and 'axis=value' labels)")
    return chosen
