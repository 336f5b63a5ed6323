"""Philox4x32-10 rounds as array code that runs on NumPy arrays and torch tensors alike.

Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC11. See
:mod:`eqflow.random` for how ensemble cells use it.
"""
from __future__ import annotations

import numbers

import numpy as np

MASK32 = 0xFFFFFFFF
M0, M1 = 0xD2511F53, 0xCD9E8D57  # Philox4x32 multipliers (SC11)
W0, W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments: (golden ratio - 1) and (sqrt(3) - 1), times 2**32



# --------------------------------------------------------------------------------------------
# Backends: the few operations whose spelling differs between NumPy and torch.
# --------------------------------------------------------------------------------------------


class NumpyOps:
    """NumPy: words are uint64 arrays inside (exact uint64 products), int64 views outside."""

    name = "numpy"
    abs, frexp, floor = (staticmethod(f) for f in (np.abs, np.frexp, np.floor))
    tile = 2**15  # blocks per pass: 5 word arrays of 256 KiB stay in cache (about 2x faster at 10**7 words)
    spare_buffers = 0

    @staticmethod
    def words(x, name="words"):
        """Non-negative integers (< 2**32) as uint64 words (a view when already 64-bit)."""
        x = np.asarray(x)
        return x.view(np.uint64) if x.dtype == np.int64 else x.astype(np.uint64)

    @staticmethod
    def owned(x, shape):
        """A fresh contiguous uint64 copy of ``x`` broadcast to ``shape`` (safe to update in place)."""
        out = np.empty(shape, dtype=np.uint64)
        out[...] = NumpyOps.words(x)
        return out

    @staticmethod
    def full(shape, value):
        return np.full(shape, value, dtype=np.uint64)

    @staticmethod
    def empty(shape, dtype=np.uint64):
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def block_index(shape, first):
        """Block numbers first, first + 1, ... along the last axis, as an owned array of ``shape``."""
        out = np.empty(shape, dtype=np.uint64)
        out[...] = np.arange(first, first + shape[-1], dtype=np.uint64)
        return out

    @staticmethod
    def mulhilo(a, m, hi, spare):
        """In place: ``a <- lo32(a * m)``, ``hi <- hi32(a * m)``; a uint64 product is exact (a, m < 2**32)."""
        a *= m
        np.right_shift(a, 32, out=hi)
        a &= MASK32

    @staticmethod
    def public(x):
        """uint64 words as the int64 arrays the API returns (a view)."""
        return x.view(np.int64)

    @staticmethod
    def float64(x):
        """Integers below 2**53 as float64 (exact); uint64 goes through its int64 view (faster)."""
        return (x.view(np.int64) if x.dtype == np.uint64 else x).astype(np.float64)

    @staticmethod
    def float32(x):
        """Integers below 2**24, or float64 values rounded to nearest, as float32."""
        return (x.view(np.int64) if x.dtype == np.uint64 else x).astype(np.float32)

    @staticmethod
    def pow2(k):
        """2.0**k for integers k in [-1022, 1023], exactly, from the bits of a float64."""
        return ((k.astype(np.int64) + 1023) << 52).view(np.float64)

    @staticmethod
    def stack(arrays):
        return np.stack(arrays, axis=-1)

    @staticmethod
    def argsort(x):
        return np.argsort(x, axis=-1, kind="stable")


