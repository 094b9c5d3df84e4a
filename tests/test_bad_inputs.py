"""Bad input, command by command: each case exits non-zero with a message that names the problem,
prints no traceback, and leaves nothing written (or, for an existing run, nothing changed)."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import yaml

from bench import config as C
from bench import experiment
from bench.rundir import runpaths
from bench.report import __main__ as report_cli
from bench.sweep import __main__ as sweep_cli
from bench.tools import latent as latent_cli
from bench.tools import perf as perf_cli
from bench.tools import sample as sample_cli
from bench.tools import strategies as strategies_cli
from bench.train import __main__ as train_cli

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results"
TOY = {"name": "toy", "seed": 0, "dataset": {"name": "toy2d", "n_train": 512, "n_test": 64},
       "backbone": {"name": "mlp", "width": 16, "depth": 1}, "diffusion": {"timesteps": 50},
       "train": {"iterations": 6, "batch_size": 32, "log_every": 2, "ckpt_every": 2,
                 "device": "cpu"}}


def run_cli(main, argv, capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:                       # argparse errors exit 2 with a usage line
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(root: Path) -> dict:
    """Every file's size and time, but the run lock's (each attempt writes its holder there)."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != runpaths.LOCK}


def check(rc, out, err, code, message):
    assert rc == code, (rc, out, err)
    assert message in err, err
    assert "Traceback" not in out + err


# ---------------------------------------------------------------------------- bench.train
TRAIN = {
    "lr inf": (["--set", "train.lr=.inf"], "train.lr must be positive and finite"),
    "lr nan": (["--set", "train.lr=.nan"], "train.lr must be positive and finite"),
    "weight decay inf": (["--set", "train.weight_decay=.inf"],
                         "train.weight_decay must be a finite number >= 0"),
    "grad clip negative": (["--set", "train.grad_clip=-1"],
                           "train.grad_clip must be a finite number >= 0"),
    "grad clip nan": (["--set", "train.grad_clip=.nan"], "train.grad_clip must be a finite"),
    "grad clip text": (["--set", "train.grad_clip=abc"], "train.grad_clip must be a finite"),
    "bf16 maybe": (["--set", "train.bf16=maybe"], "train.bf16 must be true or false"),
    "betas text": (["--set", "train.betas=abc"], "train.betas must be a list of two numbers"),
    "betas out of range": (["--set", "train.betas=[0.9,1.5]"], "train.betas must be a list"),
    "seed true": (["--set", "seed=true"], "seed must be an integer, got True"),
    "iterations zero": (["--set", "train.iterations=0"], "train.iterations must be a positive"),
    "unknown key": (["--set", "train.log_evry=5"], "unknown config key train.'log_evry'"),
    "unknown section": (["--set", "trian.lr=1"], "unknown config key 'trian'"),
    "fid on a toy": (["--set", "eval.every=2", "--set", "eval.metrics=[fid]"],
                     "fid needs image data"),
    "swd on images": (["--set", "dataset={name: digits}", "--set", "eval.every=2",
                       "--set", "eval.metrics=[swd]"], "swd and mmd are 2-D toy metrics"),
    "eval beyond budget": (["--set", "eval.at=[5000]"], "eval.at: 5000 beyond train.iterations"),
    "diagnostics beyond budget": (["--set", "eval.diagnostics.at=[7]"],
                                  "eval.diagnostics.at: 7 beyond"),
    "keep beyond budget": (["--set", "train.keep=[4,9]"],
                           "train.keep: 9 beyond train.iterations=6; those snapshots would never"),
    "eval every beyond budget": (["--set", "eval.every=7"],
                                 "eval.every=7 exceeds train.iterations=6: it would never run; "
                                 "valid: 0 (off) to 6, or name the steps in eval.at"),
    "diagnostics every beyond budget": (["--set", "eval.diagnostics.every=9"],
                                        "eval.diagnostics.every=9 exceeds train.iterations=6"),
    "ddim steps beyond T": (["--set", "eval.every=2", "--set", "eval.metrics=[swd]"],
                            "eval.ddim_steps=100 exceeds diffusion.timesteps=50; valid: 1 to 50"),
    "missing ref stats": (["--set", "dataset={name: digits}", "--set", "eval.every=2",
                           "--set", "eval.ddim_steps=10", "--set", "eval.metrics=[fid]",
                           "--set", "eval.ref_stats=/nonexistent/ref.npz"],
                          "eval.ref_stats: no such file /nonexistent/ref.npz"),
    "missing inception weights": (["--set", "dataset={name: digits}", "--set", "eval.every=2",
                                   "--set", "eval.ddim_steps=10", "--set", "eval.metrics=[fid]",
                                   "--set", "eval.extractor=inception",
                                   "--set", "eval.inception_weights=/nonexistent/w"],
                                  "eval.inception_weights does not exist"),
    "cnn extractor without labels": (["--set", "dataset={name: image_folder, root: /tmp}",
                                      "--set", "backbone={name: unet}", "--set", "eval.every=2",
                                      "--set", "eval.metrics=[fid]"],
                                     "eval.extractor=cnn trains on class labels"),
    "bad strategy parameter": (["--set", "strategy={name: p2, gamma: -1}"],
                               "p2: gamma must be a finite number in [0, inf)"),
    "unknown strategy": (["--set", "strategy.name=nope"], "unknown strategy 'nope'; valid:"),
    "bad schedule": (["--set", "diffusion.schedule=sigmoid"], "valid: linear, cosine, quad"),
    "set without value": (["--set", "train.lr"], "--set expects key=value"),
}


