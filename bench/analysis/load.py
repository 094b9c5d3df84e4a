"""Loading a results tree: every run's files (through bench.rundir), its status, labels
(bench.labels) and the tidy frames the tables and figures are computed from.

``load(root)`` finds every run directory below ``root`` (a folder holding config.yaml, as
bench.train writes), reads config.yaml, metrics.jsonl, evals.csv and timesteps/*.csv, and returns a
``Results``: ``runs`` (one row per run, including runs a sweep.yaml expects but that are missing on
disk), ``evals`` (the tidy frame, one row per run × evaluation × metric), ``metrics`` (training log
rows) and ``timesteps`` (diagnostics). ``load_results(root)`` returns the tidy frame alone. A
corrupt file raises ``ReportError`` naming it.

Conditions never mix: tables and figures are per *setting* (dataset × backbone, and the budget,
evaluation and logging keys where runs differ in them: ``bench.labels.settings``) and per evaluation
*protocol* (metric × sampler × n_samples), so metrics of different extractors (``fd_cnn``,
``fid_inception``) never share a column. Within a setting, a condition is strategy × schedule ×
*variant* (any other hyperparameter that differs between runs, e.g. ``train.lr=0.001``); its runs
differ only by seed. Two runs are duplicates only when their configs have one run identity
(``bench.config.identity.run_id``: the same run, trained twice, e.g. by two sweeps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import strategies
from bench.analysis.stats import lower_is_better
from bench.config.fields import ConfigError
from bench.config.files import load_yaml
from bench.config.sections import DEFAULTS, deep_update, import_modules
from bench.core import processes
from bench.config.identity import run_id
from bench.labels import component_label, condition_label, settings, strategy_label, variants
from bench.rundir import runfiles, runpaths, runstate, runtables
from bench.rundir.runpaths import TIMESTEP_FILES
from bench.rundir.runstate import REPORT_WORDS, RunState
from bench.rundir.runtables import EVAL_COLUMNS, METRIC_COLUMNS, TIMESTEP_REQUIRED
from bench.sweep.spec import expand

# ---------------------------------------------------------------------------- constants
# A results tree the report cannot read; the message names the file and the problem.
ReportError = runpaths.RunFileError

RUN_COLUMNS = ["run", "sweep", "run_id", "setting", "dataset", "backbone", "strategy",
               "strategy_name", "variant", "condition", "schedule", "seed", "iterations",
               "status", "last_step", "note", "path"]
# A run's "status" column holds the report's view of the run-state vocabulary
# (bench.rundir.runstate.REPORT_WORDS): done, partial, failed, not_started, missing, duplicate.
COUNTED = (REPORT_WORDS[RunState.DONE],     # statuses whose evaluations enter tables and figures
           REPORT_WORDS[RunState.PARTIAL])
SCHEDULE_ORDER = ("linear", "cosine", "quad")

# ---------------------------------------------------------------------------- reading files
def read_config(run_dir: Path) -> dict:
    """The run's config.yaml over bench.config.DEFAULTS (an older or hand-written config that
    lacks a key gets its default)."""
    cfg = runfiles.read_config(run_dir)
    try:
        import_modules(cfg.get("imports", []))      # a run's own strategies (labels, weights)
    except ConfigError as e:
        raise ReportError(f"{runpaths.config_path(run_dir)}: {e}") from None
    for key in ("strategy", "dataset", "backbone"):
        if key in cfg and not (isinstance(cfg[key], dict) and "name" in cfg[key]):
            raise ReportError(f"{runpaths.config_path(run_dir)}: '{key}' must be a mapping with "
                              f"a 'name'")
    runfiles.check_config_identity(run_dir, cfg)    # edited after the run: refused, named
    return deep_update(DEFAULTS, cfg)


# ---------------------------------------------------------------------------- one run
def _age(path: Path) -> str:
    s = max(time.time() - path.stat().st_mtime, 0.0)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit}"
    return f"{s:.0f} s"


def _status(run_dir: Path, cfg: dict, metrics: pd.DataFrame, evals: pd.DataFrame,
            ) -> tuple[str, int, str]:
    """(status, last step, note): done (DONE exists), failed (FAILED exists: diverged or an
    error; never counted), partial (progress, no DONE — running or stopped; the log's age tells
    which is likely) or not_started (no training row yet)."""
    last = int(max(metrics["step"].max() if len(metrics) else 0,
                   evals["step"].max() if len(evals) else 0))
    iters = int(cfg["train"]["iterations"])
    if runstate.is_done(run_dir):
        runfiles.read_done(run_dir, strict=True)      # read as training reads it: corrupt → error
        return REPORT_WORDS[RunState.DONE], last, "" if len(evals) else "no evaluations"
    reason = runstate.failure(run_dir)
    if reason:
        return REPORT_WORDS[RunState.FAILED], last, reason
    if len(metrics):
        newest = runpaths.newest_write(run_dir)
        return REPORT_WORDS[RunState.PARTIAL], last, (
            f"no {runpaths.DONE}: at step {last} of {iters}, last write {_age(newest)} ago "
            f"(running or stopped)")
    return REPORT_WORDS[RunState.NEW], 0, f"{runpaths.CONFIG} only: no training log yet"


def run_info(root: Path, run_dir: Path, cfg: dict) -> dict:
    """The run columns (without setting-level ``variant``/``condition``)."""
    rel = run_dir.relative_to(root) if run_dir != root else Path(run_dir.name)
    sweep = rel.parent.as_posix() if rel.parent != Path(".") else (
        root.name if run_dir != root else root.parent.name)
    dataset, backbone = component_label(cfg["dataset"]), component_label(cfg["backbone"])
    return {"run": f"{sweep}/{run_dir.name}", "sweep": sweep, "run_id": run_dir.name,
            "setting": "", "dataset": dataset, "backbone": backbone,
            "strategy": strategy_label(cfg["strategy"]), "strategy_name": cfg["strategy"]["name"],
            "schedule": str(cfg["diffusion"]["schedule"]), "seed": cfg["seed"],
            "iterations": int(cfg["train"]["iterations"]), "path": str(run_dir)}


def _expected_runs(sweep_file: Path, present: set[Path], notes: list[str],
                   displays: dict[str, str]) -> list[tuple]:
    """(run dir, config) for runs that ``sweep.yaml`` (written by bench.launch) expects and that
    are absent on disk; a sweep file that no longer expands is a note, not an error. Records
    in ``displays`` the grid entries' ``label:`` of its runs, by run id."""
    try:
        runs = expand(load_yaml(sweep_file))
    except (ValueError, TypeError, KeyError) as e:
        notes.append(f"{sweep_file}: cannot expand the sweep to find missing runs ({e})")
        return []
    displays.update({r.run_id: r.display for r in runs if r.display})
    return [(sweep_file.parent / r.run_id, r.config) for r in runs
            if sweep_file.parent / r.run_id not in present]


