"""Observables of the dense Hopfield network: Mattis overlaps, energy per neuron, retrieval, unstable neurons.

They read the raw constant ``patterns`` (*ensemble or 1, K, N) and the parameter ``order``,
so they need nothing an operator prepared.
"""
from __future__ import annotations

import math

from ...backends import namespace
from .operators import field_sum, order_of


def _integer_overlaps(spin, patterns):
    """N m_mu as float64 (..., K): a float64 matmul of integers (exact)."""
    xp = namespace(spin)
    s = xp.astype(spin, xp.float64)[..., None]
    return xp.matmul(xp.astype(patterns, xp.float64), s)[..., 0]


def overlap(*, spin, patterns):
    """Mattis overlaps m_mu = (1/N) sum_i xi_i^mu sigma_i, float64 (..., K)."""
    return _integer_overlaps(spin, patterns) / spin.shape[-1]


def energy(*, spin, patterns, order):
    """Energy per neuron H / N = -sum_mu (m_mu)^P / P, float64 (...)."""
    xp = namespace(spin)
    p = order_of(order)
    m = overlap(spin=spin, patterns=patterns)
    return -xp.sum(m**p, axis=-1) / p


def retrieval(*, spin, patterns):
    """max_mu |m_mu|, float64 (...): 1 when the state is a stored pattern or its reverse."""
    xp = namespace(spin)
    return xp.max(xp.abs(overlap(spin=spin, patterns=patterns)), axis=-1)


BLOCK = 2**20  # elements of the (..., neurons, K) int64 intermediates per block of neurons


def integer_fields(spin, patterns, order):
    """G_i = P N^(P-1) h_i = sum_mu xi_i^mu Q_P(A_i^mu), int64 (..., N), with A_i^mu = N m_mu - xi_i^mu sigma_i.

    O(N K) per cell, in blocks of neurons so that the (..., block, K) intermediates stay near
    ``BLOCK`` elements (see :mod:`.operators` for Q_P).
    """
    xp = namespace(spin)
    p = order_of(order)
    big = xp.astype(xp.round(_integer_overlaps(spin, patterns)), xp.int64)[..., None, :]  # (..., 1, K)
    s = xp.astype(spin, xp.int64)
    n, k = spin.shape[-1], patterns.shape[-2]
    cells = max(1, math.prod(spin.shape[:-1]))
    step = max(1, BLOCK // (cells * k))
    out = []
    for start in range(0, n, step):
        xi = xp.astype(xp.matrix_transpose(patterns[..., start:start + step]), xp.int64)  # (..., block, K)
        a = big - xi * s[..., start:start + step, None]
        out.append(xp.sum(xi * field_sum(a, p), axis=-1))
    return xp.concat(out, axis=-1)


def unstable(*, spin, patterns, order):
    """Number of neurons with sigma_i h_i < 0 (a flip would lower H), int64 (...); 0: a local minimum."""
    xp = namespace(spin)
    g = integer_fields(spin, patterns, order)
    return xp.sum(xp.astype(xp.astype(spin, xp.int64) * g < 0, xp.int64), axis=-1)
