"""The numba kernels as :class:`eqflow.Kernel` variants; numba is imported on first call only, so the
system loads (and ``kernel="auto"`` falls back to the reference) without it."""
from __future__ import annotations

from ...system import Kernel


def glauber(*, spin, sequence, uniforms, table, scale, power):
    from .kernels import glauber as fn

    return fn(spin=spin, sequence=sequence, uniforms=uniforms, table=table, scale=scale, power=power)


def zero_temperature(*, spin, sequence, table, scale, power):
    from .kernels import zero_temperature as fn

    return fn(spin=spin, sequence=sequence, table=table, scale=scale, power=power)


def numba(name: str) -> dict:
    """{"numba": the Kernel of operator ``name``} (NumPy backend; the declared draws are made by eqflow)."""
    return {"numba": Kernel(globals()[name], backends=("numpy",), requires=("numba",))}
