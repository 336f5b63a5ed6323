"""numba kernels of the Ising operators: the same histories as the array-API references, bit for bit.

Each kernel makes its random words itself, with Philox4x32-10 inlined and keyed exactly as
:func:`eqflow.random.generate` keys them: word j of a draw of a cell is word j mod 4 of the
block with counter (j // 4, slot, step mod 2^32, step >> 32) under the cell's key (the
DYNAMICS domain is 0). A word is compared with the same integer thresholds as the reference,
so both take the same decisions. The checkerboard sweep makes one pass for the words (whole
Philox blocks, row by row), then one pass per colour; the cluster steps make the words they
need where they need them. Loops run in parallel (``prange``) over ensemble cells and lattice
rows when a call has at least ``PARALLEL_SITES`` sites, else on one thread. Compiled on first
use and cached on disk (``cache=True``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
MASK, S32 = np.uint64(0xFFFFFFFF), np.uint64(32)
HALF = 2**31


@njit(inline="always", cache=True)
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1); uint64 words < 2^32."""
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (p1 >> S32) ^ c1 ^ k0, p1 & MASK, (p0 >> S32) ^ c3 ^ k1, p0 & MASK
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return c0, c1, c2, c3


@njit(inline="always", cache=True)
def word(j, slot, step_lo, step_hi, k0, k1):
    """Word j of a draw (one Philox block; the kernels that use every word take whole blocks)."""
    w = philox(np.uint64(j >> 2), slot, step_lo, step_hi, k0, k1)
    lane = j & 3
    return np.int64(w[0] if lane == 0 else w[1] if lane == 1 else w[2] if lane == 2 else w[3])


@njit(inline="always", cache=True)
def below(high, slot, step_lo, step_hi, k0, k1):
    """The scalar draw ``integers(high)``: floor(high (a 2^32 + b) / 2^64) from words 0 and 1."""
    w = philox(np.uint64(0), slot, step_lo, step_hi, k0, k1)
    h = np.uint64(high)
    return np.int64((h * w[0] + ((h * w[1]) >> S32)) >> S32)


@njit(inline="always", cache=True)
def _row_words(words, keys, slot, step_lo, step_hi, nx, c, y):
    """The Philox blocks whose first word lies in row y of cell c, into ``words[c]`` (flat, padded to
    whole blocks); every block is made by exactly one row."""
    k0, k1 = np.uint64(keys[0, c]), np.uint64(keys[1, c])
    for b in range((y * nx + 3) >> 2, ((y + 1) * nx + 3) >> 2):
        w0, w1, w2, w3 = philox(np.uint64(b), slot, step_lo, step_hi, k0, k1)
        words[c, 4 * b] = w0
        words[c, 4 * b + 1] = w1
        words[c, 4 * b + 2] = w2
        words[c, 4 * b + 3] = w3


@njit(inline="always", cache=True)
def _rows(spin, c, y):
    """Rows y - 1, y + 1 and y of cell c (periodic)."""
    ny = spin.shape[1]
    return spin[c, y - 1 if y > 0 else ny - 1], spin[c, y + 1 if y < ny - 1 else 0], spin[c, y]


@njit(inline="always", cache=True)
def _neighbour_sum(up, down, row, x, nx):
    """Sum of the four neighbours of site x of ``row`` (periodic in x), int64."""
    return np.int64(up[x]) + down[x] + row[x - 1 + nx * (x == 0)] + row[x + 1 - nx * (x == nx - 1)]


@njit(inline="always", cache=True)
def _metropolis_row(spin, words, table, colour, c, y, new):
    """The sites of one colour in row y of cell c. Every site of the row is computed into ``new``
    (the other colour keeping its spin), then copied back: a contiguous loop without branches
    (the decisions are coin flips, which a branch predictor gets wrong half the time) that does not
    write what it reads. Measured here it is about 2x faster than a stride-2 loop updating in place."""
    nx = spin.shape[2]
    up, down, row = _rows(spin, c, y)
    w = words[c, y * nx:(y + 1) * nx]
    t = table[c]
    parity = (y + colour) & 1
    for x in range(nx):
        s = np.int64(row[x])
        n = _neighbour_sum(up, down, row, x, nx)
        mine = np.int64((x & 1) == parity)
        k = 5 * ((s + 1) >> 1) + ((n + 4) >> 1)
        flip = np.int64(np.int64(w[x]) < t[k]) & mine
        new[x] = s - 2 * s * flip
    for x in range(nx):
        row[x] = new[x]


