"""The tabular files of a run — metrics.jsonl, evals.csv and timesteps/<kind>.csv — each
described once by a ``Table`` (file, schema, key, format), and one generic reader, appender,
truncation and has-rows-at for all of them.

* metrics.jsonl: one JSON row per log tick (``METRICS_TABLE``), appended; a crash mid-write
  leaves a half-written last line, which the reader skips with a note.
* evals.csv: one row per evaluation × metric (``EVALS_TABLE``); a new row with the same key
  replaces the old one (re-evaluating is idempotent; another sample count is another row).
* timesteps/<kind>.csv (``timestep_table(kind)``, kinds ``TIMESTEP_FILES``): per-timestep
  diagnostics, p(t), histograms of drawn t and, for learned strategies, adaptation rows; a new
  row of a step replaces that step's rows. The adaptation schema is the strategy-independent
  columns (bench.evaluation.adaptation) followed by the ``adaptation_columns`` every registered
  strategy declares, in registration order (``strategies.registered()``).

Readers are strict: a corrupt file raises ``RunFileError`` naming the file and the line or row.
CSV writers are atomic (write a temporary file, rename) and refuse a row outside the schema (a
writer bug, never silently dropped); metrics.jsonl is append-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import strategies
from bench.core.cost import EVAL_BWD, EVAL_COUNTER, TRAIN_COUNTERS
from bench.core.io import atomic_write, atomic_write_text
from bench.rundir.runfiles import finite_json
from bench.rundir.runpaths import EVALS, METRICS, TIMESTEP_FILES, TIMESTEPS_DIR, RunFileError


@dataclass(frozen=True)
class Table:
    """One tabular file of a run directory."""

    file: str                           # its path below the run directory
    columns: tuple[str, ...]            # the schema, in the order files are written
    required: tuple[str, ...]           # what a reader needs (older files: a subset) and a
                                        # writer must give
    numeric: tuple[str, ...]            # read as numbers (checked in CSV, coerced in JSONL)
    text: tuple[str, ...] = ()          # read as str
    key: tuple[str, ...] = ("step",)    # a new row with this key replaces the old one (CSV)
    format: str = "csv"                 # csv | jsonl (append-only, one JSON object a line)
    nonempty: tuple[str, ...] = ("step",)   # CSV: no row may leave these empty
    complete: bool = False              # CSV: a writer gives every column; a reader returns
                                        # exactly ``columns`` (those an older file lacks empty)
    keep_types: bool = False            # CSV: rows replacing every old row still take the old
                                        # file's column types (evals.csv has always done so)
    finite: tuple[str, ...] = ()        # CSV: a value there must be finite (a result, not inf)

    def path(self, run_dir: Path) -> Path:
        return Path(run_dir) / self.file


def _csv_table(file: str, columns: list[str], required: list[str], text: tuple[str, ...] = (),
               **kw) -> Table:
    """A CSV table whose columns are numbers except ``text``."""
    return Table(file, tuple(columns), tuple(required),
                 tuple(c for c in columns if c not in text), tuple(text), **kw)


# ---------------------------------------------------------------------------- the tables
# Cumulative per-example network passes by purpose (bench.core.cost) at that step.
COST_COLUMNS = list(TRAIN_COUNTERS)
METRIC_COLUMNS = ["step", "nimg", "loss", "grad_norm", "lr", "wall_s_train", "loss_bins",
                  *COST_COLUMNS]
EVAL_COLUMNS = ["step", "nimg", "metric", "value", "n_samples", "sampler", "wall_s_train",
                "wall_s_eval", EVAL_COUNTER, EVAL_BWD, *COST_COLUMNS]
EVAL_KEY = ["step", "metric", "sampler", "n_samples"]

METRICS_TABLE = Table(METRICS, tuple(METRIC_COLUMNS), ("step",),
                      ("loss", "grad_norm", "lr", "wall_s_train", "nimg", *COST_COLUMNS),
                      format="jsonl")
EVALS_TABLE = _csv_table(EVALS, EVAL_COLUMNS, ["step", "metric", "value"], ("metric", "sampler"),
                         key=tuple(EVAL_KEY), nonempty=("step", "metric", "value"),
                         complete=True, keep_types=True, finite=("value",))

TIMESTEP_REQUIRED = {                              # what a reader needs (older files: a subset)
    "diagnostics": ["step", "t_lo", "t_hi", "weighting", "loss", "grad_var"],
    "p_t": ["step", "t", "p"],
    "t_hist": ["step", "step_from", "t_lo", "t_hi", "count"],
    "adaptation": ["step", "event", "tv_uniform", "eff_tv_initial", "drawn_tv"],
    "t_drawn": ["step", "t_lo", "t_hi", "count"],
}
# The strategy-independent adaptation columns (bench.evaluation.adaptation); each strategy adds
# its own (Strategy.adaptation_columns, the text ones in Strategy.adaptation_text).
ADAPTATION_COLUMNS = ["step", "event", "tv_uniform", "tv_initial", "entropy", "q1", "q2", "q3",
                      "q4", "eff_tv_initial", "drawn_tv", "drawn_tv_initial"]
_STATIC_TIMESTEPS = {
    "diagnostics": (["step", "nimg", "t_bin", "t_lo", "t_hi", "weighting", "loss", "grad_var",
                     "n_loss", "n_grad", "estimator", "wall_s_eval"], ("weighting", "estimator")),
    "p_t": (["step", "t", "p"], ()),
    "t_hist": (["step", "step_from", "t_bin", "t_lo", "t_hi", "count"], ()),
    "t_drawn": (["step", "t_bin", "t_lo", "t_hi", "count"], ()),
}


def adaptation_table() -> Table:
    """timesteps/adaptation.csv: the strategy-independent columns, then those of every
    registered strategy in registration order (a column two strategies declare: once)."""
    columns, text = list(ADAPTATION_COLUMNS), ["event"]
    for name in strategies.registered():
        cls = strategies.get(name)
        columns += [c for c in cls.adaptation_columns if c not in columns]
        text += [c for c in cls.adaptation_text if c not in text]
    return _csv_table(f"{TIMESTEPS_DIR}/{TIMESTEP_FILES['adaptation']}", columns,
                      TIMESTEP_REQUIRED["adaptation"], tuple(text))


def timestep_table(kind: str) -> Table:
    """The table of timesteps/<kind>.csv; ValueError for an unknown kind."""
    if kind not in TIMESTEP_FILES:
        raise ValueError(f"unknown timesteps file {kind!r}; valid: {', '.join(TIMESTEP_FILES)}")
    if kind == "adaptation":
        return adaptation_table()
    columns, text = _STATIC_TIMESTEPS[kind]
    return _csv_table(f"{TIMESTEPS_DIR}/{TIMESTEP_FILES[kind]}", columns,
                      TIMESTEP_REQUIRED[kind], text)


def timestep_tables() -> dict[str, Table]:
    """{kind: table} of every timesteps file, in TIMESTEP_FILES order."""
    return {kind: timestep_table(kind) for kind in TIMESTEP_FILES}


# ---------------------------------------------------------------------------- generic: reading
def rows(table: Table, run_dir: Path, done: bool = True) -> tuple[list[dict], str]:
    """The rows of a JSONL table and a note. A crash mid-write leaves a half-written last line:
    it is skipped with a note; any other unreadable line is a RunFileError naming the file and
    line. ``done``: the run finished (the note then says the line is lost, not pending)."""
    path = table.path(run_dir)
    if not path.exists():
        return [], ""
    try:
        lines = path.read_text().split("\n")
    except UnicodeDecodeError as e:
        raise RunFileError(f"{path}: not a text file ({e})") from e
    note, out = "", []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("a row must be a JSON object with an integer 'step'")
        except ValueError as e:
            if i == len(lines):                 # no newline after it: written when it stopped
                note = (f"last line of {path.name} is incomplete "
                        f"({'a crash mid-write' if done else 'being written?'}); skipped")
                continue
            raise RunFileError(f"{path}, line {i}: corrupt metrics row ({e}); repair or delete "
                               f"that line (its row is lost), or delete the run directory to "
                               f"train the run again from step 0") from e
        out.append(row)
    return out, note


def read(table: Table, run_dir: Path, done: bool = True) -> tuple[pd.DataFrame, str]:
    """The table as a DataFrame and a note (JSONL: a skipped half-written last line). An absent
    file is an empty frame of the schema's columns. JSONL rows come sorted by step; a
    ``complete`` CSV table comes with exactly its columns."""
    if table.format == "jsonl":
        found, note = rows(table, run_dir, done)
        df = pd.DataFrame(found, columns=list(table.columns))
        for c in table.numeric:
            df[c] = pd.to_numeric(df[c], errors="coerce")
        return df.sort_values("step", kind="stable").reset_index(drop=True), note
    path = table.path(run_dir)
    if not path.exists():
        return pd.DataFrame(columns=list(table.columns)), ""
    df = _read_csv(path, table)
    if table.complete:
        for c in table.columns:
            if c not in df.columns:
                df[c] = "" if c in table.text else np.nan
        for c in table.text:
            df[c] = df[c].fillna("").astype(str)
        df["step"] = df["step"].astype(int)
        df = df[list(table.columns)]
    return df, ""


def _read_csv(path: Path, table: Table) -> pd.DataFrame:
    try:        # only an empty field is missing: a written "nan" is a value, and refused below
        df = pd.read_csv(path, dtype={c: str for c in table.text}, keep_default_na=False,
                         na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in table.required if c not in df.columns]
    if missing:
        raise RunFileError(f"{path}: missing column(s) {', '.join(missing)} "
                           f"(has: {', '.join(map(str, df.columns))})")
    for c in table.nonempty:
        empty = df[c].isna().to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise RunFileError(f"{path}, row {i + 2}: no value in column {c!r} (an empty "
                               f"field: a short or truncated row)")
    for c in table.numeric:
        if c not in df.columns:
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise RunFileError(f"{path}, row {i + 2}: column {c!r} is not a number "
                               f"({df[c].iloc[i]!r})")
        df[c] = num
    for c in table.finite:
        bad = df[c].notna() & ~np.isfinite(df[c].to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise RunFileError(f"{path}, row {i + 2}: column {c!r} is {df[c].iloc[i]} (not a "
                               f"finite result); correct or remove the row, or re-evaluate")
    if "step" in df.columns and (df["step"].isna().any() or (df["step"] % 1 != 0).any()):
        raise RunFileError(f"{path}: column 'step' must hold whole numbers")
    _check_unique(df, table, path)
    return df


def _check_unique(df: pd.DataFrame, table: Table, path: Path) -> None:
    """A replacing table (``key``) holds one row per key: two rows of one key, which the writers
    never leave, mean a file edited or merged by hand, and which to believe cannot be told."""
    key = [c for c in table.key if c in df.columns]
    if table.format != "csv" or not key or key == ["step"]:
        return
    dup = df.duplicated(key, keep=False)
    if dup.any():
        _, group = next(iter(df[dup].groupby(key, dropna=False, sort=False)))
        rows = [int(i) + 2 for i in group.index]        # file rows (header = row 1)
        which = ", ".join(f"{c}={group[c].iloc[0]}" for c in key)
        differ = len(group.drop_duplicates()) > 1
        fix = ("with different values: which is right cannot be told; keep one (or "
               "re-evaluate) and remove the rest" if differ else "repeated; remove the copies")
        raise RunFileError(f"{path}, rows {', '.join(map(str, rows))}: one key ({which}) {fix}")


def _loose(path: Path) -> pd.DataFrame:
    """A CSV table as the writers read it (not strictly: they rewrite what is there)."""
    return pd.read_csv(path)


def has_rows_at(table: Table, run_dir: Path, step: int) -> bool:
    """Whether the table has a row of ``step`` (read as the writers read it, not strictly)."""
    path = table.path(run_dir)
    if table.format == "jsonl":
        return any(r["step"] == step for r in rows(table, run_dir, done=False)[0])
    if not path.exists():
        return False
    df = _loose(path)
    return bool(len(df) and (df["step"] == step).any())


# ---------------------------------------------------------------------------- generic: writing
def append(table: Table, run_dir: Path, new: pd.DataFrame | list[dict] | dict) -> None:
    """Append rows (a frame, a list of row dicts, or one row dict). JSONL: written as they are
    (non-finite numbers as null). CSV: in the schema's column order, replacing the rows of the
    same key; an unknown or missing required column (``complete``: any missing column) is a
    ValueError naming the file. No rows: nothing is written."""
    path = table.path(run_dir)
    if table.format == "jsonl":
        with open(path, "a") as f:
            for row in [new] if isinstance(new, dict) else list(new):
                f.write(json.dumps(finite_json(row), allow_nan=False) + "\n")
        return
    df = pd.DataFrame([new] if isinstance(new, dict) else new)
    if not len(df):
        return
    df = _schema_frame(df, table)
    if path.exists():
        old = _loose(path)
        kept = old[~_same_key(old, df, table.key)]
        if len(kept) or (table.keep_types and len(old)):
            df = pd.concat([kept, df], ignore_index=True)
    _write_csv(path, df.sort_values("step", kind="stable"))


def truncate(table: Table, run_dir: Path, step: int) -> None:
    """Drop rows after ``step`` (the checkpoint a run resumes from; a hard kill leaves them,
    and perhaps one half-written last line of a JSONL table, which goes too)."""
    path = table.path(run_dir)
    if table.format == "jsonl":
        found, note = rows(table, run_dir, done=False)
        if note:
            print(f"warning: {path}: {note.split(' (')[0]}; dropped", flush=True)
        if found or path.exists():
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in found
                                            if r["step"] <= step))
        return
    if not path.exists():
        return
    df = _loose(path)
    if len(df) and (df["step"] > step).any():
        _write_csv(path, df[df["step"] <= step])


def _same_key(old: pd.DataFrame, new: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    """Which rows of ``old`` have the key of a row of ``new``: a one-column key compares the
    values, a longer one their text, column by column."""
    if len(key) == 1:
        return old[key[0]].isin(set(new[key[0]]))
    wanted = set(new[list(key)].astype(str).agg("|".join, axis=1))
    return old[list(key)].astype(str).agg("|".join, axis=1).isin(wanted)


def _schema_frame(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """``df`` in the schema's column order; an unknown or missing required column is an error
    (a writer bug, never silently dropped); optional columns it lacks are left empty."""
    columns = list(table.columns)
    required = columns if table.complete else list(table.required)
    unknown = [c for c in df.columns if c not in columns]
    missing = [c for c in required if c not in df.columns]
    if unknown or missing:
        raise ValueError(f"{table.file}: " + "; ".join(
            x for x in (f"unknown column(s) {', '.join(map(str, unknown))}" if unknown else "",
                        f"missing column(s) {', '.join(missing)}" if missing else "") if x)
            + f" (schema: {', '.join(columns)})")
    return df.reindex(columns=columns)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


# ---------------------------------------------------------------------------- by name
def metric_rows(run_dir: Path, done: bool = True) -> tuple[list[dict], str]:
    return rows(METRICS_TABLE, run_dir, done)


def read_metrics(run_dir: Path, done: bool = True) -> tuple[pd.DataFrame, str]:
    """metrics.jsonl as a DataFrame (METRIC_COLUMNS, sorted by step) and a note."""
    return read(METRICS_TABLE, run_dir, done)


def append_metrics(run_dir: Path, row: dict) -> None:
    append(METRICS_TABLE, run_dir, row)


def truncate_metrics(run_dir: Path, step: int) -> None:
    truncate(METRICS_TABLE, run_dir, step)


def last_metrics(run_dir: Path) -> dict:
    """The last log row ({} when there is none yet)."""
    found, _ = metric_rows(run_dir, done=False)
    return found[-1] if found else {}


def last_step(run_dir: Path) -> int:
    """The step of the last log row; 0 when none (or unreadable: this only informs messages)."""
    try:
        return int(last_metrics(run_dir).get("step", 0))
    except (RunFileError, OSError, ValueError):
        return 0


def read_evals(run_dir: Path) -> pd.DataFrame:
    """evals.csv (EVAL_COLUMNS; optional columns absent in older files are filled empty)."""
    return read(EVALS_TABLE, run_dir)[0]


def append_evals(run_dir: Path, new: list[dict]) -> None:
    """Append rows, replacing existing rows with the same (step, metric, sampler, n_samples)."""
    append(EVALS_TABLE, run_dir, new)


def has_evals_at(run_dir: Path, step: int) -> bool:
    return has_rows_at(EVALS_TABLE, run_dir, step)


def truncate_evals(run_dir: Path, step: int) -> None:
    truncate(EVALS_TABLE, run_dir, step)


def read_timesteps(run_dir: Path) -> dict[str, pd.DataFrame]:
    """timesteps/<kind>.csv for every kind; empty frames of the schema's columns where absent."""
    return {kind: read(t, run_dir)[0] for kind, t in timestep_tables().items()}


def append_timesteps(run_dir: Path, kind: str, df: pd.DataFrame) -> None:
    """Append rows to timesteps/<kind>.csv, replacing earlier rows of the same step (idempotent)."""
    append(timestep_table(kind), run_dir, df)


def has_timesteps_at(run_dir: Path, kind: str, step: int) -> bool:
    return has_rows_at(timestep_table(kind), run_dir, step)


def truncate_timesteps(run_dir: Path, step: int) -> None:
    """Drop rows written after ``step`` (the checkpoint a run resumes from)."""
    for t in timestep_tables().values():
        truncate(t, run_dir, step)
