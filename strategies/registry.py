"""The strategy registry: names → ``Strategy`` classes (``register`` raises on a duplicate),
lookup with the valid names on a miss, registration order (the report's fixed colours), and the
plug-ins of installed packages (entry points)."""

from __future__ import annotations

from strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator. Raises on a duplicate or empty name (timm overwrites silently; we don't)."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is already registered by "
                         f"{_REGISTRY[cls.name].__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    return sorted(_REGISTRY)


def registered() -> list[str]:
    """The names in registration order (strategies/__init__.py's imports, then later
    registrations): the report's fixed colour order."""
    return list(_REGISTRY)


def get(name: str) -> type[Strategy]:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(names())}")
    return _REGISTRY[name]


ENTRY_POINTS = "timestep_bench.strategies"


def load_entry_points(group: str = ENTRY_POINTS) -> None:
    """Import every module an installed package declares under ``group`` (each registers its
    strategies). One that fails is skipped with a warning naming it and its package (a broken
    plug-in must not break the suite's other commands; asking for its strategy then says
    "unknown strategy")."""
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        try:
            ep.load()
        except (Exception, SystemExit) as e:     # its own error, or a sys.exit on import
            dist = getattr(ep, "dist", None)
            warnings.warn(f"strategy entry point {ep.name} = {ep.value!r} (package "
                          f"{dist.name if dist else '?'}) failed to load and is skipped: "
                          f"{type(e).__name__}: {e}", stacklevel=2)