class TorchOps:
    """torch (any device): words are int64 tensors; no uint32 arithmetic is needed."""

    name = "torch"

    def __init__(self, like):
        import torch

        self.torch = torch
        self.device = like.device
        self.abs, self.frexp, self.floor = torch.abs, torch.frexp, torch.floor
        # CPU: tiles of cpu_tile blocks per pass; accelerators: everything in one pass of large kernels
        self.tile = self.cpu_tile if self.device.type == "cpu" else None

    cpu_tile = 2**16  # blocks per pass on CPUs (larger than NumPy's: torch calls cost more)
    spare_buffers = 1

    def words(self, x, name="words"):
        """int64 tensors as they are; Python ints as int64 tensors on this device."""
        torch = self.torch
        if isinstance(x, torch.Tensor):
            if x.dtype != torch.int64:
                raise ValueError(f"{name}: expected an int64 tensor holding uint32 values, got dtype {x.dtype}")
            return x
        return torch.as_tensor(x, dtype=torch.int64, device=self.device)

    def owned(self, x, shape):
        return self.words(x).expand(shape).clone(memory_format=self.torch.contiguous_format)

    def full(self, shape, value):
        return self.torch.full(shape, value, dtype=self.torch.int64, device=self.device)

    def empty(self, shape, dtype=None):
        return self.torch.empty(shape, dtype=dtype or self.torch.int64, device=self.device)

    def block_index(self, shape, first):
        index = self.torch.arange(first, first + shape[-1], dtype=self.torch.int64, device=self.device)
        return index.expand(shape).clone(memory_format=self.torch.contiguous_format)

    def mulhilo(self, a, m, hi, spare):
        """In place: ``a <- lo32(a * m)``, ``hi <- hi32(a * m)`` without any int64 passing 2**63.

        With m = mh 2**16 + ml (16-bit halves), u = a mh < 2**48 and t = a ml < 2**48:
        a m = (u >> 16) 2**32 + s, where s = (u mod 2**16) 2**16 + t < 2**49, so
        hi = (u >> 16) + (s >> 32) and lo = s mod 2**32. ``spare`` is scratch space.
        """
        torch = self.torch
        torch.mul(a, m >> 16, out=hi)  # u
        a *= m & 0xFFFF  # t
        torch.bitwise_and(hi, 0xFFFF, out=spare)
        spare <<= 16
        a += spare  # s
        hi >>= 16
        torch.bitwise_right_shift(a, 32, out=spare)
        hi += spare  # hi
        a &= MASK32  # lo

    @staticmethod
    def public(x):
        return x

    def float64(self, x):
        return x.to(self.torch.float64)

    def float32(self, x):
        return x.to(self.torch.float32)

    def pow2(self, k):
        """2.0**k for integers k in [-1022, 1023], exactly, from the bits of a float64."""
        return ((k.to(self.torch.int64) + 1023) << 52).view(self.torch.float64)

    def stack(self, arrays):
        return self.torch.stack(arrays, dim=-1)

    def argsort(self, x):
        return self.torch.argsort(x, dim=-1, stable=True)


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def ops_for(*arrays):
    """The backend of the inputs: torch if any is a tensor (all tensors must share its device), else NumPy."""
    tensors = [a for a in arrays if is_torch(a)]
    if not tensors:
        return NumpyOps()
    if any(isinstance(a, np.ndarray) for a in arrays):
        raise ValueError("counter, key: expected all torch tensors or all NumPy arrays, got a mix")
    return TorchOps(tensors[0])


# --------------------------------------------------------------------------------------------
# Philox4x32
# --------------------------------------------------------------------------------------------


def philox_rounds(ops, x, k0, k1, rounds):
    """Philox4x32 rounds on four owned word arrays ``x`` (updated in place); returns the output words.

    One round: (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0));
    the key is bumped by (W0, W1) mod 2**32 before every round but the first.
    """
    hi = ops.empty(x[0].shape)
    spare = ops.empty(x[0].shape) if ops.spare_buffers else None
    for r in range(rounds):
        if r:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        x0, x1, x2, x3 = x
        ops.mulhilo(x2, M1, hi, spare)  # x2 <- lo(M1 c2)
        x1 ^= hi
        x1 ^= k0  # x1 <- hi(M1 c2) ^ c1 ^ k0
        ops.mulhilo(x0, M0, hi, spare)  # x0 <- lo(M0 c0)
        x3 ^= hi
        x3 ^= k1  # x3 <- hi(M0 c0) ^ c3 ^ k1
        x = [x1, x2, x3, x0]
    return x


def philox4x32(counter, key, rounds=10):
    """Philox4x32-``rounds`` of every counter under every key, element-wise with broadcasting.

    counter: 4 arrays (or a tuple of 4) of uint32 values held in int64 (or Python ints), key: 2.
    NumPy arrays or torch tensors (any device; all of one kind). Returns a tuple of 4 int64
    arrays of the broadcast shape on the inputs' backend and device.
    Values must lie in [0, 2**32): NumPy inputs are checked; torch inputs are not (that would
    copy from the device), only their dtype.
    """
    counter, key = tuple(counter), tuple(key)
    if len(counter) != 4:
        raise ValueError(f"counter: expected 4 words, got {len(counter)}")
    if len(key) != 2:
        raise ValueError(f"key: expected 2 words, got {len(key)}")
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or not 0 <= rounds <= 16:
        raise ValueError(f"rounds: expected an integer in [0, 16], got {rounds!r}")
    ops = ops_for(*counter, *key)
    if ops.name == "numpy":
        for name, words in (("counter", counter), ("key", key)):
            _check_words(name, words)
        shape = np.broadcast_shapes(*(np.shape(w) for w in counter + key))
    else:
        tensors = [ops.words(w, f"{name}[{i}]") for name, words in (("counter", counter), ("key", key))
                   for i, w in enumerate(words)]
        counter, key = tensors[:4], tensors[4:]
        shape = ops.torch.broadcast_shapes(*(t.shape for t in tensors))
    x = [ops.owned(c, shape) for c in counter]
    k0, k1 = (ops.words(k) for k in key)
    return tuple(ops.public(w) for w in philox_rounds(ops, x, k0, k1, int(rounds)))


def _check_words(name, words):
    """NumPy inputs: integers in [0, 2**32)."""
    for i, w in enumerate(words):
        a = np.asarray(w)
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name}[{i}]: expected integers in [0, 2**32), got dtype {a.dtype}")
        if a.size and (int(a.min()) < 0 or int(a.max()) > MASK32):
            raise ValueError(f"{name}[{i}]: expected integers in [0, 2**32), got values in [{a.min()}, {a.max()}]")