@njit(inline="always", cache=True)
def _heat_bath_row(spin, words, table, colour, c, y, new):
    """:func:`_metropolis_row` for the heat bath: s = +1 when w < threshold(n), else -1."""
    nx = spin.shape[2]
    up, down, row = _rows(spin, c, y)
    w = words[c, y * nx:(y + 1) * nx]
    t = table[c]
    parity = (y + colour) & 1
    for x in range(nx):
        s = np.int64(row[x])
        n = _neighbour_sum(up, down, row, x, nx)
        mine = np.int64((x & 1) == parity)
        k = (n + 4) >> 1
        new[x] = s + mine * (2 * np.int64(np.int64(w[x]) < t[k]) - 1 - s)
    for x in range(nx):
        row[x] = new[x]


@njit(parallel=True, cache=True, nogil=True)
def checkerboard_sweep(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """One checkerboard sweep of ``spin`` (cells, L_y, L_x) int8, in place, in parallel over (cell, row):
    the words, then one pass per colour.

    table : int64 (cells, 10) Metropolis thresholds by (s > 0) 5 + (n + 4) / 2, or (cells, 5)
    heat-bath thresholds of s = +1 by (n + 4) / 2; keys : int64 (2, cells).
    """
    cells, ny, nx = spin.shape
    words = np.empty((cells, ((ny * nx + 3) >> 2) * 4), np.uint32)
    for task in prange(cells * ny):
        _row_words(words, keys, slot, step_lo, step_hi, nx, task // ny, task % ny)
    for colour in range(2):  # the two row loops are apart: a branch inside one slows it 2x
        if heat_bath:
            for task in prange(cells * ny):
                _heat_bath_row(spin, words, table, colour, task // ny, task % ny, np.empty(nx, np.int8))
        else:
            for task in prange(cells * ny):
                _metropolis_row(spin, words, table, colour, task // ny, task % ny, np.empty(nx, np.int8))


@njit(cache=True, nogil=True)
def checkerboard_sweep_serial(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """:func:`checkerboard_sweep` on one thread (small work: no thread start-up and barriers)."""
    cells, ny, nx = spin.shape
    words = np.empty((cells, ((ny * nx + 3) >> 2) * 4), np.uint32)
    for task in range(cells * ny):
        _row_words(words, keys, slot, step_lo, step_hi, nx, task // ny, task % ny)
    new = np.empty(nx, np.int8)
    for colour in range(2):
        if heat_bath:
            for task in range(cells * ny):
                _heat_bath_row(spin, words, table, colour, task // ny, task % ny, new)
        else:
            for task in range(cells * ny):
                _metropolis_row(spin, words, table, colour, task // ny, task % ny, new)


@njit(inline="always", cache=True)
def _wolff_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c):
    """One Wolff cluster in cell c (slots: the row, column and bonds draws), grown from the seed
    with a stack; each bond is examined once, from the first of its ends to join."""
    ny, nx = spin.shape[1], spin.shape[2]
    n = ny * nx
    k0, k1 = np.uint64(keys[0, c]), np.uint64(keys[1, c])
    y0 = below(ny, slots[0], step_lo, step_hi, k0, k1)
    x0 = below(nx, slots[1], step_lo, step_hi, k0, k1)
    inside = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    stack[0] = y0 * nx + x0
    inside[stack[0]] = True
    top, count = 1, 1
    while top > 0:
        top -= 1
        i = stack[top]
        y, x = i // nx, i % nx
        s = spin[c, y, x]
        for k in range(4):
            if k == 0:
                j, bond, d = y * nx + (x + 1) % nx, i, 0
            elif k == 1:
                j = y * nx + (x - 1) % nx
                bond, d = j, 0
            elif k == 2:
                j, bond, d = ((y + 1) % ny) * nx + x, i, 1
            else:
                j = ((y - 1) % ny) * nx + x
                bond, d = j, 1
            if inside[j] or sign[c] * s * spin[c, j // nx, j % nx] <= 0:
                continue
            if word(d * n + bond, slots[2], step_lo, step_hi, k0, k1) < threshold[c]:
                inside[j] = True
                stack[top] = j
                top += 1
                count += 1
    for i in range(n):
        if inside[i]:
            spin[c, i // nx, i % nx] = -spin[c, i // nx, i % nx]
    flipped[c] = count


@njit(inline="always", cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(inline="always", cache=True)
def _swendsen_wang_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c):
    """One Swendsen-Wang step in cell c (slots: the bonds and coins draws): union-find over the
    active bonds, the lower root always winning (so a root is its component's lowest site),
    then the coin of each root."""
    ny, nx = spin.shape[1], spin.shape[2]
    n = ny * nx
    k0, k1 = np.uint64(keys[0, c]), np.uint64(keys[1, c])
    parent = np.arange(n)
    for b in range((2 * n + 3) >> 2):  # the bonds draw, block by block
        w = philox(np.uint64(b), slots[0], step_lo, step_hi, k0, k1)
        for lane in range(4):
            j = 4 * b + lane
            if j >= 2 * n or np.int64(w[lane]) >= threshold[c]:
                continue
            d, i = j // n, j % n
            y, x = i // nx, i % nx
            other = y * nx + (x + 1) % nx if d == 0 else ((y + 1) % ny) * nx + x
            if sign[c] * spin[c, y, x] * spin[c, other // nx, other % nx] <= 0:
                continue
            a, r = _find(parent, i), _find(parent, other)
            if a < r:
                parent[r] = a
            elif r < a:
                parent[a] = r
    count = 0
    for i in range(n):
        if word(_find(parent, i), slots[1], step_lo, step_hi, k0, k1) < HALF:
            spin[c, i // nx, i % nx] = -spin[c, i // nx, i % nx]
            count += 1
    flipped[c] = count


@njit(parallel=True, cache=True, nogil=True)
def wolff_step(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped):
    """One Wolff cluster per cell of ``spin`` (cells, L_y, L_x), in place, cells in parallel;
    the cluster sizes into ``flipped``."""
    for c in prange(spin.shape[0]):
        _wolff_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c)


@njit(cache=True, nogil=True)
def wolff_step_serial(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped):
    for c in range(spin.shape[0]):
        _wolff_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c)


@njit(parallel=True, cache=True, nogil=True)
def swendsen_wang_step(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped):
    """One Swendsen-Wang step per cell, in place, cells in parallel; spins flipped into ``flipped``."""
    for c in prange(spin.shape[0]):
        _swendsen_wang_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c)


@njit(cache=True, nogil=True)
def swendsen_wang_step_serial(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped):
    for c in range(spin.shape[0]):
        _swendsen_wang_cell(spin, keys, threshold, sign, slots, step_lo, step_hi, flipped, c)


# --------------------------------------------------------------------------------------------
# The operators' signatures (what eqflow passes) around the compiled loops
# --------------------------------------------------------------------------------------------


PARALLEL_SITES = 2**18  # below this many sites per call one thread is faster (thread barriers; see RESULTS.md)


def _parallel(work) -> bool:
    return work.size >= PARALLEL_SITES and work.shape[0] * work.shape[1] > 1 and numba.get_num_threads() > 1


def _cells(spin, keys, step):
    """A private C-contiguous copy of ``spin`` as (cells, L_y, L_x), the keys as (2, cells), the step words."""
    shape = spin.shape
    work = np.array(spin, dtype=np.int8, order="C").reshape(-1, *shape[-2:])
    step = int(step)
    return work, np.ascontiguousarray(keys).reshape(2, -1), np.uint64(step & 0xFFFFFFFF), np.uint64(step >> 32)


def metropolis(*, spin, keys, slots, step, acceptance):
    """:func:`eqflow.systems.ising.operators.metropolis`, compiled."""
    work, k, lo, hi = _cells(spin, keys, step)
    sweep = checkerboard_sweep if _parallel(work) else checkerboard_sweep_serial
    sweep(work, k, acceptance.reshape(work.shape[0], 10), False, np.uint64(slots["words"]), lo, hi)
    return {"spin": work.reshape(spin.shape)}


def heat_bath(*, spin, keys, slots, step, probability_up):
    """:func:`eqflow.systems.ising.operators.heat_bath`, compiled."""
    work, k, lo, hi = _cells(spin, keys, step)
    sweep = checkerboard_sweep if _parallel(work) else checkerboard_sweep_serial
    sweep(work, k, probability_up.reshape(work.shape[0], 5), True, np.uint64(slots["words"]), lo, hi)
    return {"spin": work.reshape(spin.shape)}


def _cluster(kernels, names, spin, keys, slots, step, bond_threshold, bond_sign):
    work, k, lo, hi = _cells(spin, keys, step)
    cells = work.shape[0]
    flipped = np.empty(cells, np.int64)
    threshold = np.ascontiguousarray(np.broadcast_to(bond_threshold.reshape(-1), (cells,)))
    sign = np.ascontiguousarray(np.broadcast_to(bond_sign.reshape(-1), (cells,))).astype(np.int64)
    step_fn = kernels[0] if work.shape[0] > 1 and _parallel(work) else kernels[1]
    step_fn(work, k, threshold, sign, np.array([slots[n] for n in names], np.uint64), lo, hi, flipped)
    return {"spin": work.reshape(spin.shape), "flipped": flipped.reshape(spin.shape[:-2])}


def wolff(*, spin, keys, slots, step, bond_threshold, bond_sign):
    """:func:`eqflow.systems.ising.clusters.wolff`, compiled."""
    return _cluster((wolff_step, wolff_step_serial), ("row", "column", "bonds"), spin, keys, slots, step,
                    bond_threshold, bond_sign)


def swendsen_wang(*, spin, keys, slots, step, bond_threshold, bond_sign):
    """:func:`eqflow.systems.ising.clusters.swendsen_wang`, compiled."""
    return _cluster((swendsen_wang_step, swendsen_wang_step_serial), ("bonds", "coins"), spin, keys, slots, step,
                    bond_threshold, bond_sign)
