"""Encode (or find cached) the latents of every latent dataset of a run config or sweep file.

    python -m bench.latent CONFIG_OR_SWEEP.yaml

Run it once before submitting a latent sweep, so that array tasks find the cache
(bench.data.latent).
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.config.files import load_yaml, resolve
from bench.data import datasets
from bench.sweep.check import expand
from bench.sweep.spec import load_sweep

def _latent_configs(path: str) -> list[dict]:
    """The distinct resolved ``dataset`` sections named ``latent`` of a run config or sweep."""
    raw = load_yaml(path)
    if "grid" in raw:
        runs = [r.config for r in expand(load_sweep(path))]
    else:
        runs = [resolve(raw)]
    seen: dict[str, dict] = {}
    for c in runs:
        if c["dataset"]["name"] == "latent":
            seen[json.dumps(c["dataset"], sort_keys=True, default=str)] = c["dataset"]
    return list(seen.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latent",
                                 description="Encode (or find cached) the latents of every latent "
                                             "dataset in a run config or sweep file.")
    ap.add_argument("file", help="a run config or sweep YAML")
    args = ap.parse_args(argv)
    try:
        found = _latent_configs(args.file)
        if not found:
            raise ValueError(f"{args.file}: no run uses dataset 'latent'")
        for ds in found:
            data = datasets.build("latent", {k: v for k, v in ds.items() if k != "name"})
            print(f"{data.cache}: train {len(data.train)} × {tuple(data.shape)}, "
                  f"test {len(data.test)}")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
