"""The report's words: the title and caption of every table and figure, the LaTeX table
captions, the reasons a table or figure is skipped, the notes, and the fixed prose of index.md.
Each template is a named function of the values it shows (or a constant); bench.report.build
decides when each applies, and nothing here computes a number."""

from __future__ import annotations

from bench.analysis.adaptation import MARK
from bench.analysis.style import protocol_text
from bench.analysis.tables import Unit
from bench.rundir import runpaths
from bench.rundir.runstate import REPORT_WORDS, RunState

Text = tuple[str, str]      # (title: the index heading, caption)


def where(u: Unit) -> str:
    """The setting and the evaluation protocol of a unit, as the titles name them."""
    return f"{u.setting}; {protocol_text(u.sampler, u.n_samples, u.metric)}"


def setting_suffix(setting: str, n_settings: int) -> str:
    """`` — <setting>`` when the report has several settings, else nothing."""
    return f" — {setting}" if n_settings > 1 else ""


def _word(u: Unit) -> str:
    return "lowest" if u.lower_is_better else "highest"


# ---------------------------------------------------------------------------- tables
def table1(u: Unit) -> Text:
    return (f"Best {u.metric} up to each budget (Table 1 style) — {where(u)}",
            f"The {_word(u)} {u.metric} reached up to each iteration budget; mean ± 95 % CI over "
            f"seeds (t) and the per-seed values. **Bold**: the best, separated from every other "
            f"strategy (the 95 % CI of their difference, paired by seed where possible, excludes "
            f"0); ≈: tied for best (not separated from it).")


def table1_tex(u: Unit) -> str:
    return f"{_word(u)} {u.title} reached up to each iteration budget"


def time_to_target(u: Unit, baseline: str, bwd_factor: float) -> Text:
    return (f"Time to {baseline}'s final {u.metric} — {where(u)}",
            f"Time to target — until {u.metric} reaches the '{baseline}' baseline's final value "
            f"(mean over its seeds): counted training compute in forward-equivalents (forward + "
            f"{bwd_factor:g}·backward passes through the network, the strategy's own included) "
            f"relative to the baseline's 1D, iterations, and measured wall-clock (subject to "
            f"machine load); speed-up = baseline 1D / mean time on each axis.")


def time_to_target_tex(u: Unit, baseline: str) -> str:
    return f"time to the {baseline} baseline's final {u.title}"


def vs_baseline(u: Unit, baseline: str) -> Text:
    better = "negative" if u.lower_is_better else "positive"
    return (f"Every strategy vs {baseline} — {where(u)}",
            f"Each strategy's best {u.metric} up to each budget minus {baseline}'s (Δ; {better} = "
            f"better), with the 95 % CI of Δ: paired by seed where both have ≥ 2 common seeds, "
            f"else Welch. Verdict: better / worse when the CI excludes 0, tie when it contains 0.")


def vs_baseline_tex(u: Unit, baseline: str) -> str:
    return f"{u.title}: every strategy vs {baseline}"


def pair(u: Unit, a: str, b: str) -> Text:
    return (f"{a} vs {b} (Table 4 style) — {where(u)}",
            f"{a} vs {b}, {_word(u)} {u.metric} up to each budget; difference (2nd − 1st) with "
            f"95 % CI, paired by seed where both have ≥ 2 common seeds, else Welch.")


def pair_tex(u: Unit, a: str, b: str) -> str:
    return f"{a} vs {b}: {u.title}"


def ranking(n_tasks: int, baseline: str, reps: int) -> Text:
    return ("Strategies ranked across every condition (rliable)",
            f"Every strategy across the {n_tasks} tasks (metric × protocol × setting × schedule "
            f"[× variant]) it shares with '{baseline}': the score of a run is its best value up "
            f"to the task's largest budget relative to the baseline's mean there, (b̄ − x)/|b̄| "
            f"(sign flipped for higher-is-better metrics; 0 = the baseline, 0.1 = 10 % better). "
            f"IQM: interquartile mean over runs × tasks; P(better): the probability that a run "
            f"beats a baseline run of the same task, averaged over tasks; 95 % stratified-"
            f"bootstrap intervals ({reps} replicates, fixed seed; Agarwal et al. 2021's "
            f"rliable estimators).")


RANKING_TEX = "strategies ranked across conditions (rliable)"


