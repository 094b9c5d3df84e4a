"""The configuration reference: ``config_table`` (a section's keys, defaults, valid values and
meanings as a markdown table) and ``docs_markdown`` (docs/config.md, written by
``python -m bench.config > docs/config.md``; a test checks the two agree)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import fields

from bench.config.fields import Section
from bench.config.sections import TOP_DEFAULTS, TOP_DOCS, TOP_SECTIONS, Executor


def config_table(section: type[Section]) -> str:
    """The markdown table of a section's keys, defaults and meanings (nested sections dotted)."""
    rows = ["| key | default | valid | meaning |", "|---|---|---|---|"]

    def walk(cls, prefix: str) -> None:
        for f in fields(cls):
            if f.metadata.get("section"):
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rule = f.metadata.get("rule")
            rows.append(f"| `{prefix}{f.name}` | `{json.dumps(default)}` | "
                        f"{rule.text if rule else 'any'} | "
                        f"{f.metadata['doc'].replace('|', '/')} |")
        for f in fields(cls):
            if f.metadata.get("section"):
                walk(f.metadata["section"], f"{prefix}{f.name}.")

    walk(section, "")
    return "\n".join(rows)


def docs_markdown() -> str:
    """docs/config.md, generated from the sections (``python -m bench.config > docs/config.md``)."""
    parts = ["# Configuration reference", "",
             "Generated from the `bench/config/` package by "
             "`python -m bench.config > docs/config.md`; a test fails when the two disagree. "
             "A run config is YAML; every key not given takes the default below, an unknown key is an error that lists the valid ones, and a bad "
             "value names the key and the valid range or choices.", "",
             "## Top level", "", "| key | default | meaning |", "|---|---|---|"]
    parts += [f"| `{k}` | `{json.dumps(v)}` | {TOP_DOCS[k]} |" for k, v in TOP_DEFAULTS.items()]
    for key, cls in (*TOP_SECTIONS.items(), ("executor", Executor)):
        where = ("a sweep file's `executor:` block" if key == "executor"
                 else f"`{key}:`")
        parts += ["", f"## {key}", "", f"Keys of {where}.", "", config_table(cls)]
    return "\n".join(parts) + "\n"
