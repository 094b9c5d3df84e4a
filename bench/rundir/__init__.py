"""The results layout — the one owner of every file name, schema, reader, writer and run state.

::

    results/<sweep>/sweep.yaml        the sweep a launch ran (the report finds missing runs)
    results/<sweep>/<run_id>/
      config.yaml    the resolved run config — the only source of hyperparameters
      meta.json      per attempt (the first, + resumes): git sha + dirty flag, the command line,
                     ISO-8601 UTC start, Python/torch/CUDA/cuDNN/numpy versions, device, CPU and
                     GPU model, threads, host, SLURM job id, the package list's file name
      packages-<hash>.txt  the installed packages (name==version) of an attempt, one file per
                     distinct environment
      metrics.jsonl  one JSON row per log tick (runtables.METRIC_COLUMNS)
      evals.csv      one row per evaluation × metric (runtables.EVAL_COLUMNS)
      timesteps/     diagnostics.csv, p_t.csv, t_hist.csv, and for learned strategies
                     adaptation.csv, t_drawn.csv (runtables.timestep_table(kind))
      ckpt/last.pt   model + EMA + optimizer + strategy + RNG state (atomic)
      ckpt/step_<N>.safetensors  the evaluated weights at step N (train.keep), with the step's
                     nimg, training wall-clock and cost counters as metadata
      jobs.jsonl     one row per job a launch submitted for the run
      tensorboard/   TensorBoard event files (train.loggers: [tensorboard])
      wandb/         Weights & Biases offline files (train.loggers: [wandb])
      FAILED         why the last attempt failed (removed when the run starts again)
      DONE           the final log row; its presence is the truth that the run finished
      .lock          held while a process trains the run

Who owns what (import the owning module: ``from bench.rundir import runtables``):

* ``runpaths``  — every file and folder name above, their paths, the walk that finds run
  directories, and ``RunFileError`` (what every reader raises, naming the file and line/row);
* ``runfiles``  — the small files, each read and written whole: config.yaml, meta.json,
  packages-*.txt, DONE, ckpt/step_*.safetensors, jobs.jsonl, sweep.yaml;
* ``runstate``  — the one run-state vocabulary (``RunState``: new, queued, running,
  checkpointed, partial, done, failed, missing, duplicate, and a launch's pending, in_flight,
  submitted, completed) with the views launch, ``--status`` and the report show; the state of a
  run from disk; the FAILED record; the run lock;
* ``runtables`` — the tabular files (metrics.jsonl, evals.csv, timesteps/*.csv): one ``Table``
  descriptor each and one generic read / append / truncate / has-rows-at; the adaptation
  schema adds the columns each registered strategy declares (``Strategy.adaptation_columns``).

Readers are strict: a corrupt file raises ``RunFileError`` naming the file and the line or row.
Writers are atomic (write a temporary file, rename), except the append-only metrics.jsonl and
jobs.jsonl, whose readers tolerate one half-written last line of a run that is not done.
"""
