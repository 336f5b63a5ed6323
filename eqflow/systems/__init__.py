"""Built-in system kinds; each is one self-contained module (create, operators, observables, theory)."""
from importlib import import_module

__all__ = ["ising", "scf"]


def __getattr__(name):
    if name in __all__:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(name)
