"""numba kernels of the dense Hopfield sweeps: the reference histories bit for bit, without the Python loop.

The kernels receive the same declared draws as the references (the permutation ``sequence``
and, for Glauber, the uniforms, made by eqflow) and the same prepared tables. Every decision
is the reference's: integer overlaps and fields (int64, exact), and for Glauber the float
product z = G scale compared with the thresholds of :func:`.operators.logit_thresholds`,
computed by the same array function before the loop. One cell per ``prange`` iteration (on one
thread below ``PARALLEL_WORK``): its overlaps (K int64) are built once per sweep and updated after
every flip, O(N K) per sweep.
Compiled on first use and cached on disk (``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...backends import configure_numba
from .operators import field_coefficients, logit_thresholds

configure_numba()  # the thread pool's wait policy, before any parallel loop of this module runs


@njit(inline="always", cache=True)
def _q(a, coefficients, even):
    """Q_P(a) by Horner in a^2 (see :func:`.operators.field_sum`), int64."""
    a2 = a * a
    q = coefficients[0]
    for c in coefficients[1:]:
        q = q * a2 + c
    return q * a if even else q


def _sweeps(spins, order, threshold, table, graph, scale, coefficients, even, zero):
    """Sweep every cell of ``spins`` (C, N) int8 in place; returns flips (C,) int64.

    ``graph`` (C,) int64: each cell's index into ``table`` (G, N, K); ``zero``: the zero-temperature
    rule (``threshold`` and ``scale`` unused), else Glauber.
    """
    cells, n = spins.shape
    k = table.shape[2]
    flips = np.zeros(cells, np.int64)
    for c in prange(cells):
        g = graph[c]
        overlap = np.zeros(k, np.int64)
        for i in range(n):
            s = np.int64(spins[c, i])
            for mu in range(k):
                overlap[mu] += np.int64(table[g, i, mu]) * s
        for t in range(n):
            j = order[c, t]
            s = np.int64(spins[c, j])
            field = np.int64(0)
            for mu in range(k):
                x = np.int64(table[g, j, mu])
                field += x * _q(overlap[mu] - x * s, coefficients, even)
            if zero:
                new = 1 if field > 0 else (-1 if field < 0 else s)
            else:
                z = 0.0 if field == 0 else np.float64(field) * scale[c]
                new = 1 if z > threshold[c, t] else -1
            if new != s:
                for mu in range(k):
                    overlap[mu] += 2 * np.int64(table[g, j, mu]) * new
                spins[c, j] = new
                flips[c] += 1
    return flips


_serial = njit(cache=True)(_sweeps)
_parallel = njit(cache=True, parallel=True)(_sweeps)
PARALLEL_WORK = 2**22  # cells x N x K from which a call runs its cells in parallel (thread start-up ~ 10-100 us)


def _run(spin, sequence, threshold, table, scale, power, zero):
    cells = scale.shape[0]
    flat = np.array(spin.reshape(cells, spin.shape[-1]), dtype=np.int8)
    coefficients = np.array(field_coefficients(power), dtype=np.int64)
    graph = np.arange(cells, dtype=np.int64) if table.shape[0] > 1 else np.zeros(cells, np.int64)
    sweeps = _parallel if cells * table.shape[1] * table.shape[2] >= PARALLEL_WORK else _serial
    flips = sweeps(flat, np.ascontiguousarray(sequence.reshape(cells, -1)), threshold, table, graph, scale,
                    coefficients, power % 2 == 0, zero)
    return {"spin": flat.reshape(spin.shape), "flips": flips.reshape(spin.shape[:-1])}


def glauber(*, spin, sequence, uniforms, table, scale, power):
    """The numba variant of :func:`.operators.glauber` (NumPy arrays, same arguments and result)."""
    cells = scale.shape[0]
    threshold = np.ascontiguousarray(logit_thresholds(uniforms.reshape(cells, -1)))
    return _run(spin, sequence, threshold, table, scale, power, False)


def zero_temperature(*, spin, sequence, table, scale, power):
    """The numba variant of :func:`.operators.zero_temperature` (NumPy arrays, same arguments and result)."""
    cells = scale.shape[0]
    return _run(spin, sequence, np.zeros((cells, 1)), table, scale, power, True)
