"""Observables of the coulomb_gas system: energy, sum |z|^2, sum Re z, disk counts and the radial density.

``position`` is float64 (*E, N, 2) in trap lengths; radial quantities are squared radii
s = |z|^2 (the disk |z|^2 < s has area pi s). NumPy or torch.
"""
from __future__ import annotations

import math

from ...backends import namespace


def _r2(position):
    """|z_i|^2, (*E, N)."""
    return position[..., 0] * position[..., 0] + position[..., 1] * position[..., 1]


def energy(*, position):
    """E = -sum_{i<j} ln|z_i - z_j| + (1/2) sum_i |z_i|^2, (*E) float64.

    One row i at a time (pairs j > i): O(N) memory per cell, N - 1 array passes.
    """
    xp = namespace(position)
    n = position.shape[-2]
    total = 0.5 * xp.sum(_r2(position), axis=-1)
    for i in range(n - 1):
        d = position[..., i + 1:, :] - position[..., i:i + 1, :]
        total = total - 0.5 * xp.sum(xp.log(_r2(d)), axis=-1)
    return total


def sum_r2(*, position):
    """sum_i |z_i|^2, (*E) float64."""
    return namespace(position).sum(_r2(position), axis=-1)


def sum_x(*, position):
    """sum_i Re z_i, (*E) float64."""
    return namespace(position).sum(position[..., 0], axis=-1)


def _below(position, thresholds):
    """#{i : |z_i|^2 < s} for each s of ``thresholds`` (its last axis, length K): int64 (*E, K)."""
    xp = namespace(position)
    s = xp.reshape(thresholds, (thresholds.shape[-1],))
    return xp.sum(xp.astype(_r2(position)[..., :, None] < s, xp.int64), axis=-2)


def inside(*, position, radii):
    """#{i : |z_i|^2 < s} for each squared radius s of ``radii`` (radius,): int64 (*E, radius)."""
    return _below(position, radii)


def density(*, position, bin_edges):
    """Particles per unit area in each annulus s_k <= |z|^2 < s_k+1 of ``bin_edges`` (radius_edge,).

    #{i in annulus k} / (pi (s_k+1 - s_k)), float64 (*E, radius_bin): the radial density
    histogram (1/pi inside the large-N droplet |z|^2 < N).
    """
    xp = namespace(position)
    counts = _below(position, bin_edges)
    edges = xp.reshape(bin_edges, (bin_edges.shape[-1],))
    area = math.pi * (edges[1:] - edges[:-1])
    return xp.astype(counts[..., 1:] - counts[..., :-1], position.dtype) / area