# ---------------------------------------------------------------------------- the whole tree
@dataclass
class Results:
    """Everything ``load`` read. ``runs``: one row per run (RUN_COLUMNS), also missing and
    duplicate runs; ``evals``: tidy, one row per run × evaluation × metric; ``metrics``: training
    log rows; ``timesteps``: {kind: frame} for every ``bench.rundir.runpaths.TIMESTEP_FILES`` kind
    (diagnostics, p_t, t_hist, adaptation, t_drawn); all but ``runs`` carry the run
    columns. ``notes``: things the reader should know (unexpandable sweep files, ...)."""

    root: Path
    runs: pd.DataFrame
    evals: pd.DataFrame
    metrics: pd.DataFrame
    timesteps: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)
    displays: dict[str, str] = field(default_factory=dict)   # condition -> sweep ``label:``

    def counted(self, df: pd.DataFrame) -> pd.DataFrame:
        """Rows of runs whose data enter tables and figures (done or partial, not duplicates)."""
        return df[df["status"].isin(COUNTED)]


def _check_root(root: Path) -> None:
    if not root.exists():
        raise ReportError(f"{root}: no such directory")
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory (give the results directory)")


def load(root: str | Path) -> Results:
    """Read the results tree below ``root`` (any depth, several sweeps, runs in progress)."""
    root = Path(root)
    _check_root(root)
    run_dirs, sweep_files = runpaths.find_run_dirs(root)
    if not run_dirs:
        what = "is empty" if not any(root.iterdir()) else "is not a results tree"
        raise ReportError(f"{root} {what}: no run directory (a folder holding {runpaths.CONFIG}, "
                          f"as bench.train writes) below it")
    notes: list[str] = []
    infos, evals, metrics, ts = [], [], [], {k: [] for k in TIMESTEP_FILES}
    for d in run_dirs:
        cfg = read_config(d)
        done = runstate.is_done(d)
        m, note = runtables.read_metrics(d, done)
        ev = runtables.read_evals(d)
        info = run_info(root, d, cfg)
        status, last, snote = _status(d, cfg, m, ev)
        info.update(status=status, last_step=last, note="; ".join(x for x in (snote, note) if x),
                    _config=cfg)
        infos.append(info)
        evals.append(ev.assign(run=info["run"]))
        metrics.append(m.assign(run=info["run"]))
        for kind, df in runtables.read_timesteps(d).items():
            ts[kind].append(df.assign(run=info["run"]))
    by_id: dict[str, str] = {}
    for sf in sweep_files:
        for d, cfg in _expected_runs(sf, set(run_dirs), notes, by_id):
            info = run_info(root, d, cfg)
            info.update(status=REPORT_WORDS[RunState.MISSING], last_step=0, _config=cfg,
                        note=f"expected by {sf.relative_to(root).as_posix()}, absent on disk")
            infos.append(info)
    runs = _finish_runs(pd.DataFrame(infos))
    displays = {c: by_id[i] for c, i in zip(runs["condition"], runs["run_id"]) if i in by_id}
    return Results(root, runs, _with_runs(evals, runs, EVAL_COLUMNS),
                   _with_runs(metrics, runs, METRIC_COLUMNS),
                   {k: _with_runs(v, runs, TIMESTEP_REQUIRED[k]) for k, v in ts.items()}, notes,
                   displays)


