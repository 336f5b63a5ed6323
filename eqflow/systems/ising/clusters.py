"""Cluster updates of the 2D Ising model at h = 0: Wolff (one cluster) and Swendsen-Wang (all clusters).

Both use the Fortuin-Kasteleyn bond graph of one step: the bond between neighbours i, j is
*satisfied* when J s_i s_j > 0, and a satisfied bond is *active* with probability
p = 1 - exp(-2 |J| / T), decided by its own 32-bit word w: active iff w < round(p 2^32).
Each site owns two bonds, to its right and lower neighbours; the words are the draw
``bonds`` of shape (2, L_y, L_x): ``bonds[0, y, x]`` for (y, x)-(y, x + 1), ``bonds[1, y, x]``
for (y, x)-(y + 1, x), periodic. A cluster is a connected component of the active bonds:
a property of the step's draws alone, whatever the order in which it is grown, so every
kernel that grows it (label propagation here, a stack or union-find in :mod:`.kernels`)
gives the same history bit for bit.

- ``wolff``: one step = one cluster: the component of the seed site (``row``, ``column``,
  uniform integers), flipped whole. Wolff, Phys. Rev. Lett. 62, 361 (1989).
- ``swendsen_wang``: one step = one sweep of all clusters: each component is flipped when the
  ``coins`` word of its lowest site (index y L_x + x) is < 2^31, i.e. with probability 1/2.
  Swendsen & Wang, Phys. Rev. Lett. 58, 86 (1987).

Both report ``flipped``, the number of spins flipped in the step (a Wolff step flips on
average <|C|> spins; sweep-equivalents are sum(flipped) / L^2). A field h != 0 is refused:
these cluster moves are exact only for h = 0.
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from .operators import thresholds

HALF = 2**31  # a coin word w < 2^31 has probability 1/2


def bond_probability(*, temperature, coupling, field, sizes, operator="cluster"):
    """Per-cell FK bond thresholds round((1 - exp(-2 |J| / T)) 2^32) and the sign of J.

    Returns ``bond_threshold`` (int64) and ``bond_sign`` (int8, -1, 0 or 1), both shaped
    ensemble + (1, 1). Raises a SchemaError naming ``field`` unless h = 0 everywhere.
    """
    field = np.asarray(field, dtype=np.float64)
    if np.any(field != 0):
        bad = np.unique(field[field != 0])[:5].tolist()
        raise SchemaError(f"field: the {operator} cluster update is exact only at h = 0 (a field breaks the spin-flip "
                          f"symmetry its clusters rely on), got h = {bad} k_B K; use metropolis or heat_bath",
                          kind="ising")
    j = np.asarray(coupling, dtype=np.float64)
    t = np.asarray(temperature, dtype=np.float64)
    shape = np.broadcast_shapes(j.shape, t.shape) + (1, 1)
    p = -np.expm1(-2.0 * np.abs(j) / t)
    return {"bond_threshold": thresholds(np.broadcast_to(p, shape[:-2])).reshape(shape),
            "bond_sign": np.broadcast_to(np.sign(j), shape[:-2]).astype(np.int8).reshape(shape)}


def wolff_probability(*, temperature, coupling, field, sizes):
    return bond_probability(temperature=temperature, coupling=coupling, field=field, sizes=sizes, operator="wolff")


def swendsen_wang_probability(*, temperature, coupling, field, sizes):
    return bond_probability(temperature=temperature, coupling=coupling, field=field, sizes=sizes,
                            operator="swendsen_wang")


def active_bonds(spin, bonds, bond_threshold, bond_sign):
    """(right, down) bool arrays (..., L_y, L_x): the active FK bonds of each site."""
    xp = namespace(spin)
    right = xp.roll(spin, -1, axis=-1)
    down = xp.roll(spin, -1, axis=-2)
    satisfied_right = bond_sign * spin * right > 0
    satisfied_down = bond_sign * spin * down > 0
    return (satisfied_right & (bonds[..., 0, :, :] < bond_threshold),
            satisfied_down & (bonds[..., 1, :, :] < bond_threshold))


def _grow(mask, right, down):
    """``mask`` plus every site joined to it by one active bond."""
    xp = namespace(mask)
    return (mask | (xp.roll(mask, -1, axis=-1) & right) | xp.roll(mask & right, 1, axis=-1)
            | (xp.roll(mask, -1, axis=-2) & down) | xp.roll(mask & down, 1, axis=-2))


def wolff(*, spin, row, column, bonds, bond_threshold, bond_sign):
    """One Wolff step: flip the FK cluster of the seed site (``row``, ``column``).

    spin : int8 (..., L_y, L_x); row, column : int64 (...) seed coordinates; bonds : int64
    (..., 2, L_y, L_x) words. Returns the new ``spin`` and ``flipped`` (int64 (...), the cluster size).
    The cluster is grown by one bond per pass over the lattice until it stops growing.
    """
    xp = namespace(spin)
    right, down = active_bonds(spin, bonds, bond_threshold, bond_sign)
    ny, nx = spin.shape[-2:]
    ys = xp.reshape(xp.arange(ny, dtype=xp.int64), (ny, 1))
    xs = xp.reshape(xp.arange(nx, dtype=xp.int64), (1, nx))
    cluster = (ys == row[..., None, None]) & (xs == column[..., None, None])
    while True:
        grown = _grow(cluster, right, down)
        if bool(xp.all(grown == cluster)):
            break
        cluster = grown
    return {"spin": xp.where(cluster, -spin, spin), "flipped": xp.sum(xp.astype(cluster, xp.int64), axis=(-2, -1))}


def component_roots(right, down):
    """The lowest site index (y L_x + x) of each site's component of active bonds: int64 (..., L_y, L_x).

    Label propagation (each site takes the smallest label among itself and its active
    neighbours) alternated with pointer jumping (label <- label[label]); both keep a label
    inside its component and never raise it, so the fixed point is the component's minimum.
    """
    xp = namespace(right)
    shape = tuple(right.shape)
    ny, nx = shape[-2:]
    n = ny * nx
    cells = int(np.prod(shape[:-2], dtype=np.int64))
    label = xp.reshape(xp.arange(n, dtype=xp.int64), (ny, nx)) + xp.zeros(shape, dtype=xp.int64)
    big = xp.full(shape, n, dtype=xp.int64)
    lr, ld = xp.roll(right, 1, axis=-1), xp.roll(down, 1, axis=-2)  # the bond to the left / upper neighbour
    rows = xp.reshape(xp.arange(cells, dtype=xp.int64), (cells, 1))
    while True:
        new = xp.minimum(label, xp.where(right, xp.roll(label, -1, axis=-1), big))
        new = xp.minimum(new, xp.where(lr, xp.roll(label, 1, axis=-1), big))
        new = xp.minimum(new, xp.where(down, xp.roll(label, -1, axis=-2), big))
        new = xp.minimum(new, xp.where(ld, xp.roll(label, 1, axis=-2), big))
        flat = xp.reshape(new, (cells, n))
        new = xp.reshape(flat[rows, flat], shape)  # pointer jumping
        if bool(xp.all(new == label)):
            return label
        label = new


def swendsen_wang(*, spin, bonds, coins, bond_threshold, bond_sign):
    """One Swendsen-Wang step: every FK cluster flipped with probability 1/2 (the coin of its lowest site).

    spin : int8 (..., L_y, L_x); bonds : int64 (..., 2, L_y, L_x); coins : int64 (..., L_y, L_x).
    Returns the new ``spin`` and ``flipped`` (int64 (...), spins flipped).
    """
    xp = namespace(spin)
    right, down = active_bonds(spin, bonds, bond_threshold, bond_sign)
    root = component_roots(right, down)
    shape = tuple(spin.shape)
    cells, n = int(np.prod(shape[:-2], dtype=np.int64)), shape[-1] * shape[-2]
    rows = xp.reshape(xp.arange(cells, dtype=xp.int64), (cells, 1))
    coin = xp.reshape(coins, (cells, n))[rows, xp.reshape(root, (cells, n))]
    flip = xp.reshape(coin < HALF, shape)
    return {"spin": xp.where(flip, -spin, spin), "flipped": xp.sum(xp.astype(flip, xp.int64), axis=(-2, -1))}
