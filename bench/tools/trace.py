"""``python -m bench.strategies trace RUN_DIR``: a learned strategy's adaptation in one run — its
first and last adaptation rows (all with ``--rows``; RUN_DIR/timesteps/adaptation.csv) and the
"adapted / did not adapt" verdict the report gives (``bench.analysis.adaptation``)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import strategies
from bench.analysis import adaptation
from bench.rundir import runfiles, runpaths, runtables

TRACE_COLUMNS = ("step event tv_uniform tv_initial q1 q2 q3 q4 eff_tv_initial drawn_tv "
                 "drawn_tv_initial s_set reward_mean reward_std reward_t_corr alpha_mean "
                 "beta_mean").split()


def trace(run_dir: str, threshold: float, out: TextIO, every_row: bool = False) -> None:
    """Print the first and last adaptation rows of ``run_dir`` (``every_row``: all of them) and
    the verdict; ValueError if there are none."""
    path = Path(run_dir)
    if not runpaths.config_path(path).exists():
        raise ValueError(f"{run_dir}: not a run directory (no {runpaths.CONFIG})")
    adaptation.check_threshold(threshold, "--threshold")
    rows = runtables.read_timesteps(path)["adaptation"]
    if rows.empty:
        name = runfiles.read_config(path).get("strategy", {}).get("name", "?")
        learned = [n for n in strategies.names() if strategies.get(n).learned is True]
        raise ValueError(f"{runpaths.timesteps_path(path, 'adaptation')}: absent or empty — "
                         f"strategy {name!r} is not learned or has not updated yet (learned: "
                         f"{', '.join(learned)}, and compose with one of them as sampler)")
    cols = [c for c in TRACE_COLUMNS if c in rows and rows[c].notna().any()]
    shown = rows if every_row else rows.iloc[[0, -1]].drop_duplicates()  # first and last
    out.write(shown[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}") + "\n")
    s = adaptation.summary(rows, threshold)
    verdict = "adapted" if s["adapted"] else adaptation.MARK
    out.write(f"{s['rows']} update rows; TV of the drawn t from uniform {s['drawn_tv']:.4g}, "
              f"from the initial p(t) {s['drawn_tv_initial']:.4g}, "
              f"of p(t) mean {s['tv_uniform_mean']:.4g} / final {s['tv_uniform_final']:.4g}, "
              f"p·w vs initial median {s['eff_tv_median']:.4g}: {verdict} (threshold "
              f"{threshold:g})\n")
