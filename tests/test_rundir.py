"""bench.rundir, the one owner of the results layout: run state, the lock, strict readers."""

from __future__ import annotations

import pandas as pd
import pytest

from bench import config as C
from bench.rundir import runfiles, runpaths, runstate, runtables
from bench.rundir.runstate import RunState
from bench.train import run as train_run

TOY = {"name": "t", "seed": 0, "dataset": {"name": "toy2d", "n_train": 512, "n_test": 64},
       "backbone": {"name": "mlp", "width": 16, "depth": 1},
       "diffusion": {"timesteps": 50},
       "train": {"iterations": 6, "batch_size": 32, "log_every": 2, "ckpt_every": 2,
                 "device": "cpu"}}


class _Boom:
    def on_step_end(self, trainer):
        if trainer.step == 4:
            raise RuntimeError("boom at step 4")


def test_run_states_from_disk(tmp_path):
    d = tmp_path / "r"
    assert runstate.state(d) == RunState.NEW
    cfg = C.resolve(TOY)
    with pytest.raises(RuntimeError, match="boom"):
        train_run.run(cfg, d, callbacks=[_Boom()], progress=False)
    assert runstate.state(d) == RunState.FAILED
    assert runstate.failure(d) == "RuntimeError: boom at step 4"
    with runstate.run_lock(d):
        assert runstate.state(d) == RunState.RUNNING
        with pytest.raises(runstate.RunBusy, match="being trained by pid"):
            with runstate.run_lock(d):
                pass
    runstate.clear_failed(d)
    assert runstate.state(d) == RunState.CHECKPOINTED and runtables.last_step(d) == 4
    final = train_run.run(cfg, d, progress=False)
    assert runstate.state(d) == RunState.DONE and runfiles.read_done(d) == final
    assert not (d / runpaths.FAILED).exists() and final["step"] == 6


def test_a_corrupt_metrics_line_names_the_file_and_line(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    runtables.append_metrics(d, {"step": 1, "loss": 0.5})
    with open(runpaths.metrics_path(d), "a") as f:
        f.write('{"step": 2, "lo')                    # a crash mid-write
    rows, note = runtables.metric_rows(d, done=True)
    assert [r["step"] for r in rows] == [1] and "incomplete" in note
    with open(runpaths.metrics_path(d), "a") as f:
        f.write('\n{"step": 3}\n')               # now line 2 is corrupt in the middle
    with pytest.raises(runpaths.RunFileError, match=r"metrics.jsonl, line 2: corrupt"):
        runtables.metric_rows(d, done=False)


def test_evals_rows_replace_the_same_key_and_the_reader_is_strict(tmp_path):
    d = tmp_path / "r"
    row = dict(step=10, nimg=320, metric="swd", value=0.5, n_samples=100, sampler="ddim10_eta0",
               wall_s_train=1.0, wall_s_eval=0.1, fwd_eval=1000, bwd_eval=0, fwd_train=320,
               bwd_train=320, fwd_strategy=0, bwd_strategy=0)
    runtables.append_evals(d, [row])
    runtables.append_evals(d, [{**row, "value": 0.25}, {**row, "step": 20, "value": 0.2}])
    ev = runtables.read_evals(d)
    assert list(ev.columns) == runtables.EVAL_COLUMNS and list(ev["value"]) == [0.25, 0.2]
    runtables.truncate_evals(d, 10)
    assert list(runtables.read_evals(d)["step"]) == [10]
    runpaths.evals_path(d).write_text("step,metric,value\n10,swd,abc\n")
    with pytest.raises(runpaths.RunFileError, match=r"evals.csv, row 2: column 'value'"):
        runtables.read_evals(d)


def test_writers_refuse_rows_outside_the_schema(tmp_path):
    d = tmp_path / "r"
    row = dict(step=10, nimg=320, metric="swd", value=0.5, n_samples=100, sampler="ddim10_eta0",
               wall_s_train=1.0, wall_s_eval=0.1)
    with pytest.raises(ValueError, match="evals.csv: missing column.s. fwd_eval"):
        runtables.append_evals(d, [row])                    # a writer that forgot the counters
    with pytest.raises(ValueError, match="unknown column.s. my_stat.*schema: step, event"):
        runtables.append_timesteps(d, "adaptation", pd.DataFrame(
            [{"step": 1, "event": "update", "tv_uniform": 0.1, "eff_tv_initial": 0.1,
              "drawn_tv": 0.1, "my_stat": 3}]))
    with pytest.raises(ValueError, match="unknown timesteps file 'adapt'; valid: diagnostics"):
        runtables.append_timesteps(d, "adapt", pd.DataFrame([{"step": 1}]))
    assert not runpaths.evals_path(d).exists()


def test_a_launch_leaves_a_run_that_another_process_trains_alone(tmp_path):
    from bench.launch import launcher
    from bench.sweep import spec as S

    sweep = {"name": "t", "base": TOY, "grid": {"seed": [0, 1]}}
    runs = S.expand(sweep)
    busy = tmp_path / "t" / runs[0].run_id
    lines: list[str] = []
    with runstate.run_lock(busy):
        summary = launcher.launch(sweep, runs, cluster="debug", sweep_dir=tmp_path / "t",
                                  ex=S.executor_params(sweep), out=lines.append)
    assert summary.exit_code == 0 and summary.count("completed") == 1, lines
    assert summary.count("running") == 1 and not runstate.is_done(busy)
    assert any(f"{runs[0].run_id}" in ln and "running (skipped): being trained by pid" in ln
               for ln in lines), lines


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, capsys):
    d = tmp_path / "r"
    with runstate.run_lock(d):
        pass
    assert (d / runpaths.LOCK).read_text().endswith(runstate.RELEASED)
    with runstate.run_lock(d):                    # a clean release: no warning
        pass
    assert "taking over" not in capsys.readouterr().out
    (d / runpaths.LOCK).write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00")  # killed
    with runstate.run_lock(d):
        pass
    out = capsys.readouterr().out
    assert "taking over the lock of pid 999999 on elsewhere" in out and "died" in out
