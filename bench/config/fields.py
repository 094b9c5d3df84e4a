"""Config fields: ``ConfigError``, the value checks (``Rule`` and its helpers), ``opt``/``sub``
(a field with its default, one line of documentation and its check; a nested section) and the
``Section`` base that checks keys and values of a typed section and converts it to and from a
mapping. The sections themselves live in ``bench.config.sections``."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bench.core.checks import check_keys


class ConfigError(ValueError):
    """A config problem, with a message that names it and the valid choices."""


# ---------------------------------------------------------------------------- field checks
@dataclass(frozen=True)
class Rule:
    """A check of one value: ``ok(value)``; the message says ``<key> must be <text>``, or for a
    choice ``unknown <key> <value>; valid: <choices>``."""

    text: str
    ok: Callable[[Any], bool]
    choices: tuple = ()


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def int_at_least(lo: int, text: str | None = None) -> Rule:
    return Rule(text or f"an integer >= {lo}", lambda v: is_int(v) and v >= lo)


def is_finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


POSITIVE_INT = Rule("a positive integer", lambda v: is_int(v) and v > 0)
FINITE_NON_NEGATIVE = Rule("a finite number >= 0", lambda v: is_finite(v) and v >= 0)
NON_NEGATIVE_INT = Rule("a non-negative integer", lambda v: is_int(v) and v >= 0)
BOOL = Rule("true or false", lambda v: isinstance(v, bool))
PATH_STRING = Rule("a path string", lambda v: isinstance(v, str))
ITERATIONS = Rule("a list of iterations >= 0",
                  lambda v: isinstance(v, list) and all(is_int(i) and i >= 0 for i in v))
SLURM_NAME = Rule("a string", lambda v: v is None or isinstance(v, str))
POSITIVE_NUMBER = Rule("a positive number", lambda v: is_number(v) and v > 0)
SHELL_LINES = Rule("a list of shell lines",
                   lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))


def choice(*valid, unknown_form: bool = True) -> Rule:
    return Rule(f"one of {', '.join(map(str, valid))}", lambda v: v in valid,
                valid if unknown_form else ())


def opt(default: Any, doc: str, rule: Rule | None = None):
    """A config field: its default, one line of documentation, its check."""
    meta = {"doc": doc, "rule": rule}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def sub(cls: type, doc: str):
    """A nested section."""
    return field(default_factory=cls, metadata={"doc": doc, "rule": None, "section": cls})


# ---------------------------------------------------------------------------- the section base
class Section:
    """Base of a typed section: ``from_dict`` checks keys and values; ``to_dict`` is the inverse."""

    PATH = ""                   # "train." etc.: the prefix of a key in messages
    WHAT = "config key"         # unknown keys: "unknown <WHAT> <NAME_PREFIX>'key'; valid: ..."
    NAME_PREFIX: str | None = None   # None: PATH
    SORT_VALID = True           # list the valid keys sorted (else in field order)

    def __post_init__(self) -> None:
        for f in fields(self):
            rule, value = f.metadata.get("rule"), getattr(self, f.name)
            if rule is not None and not rule.ok(value):
                key = f"{self.PATH}{f.name}"
                if rule.choices:
                    raise ConfigError(f"unknown {key} {value!r}; valid: "
                                      f"{', '.join(map(str, rule.choices))}")
                raise ConfigError(f"{key} must be {rule.text}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Checks across fields (override)."""

    @classmethod
    def check_keys(cls, d: Any, where: str) -> None:
        """``d`` is a mapping of this section's keys (nested sections too); else ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"config section {where} must be a mapping")
        valid = [f.name for f in fields(cls)]
        check_keys(d, sorted(valid) if cls.SORT_VALID else valid, cls.WHAT,
                   prefix=cls.PATH if cls.NAME_PREFIX is None else cls.NAME_PREFIX, quote=True,
                   error=ConfigError)
        for f in fields(cls):
            if f.metadata.get("section") and f.name in d:
                f.metadata["section"].check_keys(d[f.name], f"{cls.PATH}{f.name!r}")

    @classmethod
    def from_dict(cls, d: Mapping):
        """The section from a mapping: keys first (all levels), then values (this level first)."""
        cls.check_keys(d, repr(cls.PATH.rstrip(".")))
        own = {f.name: d[f.name] for f in fields(cls)
               if f.name in d and not f.metadata.get("section")}
        out = cls(**own)
        nested = {f.name: f.metadata["section"].from_dict(d[f.name]) for f in fields(cls)
                  if f.name in d and f.metadata.get("section")}
        return dataclasses.replace(out, **nested) if nested else out

    def to_dict(self) -> dict:
        return {f.name: (getattr(self, f.name).to_dict() if f.metadata.get("section")
                         else copy.deepcopy(getattr(self, f.name))) for f in fields(self)}
