"""The cost table ``python -m bench.perf --out FILE`` writes and ``python -m bench.sweep SWEEP
--dry-run --cost-table FILE`` reads to estimate a sweep's GPU-hours (JSON)::
    {"format": "bench.perf cost table", "version": 1,
     "rows": [{"strategy": "uniform", "label": "trainer: uniform", "dataset": "digits",
               "backbone": {...}, "batch_size": 64, "opts": {"bf16": false, ...},
               "ms_per_it": 6.8, "median_ms": 6.7, "fe_per_it": 384.0, "timesteps": 1000,
               "iters": 40, "threads": 1, "device": "cuda", "device_name": "NVIDIA H200",
               "torch": "2.x", "measured": "2026-12-01 10:00:00"}, ...]}

One row per measured participant (``bare`` too: strategy ``bare``); ``ms_per_it`` is the amortised
ms per training iteration (periodic work spread over its period, bench.tools.perf). ``backbone`` is
the backbone config with every default spelled out (``bench.config.canonical_form``), ``opts``
the speed options under their ``train.`` names. Writing to an existing cost table keeps its rows
of other settings and replaces those measured again (same strategy, dataset, backbone, batch,
options and device name), so one file can hold several backbones and batch sizes.
"""


from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from bench.config.fields import ConfigError
from bench.config.identity import canonical_form
from bench.core.io import atomic_write_text
from bench.train.run import cpu_model

COST_TABLE_FORMAT, COST_TABLE_VERSION = "bench.perf cost table", 1
# bench.tools.perf's speed options -> their bench.config.Train names (what a run config says)
OPT_NAMES = {"bf16": "bf16", "channels_last": "channels_last", "fused_adam": "fused_optimizer",
             "compile": "compile"}
KEY_FIELDS = ("strategy", "dataset", "backbone", "batch_size", "opts")


# ---------------------------------------------------------------------------- the cost table
def canonical_backbone(backbone: dict) -> dict:
    """The backbone config with every default spelled out (how runs and table rows compare)."""
    return canonical_form({"backbone": dict(backbone)})["backbone"]


def run_key(cfg: dict) -> dict:
    """What a resolved run config is looked up by in a cost table: strategy name, dataset name,
    backbone (defaults spelled out), global batch and the speed options (train.bf16, ...)."""
    tr = cfg["train"]
    return {"strategy": cfg["strategy"]["name"], "dataset": cfg["dataset"]["name"],
            "backbone": canonical_backbone(cfg["backbone"]), "batch_size": tr["batch_size"],
            "opts": {name: bool(tr.get(name, False)) for name in (*OPT_NAMES.values(), "tf32")}}


def _key(row: dict) -> str:
    return json.dumps({k: row.get(k) for k in KEY_FIELDS}, sort_keys=True)


def lookup(rows: list[dict], cfg: dict) -> dict | None:
    """The cost-table row measured for this run config, or None. Rows match by strategy *name*
    (not its parameters), dataset name, backbone, batch and speed options; a table holding
    matching rows of several devices is ambiguous (ConfigError: one table per target device)."""
    want = _key(run_key(cfg))
    found = [r for r in rows if _key(r) == want]
    devices = sorted({r.get("device_name", "?") for r in found})
    if len(devices) > 1:
        raise ConfigError(f"the cost table has rows for {cfg['strategy']['name']} on several "
                            f"devices ({', '.join(devices)}); write one table per target "
                            f"device (bench.perf --out on that device)")
    return found[-1] if found else None


def read_cost_table(path: str | Path) -> list[dict]:
    """The rows of a cost table written by ``--out``; ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cost table not found: {path} (write one with "
                            f"`python -m bench.perf ... --out {path}`)")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a cost table (not JSON: {e})") from e
    if not isinstance(data, dict) or data.get("format") != COST_TABLE_FORMAT:
        raise ConfigError(f"{path}: not a cost table (no \"format\": \"{COST_TABLE_FORMAT}\"; "
                            f"write one with `python -m bench.perf ... --out FILE`)")
    if data.get("version") != COST_TABLE_VERSION:
        raise ConfigError(f"{path}: cost table version {data.get('version')!r}; this code reads "
                            f"version {COST_TABLE_VERSION} (measure again with --out)")
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: 'rows' must be a list")
    for i, r in enumerate(rows):
        ms = r.get("ms_per_it") if isinstance(r, dict) else None
        if not (isinstance(r, dict) and all(k in r for k in KEY_FIELDS)
                and isinstance(ms, (int, float)) and ms > 0):
            raise ConfigError(f"{path}: row {i} is not a cost-table row (needs "
                                f"{', '.join(KEY_FIELDS)} and a positive ms_per_it)")
    return rows


def device_name(device: str) -> str:
    """The GPU's name on CUDA; on the CPU its model name (bench.train.run.cpu_model)."""
    return torch.cuda.get_device_name() if device == "cuda" else f"CPU {cpu_model()}"


def table_rows(bench_rows: list[dict], configs: dict, setup: dict, device: str, opts: dict,
               T: int, iters: int, tf32: bool) -> list[dict]:
    """Cost-table rows of one ``bench.tools.perf.benchmark`` call (``configs``: its label →
    strategy config, ``bench.tools.perf.strategy_configs``)."""
    common = {"dataset": setup["dataset"]["name"],
              "backbone": canonical_backbone(setup["backbone"]),
              "batch_size": setup["batch_size"],
              "opts": {**{OPT_NAMES[k]: bool(opts.get(k, False)) for k in OPT_NAMES},
                       "tf32": bool(tf32)},
              "timesteps": T, "iters": iters, "threads": torch.get_num_threads(),
              "device": device, "device_name": device_name(device), "torch": torch.__version__,
              "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = []
    for r in bench_rows:
        label = r["run"].removeprefix("trainer: ")
        name = "bare" if r["run"] == "bare" else configs.get(label, {"name": label})["name"]
        out.append({"strategy": name, "label": r["run"], **common,
                    "ms_per_it": round(r["amortised_ms"], 4),
                    "median_ms": round(r["median_ms"], 4), "fe_per_it": r["fe_per_it"]})
    return out


def write_cost_table(path: str | Path, rows: list[dict]) -> None:
    """Write ``rows`` to ``path``, keeping an existing table's rows of other settings."""
    path = Path(path)
    old = read_cost_table(path) if path.exists() else []
    new = {(_key(r), r["device_name"]) for r in rows}
    kept = [r for r in old if (_key(r), r.get("device_name")) not in new]
    data = {"format": COST_TABLE_FORMAT, "version": COST_TABLE_VERSION, "rows": kept + rows}
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def check_out(path: Path) -> None:
    """Before measuring: the folder exists and an existing file is a cost table."""
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: no such directory {path.parent}")
    if path.exists():
        read_cost_table(path)
