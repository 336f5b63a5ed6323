"""eqflow: drive ensembles of physical systems to equilibrium and keep every step.

>>> import eqflow as eq
>>> system = eq.create("ising", size=8, temperature=[1.5, 3.0], members=4, seed=1)
>>> eq.validate(system).spin.dtype
dtype('int8')

``import eqflow`` is light: the public names below are loaded on first use (PEP 562), so
``eqflow --version`` and plug-in discovery import neither xarray nor zarr, and the heavy
libraries (torch, numba, scipy.stats, scikit-learn, networkx, matplotlib) are imported
only by the functions that use them. The ``ds.eqflow`` accessor is registered as soon as
xarray is imported, before or after eqflow.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from ._version import __version__

# public name -> (module, attribute or None for the module itself)
_LAZY = {
    "anneal": ("schedule", "anneal"),
    "validate": ("dataset", "validate"),
    "SchemaError": ("errors", "SchemaError"),
    "StoreError": ("errors", "StoreError"),
    "available": ("registry", "available"),
    "register": ("registry", "register"),
    "get_system": ("registry", "get"),
    "final_state": ("results", "final_state"),
    "final_values": ("results", "final_values"),
    "to_inference_data": ("results", "to_inference_data"),
    "open": ("results", "open"),
    "run": ("runner", "run"),
    "write_samples": ("samples", "write_samples"),
    "HistoryStore": ("store", "HistoryStore"),
    "summarize": ("summary", "summarize"),
    "Kernel": ("system", "Kernel"),
    "Operator": ("system", "Operator"),
    "System": ("system", "System"),
    "ureg": ("units", "ureg"),
    "verify": ("store.verify", "verify"),
    **{name: (name, None) for name in ("backends", "diagnostics", "generators", "outcomes", "plot", "random",
                                       "reporting", "stop", "systems", "testing")},
}
# names that need no xarray (plug-in discovery, the contract's classes) or are submodules (which the
# core's own modules import from each other): no accessor on their way
_LIGHT = {"SchemaError", "StoreError", "available", "register", "get_system", "Kernel", "Operator", "System",
          *(name for name, (_, attr) in _LAZY.items() if attr is None)}

if TYPE_CHECKING:  # pragma: no cover  (static tools see the eager names)
    from . import (  # noqa: F401
        backends,
        diagnostics,
        generators,
        outcomes,
        plot,
        random,
        reporting,
        stop,
        systems,
        testing,
    )
    from .dataset import validate  # noqa: F401
    from .errors import SchemaError, StoreError  # noqa: F401
    from .registry import available, register  # noqa: F401
    from .registry import get as get_system  # noqa: F401
    from .results import final_state, final_values, open, to_inference_data  # noqa: F401
    from .runner import run  # noqa: F401
    from .samples import write_samples  # noqa: F401
    from .schedule import anneal  # noqa: F401
    from .store import HistoryStore  # noqa: F401
    from .store.verify import verify  # noqa: F401
    from .summary import summarize  # noqa: F401
    from .system import Kernel, Operator, System  # noqa: F401
    from .units import ureg  # noqa: F401


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'eqflow' has no attribute {name!r}")
    if name not in _LIGHT:
        importlib.import_module(f"{__name__}.accessor")  # registers ds.eqflow
    module, attr = _LAZY[name]
    value = importlib.import_module(f"{__name__}.{module}")
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})


def create(kind: str, **kwargs):
    """A new system Dataset of ``kind`` (see ``eq.systems.<kind>.create`` for its parameters)."""
    importlib.import_module(f"{__name__}.accessor")  # registers ds.eqflow
    from .registry import get

    return get(kind).create(**kwargs)


class _AccessorAfterXarray:
    """A meta-path finder that registers ``ds.eqflow`` right after xarray is imported, whenever
    that happens (``import eqflow`` then ``import xarray``): the accessor module is light."""

    def find_spec(self, name, path=None, target=None):
        if name != "xarray":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                importlib.import_module(f"{__name__}.accessor")

            spec.loader.exec_module = exec_module
        return spec


if "xarray" in sys.modules:  # xarray is already paid for: register ds.eqflow now
    importlib.import_module(f"{__name__}.accessor")
elif not any(isinstance(finder, _AccessorAfterXarray) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AccessorAfterXarray())

__all__ = [
    "anneal", "HistoryStore",
    "Kernel", "Operator", "SchemaError", "StoreError", "System", "available", "create", "diagnostics", "final_state",
    "final_values", "get_system", "open", "outcomes", "random", "register", "reporting", "run", "stop", "summarize",
    "systems", "to_inference_data", "ureg", "validate", "verify", "write_samples", "__version__",
]
