"""The one "unknown key(s) …; valid: …" check, shared by configs, sweeps and every registry."""

from __future__ import annotations

from collections.abc import Iterable


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
