"""Philox4x32-10 for Triton kernels: the words of :func:`eqflow.random.generate`, in registers
(imported only by kernels that use it; needs triton).

``philox`` is a ``triton.jit`` function that compiled kernels call; Triton's interpreter (CPU
tensors, no GPU) cannot call a compiled function from an interpreted kernel, so
:func:`interpreted` makes the interpreted twin of a kernel whose calls of ``philox`` go to
``philox_interpreted`` instead (same source, same arithmetic). Triton's own ``tl.randint``
keys Philox differently (seed as key, offset as counter word 0), hence these rounds (Salmon et
al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011). Word j of a cell's draw in
``slot`` at ``step`` is word j mod 4 of the block with counter (j // 4, slot, step mod 2^32,
step >> 32) under the cell's key (k0, k1).
"""
from __future__ import annotations

import types

import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

PHILOX_M0, PHILOX_M1 = tl.constexpr(0xD2511F53), tl.constexpr(0xCD9E8D57)  # round multipliers
PHILOX_W0, PHILOX_W1 = tl.constexpr(0x9E3779B9), tl.constexpr(0xBB67AE85)  # key increments (Weyl sequence)


def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of uint32 counter blocks (c0, c1, c2, c3) under the uint32 key (k0, k1): 4 uint32 blocks.

    One round: (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
    then the key is bumped by (W0, W1) mod 2^32.
    """
    a0, a1 = k0, k1
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, PHILOX_M0)
        hi1 = tl.umulhi(c2, PHILOX_M1)
        lo0 = c0 * PHILOX_M0
        lo1 = c2 * PHILOX_M1
        c0, c1, c2, c3 = hi1 ^ c1 ^ a0, lo1, hi0 ^ c3 ^ a1, lo0
        a0 = a0 + PHILOX_W0
        a1 = a1 + PHILOX_W1
    return c0, c1, c2, c3


philox = triton.jit(_philox)
philox_interpreted = InterpretedFunction(_philox)


def interpreted(kernel, **kwargs) -> InterpretedFunction:
    """The interpreted twin of ``kernel`` (a plain function that calls ``philox``): an
    InterpretedFunction of the same code whose global ``philox`` is ``philox_interpreted``."""
    scope = {**kernel.__globals__, **{name: philox_interpreted for name, value in kernel.__globals__.items()
                                      if value is philox}}
    twin = types.FunctionType(kernel.__code__, scope, kernel.__name__, kernel.__defaults__, kernel.__closure__)
    twin.__qualname__ = kernel.__qualname__
    return InterpretedFunction(twin, **kwargs)


__all__ = ["interpreted", "philox", "philox_interpreted"]
