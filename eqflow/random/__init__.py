"""Philox4x32-10 counter-based random numbers, bit-identical on NumPy and torch (CPU or CUDA).

Philox (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC11)
maps a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit key ``(k0, k1)`` to four 32-bit words
by ten rounds of

    (hi0, lo0) = mulhilo32(M0, c0),  (hi1, lo1) = mulhilo32(M1, c2)
    (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

with the key bumped by the Weyl constants ``(k0, k1) += (W0, W1) mod 2**32`` before every round
after the first. The same array code runs on NumPy arrays and torch tensors: a word is held in
an int64 array (uint64 inside the NumPy path), and only ``mulhilo32`` differs by backend
(an exact uint64 product on NumPy, the multiplier split into 16-bit halves on torch int64).

Ensemble cells. Each cell (member label m, parameter point p) has its own Philox key,
``cell_keys(seed, m, p)``: the first two words of Philox with counter ``(m, p)`` under the
key ``seed``. In one step a cell reads blocks ``b = 0, 1, ...`` with counter
``(b, slot | domain << 16, step mod 2**32, step >> 32)``; the draws of a step are therefore
a pure function of (seed, member, point, domain, slot, step), whatever the chunking, the
workers, the resume point or the backend.

Floats are derived from the words with exact operations only. The normal transform
(Box-Muller) calls no vendor math library: vendor log, sin and cos differ in the last bit
between libms and on CUDA, and torch.sqrt on CPUs with MKL is not correctly rounded for large
tensors. It uses its own log, sqrt and sincos made of +, -, *, /, floor, abs, frexp and exact
power-of-two scaling, each correctly rounded by IEEE 754 and done in the same order on every
backend, so the floats too are the same bit for bit (within 2 ulp of the true functions).
"""
from __future__ import annotations

import hashlib
import math
import numbers
import struct
from dataclasses import dataclass

import numpy as np

from .gaussian import box_muller
from .philox import MASK32, is_torch, ops_for, philox4x32, philox_rounds

__all__ = [
    "DYNAMICS", "INITIAL", "Draw", "bits", "cell_keys", "generate", "initial", "integers", "normal", "permutation",
    "philox4x32", "point_ids", "uniform",
]

DYNAMICS, INITIAL = 0, 1  # domains: updates, initial states
KINDS = ("uniform", "normal", "integers", "permutation", "bits")
FLOAT_DTYPES = ("float64", "float32")
MAX_HIGH = 2**30  # integers(high): high * (2**32 - 1) must stay below 2**62 in int64

# --------------------------------------------------------------------------------------------
# Keys of ensemble cells (host side, once per task)
# --------------------------------------------------------------------------------------------


def point_ids(parameters: dict[str, np.ndarray], shape: tuple) -> np.ndarray:
    """A 64-bit id per parameter point, from the parameter values alone: np.uint64 array of ``shape``.

    id = blake2b(digest_size=8) over, for each name in sorted order, the name in UTF-8, a NUL
    byte and the value at that point as little-endian float64 (-0.0 read as 0.0, every NaN as
    the one canonical NaN); the digest is read as a little-endian integer. A point's id does
    not depend on which other points share the sweep: T=[2.0] and T=[1.5, 2.0] give the same
    id at T=2.0.
    """
    shape = tuple(shape)
    for name in parameters:
        if not isinstance(name, str):
            raise ValueError(f"parameters: expected str names, got {name!r}")
    names = sorted(parameters)
    values = []
    for name in names:
        try:
            values.append(np.broadcast_to(np.asarray(parameters[name], dtype=np.float64), shape))
        except ValueError as exc:
            raise ValueError(f"parameters[{name!r}]: expected a float64 array broadcastable to {shape}, "
                             f"got shape {np.shape(parameters[name])} ({exc})") from None
    labels = [name.encode() + b"\0" for name in names]
    ids = np.empty(shape, dtype=np.uint64)
    for index in np.ndindex(shape):
        h = hashlib.blake2b(digest_size=8)
        for label, value in zip(labels, values):
            v = float(value[index]) + 0.0  # -0.0 + 0.0 == +0.0
            h.update(label)
            h.update(struct.pack("<d", math.nan if v != v else v))
        ids[index] = int.from_bytes(h.digest(), "little")
    return ids


