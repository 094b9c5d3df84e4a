"""One experiment end to end: the trainer with the evaluation callbacks its config asks for.

The one place where training (bench.train) and evaluation (bench.evaluation) meet: the
``bench.train`` command and the launcher's task call ``run``; the training layer itself never
imports evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.evaluation.callbacks import callbacks as eval_callbacks
from bench.train import run as train_run


def run(cfg: Mapping, run_dir: str | Path, *, extra_callbacks: list = (), **kw) -> dict:
    """``bench.train.run.run`` with ``eval_callbacks(cfg)`` + ``extra_callbacks``."""
    return train_run.run(cfg, run_dir, callbacks=[*eval_callbacks(cfg), *extra_callbacks], **kw)
