"""The registry of system kinds: one name -> its :class:`~eqflow.system.System`.

Built-in kinds are the packages found in ``eqflow/systems/`` (each exposes ``SYSTEM``);
third-party packages plug in through the ``eqflow.systems`` entry-point group, whose
entries point at a module-level ``System``; ``eq.register`` adds one for this process.
The core imports no particular system, and adding a system touches no core file.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from .errors import SchemaError
from .system import System

ENTRY_POINT_GROUP = "eqflow.systems"
BUILTIN_PACKAGE = "eqflow.systems"

_RUNTIME: dict[str, System] = {}


def register(system: System) -> System:
    """Register ``system`` under ``system.kind`` for this process (plug-ins use entry points)."""
    if not isinstance(system, System):
        raise TypeError(f"system: expected an eqflow.System, got {type(system).__name__}")
    system.schema  # its JSON's "kind" must be the System's name: named here, not at a later run
    _RUNTIME[system.kind] = system
    get.cache_clear()
    return system


@cache
def builtin() -> dict[str, str]:
    """Built-in kinds: every package in ``eqflow/systems/`` -> ``module:SYSTEM``."""
    package = importlib.import_module(BUILTIN_PACKAGE)
    return {m.name: f"{BUILTIN_PACKAGE}.{m.name}:SYSTEM" for m in pkgutil.iter_modules(package.__path__)
            if m.ispkg and not m.name.startswith("_")}


def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of every registered system kind (built-in and plug-in)."""
    return sorted({*builtin(), *_RUNTIME, *_entry_point_targets()})


@cache
def get(kind: str) -> System:
    """Return the :class:`System` registered as ``kind``."""
    if kind in _RUNTIME:
        return _RUNTIME[kind]
    target = builtin().get(kind) or _entry_point_targets().get(kind)
    if target is None:
        raise SchemaError(f"kind: expected one of {available()}, got {kind!r}")
    module_name, _, attr = target.partition(":")
    system = getattr(importlib.import_module(module_name), attr or "SYSTEM")
    if not isinstance(system, System) or system.kind != kind:
        raise TypeError(f"entry point {kind!r} -> {target!r} is not an eqflow System named {kind!r}")
    return system
