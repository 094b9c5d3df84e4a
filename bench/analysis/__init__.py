"""Analysis of a results tree: pure functions load → tables → figures (DataFrames and Figures;
only the report's command writes files).

The package's public names, re-exported from its modules: ``load`` (reading a tree: bench.rundir
files, run status, labels), ``stats`` (intervals over seeds, metric direction), ``tables``
(Table 1, time-to-target, each strategy vs the baseline, Table 4 pairs), ``figures`` (the
paper's figures, forest plots, performance profiles), ``style`` (fixed colours and markers per
strategy, axis labels, ticks), ``ranking`` (rliable aggregates across conditions), ``cost`` (the
compute axis and the load-noise warning), ``adaptation`` (did a learned strategy adapt).
"""

from bench.analysis.adaptation import (MARK, THRESHOLD, check_threshold, mark_conditions,
                                       marks, summaries, summary, unmarked)
from bench.analysis.cost import LOAD_TOLERANCE, load_warnings, per_iteration, training_cost
from bench.analysis.figures import (RELATIVE_AXES, band, curve, effective_p_t, fig_adaptation,
                                    fig_forest, fig_metric_vs_iteration,
                                    fig_metric_vs_relative, fig_p_t, fig_profiles,
                                    fig_timestep_diagnostics, fig_train_loss,
                                    ordered_conditions, t_hist_density)
from bench.analysis.load import (COUNTED, RUN_COLUMNS, SCHEDULE_ORDER, ReportError, Results,
                                 fixed_loss_weights, load, load_results, read_config, run_info,
                                 schedule_key, sort_runs)
from bench.analysis.stats import (LOWER_IS_BETTER, VALID_RANGE, diff_ci, known_direction,
                                  lower_is_better, mean_ci, t_quantile, valid_range)
from bench.analysis.style import metric_label, protocol_text, step_text, tick_steps
from bench.analysis.tables import (AXES, COND_COLUMNS, VERDICTS, Unit, baseline_reference,
                                   best_up_to, default_budgets, pair_table, slugify, table1,
                                   time_to_target, units, verdict, vs_baseline)
from bench.analysis import ranking, style
from bench.rundir import EVAL_COLUMNS, METRIC_COLUMNS, TIMESTEP_FILES, TIMESTEP_REQUIRED

__all__ = [
    "AXES", "COND_COLUMNS", "COUNTED", "EVAL_COLUMNS", "LOAD_TOLERANCE", "LOWER_IS_BETTER", "MARK",
    "METRIC_COLUMNS", "RELATIVE_AXES", "RUN_COLUMNS", "ReportError", "Results", "SCHEDULE_ORDER",
    "THRESHOLD", "TIMESTEP_FILES", "TIMESTEP_REQUIRED", "Unit", "VALID_RANGE", "VERDICTS",
    "band", "baseline_reference", "best_up_to", "check_threshold", "curve", "default_budgets",
    "diff_ci", "effective_p_t", "fig_adaptation", "fig_forest", "fig_metric_vs_iteration",
    "fig_metric_vs_relative", "fig_p_t", "fig_profiles", "fig_timestep_diagnostics",
    "fig_train_loss", "fixed_loss_weights", "known_direction", "load", "load_results",
    "load_warnings", "lower_is_better", "mark_conditions", "marks", "mean_ci", "metric_label",
    "ordered_conditions", "pair_table", "per_iteration", "protocol_text", "ranking",
    "read_config", "run_info", "schedule_key", "slugify", "sort_runs", "step_text", "style",
    "summaries", "summary", "t_hist_density", "t_quantile", "table1", "tick_steps",
    "time_to_target", "training_cost", "units", "unmarked", "valid_range", "verdict",
    "vs_baseline",
]
