"""The operators' numba and Triton kernels as :class:`eqflow.Kernel` variants; numba, triton and torch are
imported on first call only, so that the system loads (and ``kernel="auto"`` falls back to the reference)
without them."""
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


def triton_metropolis(*, spin, keys, slots, step, acceptance):
    from .gpu import metropolis as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, acceptance=acceptance)


def triton_heat_bath(*, spin, keys, slots, step, probability_up):
    from .gpu import heat_bath as fn

    return fn(spin=spin, keys=keys, slots=slots, step=step, probability_up=probability_up)


def triton(name: str) -> dict:
    """{"triton": the Kernel of operator ``name``} (torch backend): compiled on CUDA, where ``kernel="auto"``
    picks it; on the CPU it runs in Triton's interpreter (exact, slow) only when asked for by name."""
    return {"triton": Kernel(globals()[f"triton_{name}"], backends=("torch",), devices=("cuda", "cpu"),
                             auto_devices=("cuda",), requires=("triton",), install="eqflow[gpu]",
                             inline_draws=True)}


def numba(name: str) -> dict:
    """{"numba": the Kernel of operator ``name``} (NumPy backend, draws made inline)."""
    return {"numba": Kernel(globals()[name], backends=("numpy",), requires=("numba",), inline_draws=True)}