def ranking_label(condition: str, marked_tasks: int, tasks: int) -> str:
    """A ranked condition, with how many of its tasks did not adapt."""
    return condition + (f" [{MARK}: {marked_tasks}/{tasks} tasks]" if marked_tasks else "")


def adaptation(where: str, threshold: float) -> Text:
    return (f"Adaptation of the learned strategies{where}",
            f"Adaptation of the learned strategies{where}: total variation (TV) of the histogram "
            f"of every t drawn from uniform and from the strategy's initial p(t), of its p(t) "
            f"from uniform at its updates (rows: one per update, per log tick for every-step "
            f"updaters), of the effective p(t)·w(t) from its initial form, and for adaptive_beta "
            f"the KL reward's std and its correlation with the distance of t to S. A run whose "
            f"drawn-t TV from its initial p(t) and median p·w TV both stay below {threshold:g} "
            f"is marked '{MARK}' here and in every table and legend.")


def adaptation_tex(threshold: float) -> str:
    return f"adaptation of the learned strategies (threshold {threshold:g})"


# ---------------------------------------------------------------------------- figures
def forest(u: Unit, baseline: str) -> Text:
    return (f"Difference from {baseline} (forest plot) — {where(u)}",
            f"Each strategy's difference from {baseline} in {u.metric} at the largest budget, "
            f"mean and 95 % CI (the table below), best on top, per schedule.")


def metric_vs_iteration(u: Unit) -> Text:
    return (f"{u.metric} vs training iteration — {where(u)}",
            "Mean over seeds with a 95 % CI band (clipped to the metric's range), per schedule.")


RELATIVE_WHAT = {"cost": "counted training compute", "wall": "measured training wall-clock"}
RELATIVE_UNIT = {"cost": " (forward-equivalents).", "wall": " (machine load included)."}


def metric_vs_relative(u: Unit, axis: str, baseline: str) -> Text:
    what = RELATIVE_WHAT[axis]
    return (f"{u.metric} vs {what} (Fig. 1/7 style) — {where(u)}",
            f"{u.metric} vs {what} relative to 1D, the '{baseline}' baseline's cost to its final "
            f"evaluation" + RELATIVE_UNIT[axis])


PROFILES: Text = (
    "Performance profiles across every condition (rliable)",
    "Fraction of runs (over every condition and seed) whose normalised score exceeds τ, one "
    "panel per strategy with its stratified-bootstrap 95 % band over the baseline's profile "
    "(grey); a curve to the right of the grey one dominates the baseline.")


def train_loss(where: str) -> Text:
    return (f"Training loss{where}",
            f"Training loss (the logged per-example ε-MSE, unweighted) vs iteration, geometric "
            f"mean over seeds with a 95 % band (log space){where}.")


def timestep_figure_number(weighting: str) -> str:
    """Kim et al.'s figure a per-timestep diagnostics figure reproduces: 2 (ddpm), else 6."""
    return "2" if weighting == "ddpm" else "6"


def timestep_diagnostics(condition: str, weighting: str, where: str) -> Text:
    n = timestep_figure_number(weighting)
    return (f"Gradient variance and loss per timestep (Fig. {n} style) — {condition}, "
            f"{weighting} weighting{where}",
            f"Gradient variance (top) and loss (bottom) per timestep across training (dark early "
            f"→ light late), {condition}, {weighting} weighting (Fig. {n} style){where}.")


def p_t(schedule: str, where: str) -> Text:
    return (f"Timestep distributions (Fig. 5 style) — {schedule} schedule{where}",
            f"Each strategy's timestep distribution across training as T·p(t) (1 = uniform; "
            f"dark early → light late), {schedule} schedule{where}.")


def p_t_weighted(schedule: str, where: str) -> Text:
    return (f"Timestep distributions with the loss weights folded in — {schedule} "
            f"schedule{where}",
            f"As the previous figure, with each fixed loss weighting converted to probabilities, "
            f"p(t)·w(t)/Σ (Kim et al. Fig. 5's convention for Min-SNR and P2), {schedule} "
            f"schedule{where}.")


def adaptation_figure(where: str) -> Text:
    return (f"Adaptation of the learned strategies vs iteration{where}",
            f"Total variation from uniform of each learned run's p(t) at its updates (solid) and "
            f"of the t it drew so far (dashed) vs iteration{where}.")


# ---------------------------------------------------------------------------- skipped
def skip_table1(u: Unit) -> str:
    return f"Table 1 for {u.title}: no evaluation of a counted run"


