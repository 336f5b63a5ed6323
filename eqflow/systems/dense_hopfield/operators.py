"""Glauber and zero-temperature sweeps of the dense Hopfield network: pure functions over raw arrays.

H = -N sum_mu (m_mu)^P / P with m_mu = (1/N) sum_i xi_i^mu sigma_i. Write A = N m_mu^(i), the
integer overlap without neuron i. Setting sigma_i = s gives H = const - s h_i with

    h_i = sum_mu xi_i^mu Q_P(A_i^mu) / (P N^(P-1)),   Q_P(A) = sum_{k odd} C(P, k) A^(P-k)

(Q_2 = 2A, Q_3 = 3A^2 + 1, Q_4 = 4A^3 + 4A), since ((A + s x)^P - (A - s x)^P) / 2 = s x Q_P(A)
for x = +-1. The field excludes neuron i's self-interaction (it does not depend on sigma_i)
and flipping sigma_i changes H by exactly 2 sigma_i h_i, so the heat bath below satisfies
detailed balance with exp(-beta H). To leading order h_i = sum_mu xi_i^mu (m_mu^(i))^(P-1).

Everything that decides a move is an integer: the overlaps N m_mu (int64, computed once per sweep
and updated after every flip, so a sweep costs O(N K)) and G_i = sum_mu xi_i^mu Q_P(A_i^mu)
(int64, exact while K N^P < 2^62, checked by ``create``). NumPy and torch therefore take the same
decisions; the heat bath compares 2 beta h_i = G_i scale (one float product) with a threshold
made from its uniform draw by IEEE-exact operations (:func:`logit_thresholds`), so it too is
the same bit for bit on every backend and in the numba kernel (:mod:`.kernels`).
Vectorised over the ensemble: the C cells (members x temperatures) update one neuron each at a time.
"""
from __future__ import annotations

import math

import numpy as np

from ...backends import namespace
from ...random.gaussian import exact_log
from ...random.philox import ops_for


def field_coefficients(order: int) -> list[int]:
    """C(P, k) for k = 1, 3, 5, ... <= P: the coefficients of Q_P as a polynomial in A^2, highest power first.

    Q_P(A) = sum_{k odd} C(P, k) A^(P-k). For odd P the powers P-1, P-3, ..., 0 are even, so
    Q_P = poly(A^2); for even P they are odd (P-1, ..., 1), so Q_P = A poly(A^2). E.g. P = 4:
    [4, 4], Q_4 = A (4 A^2 + 4).
    """
    return [math.comb(order, k) for k in range(1, order + 1, 2)]


def field_sum(a, order: int):
    """Q_P(a) for an int64 array ``a`` (exact integer arithmetic, NumPy or torch)."""
    coefficients = field_coefficients(order)
    a2 = a * a
    q = a2 * 0 + coefficients[0]
    for c in coefficients[1:]:
        q = q * a2 + c
    return q * a if order % 2 == 0 else q


def order_of(order) -> int:
    """The interaction order P as a Python int, from a scalar or an ensemble-shaped array."""
    value = order.reshape(-1)[0] if hasattr(order, "reshape") and np.ndim(order) else order
    return int(round(float(value)))


def prepare(*, patterns, temperature, order, sizes):
    """Per-cell tables from the constants and parameters, NumPy, once per run (chunk).

    Returns ``table`` int8 (G, N, K), the patterns neuron-major (G = 1: shared by every cell,
    else one per cell), ``table_float`` the same in float64 (for the overlaps as a matmul),
    ``cells`` int64 (C,), ``row_base`` int64 (C,) = g(c) N (the first row of a cell's table in
    the flat (G N, K) view), ``spin_base`` = c N, ``scale`` float64 (C,) = 2 / (P N^(P-1) T)
    (inf at T = 0) so that 2 beta h_i = scale G_i, and ``power`` = P (int).
    """
    ensemble = np.shape(temperature)
    cells = math.prod(ensemble)
    n, k = sizes["neuron"], sizes["pattern"]
    power = order_of(np.asarray(order))
    per_cell = any(s > 1 for s in np.shape(patterns)[:-2])
    xi = np.asarray(patterns)
    if per_cell:
        xi = np.broadcast_to(xi, (*ensemble, k, n)).reshape(cells, k, n)
    else:
        xi = xi.reshape(1, k, n)
    table = np.ascontiguousarray(np.swapaxes(xi, 1, 2)).astype(np.int8)
    index = np.arange(cells, dtype=np.int64)
    t = np.asarray(temperature, dtype=np.float64).reshape(cells)
    with np.errstate(divide="ignore"):
        scale = 2.0 / (power * float(n) ** (power - 1) * t)
    return {"table": table, "table_float": table.astype(np.float64), "cells": index,
            "row_base": (index if per_cell else np.zeros(cells, np.int64)) * n, "spin_base": index * n,
            "scale": scale, "power": power}


