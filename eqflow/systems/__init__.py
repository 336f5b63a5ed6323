"""Built-in system kinds: each is one package here (create, operators, observables, theory).

The packages are found, not listed: ``eq.systems.<kind>`` imports one on first use.
"""
from importlib import import_module


def __getattr__(name):
    from ..registry import builtin

    if name in builtin():
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; built-in kinds: {sorted(builtin())}")


def __dir__():
    from ..registry import builtin

    return sorted(builtin())
