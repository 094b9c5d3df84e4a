"""Run identity across a results tree: the run's ``name`` (a sweep's name) is not part of it,
``bench.tools.migrate`` renames the run directories of an older tree, and the report calls two
runs duplicates only when their identities are equal (runs that differ in their budget or
evaluation are different settings)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import config as C
from bench.analysis.load import load
from bench.config.identity import legacy_run_id
from bench.rundir import runfiles
from bench.tools import migrate

RUN = Path(__file__).resolve().parent / "fixtures" / "results" / "fx2" / "9f3ce0e6b1"


def _put(root: Path, sweep: str, cfg: dict, folder: str | None = None) -> Path:
    d = root / sweep / (folder or C.run_id(cfg))
    shutil.copytree(RUN, d)
    runfiles.write_config(d, cfg)
    return d


def test_the_name_is_not_part_of_the_run_identity():
    assert C.run_id(C.resolve({"name": "a"})) == C.run_id(C.resolve({"name": "b"}))
    assert legacy_run_id(C.resolve({"name": "a"})) != legacy_run_id(C.resolve({"name": "b"}))


def test_migrate_renames_old_run_directories_once(tmp_path, capsys):
    cfg = C.resolve({**runfiles.read_config(RUN), "name": "study"})
    old = _put(tmp_path, "study", cfg, legacy_run_id(cfg))
    assert migrate.main([str(tmp_path), "--dry-run"]) == 0 and old.exists()
    assert migrate.main([str(tmp_path)]) == 0
    assert not old.exists() and (tmp_path / "study" / C.run_id(cfg) / "evals.csv").exists()
    assert migrate.main([str(tmp_path)]) == 0                 # twice: nothing left to do
    assert "renamed 0 run directories; 0 left" in capsys.readouterr().out


def test_duplicates_only_share_an_identity_and_a_budget_is_a_setting(tmp_path):
    cfg = C.resolve(runfiles.read_config(RUN))
    _put(tmp_path, "a", {**cfg, "name": "a"})
    _put(tmp_path, "b", {**cfg, "name": "b"})                # one run in two sweeps
    longer = C.deep_update(cfg, {"train": {"iterations": 40}})
    _put(tmp_path, "c", longer)                              # another budget: another setting
    runs = load(tmp_path).runs.set_index("sweep")
    assert list(runs["status"].sort_index()) == ["done", "duplicate", "done"]
    assert "the same run (identity" in runs.loc["b", "note"]
    assert runs.loc["a", "setting"] != runs.loc["c", "setting"]
    assert "train.iterations=40" in runs.loc["c", "setting"]
