"""eqflow: drive ensembles of physical systems to equilibrium and keep every step.

>>> import eqflow as eq
>>> system = eq.create("ising", size=8, temperature=[1.5, 3.0], members=4, seed=1)
>>> eq.validate(system).spin.dtype
dtype('int8')
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # noqa: F401  (registers ds.eqflow)
from . import diagnostics, outcomes, random, stop, systems
from .anneal import anneal
from .dataset import validate
from .errors import SchemaError, StoreError
from .registry import available, register
from .registry import get as get_system
from .results import final_state, final_values, open
from .runner import run
from .samples import write_samples
from .store import HistoryStore
from .summary import summarize
from .system import Kernel, Operator, System
from .units import ureg
from .verify import verify

try:
    __version__ = version("eqflow")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"


def __getattr__(name):
    if name == "plot":  # matplotlib is imported only when plots are asked for
        import importlib

        return importlib.import_module(f"{__name__}.plot")
    raise AttributeError(f"module 'eqflow' has no attribute {name!r}")


def create(kind: str, **kwargs):
    """A new system Dataset of ``kind`` (see ``eq.systems.<kind>.create`` for its parameters)."""
    return get_system(kind).create(**kwargs)


__all__ = [
    "anneal", "HistoryStore",
    "Kernel", "Operator", "SchemaError", "StoreError", "System", "available", "create", "diagnostics", "final_state",
    "final_values", "get_system", "open", "outcomes", "random", "register", "run", "stop", "summarize", "systems",
    "ureg", "validate", "verify", "write_samples", "__version__",
]