def overlaps(spin_flat, table_float):
    """Integer overlaps N m_mu = sum_i xi_i^mu sigma_i, int64 (C, K), from spins (C, N) and (G, N, K).

    A float64 matmul (exact: every partial sum is an integer of magnitude <= N), then int64.
    """
    xp = namespace(spin_flat)
    s = xp.astype(spin_flat, xp.float64)[:, None, :]
    return xp.astype(xp.round(xp.matmul(s, table_float)[:, 0, :]), xp.int64)


def _sweep(spin, order, power, tables, decide):
    """One sequential sweep over the N neurons in the order ``order`` (C, N); ``decide(t, G, s)`` gives the new
    spins (int64 (C,)) from the integer fields G = P N^(P-1) h and the current spins of update t.
    ``tables``: (table, table_float, row_base, spin_base) from :func:`prepare`."""
    table, table_float, row_base, spin_base = tables
    xp = namespace(spin)
    c, n = spin_base.shape[0], spin.shape[-1]
    flat = xp.reshape(spin, (c, n))
    overlap = overlaps(flat, table_float)
    spins = xp.reshape(xp.astype(flat, xp.int64), (-1,))  # a flat copy: one scatter per update
    rows = xp.reshape(table, (-1, table.shape[-1]))
    flips = xp.zeros_like(spin_base)
    for t in range(n):
        j = order[:, t]
        x = xp.astype(rows[row_base + j], xp.int64)  # (C, K): xi_j^mu of each cell's neuron j
        at = spin_base + j
        s = spins[at]
        a = overlap - x * s[:, None]  # the overlaps without neuron j
        new = decide(t, xp.sum(x * field_sum(a, power), axis=1), s)
        overlap = a + x * new[:, None]
        spins[at] = new
        flips = flips + xp.astype(new != s, flips.dtype)
    out = xp.astype(xp.reshape(spins, spin.shape), spin.dtype)
    return {"spin": out, "flips": xp.reshape(flips, spin.shape[:-1])}


def logit_thresholds(uniforms):
    """log(u / (1 - u)) of each uniform draw u in [0, 1), float64 (-inf at u = 0).

    The heat bath sets a neuron up when u < 1 / (1 + exp(-z)), z = 2 beta h, that is when
    z > log(u / (1 - u)). The log is :func:`eqflow.random.gaussian.exact_log` (IEEE-exact
    operations in a fixed order, within 2 ulp), so NumPy, torch and the numba kernel compare
    against the same thresholds bit for bit; 1 - u is exact and the ratio rounds once.
    """
    xp = namespace(uniforms)
    ratio = uniforms / (1.0 - uniforms)
    positive = ratio > 0.0
    safe = xp.where(positive, ratio, xp.ones_like(ratio))
    return xp.where(positive, exact_log(ops_for(safe), safe), xp.full_like(ratio, -math.inf))


def heat_bath_argument(g, scale):
    """z = 2 beta h = G scale (float64), 0 where G = 0 (at T = 0, 0 * inf would be NaN; h = 0 is a fair coin)."""
    xp = namespace(g)
    z = xp.astype(g, xp.float64) * scale
    return xp.where(g == 0, xp.zeros_like(z), z)


def glauber(*, spin, sequence, uniforms, table, table_float, row_base, spin_base, scale, power):
    """One heat-bath (Glauber) sweep: N sequential updates in the random order ``sequence`` of this sweep.

    The t-th update sets neuron j = sequence[t] to +1 with probability 1 / (1 + exp(-2 beta h_j)),
    decided as 2 beta h_j > log(u_t / (1 - u_t)) (:func:`logit_thresholds`), else to -1
    (Glauber, J. Math. Phys. 4, 294 (1963)); at T = 0 the sign of h_j, a fair coin (u_t < 1/2)
    where h_j = 0. spin : int8 (..., N); sequence : int64 (..., N), a permutation per cell and
    sweep; uniforms : float64 (..., N) in [0, 1). Returns the new ``spin`` and ``flips`` (int64 (...)).
    """
    xp = namespace(spin)
    c = spin_base.shape[0]
    order = xp.reshape(sequence, (c, -1))
    threshold = logit_thresholds(xp.reshape(uniforms, (c, -1)))
    one = xp.ones_like(spin_base)

    def decide(t, g, s):
        return xp.where(heat_bath_argument(g, scale) > threshold[:, t], one, -one)

    return _sweep(spin, order, power, (table, table_float, row_base, spin_base), decide)


def zero_temperature(*, spin, sequence, table, table_float, row_base, spin_base, power):
    """One asynchronous zero-temperature sweep: sigma_j <- sign(h_j) for j = sequence[0], sequence[1], ...

    A neuron with h_j = 0 keeps its value, so H never increases (each flip lowers it by
    2 |h_j|) and a sweep without flips ends in a local minimum. Shapes as in :func:`glauber`.
    """
    xp = namespace(spin)
    c = spin_base.shape[0]
    order = xp.reshape(sequence, (c, -1))
    one = xp.ones_like(spin_base)

    def decide(t, g, s):
        return xp.where(g > 0, one, xp.where(g < 0, -one, s))

    return _sweep(spin, order, power, (table, table_float, row_base, spin_base), decide)