def cell_keys(seed: int, member_labels, point_ids) -> np.ndarray:
    """Each ensemble cell's Philox key: int64 array (2, n_members, *point_shape).

    key(m, p) = the first two words of philox4x32(counter=(m_lo, m_hi, p_lo, p_hi),
    key=(seed_lo, seed_hi)), where m is the member label (int >= 0), p the point id (uint64)
    and seed in [0, 2**64) (lo/hi: the low and high 32 bits). NumPy only (host side).
    """
    seed = _check_int("seed", seed, 0, 2**64)
    members = np.asarray(member_labels)
    if members.ndim != 1 or (members.size and members.dtype.kind not in "iu"):
        raise ValueError(f"member_labels: expected a 1-d array of integers >= 0, got shape {members.shape} "
                         f"dtype {members.dtype}")
    if members.size and int(members.min()) < 0:
        raise ValueError(f"member_labels: expected integers >= 0, got {members[members < 0][:5].tolist()}")
    points = np.asarray(point_ids)
    if points.dtype != np.uint64:
        if points.size and (points.dtype.kind not in "iu" or int(points.min()) < 0):
            raise ValueError(f"point_ids: expected uint64 ids, got dtype {points.dtype}")
        points = points.astype(np.uint64)
    m = members.astype(np.uint64).reshape((-1,) + (1,) * points.ndim)
    counter = (m & MASK32, m >> 32, points & MASK32, points >> 32)
    k = philox4x32(counter, (seed & MASK32, seed >> 32))
    return np.stack(k[:2])


