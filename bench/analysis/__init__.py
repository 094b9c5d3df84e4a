"""Analysis of a results tree: pure functions load → tables → figures (DataFrames and Figures;
only the report's command writes files). Import the module that owns a name:

    load              reading a tree (bench.rundir files), run status, labels: ``Results``
    stats             intervals over seeds, paired/Welch differences, a metric's direction
    tables            Table 1, time-to-target, each strategy vs the baseline, Table 4 pairs
    ranking           rliable aggregates across conditions
    cost              the compute axis and the load-noise warning
    adaptation        did a learned strategy adapt (the "did not adapt" mark)
    style             fixed colours and markers per strategy, axis labels, ticks
    plotting          the figures' common toolkit (panels, titles, legends, curves with bands)
    metric_figures    metric vs iteration / relative compute, forest plots, profiles, train loss
    timestep_figures  adaptation, per-timestep diagnostics (Fig. 2/6), p(t) (Fig. 5)
"""
