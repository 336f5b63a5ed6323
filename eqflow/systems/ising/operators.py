"""Checkerboard Metropolis and heat-bath sweeps of the 2D Ising model: pure functions over raw arrays.

Vectorised over leading (ensemble) dims, NumPy or torch. One step = one sweep: the black
sublattice ((x + y) even), then the white one. Each site gets one 32-bit random word w per
sweep; a move of probability P is accepted when w < round(P 2^32), an integer comparison,
so every backend takes the same decisions (P is resolved to 2^-32).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace

WORD = 2.0**32  # random words are uniform integers in [0, 2^32)


def periodic_pad(spin):
    """``spin`` with one periodic ghost row/column on each side: shape (..., L_y + 2, L_x + 2)."""
    xp = namespace(spin)
    rows = xp.concat([spin[..., -1:, :], spin, spin[..., :1, :]], axis=-2)
    return xp.concat([rows[..., -1:], rows, rows[..., :1]], axis=-1)


def neighbour_sum(spin):
    """Sum of the four nearest neighbours with periodic boundaries (same dtype as ``spin``)."""
    p = periodic_pad(spin)
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def thresholds(probability: np.ndarray) -> np.ndarray:
    """Integer acceptance thresholds round(P 2^32), int64: a word w < threshold has probability ~P."""
    return np.rint(np.clip(probability, 0.0, 1.0) * WORD).astype(np.int64)


def _cell_offsets(temperature, entries):
    """Cell offsets into a flat per-cell table: shape ensemble + (1, 1), in the smallest signed
    integer type that holds every index, so that the per-site index stays narrow (int8 for up
    to 12 cells) instead of becoming an int64 array."""
    top = temperature.size * entries
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64) if top <= np.iinfo(t).max)
    return (np.arange(temperature.size, dtype=dtype) * dtype(entries)).reshape(temperature.shape + (1, 1))


def _lookup(table, index):
    """``table[index]``; torch indexes with int64 only, NumPy with any integer type."""
    if not isinstance(index, np.ndarray):
        index = namespace(index).astype(index, namespace(index).int64)
    return table[index]


def checkerboard(sizes):
    """The two sublattice masks, shape (2, L_y, L_x) bool: black ((x + y) even), then white."""
    parity = (np.arange(sizes["y"])[:, None] + np.arange(sizes["x"])[None, :]) % 2
    return np.stack([parity == 0, parity == 1])


def metropolis_acceptance(*, temperature, coupling, field, sizes, zero_move_probability=0.5):
    """Per-cell Metropolis acceptance thresholds for dE = 2 s (J n + h), as round(P 2^32).

    Indexed by (s > 0, (n + 4) / 2), n the neighbour sum. P = 1 for dE < 0, exp(-dE / T)
    for dE > 0 and ``zero_move_probability`` (1/2) for dE = 0 (see :func:`metropolis`;
    1 gives the textbook rule and its frozen states). Computed in float64 NumPy so that
    every backend compares against the same integers.
    """
    s = np.array([-1.0, 1.0])[:, None]
    n = np.arange(-4.0, 5.0, 2.0)[None, :]
    j, h, t = (np.asarray(a, dtype=np.float64)[..., None, None] for a in (coupling, field, temperature))
    delta = 2.0 * s * (j * n + h)
    with np.errstate(over="ignore"):
        table = np.where(delta < 0, 1.0, np.where(delta == 0, zero_move_probability, np.exp(-delta / t)))
    return {"acceptance": thresholds(table).reshape(-1), "cell_offset": _cell_offsets(np.asarray(temperature), 10),
            "checkerboard": checkerboard(sizes)}


def metropolis(*, spin, words, acceptance, cell_offset, checkerboard):
    """One checkerboard Metropolis sweep: flip s_i with probability P(dE_i), black then white.

    dE_i = 2 s_i (J n_i + h). Acceptance min(1, exp(-dE/T)) except that dE = 0 moves are
    accepted with probability 1/2 (symmetric, so detailed balance holds): with probability
    1, checkerboard updates never leave configurations in which every spin has zero local
    field (36 of the 2^16 states at L = 4, e.g. 2x2 blocks) and an ensemble can freeze at
    E = 0. Metropolis et al., J. Chem. Phys. 21, 1087 (1953).

    spin : int8 (..., L_y, L_x); words : int64 (..., L_y, L_x) uniform in [0, 2^32).
    """
    xp = namespace(spin)
    for color in (checkerboard[0], checkerboard[1]):
        index = cell_offset + (5 * spin + neighbour_sum(spin) + 9) // 2  # (s > 0) * 5 + (n + 4) / 2, in int8
        flip = (words < _lookup(acceptance, index)) & color
        spin = xp.where(flip, -spin, spin)
    return {"spin": spin}


def heat_bath_probability(*, temperature, coupling, field, sizes):
    """Per-cell thresholds round(P_up 2^32), P_up = 1 / (1 + exp(-2 (J n + h) / T)), by neighbour sum n."""
    n = np.arange(-4.0, 5.0, 2.0)
    j, h, t = (np.asarray(a, dtype=np.float64)[..., None] for a in (coupling, field, temperature))
    with np.errstate(over="ignore"):
        table = 1.0 / (1.0 + np.exp(-2.0 * (j * n + h) / t))
    return {"probability_up": thresholds(table).reshape(-1), "cell_offset": _cell_offsets(np.asarray(temperature), 5),
            "checkerboard": checkerboard(sizes)}


def heat_bath(*, spin, words, probability_up, cell_offset, checkerboard):
    """One checkerboard heat-bath sweep: s_i = +1 with probability 1 / (1 + exp(-2 (J n_i + h) / T)).

    Glauber, J. Math. Phys. 4, 294 (1963). Shapes as in :func:`metropolis`.
    """
    xp = namespace(spin)
    for color in (checkerboard[0], checkerboard[1]):
        up = words < _lookup(probability_up, cell_offset + (neighbour_sum(spin) + 4) // 2)
        new = xp.where(up, xp.ones_like(spin), -xp.ones_like(spin))
        spin = xp.where(color, new, spin)
    return {"spin": spin}
