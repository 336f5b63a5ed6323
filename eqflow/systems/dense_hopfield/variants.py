"""The numba kernels as :class:`eqflow.Kernel` variants, named lazily (``"module:function"``): numba
is imported on first call only, so the system loads (and ``kernel="auto"`` falls back to the
reference) without it."""
from __future__ import annotations

from ...system import Kernel


def numba(name: str) -> dict:
    """{"numba": the Kernel of operator ``name``} (NumPy backend; the declared draws are made by eqflow)."""
    return {"numba": Kernel(f"{__package__}.kernels:{name}", backends=("numpy",), requires=("numba",))}
