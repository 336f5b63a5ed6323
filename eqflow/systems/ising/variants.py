"""The operators' numba kernels as :class:`eqflow.Kernel` variants; numba is imported on first call only,
so that the system loads (and ``kernel="auto"`` falls back to the reference) without it."""
from __future__ import annotations

from ...system import Kernel


def metropolis(*, spin, keys, slots, step, acceptance):
    from .kernels import metropolis as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, acceptance=acceptance)


def heat_bath(*, spin, keys, slots, step, probability_up):
    from .kernels import heat_bath as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, probability_up=probability_up)


def wolff(*, spin, keys, slots, step, bond_threshold, bond_sign):
    from .kernels import wolff as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, bond_threshold=bond_threshold, bond_sign=bond_sign)


def swendsen_wang(*, spin, keys, slots, step, bond_threshold, bond_sign):
    from .kernels import swendsen_wang as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, bond_threshold=bond_threshold, bond_sign=bond_sign)


def numba(name: str) -> dict:
    """{"numba": the Kernel of operator ``name``} (NumPy backend, draws made inline)."""
    return {"numba": Kernel(globals()[name], backends=("numpy",), requires=("numba",), inline_draws=True)}
