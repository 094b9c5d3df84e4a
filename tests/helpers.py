"""Small helpers shared by tests (import as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


class StopAt:
    """A trainer callback that requests a stop once the trainer reaches ``step``, as SIGTERM
    does: the trainer writes a checkpoint and raises ``Interrupted``."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, tr) -> None:
        if tr.step == self.step:
            tr.stop_requested = True


WALL = ("wall_s_train", "wall_s_eval")


def run_files(run_dir: Path) -> dict[str, object]:
    """Every file of a run directory as compared across an interruption: tables without their
    wall-clock columns, DONE without its wall clock; meta.json (one entry per attempt, by design),
    the checkpoint (pickled: bytes differ) and the lock are left out."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        rel = str(p.relative_to(run_dir))
        if not p.is_file() or rel in ("meta.json", ".lock") or rel.startswith(("ckpt/",
                                                                              "packages-")):
            continue
        if p.suffix == ".csv":
            df = pd.read_csv(p)
            out[rel] = df.drop(columns=[c for c in WALL if c in df.columns]).to_csv(index=False)
        elif p.suffix == ".jsonl" or p.name == "DONE":
            rows = [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
            out[rel] = [{k: v for k, v in r.items() if k not in WALL} for r in rows]
        else:
            out[rel] = p.read_bytes()
    return out


def thread_rank_reduce(slots: list, barrier, r: int):
    """Rank ``r``'s cross-rank SUM for ranks simulated as threads: each puts its tensor in
    ``slots[r]``, all wait at ``barrier``, each takes the sum, all wait again."""
    def reduce(x):
        slots[r] = x.clone()
        barrier.wait()
        total = sum(slots)
        barrier.wait()
        return total
    return reduce
