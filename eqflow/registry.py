"""The registry of system kinds: one name -> create, operators, observables, theory, schema.

The core imports no particular system. Built-in systems are listed in ``BUILTIN``;
third-party packages plug in through the ``eqflow.systems`` entry-point group, whose
entries point at a module-level :class:`System` object.
"""
from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import SchemaError

ENTRY_POINT_GROUP = "eqflow.systems"
BUILTIN = {"ising": "eqflow.systems.ising:SYSTEM", "scf": "eqflow.systems.scf:SYSTEM"}


@dataclass(frozen=True)
class Operator:
    """An update rule: ``update(*, <state vars>, uniforms, <prepared>) -> {state var: new array}``.

    ``prepare(*, <parameters>)`` turns physical parameters (float64 NumPy arrays of the
    ensemble shape, canonical units) into the operator's own arrays, once per segment.
    ``uniforms(site_sizes)`` gives the shape of the U[0, 1) draws one ensemble cell needs
    per step; ``None`` marks a deterministic operator.
    """

    update: Callable[..., dict]
    prepare: Callable[..., dict] | None = None
    uniforms: Callable[[Mapping[str, int]], tuple[int, ...]] | None = None


@dataclass(frozen=True)
class System:
    """Everything eqflow knows about one kind of system.

    ``example`` holds the keyword arguments of a small, fast ``create`` call: the shared test
    suite runs every operator of every registered kind on it.
    """

    kind: str
    create: Callable[..., Any]
    operators: Mapping[str, Operator]
    observables: Mapping[str, Callable[..., Any]]
    theory: Any = None
    schema_path: Path | None = None
    example: Mapping[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> dict:
        return load_schema(self.kind, self.schema_path)

    def operator(self, name: str) -> Operator:
        if name not in self.operators:
            raise SchemaError(
                f"operator: expected one of {sorted(self.operators)} for kind {self.kind!r}, got {name!r}"
            )
        return self.operators[name]


def schema_dir() -> Path:
    """The folder of JSON schemas: inside the installed package, or at the repository top."""
    packaged = Path(__file__).parent / "schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@cache
def load_schema(kind: str, path: Path | None = None) -> dict:
    """Read the JSON schema of ``kind`` (from ``path`` when a plug-in ships its own)."""
    path = path or schema_dir() / f"{kind}.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_RUNTIME: dict[str, "System"] = {}


def register(system: System) -> System:
    """Register ``system`` under ``system.kind`` for this process (plug-ins use entry points)."""
    if not isinstance(system, System):
        raise TypeError(f"system: expected an eqflow.System, got {type(system).__name__}")
    _RUNTIME[system.kind] = system
    get.cache_clear()
    return system


def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of every registered system kind (built-in and plug-in)."""
    return sorted({*BUILTIN, *_RUNTIME, *_entry_point_targets()})


@cache
def get(kind: str) -> System:
    """Return the :class:`System` registered as ``kind``."""
    if kind in _RUNTIME:
        return _RUNTIME[kind]
    target = BUILTIN.get(kind) or _entry_point_targets().get(kind)
    if target is None:
        raise SchemaError(f"kind: expected one of {available()}, got {kind!r}")
    module_name, _, attr = target.partition(":")
    system = getattr(importlib.import_module(module_name), attr or "SYSTEM")
    if not isinstance(system, System) or system.kind != kind:
        raise TypeError(f"entry point {kind!r} -> {target!r} is not an eqflow System named {kind!r}")
    return system


def call_with(fn: Callable, available_kwargs: Mapping[str, Any]) -> Any:
    """Call ``fn`` with the keyword arguments it names, taken from ``available_kwargs``.

    Arguments with a default are passed only when available; a missing required one is an error.
    """
    return bind(fn, available_kwargs)({}, available_kwargs)


def bind(fn: Callable, available_kwargs: Mapping[str, Any]) -> Callable[[dict, dict], Any]:
    """``fn`` as a function of (state, inputs) dicts, its argument names resolved once (hot loop)."""
    required, optional = accepted_names(fn)
    missing = [k for k in required if k not in available_kwargs]
    if missing:
        raise TypeError(f"{fn.__module__}.{fn.__qualname__}: needs {missing}, which the system does not provide "
                        f"(available: {sorted(available_kwargs)})")
    names = (*required, *(o for o in optional if o in available_kwargs))

    def bound(state: dict, inputs: dict):
        return fn(**{k: state[k] if k in state else inputs[k] for k in names})

    return bound


@cache
def accepted_names(fn: Callable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) keyword names that ``fn`` accepts."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in inspect.signature(fn).parameters.values() if p.kind in kinds]
    return (tuple(p.name for p in params if p.default is inspect.Parameter.empty),
            tuple(p.name for p in params if p.default is not inspect.Parameter.empty))