@pytest.mark.parametrize("case", list(TRAIN), ids=list(TRAIN))
def test_train_refuses_before_writing(case, tmp_path, capsys):
    argv, message = TRAIN[case]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    rc, out, err = run_cli(train_cli.main, [str(tmp_path / "c.yaml"), "--results-dir",
                                            str(tmp_path / "out"), "--no-progress", *argv],
                           capsys)
    check(rc, out, err, 2, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content,message", [
    ("", "is empty; write {} in it"),
    ("train: {iterations: 3\n  lr: [", "malformed YAML"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("train: 5\n", "config section 'train' must be a mapping"),
])
def test_train_refuses_bad_config_files(content, message, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(content)
    rc, out, err = run_cli(train_cli.main, [str(tmp_path / "c.yaml"), "--results-dir",
                                            str(tmp_path / "out")], capsys)
    check(rc, out, err, 2, message)
    assert not (tmp_path / "out").exists()


def test_train_refuses_a_results_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    (tmp_path / "out").write_text("not a folder")
    rc, out, err = run_cli(train_cli.main, [str(tmp_path / "c.yaml"), "--results-dir",
                                            str(tmp_path / "out"), "--no-progress"], capsys)
    check(rc, out, err, 2, str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "not a folder"


@pytest.fixture
def finished(tmp_path):
    """A finished toy run: (config file, results dir, run dir)."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    run_dir = tmp_path / "out" / C.run_id(C.resolve(TOY))
    experiment.run(C.resolve(TOY), run_dir, progress=False)
    return tmp_path / "c.yaml", tmp_path / "out", run_dir


@pytest.mark.parametrize("content", [b"", b"\x80not a checkpoint", b"PK\x03\x04truncated"])
def test_a_corrupt_checkpoint_is_named_and_nothing_else_changes(finished, content, capsys):
    cfg_file, out_dir, run_dir = finished
    runpaths.done_path(run_dir).unlink()                  # so that the run resumes
    runpaths.ckpt_path(run_dir).write_bytes(content)
    before = snapshot(run_dir)
    rc, out, err = run_cli(train_cli.main, [str(cfg_file), "--results-dir", str(out_dir),
                                            "--no-progress"], capsys)
    check(rc, out, err, 2, f"{runpaths.ckpt_path(run_dir)}: not a readable checkpoint")
    assert "delete it to restart the run from step 0" in err
    assert snapshot(run_dir) == before and not (run_dir / runpaths.FAILED).exists()


@pytest.mark.parametrize("content", ["{half", ""])
def test_a_corrupt_done_file_is_named_by_training_and_by_the_report(finished, capsys, content):
    cfg_file, out_dir, run_dir = finished
    runpaths.done_path(run_dir).write_text(content)
    before = snapshot(run_dir)
    rc, out, err = run_cli(train_cli.main, [str(cfg_file), "--results-dir", str(out_dir)],
                           capsys)
    check(rc, out, err, 2, f"{runpaths.done_path(run_dir)}: unreadable")
    assert snapshot(run_dir) == before
    rc, out, err = run_cli(report_cli.main, [str(out_dir), "--out", str(out_dir.parent / "rep"),
                                             "--no-figures"], capsys)
    check(rc, out, err, 2, f"{runpaths.done_path(run_dir)}: unreadable")


# ---------------------------------------------------------------------------- bench.sweep
def _sweep(**over) -> dict:
    s = {"name": "s", "base": copy.deepcopy(TOY), "grid": {"seed": [0, 1]}}
    s.update(over)
    return s


SWEEP = {
    "fid on a toy, dry run": (_sweep(base={**TOY, "eval": {"every": 2, "metrics": ["fid"]}}),
                              ["--dry-run"], "fid needs image data"),
    "eval beyond budget": (_sweep(base={**TOY, "eval": {"at": [99]}}), [],
                           "eval.at: 99 beyond train.iterations=6"),
    "bf16 maybe": (_sweep(grid={"train.bf16": ["maybe"]}), ["--dry-run"],
                   "train.bf16 must be true or false"),
    "inf lr in the grid": (_sweep(grid={"train.lr": [float("inf")]}), [],
                           "train.lr must be positive and finite"),
    "bad executor override": (_sweep(), ["--executor", "nodes=0"],
                              "executor.nodes must be a positive integer"),
    "unknown executor override": (_sweep(), ["--executor", "nodez=1"], "unknown executor key"),
    "only matches nothing": (_sweep(), ["--only", "zzz"], "matches none of the 2 runs"),
    "unknown cluster": (_sweep(), ["--cluster", "mars"], "invalid choice: 'mars'"),
}


@pytest.mark.parametrize("case", list(SWEEP), ids=list(SWEEP))
def test_sweep_refuses_before_anything_is_written(case, tmp_path, capsys):
    spec, argv, message = SWEEP[case]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    cluster = [] if "--cluster" in argv else ["--cluster", "debug"]
    rc, out, err = run_cli(sweep_cli.main, [str(tmp_path / "s.yaml"), *cluster, "--results-dir",
                                            str(tmp_path / "res"), *argv], capsys)
    check(rc, out, err, 2, message)
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------------- bench.report
@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "res"
    shutil.copytree(FIXTURE, root)
    return root


REPORT = {
    "budgets not positive": (["--budgets=-5,0"], "--budgets must be positive iteration counts"),
    "budgets not numbers": (["--budgets", "abc"], "--budgets expects comma-separated integers"),
    "unknown baseline": (["--baseline", "foo"], "--baseline 'foo': no evaluated run has"),
    "unknown metric": (["--metric", "fid_nope"], "--metric 'fid_nope': not in the results"),
    "unknown pair": (["--pair", "uniform", "nope"], "--pair 'nope': no evaluated run"),
    "unknown format": (["--format", "docx"], "--format: unknown docx; valid: md, csv, tex"),
}


@pytest.mark.parametrize("case", list(REPORT), ids=list(REPORT))
def test_report_refuses_bad_arguments(case, tree, capsys):
    argv, message = REPORT[case]
    before = snapshot(tree)
    rc, out, err = run_cli(report_cli.main, [str(tree), *argv], capsys)
    check(rc, out, err, 2, message)
    assert snapshot(tree) == before and not (tree / "report").exists()


def test_report_refuses_a_short_evals_row(tree, capsys):
    evals = tree / "fx" / "u-lin-s0" / runpaths.EVALS
    evals.write_text(evals.read_text().splitlines()[0] + "\n10,320,fd_cnn\n")
    rc, out, err = run_cli(report_cli.main, [str(tree)], capsys)
    check(rc, out, err, 2, f"{evals}, row 2: no value in column 'value'")
    assert not (tree / "report").exists()


def test_report_refuses_a_run_without_its_config(tree, capsys):
    (tree / "fx" / "u-lin-s0" / runpaths.CONFIG).unlink()
    rc, out, err = run_cli(report_cli.main, [str(tree)], capsys)
    check(rc, out, err, 2, f"u-lin-s0: holds {runpaths.METRICS}")
    assert f"but no {runpaths.CONFIG}" in err and not (tree / "report").exists()


@pytest.mark.parametrize("argv,message", [
    (["/nonexistent/results"], "no such directory"),
])
def test_report_refuses_a_missing_tree(argv, message, capsys):
    check(*run_cli(report_cli.main, argv, capsys), 2, message)


# ---------------------------------------------------------------------------- the tools
def test_sample_refuses_bad_input(tmp_path, capsys):
    check(*run_cli(sample_cli.main, [str(tmp_path / "none")], capsys), 2,
          "is not a run with a checkpoint")
    check(*run_cli(sample_cli.main, [str(tmp_path), "--n", "0"], capsys), 2,
          "--n must be a positive integer")
    check(*run_cli(sample_cli.main, [str(tmp_path), "--sampler", "rk4"], capsys), 2,
          "invalid choice: 'rk4'")
    for out in (tmp_path, tmp_path / "samples"):      # matplotlib would write <out>.png
        check(*run_cli(sample_cli.main, [str(tmp_path), "--out", str(out)], capsys), 2,
              "a folder or a name without a type; give a file such as")
    assert not any(tmp_path.iterdir())


def test_a_results_folder_that_is_a_file_is_refused_before_work(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(TOY))
    (tmp_path / "res").write_text("not a folder")
    check(*run_cli(train_cli.main, [str(tmp_path / "c.yaml"), "--results-dir",
                                    str(tmp_path / "res"), "--no-progress"], capsys), 2,
          f"--results-dir: {tmp_path / 'res'} is a file, not a folder")
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(_sweep()))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / _sweep()["name"]).write_text("")      # the sweep's folder is a file
    for extra in ([], ["--dry-run"], ["--status"]):
        check(*run_cli(sweep_cli.main, [str(sweep), "--results-dir", str(tmp_path / "out"),
                                        *extra], capsys), 2, "is a file, not a folder")
    assert (tmp_path / "res").read_text() == "not a folder"


def test_a_plugin_that_exits_on_import_is_refused_not_obeyed(tmp_path, capsys, monkeypatch):
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**TOY, "imports": ["exits_on_import"]}))
    check(*run_cli(train_cli.main, [str(tmp_path / "c.yaml"), "--results-dir",
                                    str(tmp_path / "out"), "--no-progress"], capsys), 2,
          "imports: cannot import 'exits_on_import' (SystemExit: 3)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,message", [
    (["show", "nope"], "unknown strategy 'nope'; valid:"),
    (["show", "p2", "--set", "foo=1"], "unknown parameter(s) foo; valid: gamma, k"),
    (["show", "p2", "--schedule", "sigmoid"], "sigmoid"),
])
def test_strategies_refuses_bad_input(argv, message, capsys):
    check(*run_cli(strategies_cli.main, argv, capsys), 2, message)


@pytest.mark.parametrize("argv,message", [
    (["--iters", "0"], "--iters must be a multiple of 40 (adaptive_beta's f_S) and positive"),
    (["--threads", "0"], "--threads must be a positive integer"),
    (["--only", "nope"], "--only: unknown nope"),
    (["--backbone-config", "[1, 2]"], "--backbone-config must be a mapping with a 'name'"),
    (["--eval-share", "/nonexistent/results"], "no such directory"),
])
def test_perf_refuses_bad_input(argv, message, capsys):
    check(*run_cli(perf_cli.main, argv, capsys), 2, message)


@pytest.mark.parametrize("content,message", [
    (None, "config file not found"),
    ("dataset: {name: digits}\n", "no run uses dataset 'latent'"),
    ("train: {lr: -1}\n", "train.lr must be positive"),
])
def test_latent_refuses_bad_input(content, message, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    check(*run_cli(latent_cli.main, [str(path)], capsys), 2, message)
    assert sorted(os.listdir(tmp_path)) == (["c.yaml"] if content is not None else [])


# ---------------------------------------------------------------------------- files that lie
def test_a_config_edited_after_training_is_refused_by_training_and_by_the_report(finished,
                                                                                 capsys):
    cfg_file, out_dir, run_dir = finished
    path = runpaths.config_path(run_dir)
    path.write_text(path.read_text().replace("batch_size: 32", "batch_size: 16"))
    before = snapshot(run_dir)
    rc, out, err = run_cli(train_cli.main, [str(cfg_file), "--results-dir", str(out_dir)],
                           capsys)
    check(rc, out, err, 2, f"{path}: hashes to run id")
    assert "edited after the run was made" in err and snapshot(run_dir) == before
    rc, out, err = run_cli(report_cli.main, [str(out_dir), "--out", str(out_dir.parent / "rep"),
                                             "--no-figures"], capsys)
    check(rc, out, err, 2, f"{path}: hashes to run id")


def test_another_runs_checkpoint_is_refused_naming_both_runs(finished, capsys):
    cfg_file, out_dir, run_dir = finished
    other = {**TOY, "seed": 1}
    other_dir = out_dir / C.run_id(C.resolve(other))
    experiment.run(C.resolve(other), other_dir, progress=False)
    runpaths.done_path(run_dir).unlink()                  # so that the run resumes
    shutil.copy(runpaths.ckpt_path(other_dir), runpaths.ckpt_path(run_dir))
    before = snapshot(run_dir)
    rc, out, err = run_cli(train_cli.main, [str(cfg_file), "--results-dir", str(out_dir),
                                            "--no-progress"], capsys)
    check(rc, out, err, 2, f"the checkpoint of run {other_dir.name} (step 6), not of this run "
                           f"{run_dir.name}")
    assert snapshot(run_dir) == before and not (run_dir / runpaths.FAILED).exists()


EVALS_ROWS = {
    "conflicting": (lambda rows: rows + [rows[1].replace(",0.5,", ",0.7,", 1)],
                    "rows 2, 4: one key (step=10, metric=swd"),
    "infinite": (lambda rows: [rows[0], rows[1].replace(",0.5,", ",inf,", 1), *rows[2:]],
                 "row 2: column 'value' is inf (not a finite result)"),
    "nan": (lambda rows: [rows[0], rows[1].replace(",0.5,", ",nan,", 1), *rows[2:]],
            "row 2: column 'value' is not a number ('nan')"),
}


@pytest.mark.parametrize("case", list(EVALS_ROWS), ids=list(EVALS_ROWS))
def test_report_refuses_evals_it_would_have_to_guess_about(case, tree, capsys):
    edit, message = EVALS_ROWS[case]
    evals = tree / "fx2" / "9f3ce0e6b1" / runpaths.EVALS
    evals.write_text("\n".join(edit(evals.read_text().splitlines())) + "\n")
    rc, out, err = run_cli(report_cli.main, [str(tree)], capsys)
    check(rc, out, err, 2, f"{evals}, {message}")
    assert not (tree / "report").exists()


def test_report_refuses_a_run_nested_in_another(tree, capsys):
    inner = tree / "fx" / "u-lin-s0" / "old" / "u-lin-s1"
    shutil.copytree(tree / "fx" / "u-lin-s1", inner)
    rc, out, err = run_cli(report_cli.main, [str(tree)], capsys)
    check(rc, out, err, 2, f"{inner}: a run directory inside the run directory")


def test_a_sweep_name_longer_than_a_folder_name_may_be_is_refused(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_sweep(name="s" * 300)))
    rc, out, err = run_cli(sweep_cli.main, [str(tmp_path / "s.yaml"), "--dry-run"], capsys)
    check(rc, out, err, 2, "sweep 'name' must be a directory-safe string of at most 100")


def test_an_edited_sweep_replaces_its_file_with_a_note(tmp_path, capsys):
    from bench.rundir import runfiles

    runfiles.write_sweep(tmp_path, _sweep())
    runfiles.write_sweep(tmp_path, _sweep())                  # unchanged: no note
    assert capsys.readouterr().err == ""
    runfiles.write_sweep(tmp_path, _sweep(grid={"seed": [0, 1, 2]}))
    assert f"note: {runpaths.sweep_file(tmp_path)} replaced" in capsys.readouterr().err
    assert yaml.safe_load(runpaths.sweep_file(tmp_path).read_text())["grid"]["seed"] == [0, 1, 2]


def test_live_weights_are_their_own_protocol():
    from bench.evaluation.sampling import sampler_name

    ema, live = (C.Config.of(C.resolve({"eval": {"use_ema": u}})).eval for u in (True, False))
    assert sampler_name(ema, 1000) == "ddim100_eta0"             # every existing row's key
    assert sampler_name(live, 1000) == "ddim100_eta0_live"


def test_an_older_checkpoint_of_another_strategy_is_refused_not_a_traceback(finished, capsys):
    import torch

    cfg_file, out_dir, run_dir = finished                 # uniform
    other = {**TOY, "strategy": {"name": "adaptive_beta"}}
    other_file, other_dir = cfg_file.with_name("other.yaml"), out_dir / C.run_id(C.resolve(other))
    other_file.write_text(yaml.safe_dump(other))
    experiment.run(C.resolve(other), other_dir, progress=False)
    runpaths.done_path(other_dir).unlink()
    st = torch.load(runpaths.ckpt_path(run_dir), weights_only=False)
    del st["run_id"]                                      # as written before run ids were
    torch.save(st, runpaths.ckpt_path(other_dir))
    rc, out, err = run_cli(train_cli.main, [str(other_file), "--results-dir", str(out_dir),
                                            "--no-progress"], capsys)
    check(rc, out, err, 2, "does not fit this run's model, optimizer or strategy")
    assert not (other_dir / runpaths.FAILED).exists()
