"""The one labeller: how runs, conditions and axis values are named in plans, launch lines,
report tables and figure legends.

* ``value_label`` — an axis value as the sweep file wrote it (``p2(gamma=1,k=1)``); it is a run's
  grid coordinate, what ``--only`` matches.
* ``strategy_label`` / ``component_label`` — a component by name and its *non-default*
  parameters (``p2``, ``min_snr(gamma=1)``, ``compose(adaptive_beta+min_snr)``): the name of a
  condition in the report, the dry-run plan and the launch lines.
* ``settings`` — what conditions are compared within: ``dataset · backbone`` (``· flow`` on the
  flow process), and when runs of that pair differ in their budget, evaluation protocol or
  logging (``PROTOCOL`` keys), those values too (``digits · mlp(width=256) ·
  train.iterations=400``); so runs that differ in anything but the strategy and the seed are
  never one condition.
* ``variants`` / ``conditions`` — the other hyperparameters that differ between the runs of a
  setting; a condition is ``strategy [variant]``, the same text in the dry-run plan, the launch
  lines, the report's tables and the figures' legends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import strategies

# Hyperparameters that do not change what a run learns up to a given step: never a "variant".
NOT_VARIANT = ("name", "seed", "imports", "train.iterations", "train.device", "train.log_every",
               "train.ckpt_every", "train.loss_bins", "train.loggers", "train.keep")
NOT_VARIANT_PREFIX = ("eval.", "strategy.", "dataset.", "backbone.", "diffusion.schedule",
                      "process.")
# ... of those, the ones that change what a run reports (its budget, its evaluation, its logs):
# part of the setting where they differ. The rest (name, seed, imports, loggers, keep) identify
# nothing a table compares.
PROTOCOL = ("train.iterations", "train.device", "train.log_every", "train.ckpt_every",
            "train.loss_bins")
PROTOCOL_PREFIX = ("eval.",)


def duration_text(s: float) -> str:
    """A duration for people: ``< 1 s``, ``12 s``, ``3 min 20 s``, ``5 h 02 min``, ``1.5 d``;
    ``—`` when unknown (not finite)."""
    s = float(s)
    if s != s or s in (float("inf"), float("-inf")):
        return "—"
    s = max(s, 0.0)
    if s >= 86400:
        return f"{s / 86400:.1f} d"
    if s >= 3600:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    if s >= 60:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return "< 1 s" if 0 < s < 1 else f"{s:.0f} s"


def value_label(v: Any) -> str:
    """A compact, stable text for an axis value: ``p2(gamma=1,k=1)``, ``linear``, ``[1,2]``."""
    if isinstance(v, Mapping):
        body = ",".join(f"{k}={value_label(v[k])}" for k in sorted(v) if k != "name")
        if "name" in v:
            return f"{v['name']}({body})" if body else str(v["name"])
        return "{" + body + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(value_label(x) for x in v) + "]"
    return str(v)


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return component_label(v) if "name" in v else json.dumps(v, sort_keys=True)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value_text(x) for x in v) + "]"
    return str(v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def strategy_defaults(spec: dict) -> dict:
    """What a strategy spec's label is relative to: its registry defaults with the values of the
    preset it names (``{}`` if they cannot be read)."""
    try:
        return strategies.label_defaults(spec)
    except (ValueError, TypeError, KeyError):
        return {}


def component_label(cfg: dict, defaults: dict | None = None) -> str:
    """``name(k=v,...)`` with the parameters that differ from ``defaults`` (all when None)."""
    params = {k: v for k, v in cfg.items() if k != "name"
              and not (defaults is not None and k in defaults and _same(v, defaults[k]))}
    body = ",".join(f"{k}={_value_text(params[k])}" for k in sorted(params))
    return f"{cfg.get('name', '?')}({body})" if body else str(cfg.get("name", "?"))


def strategy_label(cfg: dict) -> str:
    """A readable strategy label: name + non-default parameters; a composition as
    ``compose(<sampler>+<weighting>)``, e.g. ``compose(adaptive_beta+min_snr(gamma=1))``."""
    name = cfg.get("name", "?")
    if name == "compose":
        sampler = cfg.get("sampler", {"name": "uniform"})
        weighting = cfg.get("weighting", {"name": "uniform"})
        return f"compose({strategy_label(sampler)}+{strategy_label(weighting)})"
    return component_label(cfg, strategy_defaults(cfg))


def run_label(cfg: Mapping) -> str:
    """One run in words: strategy label · seed · setting, e.g. ``min_snr(gamma=1) · seed 0 ·
    digits · mlp`` (trackers name their runs with it)."""
    return f"{strategy_label(cfg['strategy'])} · seed {cfg.get('seed')} · {setting_label(cfg)}"


def flat(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = _value_text(v)
    return out


def differing_keys(flats: list[dict[str, str]], wanted) -> list[str]:
    """The dotted keys, sorted, for which ``wanted(key)`` holds and whose value (or absence)
    differs between the ``flat`` configs ``flats``."""
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if wanted(k) and len({f.get(k, "<unset>") for f in flats}) > 1]


def key_values(f: dict[str, str], keys: list[str]) -> str:
    """``k=v, ...`` of ``keys`` in the flat config ``f``."""
    return ", ".join(f"{k}={f.get(k, '<unset>')}" for k in keys)


def variant_keys(configs: list[dict]) -> list[str]:
    """Hyperparameters (dotted) that differ between ``configs`` and may change what a run learns."""
    return differing_keys([flat(c) for c in configs], lambda k: k not in NOT_VARIANT
                          and not k.startswith(NOT_VARIANT_PREFIX))


def setting_label(cfg: Mapping) -> str:
    """The data, network and process of a run: ``dataset · backbone``, and ``· flow`` for a
    process other than DDPM (``settings`` adds the protocol), so no table mixes processes."""
    process = (cfg.get("process") or {}).get("name", "ddpm")
    return (f"{component_label(cfg['dataset'])} · {component_label(cfg['backbone'])}"
            + ("" if process == "ddpm" else f" · {process}"))


def settings(configs: list[dict]) -> list[str]:
    """Per config (resolved, full): the setting it is compared within — its ``setting_label``,
    then ``k=v, ...`` over the ``PROTOCOL`` keys that differ between the configs of that label."""
    by_label: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        by_label.setdefault(setting_label(c), []).append(i)
    out = [""] * len(configs)
    for label, idx in by_label.items():
        flats = [flat(configs[i]) for i in idx]
        keys = differing_keys(flats, lambda k: k in PROTOCOL or k.startswith(PROTOCOL_PREFIX))
        for i, f in zip(idx, flats):
            extra = key_values(f, keys)
            out[i] = f"{label} · {extra}" if extra else label
    return out


def variants(configs: list[dict]) -> list[str]:
    """Per config (resolved, full): its variant within its setting, ``k=v, ...`` over the
    ``variant_keys`` of the configs of that setting ('' when they agree)."""
    by_setting: dict[str, list[int]] = {}
    for i, s in enumerate(settings(configs)):
        by_setting.setdefault(s, []).append(i)
    out = [""] * len(configs)
    for idx in by_setting.values():
        group = [configs[i] for i in idx]
        keys = variant_keys(group)
        for i, c in zip(idx, group):
            out[i] = key_values(flat(c), keys)
    return out


def condition_label(strategy: Mapping, variant: str = "") -> str:
    """A condition: the strategy label, and its variant in brackets (``p2 [train.lr=0.001]``)."""
    s = strategy_label(strategy)
    return f"{s} [{variant}]" if variant else s


def conditions(configs: list[dict]) -> list[str]:
    """The condition of each config among ``configs`` (what the report calls it)."""
    return [condition_label(c["strategy"], v) for c, v in zip(configs, variants(configs))]
