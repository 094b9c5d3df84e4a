"""scripts/gpu_perf_check.py on the CPU: every path that runs without a GPU (``--device cpu
--quick``), the tables and their columns, the CUDA-only rows skipped with a reason, a failing
section that does not stop the others, and the time budget (skip and alarm). Nothing timed is
asserted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_perf_check.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_perf_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def table(out: str, head: str) -> list[list[str]]:
    """The cells of the first Markdown table whose header row starts with ``head``."""
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    rows = []
    for ln in lines[i:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split(" | ")])
    return rows


def test_the_cpu_quick_run_prints_every_table(script):
    r = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--threads",
                        "1", "--peak-tflops", "1", "--cifar-root", "/nonexistent/cifar"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "Traceback" not in out + r.stderr and "FAILED" not in out
    assert "data: synthetic random (256, 3, 32, 32)" in out
    assert "CIFAR-10 not found under '/nonexistent/cifar'" in out
    assert "FLOPs per training step (forward + backward, torch's counter)" in out
    summary = out[out.index("## Summary"):]
    cells = table(summary, "| precision |")
    assert cells[0] == list(script.COLUMNS)
    rows = cells[2:]
    assert [(c[0], c[1], c[2]) for c in rows] == [
        ("fp32", "eager", "bare"), ("fp32", "eager", "trainer: uniform"),
        ("bf16", "eager", "bare"), ("bf16", "eager", "trainer: uniform")]
    for c in rows:
        assert len(c) == len(script.COLUMNS)
        assert float(c[3]) > 0 and c[4].endswith("×") and c[6].endswith(" %")
        assert c[7] == "0"                        # the CPU steady state reads nothing back
        assert c[8] == "– (CUDA only)"
    assert rows[0][4] == rows[2][4] == "1.000×"
    for cell, why in [("tf32 eager", "TF32 is a CUDA setting"),
                      ("bf16 compile", "compile rows run on CUDA only here"),
                      ("bf16 cuda-graphs", "CUDA graphs need CUDA"),
                      ("fp32 compile", "compile rows run on CUDA only here")]:
        assert f"[{cell}] skipped: {why}" in out

    upd = table(summary, "| adaptive_beta update |")
    assert len(upd[0]) == 6
    labels = [c[0] for c in upd[2:]]
    assert labels[0] == "chunked (chunk_size 256)" and labels[1].startswith("batched (chunk_size")
    if len(labels) == 3:                          # the cheap estimator's parameters exist
        assert labels[2].startswith("cheap (all_t_stride 8, all_t_every 2")
        fwd = [float(c[3]) for c in upd[2:]]
        assert fwd[0] == fwd[1] > fwd[2]          # batching moves no work; the cheap row less
    else:
        assert "cheap estimator skipped" in out
    rew = table(summary, "| reward precision |")
    assert [c[0] for c in rew[2:]] == ["fp32", "bf16"]     # TF32: CUDA only
    assert rew[2][1] == "0" and rew[2][4] == "yes"
    assert "[reward] TF32 skipped: a CUDA setting" in out
    assert "done in" in out


def test_a_failing_section_is_reported_and_the_others_still_run(script, monkeypatch, capsys,
                                                               one_thread):
    def boom(env, precision, mode):
        raise RuntimeError(f"boom in {precision}")
    monkeypatch.setattr(script, "run_cell", boom)
    assert script.main(["--device", "cpu", "--quick", "--synthetic"]) == 0
    out = capsys.readouterr().out
    assert "[fp32 eager] FAILED at test_gpu_perf_check.py:" in out      # where it was raised
    assert "RuntimeError: boom in fp32" in out and "RuntimeError: boom in bf16" in out
    assert "data: synthetic random (256, 3, 32, 32) in [-1, 1] (--synthetic)" in out
    assert table(out, "| adaptive_beta update |")[2][0] == "chunked (chunk_size 256)"
    assert [c[0] for c in table(out, "| reward precision |")[2:]] == ["fp32", "bf16"]


def test_the_budget_skips_what_no_longer_fits_and_stops_what_runs_over(script, monkeypatch,
                                                                      capsys, one_thread):
    def slow(env, precision, mode):
        time.sleep(30)
    monkeypatch.setattr(script, "run_cell", slow)
    t0 = time.monotonic()
    assert script.main(["--device", "cpu", "--quick", "--synthetic", "--budget-s", "2"]) == 0
    assert time.monotonic() - t0 < 20
    out = capsys.readouterr().out
    assert "[fp32 eager] stopped: the budget ran out" in out
    assert "[bf16 eager] skipped: 0 s of the budget left, it needs ~1 s" in out
    assert "[adaptive update] skipped" in out and "[reward precision] skipped" in out
    assert "## Summary" in out