def _check_int(name, value, low, high):
    """``value`` as a Python int in [low, high), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) < high:
        raise ValueError(f"{name}: expected an integer in [{_power(low)}, {_power(high)}), got {value!r}")
    return int(value)


def _power(x: int) -> str:
    """2**k for large powers of two, else the number."""
    return f"2**{x.bit_length() - 1}" if x > 1024 and x & (x - 1) == 0 else str(x)


# --------------------------------------------------------------------------------------------
# Draws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """The random numbers one ensemble cell needs per step, e.g. ``uniform("y", "x")``.

    kind : "uniform" | "normal" | "integers" | "permutation" | "bits"
    shape : entries are ints or size names (str) resolved against a ``sizes`` mapping
    high : integers: exclusive upper bound in [1, 2**30); permutation: n (int or size name)
    dtype : uniform/normal "float64" or "float32"; the others "int64"
    """

    kind: str
    shape: tuple
    high: int | str | None = None
    dtype: str = "float64"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {list(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "shape", tuple(self.shape))
        for entry in self.shape:
            if not isinstance(entry, str):
                _check_int("shape", entry, 0, 2**63)
        expected = FLOAT_DTYPES if self.kind in ("uniform", "normal") else ("int64",)
        if self.dtype not in expected:
            raise ValueError(f"dtype: expected one of {list(expected)} for {self.kind!r} draws, got {self.dtype!r}")
        if self.kind in ("integers", "permutation"):
            if self.high is None:
                raise ValueError(f"high: expected an int or a size name for {self.kind!r} draws, got None")
            if not isinstance(self.high, str):
                low, high = (1, MAX_HIGH) if self.kind == "integers" else (0, 2**63)
                _check_int("high", self.high, low, high)
        elif self.high is not None:
            raise ValueError(f"high: expected None for {self.kind!r} draws, got {self.high!r}")
        if self.kind == "permutation" and self.shape != (self.high,):
            raise ValueError(f"shape: expected ({self.high!r},) for a permutation of {self.high!r}, got {self.shape!r}")

    def resolve(self, sizes) -> tuple:
        """The concrete shape of one cell's draws, size names looked up in ``sizes``."""
        return tuple(_size("shape", entry, sizes) for entry in self.shape)

    def bound(self, sizes) -> int | None:
        """``high`` resolved against ``sizes`` (and checked for integers: 1 <= high < 2**30)."""
        if self.high is None:
            return None
        high = _size("high", self.high, sizes)
        if self.kind == "integers":
            _check_int("high", high, 1, MAX_HIGH)
        return high

    def words(self, sizes) -> int:
        """uint32 words one cell consumes per step for this draw.

        uniform float64, integers, permutation: 2 per value; uniform float32, bits: 1;
        normal: one 4-word block per pair of values (Box-Muller), so 4 * ceil(n / 2).
        """
        n = math.prod(self.resolve(sizes))
        if self.kind == "normal":
            return 4 * -(-n // 2)
        if self.kind == "bits" or (self.kind == "uniform" and self.dtype == "float32"):
            return n
        return 2 * n


def _size(what, entry, sizes):
    """An int entry as is, a size name looked up in ``sizes``."""
    if isinstance(entry, str):
        if entry not in sizes:
            raise ValueError(f"{what}: unknown size name {entry!r}, expected one of {sorted(sizes)}")
        return _check_int(f"sizes[{entry!r}]", sizes[entry], 0, 2**63)
    return int(entry)


def uniform(*shape, dtype="float64") -> Draw:
    """Uniform floats in [0, 1): float64 with 53 random bits, float32 with 24."""
    return Draw("uniform", shape, dtype=dtype)


def normal(*shape, dtype="float64") -> Draw:
    """Standard normal floats (Box-Muller); float32 is the float64 value rounded."""
    return Draw("normal", shape, dtype=dtype)


def integers(high, *shape) -> Draw:
    """Integers in [0, high), 1 <= high < 2**30 (int or size name), as int64."""
    return Draw("integers", shape, high=high, dtype="int64")


def permutation(n) -> Draw:
    """A random permutation of range(n) (int or size name), as int64 of shape (n,)."""
    return Draw("permutation", (n,), high=n, dtype="int64")


def bits(*shape) -> Draw:
    """Raw uint32 words, as int64 in [0, 2**32)."""
    return Draw("bits", shape, dtype="int64")


def generate(draw: Draw, keys, *, step: int, slot: int, sizes, domain=DYNAMICS):
    """The draws of every cell for one step: array of shape (*keys.shape[1:], *draw.resolve(sizes)).

    keys: int64 (2, *ensemble) NumPy array or torch tensor (from :func:`cell_keys`); the
    result is on its backend and device. Block b of a cell is Philox4x32-10 of the counter
    (b, slot | domain << 16, step mod 2**32, step >> 32) under the cell's key; blocks
    0, 1, ... supply the cell's words in order (word j is word j % 4 of block j // 4).
    """
    if not isinstance(draw, Draw):
        raise ValueError(f"draw: expected a Draw (e.g. eqflow.random.uniform(...)), got {type(draw).__name__}")
    step = _check_int("step", step, 0, 2**64)
    slot = _check_int("slot", slot, 0, 2**16)
    domain = _check_int("domain", domain, 0, 2**16)
    ops = _check_keys(keys)
    shape = draw.resolve(sizes)
    high = draw.bound(sizes)
    n = math.prod(shape)
    n_blocks = -(-draw.words(sizes) // 4)
    if n_blocks > 2**32:
        raise ValueError(f"draw: expected at most 2**34 words per cell, got {draw.words(sizes)} for shape {shape}")
    ensemble = tuple(keys.shape[1:])
    if n == 0:  # a draw over a size-0 dim: nothing to compute
        if isinstance(keys, np.ndarray):
            return np.empty((*ensemble, *shape), dtype=draw.dtype)
        import torch

        return torch.empty((*ensemble, *shape), dtype=getattr(torch, draw.dtype), device=keys.device)
    counter = (slot | domain << 16, step & MASK32, step >> 32)
    derive = _DERIVE[draw.kind, draw.dtype]
    values = _cell_values(ops, keys.reshape(2, -1), n_blocks, counter, derive, high)
    values = values.reshape(*ensemble, values.shape[1] * values.shape[2])[..., :n]
    if draw.kind == "permutation":
        values = ops.argsort(values)
    return values.reshape(*ensemble, *shape)


def _check_keys(keys):
    """The backend of ``keys``, after checking it is an int64 (2, ...) array or tensor."""
    if isinstance(keys, np.ndarray) or is_torch(keys):
        ops = ops_for(keys)
        if str(keys.dtype).split(".")[-1] == "int64" and keys.ndim >= 1 and keys.shape[0] == 2:
            return ops
        raise ValueError(f"keys: expected an int64 array of shape (2, *ensemble), got dtype {keys.dtype} "
                         f"shape {tuple(keys.shape)}")
    raise ValueError(f"keys: expected a NumPy array or a torch tensor, got {type(keys).__name__}")


def _cell_values(ops, keys, n_blocks, counter, derive, high):
    """``derive`` of blocks 0..n_blocks-1 of every cell: array (n_cells, n_blocks, values per block).

    keys: (2, n_cells). On CPUs the (cell, block) plane is cut into tiles of about ``ops.tile``
    blocks, so that the ~100 passes of the rounds run in cache; the loop is over tiles (a tile
    holds many cells, or many blocks of one cell), never one pass per cell.
    """
    n_cells = keys.shape[1]
    k0, k1 = (ops.words(keys[i])[:, None] for i in range(2))
    if ops.tile is None or n_cells * n_blocks <= ops.tile:
        return ops.stack(derive(ops, _blocks(ops, k0, k1, 0, n_blocks, counter), high))
    block_step = min(n_blocks, ops.tile)
    cell_step = max(1, ops.tile // n_blocks)
    out = None
    for c in range(0, n_cells, cell_step):
        cells = slice(c, c + cell_step)
        for b in range(0, n_blocks, block_step):
            lanes = derive(ops, _blocks(ops, k0[cells], k1[cells], b, min(block_step, n_blocks - b), counter), high)
            if out is None:
                out = ops.empty((n_cells, n_blocks, len(lanes)), lanes[0].dtype)
            for j, lane in enumerate(lanes):
                out[cells, b:b + block_step, j] = lane
    return out


def _blocks(ops, k0, k1, first, count, counter):
    """Philox4x32-10 blocks first..first+count-1 under keys (k0, k1) of shape (cells, 1):
    4 word arrays (cells, count), block b from the counter (b, *counter)."""
    shape = (k0.shape[0], count)
    x = [ops.block_index(shape, first)] + [ops.full(shape, c) for c in counter]
    return philox_rounds(ops, x, k0, k1, 10)


# Derivations: from the 4 word arrays (x0, x1, x2, x3) of the cells' blocks, the list of value
# arrays of each block in word order (values j of all blocks). Each consumes (updates in place) its words.


def _uniform53(ops, a, b):
    """Uniform float64 in [0, 1) from words a, b: ((a >> 5) 2**26 + (b >> 6)) 2**-53 (53 bits)."""
    a >>= 5
    a <<= 26
    b >>= 6
    a |= b
    u = ops.float64(a)
    u *= 2.0**-53
    return u


def _uniform24(ops, w):
    """Uniform float32 in [0, 1) from word w: (w >> 8) 2**-24 (24 bits)."""
    w >>= 8
    u = ops.float32(w)
    u *= 2.0**-24
    return u


def _below(a, b, high):
    """floor(high w / 2**64) for w = a 2**32 + b, exactly: (high a + (high b >> 32)) >> 32.

    With high b = q 2**32 + r (r < 2**32), high w = (high a + q) 2**32 + r, and dropping r
    cannot change the floor of the division by 2**64. Every term stays below 2**63 for high < 2**30.
    """
    a *= high
    b *= high
    b >>= 32
    a += b
    a >>= 32
    return a


def _sort_key62(a, b):
    """A 62-bit sort key from words a, b: (a << 30) | (b >> 2)."""
    a <<= 30
    b >>= 2
    a |= b
    return a


def _derive_uniform64(ops, x, high):
    return [_uniform53(ops, x[0], x[1]), _uniform53(ops, x[2], x[3])]


def _derive_uniform32(ops, x, high):
    return [_uniform24(ops, w) for w in x]


def _derive_normal(ops, x, high):
    return list(box_muller(ops, _uniform53(ops, x[0], x[1]), _uniform53(ops, x[2], x[3])))


def _derive_normal32(ops, x, high):
    return [ops.float32(z) for z in _derive_normal(ops, x, high)]  # the float64 normals, rounded


def _derive_integers(ops, x, high):
    return [ops.public(_below(x[0], x[1], high)), ops.public(_below(x[2], x[3], high))]


def _derive_permutation_keys(ops, x, high):
    return [ops.public(_sort_key62(x[0], x[1])), ops.public(_sort_key62(x[2], x[3]))]


def _derive_bits(ops, x, high):
    return [ops.public(w) for w in x]


_DERIVE = {
    ("uniform", "float64"): _derive_uniform64,
    ("uniform", "float32"): _derive_uniform32,
    ("normal", "float64"): _derive_normal,
    ("normal", "float32"): _derive_normal32,
    ("integers", "int64"): _derive_integers,
    ("permutation", "int64"): _derive_permutation_keys,
    ("bits", "int64"): _derive_bits,
}




def initial(draw: Draw, *, seed: int, members, parameters: dict, sizes, slot: int = 0):
    """Draws for initial states: the ``INITIAL`` domain at step 0, NumPy, every member and point.

    ``parameters``: {name: canonical values, one array of the sweep shape each} (see
    :func:`eqflow.dataset.point_values`); the draws of a point depend only on its values, so a
    point starts the same whatever else shares its sweep. ``{}`` gives one stream per member,
    shared by every point (e.g. SCF's guesses, the same at every U). Returns an array
    (members, *sweep shape, *draw shape).
    """
    shape = np.broadcast_shapes(*(np.shape(v) for v in parameters.values())) if parameters else ()
    keys = cell_keys(seed, np.asarray(members), point_ids(parameters, shape))
    return generate(draw, keys, step=0, slot=slot, sizes=sizes, domain=INITIAL)