def skip_time_to_target(u: Unit, baseline: str) -> str:
    return f"time-to-target for {u.title}: no done '{baseline}' baseline run"


def skip_vs_baseline(u: Unit, baseline: str) -> str:
    return (f"differences from '{baseline}' for {u.title}: no '{baseline}' run beside another "
            f"strategy")


def skip_pair(u: Unit, a: str, b: str) -> str:
    return f"Table 4 {a} vs {b} for {u.title}: not both evaluated"


def skip_relative(u: Unit, axis: str, baseline: str) -> str:
    return (f"figure {u.title} vs relative {RELATIVE_WHAT[axis]} (Fig. 1/7): no done "
            f"'{baseline}' run with it to define 1D")


def skip_ranking(n_tasks: int, baseline: str) -> str:
    return (f"ranking across conditions (rliable): {n_tasks} task(s) with a '{baseline}' "
            f"baseline; it needs 2 or more")


def skip_train_loss(where: str) -> str:
    return f"training-loss figure{where}: no {runpaths.METRICS} rows"


def skip_diagnostics(where: str) -> str:
    return (f"Fig. 2/6 (per-timestep loss and gradient variance){where}: no "
            f"{runpaths.TIMESTEPS_DIR}/{runpaths.TIMESTEP_FILES['diagnostics']} in a counted run")


def skip_p_t(where: str) -> str:
    return (f"Fig. 5 (p(t) across training){where}: no {runpaths.TIMESTEPS_DIR}/"
            f"{runpaths.TIMESTEP_FILES['p_t']} or {runpaths.TIMESTEP_FILES['t_hist']} in a counted "
            f"run")


SKIP_ADAPTATION = (f"adaptation table and figure: no {runpaths.TIMESTEPS_DIR}/"
                   f"{runpaths.TIMESTEP_FILES['adaptation']} (no learned strategy) in a counted "
                   f"run")
SKIP_NO_EVALUATION = (f"all tables and metric figures: no evaluation ({runpaths.EVALS} row) in a "
                      f"done or partial run")
SKIP_NO_FIGURES = "all figures: --no-figures"


# ---------------------------------------------------------------------------- notes
def not_ranked(metrics: list[str]) -> str:
    return (f"not ranked across conditions: {', '.join(metrics)} (a score relative to the "
            f"baseline's mean needs a metric bounded below by 0 whose estimates are too; unbiased "
            f"MMD²/KID estimates lie near 0 with either sign)")


def unknown_direction(metric: str) -> str:
    return f"metric {metric!r} has no known direction; treated as lower-is-better"


# ---------------------------------------------------------------------------- index.md
STATS_TEXT = (
    "Statistics: a table cell is the mean over seeds of each run's best value up to the budget, "
    "± the half-width of the 95 % Student-t interval t₀.₉₇₅,ₙ₋₁·s/√n (s: sample standard "
    "deviation), followed by the per-seed values. Differences from the baseline are paired by "
    "seed when both strategies share ≥ 2 seeds, else Welch. Across conditions, rliable's "
    "stratified-bootstrap intervals. See docs/report.md.")
# Each status of the report's view of the run-state vocabulary (bench.rundir.runstate), in words.
STATUS_TEXT = {
    REPORT_WORDS[RunState.DONE]: "done",
    REPORT_WORDS[RunState.PARTIAL]: f"partial (no {runpaths.DONE}: running or stopped)",
    REPORT_WORDS[RunState.FAILED]: f"failed (diverged or stopped by an error: its "
                                   f"{runpaths.FAILED} file; not counted)",
    REPORT_WORDS[RunState.NEW]: "not started (config only)",
    REPORT_WORDS[RunState.MISSING]: f"missing (expected by {runpaths.SWEEP}, no run directory)",
    REPORT_WORDS[RunState.DUPLICATE]: "duplicate (the same run, one run identity, as another run "
                                      "directory; not counted)"}
NO_TABLE = "No table (see Skipped)."
NO_FIGURE = "No figure (see Skipped)."
NOTHING_SKIPPED = "Nothing was skipped."
RUNS_USED = ("Tables and figures use done and partial runs (a partial run counts for the "
             "budgets its evaluations reached).")
INCOMPLETE_SEEDS = "**Incomplete seed sets** (table cells with fewer seeds say `[k/n seeds]`):"
