"""Observables of the 2D Ising model, per spin: energy, magnetization and its absolute value."""
from __future__ import annotations

import sys

import numpy as np

from ...backends import namespace


def lattice_sum(xp, values, bound: int):
    """The exact int64 sum over the last two axes of int8 ``values`` with |value| <= ``bound``,
    accumulated in the narrowest integer type that holds it: the whole lattice in int16 where
    its sum fits (small lattices), else each row in int16 then the rows in int64. In NumPy 3-5x
    faster than one int64 sum, which widens every site first."""
    if bound * values.shape[-1] * values.shape[-2] < 2**15:
        return xp.astype(xp.sum(xp.reshape(values, (*values.shape[:-2], -1)), axis=-1, dtype=xp.int16), xp.int64)
    narrow = xp.int16 if bound * values.shape[-1] < 2**15 else xp.int64
    return xp.sum(xp.sum(values, axis=-1, dtype=narrow), axis=-1, dtype=xp.int64)


def energy(*, spin, coupling, field):
    """Energy per spin, (-J sum_<ij> s_i s_j - h sum_i s_i) / L^2, in the unit of J (k_B K)."""
    xp = namespace(spin)
    sums = compiled_sums(spin)
    if sums is not None:
        bonds, total = sums
    else:
        right = xp.concat([spin[..., 1:], spin[..., :1]], axis=-1)
        down = xp.concat([spin[..., 1:, :], spin[..., :1, :]], axis=-2)
        bonds = lattice_sum(xp, spin * (right + down), 2)  # exact; float64 holds it exactly
        total = lattice_sum(xp, spin, 1)
    return -(coupling * bonds + field * total) / (spin.shape[-1] * spin.shape[-2])


def magnetization(*, spin):
    """Magnetization per spin, sum_i s_i / L^2 (dimensionless)."""
    xp = namespace(spin)
    sums = compiled_sums(spin)
    total = sums[1] if sums is not None else lattice_sum(xp, spin, 1)
    return xp.astype(total, xp.float64) / (spin.shape[-1] * spin.shape[-2])


COMPILED_ROW = 64  # sites per row from which the compiled sums beat NumPy's (64²: 44 -> 26 us for E and M)


def compiled_sums(spin):
    """The exact (bond sum, spin sum) per lattice from the numba kernels
    (:func:`eqflow.systems.ising.kernels.ising_sums`: the same integers, so the same energies bit
    for bit) where ``spin`` is a NumPy int8 array and numba is already loaded (a numba kernel
    runs): NumPy's E and M of a 64² lattice (~40 us, a dozen small calls) cost more than its
    compiled sweep. Only rows of at least COMPILED_ROW sites: the compiled pass goes row by row,
    and on 32-site rows NumPy's whole-array passes were faster (RESULTS.md). Else None: the
    array-API code above, and no numba import for it."""
    if type(spin) is not np.ndarray or spin.dtype != np.int8 or spin.ndim < 2 or spin.shape[-1] < COMPILED_ROW \
            or "numba" not in sys.modules:
        return None
    try:
        from .kernels import ising_sums
    except ImportError:
        return None
    return ising_sums(spin)


def abs_magnetization(*, spin):
    """|M| / L^2 (dimensionless): the order parameter of a finite lattice at h = 0, where the
    signed magnetization averages to zero over long runs even below T_c."""
    xp = namespace(spin)
    return xp.abs(magnetization(spin=spin))
