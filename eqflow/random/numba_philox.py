"""Philox4x32-10 for numba kernels: ``@njit`` functions that make exactly the words of
:func:`eqflow.random.generate` (imported only by kernels that use them; needs numba).

A draw of an ensemble cell is a stream of 32-bit words: word j of the draw in ``slot`` at
``step`` is word j mod 4 of the Philox4x32-10 block with counter
(j // 4, slot, step mod 2^32, step >> 32) under the cell's key (k0, k1) (the two rows of
:func:`eqflow.random.cell_keys`); Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011. A kernel with ``Kernel(inline_draws=True)`` receives ``keys`` and ``slots`` and calls
these where it needs a value; comparing a word with an integer threshold round(P 2^32) takes
the same decisions as the reference's uniforms.

>>> import numpy as np
>>> from eqflow.random.numba_philox import philox
>>> [hex(w) for w in philox(0, 0, 0, 0, 0, 0)]  # Random123's known-answer vector
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
"""
from __future__ import annotations

import numpy as np
from numba import njit

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # round multipliers
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # key increments (Weyl sequence)
S32 = np.uint64(32)


@njit(inline="always", cache=True)
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1); uint64 words < 2^32.
    The rounds run on uint32 words with 64-bit products: a loop of blocks then vectorises."""
    a0, a1, a2, a3 = np.uint32(c0), np.uint32(c1), np.uint32(c2), np.uint32(c3)
    b0, b1 = np.uint32(k0), np.uint32(k1)
    for _ in range(10):
        p0 = np.uint64(a0) * M0
        p1 = np.uint64(a2) * M1
        a0, a1, a2, a3 = np.uint32(p1 >> S32) ^ a1 ^ b0, np.uint32(p1), np.uint32(p0 >> S32) ^ a3 ^ b1, np.uint32(p0)
        b0 = np.uint32(b0 + W0)
        b1 = np.uint32(b1 + W1)
    return np.uint64(a0), np.uint64(a1), np.uint64(a2), np.uint64(a3)


@njit(inline="always", cache=True)
def word(j, slot, step_lo, step_hi, k0, k1):
    """Word j (int64 < 2^32) of a draw (one Philox block; kernels that use every word take whole blocks)."""
    w = philox(np.uint64(j >> 2), slot, step_lo, step_hi, k0, k1)
    lane = j & 3
    return np.int64(w[0] if lane == 0 else w[1] if lane == 1 else w[2] if lane == 2 else w[3])


@njit(inline="always", cache=True)
def below(high, slot, step_lo, step_hi, k0, k1):
    """The scalar draw ``integers(high)``: floor(high (a 2^32 + b) / 2^64) from words 0 and 1."""
    w = philox(np.uint64(0), slot, step_lo, step_hi, k0, k1)
    h = np.uint64(high)
    return np.int64((h * w[0] + ((h * w[1]) >> S32)) >> S32)


__all__ = ["below", "philox", "word"]
