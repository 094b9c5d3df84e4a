"""The one "unknown key(s) …; valid: …" check, shared by configs, sweeps and every registry; and
the check of a component's parameters against the types its signature declares (``check_params``,
with ``Bound`` for ranges)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints


def check_keys(given: Iterable, valid: Iterable, what: str, *, where: str = "", prefix: str = "",
               quote: bool = False, error: type[Exception] = ValueError) -> None:
    """Raise ``error("[where: ]unknown <what> <names>; valid: <valid>")`` for keys of ``given``
    not in ``valid`` (sorted; each name as ``prefix + repr(name)`` when ``quote``)."""
    valid = list(valid)
    unknown = sorted((k for k in given if k not in valid), key=str)
    if not unknown:
        return
    names = ", ".join(f"{prefix}{k!r}" if quote else f"{prefix}{k}" for k in unknown)
    head = f"{where}: " if where else ""
    raise error(f"{head}unknown {what} {names}; valid: {', '.join(map(str, valid)) or '(none)'}")


# ---------------------------------------------------------------------------- declared parameters
@dataclass(frozen=True)
class Bound:
    """A range a number must lie in, declared in a signature: ``Annotated[int, Bound(1)]``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, v) -> bool:
        return ((self.low is None or (v > self.low if self.low_open else v >= self.low)) and
                (self.high is None or (v < self.high if self.high_open else v <= self.high)))

    def text(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                f"{')' if self.high_open else ']'}")


# The declared types of component parameters (datasets, backbones) that need a range.
PositiveInt = Annotated[int, Bound(1)]
NonNegativeInt = Annotated[int, Bound(0)]
Probability = Annotated[float, Bound(0.0, 1.0, high_open=True)]   # dropout
PositiveFloat = Annotated[float, Bound(0.0, low_open=True)]


def _describe(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        bounds = [m.text() for m in args[1:] if isinstance(m, Bound)]
        return " ".join([_describe(args[0]), *bounds])
    if origin in (Union, UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return "a list" + (f", each item {_describe(inner[0])}" if inner else "")
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
            dict: "a mapping", type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def conforms(value: Any, tp) -> bool:
    """Whether ``value`` has the declared type ``tp`` (int, float, bool, str, dict, None,
    ``X | Y``, ``Literal[...]``, ``list[X]``/``tuple[X, ...]``, ``Annotated[X, Bound]``; anything
    else is not checked). Bools are not numbers; a float must be finite."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return conforms(value, args[0]) and all(m.ok(value) for m in args[1:]
                                                if isinstance(m, Bound))
    if origin in (Union, UnionType):
        return any(conforms(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(conforms(v, inner[0]) for v in value
                                                        if inner)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if tp is type(None):
        return value is None
    if tp in (str, dict):
        return isinstance(value, tp if tp is str else Mapping)
    return True


def check_params(fn: Callable, params: Mapping, prefix: str, *,
                 error: type[Exception] = ValueError) -> None:
    """Each of ``params`` against the type ``fn`` declares for it (its signature's annotations,
    ``conforms``): ``error("<prefix><key> must be <type>, got <value>")``, or for a choice
    ``"unknown <prefix><key> <value>; valid: …"``. Undeclared parameters are not checked."""
    target = fn.__init__ if isinstance(fn, type) else fn
    hints = get_type_hints(target, include_extras=True)
    for key, value in params.items():
        tp = hints.get(key)
        if tp is None or conforms(value, tp):
            continue
        if get_origin(tp) is Literal:
            raise error(f"unknown {prefix}{key} {value!r}; valid: "
                        f"{', '.join(map(str, get_args(tp)))}")
        raise error(f"{prefix}{key} must be {_describe(tp)}, got {value!r}")
