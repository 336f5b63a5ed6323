"""Observables of the 2D Ising model, per spin: energy, magnetization and its absolute value."""
from __future__ import annotations

from ...backends import namespace


def energy(*, spin, coupling, field):
    """Energy per spin, (-J sum_<ij> s_i s_j - h sum_i s_i) / L^2, in the unit of J (k_B K)."""
    xp = namespace(spin)
    right = xp.concat([spin[..., 1:], spin[..., :1]], axis=-1)
    down = xp.concat([spin[..., 1:, :], spin[..., :1, :]], axis=-2)
    bonds = xp.sum(spin * (right + down), axis=(-2, -1), dtype=xp.int64)  # exact; float64 holds it exactly
    total = xp.sum(spin, axis=(-2, -1), dtype=xp.int64)
    return -(coupling * bonds + field * total) / (spin.shape[-1] * spin.shape[-2])


def magnetization(*, spin):
    """Magnetization per spin, sum_i s_i / L^2 (dimensionless)."""
    xp = namespace(spin)
    return xp.astype(xp.sum(spin, axis=(-2, -1), dtype=xp.int64), xp.float64) / (spin.shape[-1] * spin.shape[-2])


def abs_magnetization(*, spin):
    """|M| / L^2 (dimensionless): the order parameter of a finite lattice at h = 0, where the
    signed magnetization averages to zero over long runs even below T_c."""
    xp = namespace(spin)
    return xp.abs(magnetization(spin=spin))