def fixed_loss_weights(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per run whose strategy has a fixed, non-constant loss weighting (p2, min_snr, speed, a
    compose with one): its per-timestep loss weight w(t), float64 [T], from a freshly built
    strategy of its config. A learned weighting (edm2_uncertainty) starts constant and is left
    out: its weights over training are not in the run's files."""
    out = {}
    for r in runs.itertuples():
        if r.status not in COUNTED:
            continue
        cfg = read_config(Path(r.path))
        s = strategies.build(cfg["strategy"]["name"],
                             processes.build(cfg["diffusion"], cfg["process"]),
                             {k: v for k, v in cfg["strategy"].items() if k != "name"})
        w = s.loss_weights().double().numpy()    # a learned weighting starts constant: left out
        if not np.allclose(w, w[0]):
            out[r.run] = w
    return out


def load_results(root: str | Path) -> pd.DataFrame:
    """The tidy frame: one row per run × evaluation × metric, run columns first."""
    return load(root).evals


def _finish_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Add setting/variant/condition, mark duplicate runs (one run identity), order rows."""
    runs = runs.copy()
    runs["setting"] = settings(list(runs["_config"]))
    runs["variant"] = variants(list(runs["_config"]))
    runs["condition"] = [condition_label(c["strategy"], v)
                         for c, v in zip(runs["_config"], runs["variant"])]
    rank = {REPORT_WORDS[s]: i for i, s in enumerate((RunState.DONE, RunState.PARTIAL,
                                                       RunState.FAILED, RunState.NEW,
                                                       RunState.MISSING))}
    runs["_rank"] = runs["status"].map(rank)
    runs = runs.sort_values(["_rank", "run"], kind="stable")
    first: dict[tuple, str] = {}
    missing = REPORT_WORDS[RunState.MISSING]
    for i, r in runs.iterrows():
        key = run_id(r["_config"])
        if r["status"] != missing and key in first:
            runs.at[i, "note"] = f"the same run (identity {key}) as {first[key]}; not counted"
            runs.at[i, "status"] = REPORT_WORDS[RunState.DUPLICATE]
        elif r["status"] != missing:
            first[key] = r["run"]
    runs = runs.drop(columns=["_config", "_rank"])
    return sort_runs(runs)[RUN_COLUMNS].reset_index(drop=True)


def schedule_key(s: str) -> tuple:
    return (SCHEDULE_ORDER.index(s) if s in SCHEDULE_ORDER else len(SCHEDULE_ORDER), s)


def sort_runs(df: pd.DataFrame, baseline: str = "uniform") -> pd.DataFrame:
    """Rows ordered by setting, schedule (linear, cosine, quad, ...), condition (baseline first),
    seed."""
    key = pd.DataFrame({
        "a": df["setting"],
        "b": [schedule_key(s) for s in df["schedule"]],
        "c": [(s != baseline, c) for s, c in zip(df["strategy"], df["condition"])],
        "d": df["seed"]}, index=df.index)
    order = sorted(df.index, key=lambda i: tuple(key.loc[i]))
    return df.loc[order]


def _with_runs(frames: list[pd.DataFrame], runs: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*cols, "run"])
    out = runs.drop(columns=["path", "note"]).merge(data, on="run", how="inner")
    if "metric" in out.columns:
        out["lower_is_better"] = [lower_is_better(m) for m in out["metric"]]
    return out.reset_index(drop=True)


