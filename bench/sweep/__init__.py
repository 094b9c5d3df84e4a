"""Sweeps: a YAML grid of runs, planned, launched and followed by ``python -m bench.sweep``.

* ``spec``     — the sweep file and its pure expansion into run configs (``expand``; imports no
  training code: the report expands committed sweeps with it);
* ``check``    — the validated expansion the commands use (every run through
  ``bench.experiment.validate``);
* ``plan``     — the plan (``--dry-run``): the runs, their state on disk, the executor;
* ``cost``     — the plan's cost lines: iterations, forward-equivalents, evaluation passes,
  GPU-hours;
* ``status``   — ``--status``: each run's state, step, last evaluation, SLURM state and ETA;
* ``__main__`` — the command line (argparse and ``main``)."""
