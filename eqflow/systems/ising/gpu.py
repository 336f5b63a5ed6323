"""Triton kernels of the checkerboard Ising sweeps: the reference operators' histories, bit for bit, on a GPU.

One fused launch per colour: a program takes a tile of ``BLOCK_Y`` rows x ``BLOCK_X`` columns of
one ensemble cell, reads each spin of the tile and its four neighbours (periodic), makes the
Philox4x32-10 words of its sites in registers (:mod:`eqflow.random.triton_philox`) and writes the
sites of the colour. The words
are keyed as :func:`eqflow.random.generate` keys them (the DYNAMICS domain is 0): the word of
site (y, x) is word j mod 4 of the block with counter (j // 4, slot, step mod 2^32, step >> 32)
under the cell's key, j = y L_x + x. A word w is compared with the same integer thresholds
round(P 2^32) as the reference, so every decision is the same.

When 4 divides L_x (``QUAD``) a Philox block is the 4 spins x = 4q .. 4q + 3 of one row, which are
also one little-endian int32 of the int8 lattice: the kernel works on an int32 view, a column is
a quad, each quad's block is made once per pass and its words go to its lanes without any
shuffle (lanes l = p and p + 2 of a row are the colour's, p = (y + colour) mod 2), and every
load and store is one aligned 4-byte word per quad. Otherwise (L_x = 2 mod 4, blocks straddle
rows) a column is a site, which makes its block and keeps its lane j mod 4.

The first pass (black, (x + y) even) reads the input and writes a new array (the white spins
unchanged), the second (white) updates that array in place: per sweep each spin is read twice
and written twice, with no other copy. (In place, a quad is rewritten whole; its black bytes
keep the values that neighbouring programs read.)

On CUDA tensors the kernel is compiled; on CPU tensors it runs in Triton's interpreter (exact
but slow: the tests use it to check bit-identity without a GPU). It calls builtins only (no
``tl.cdiv``, ``tl.zeros``): the interpreter, used without TRITON_INTERPRET=1, cannot run
Triton's library functions.
"""
from __future__ import annotations

import contextlib
import threading

import torch
import triton
import triton.language as tl

from ...random.triton_philox import interpreted as interpreted_twin
from ...random.triton_philox import philox

INTERPRETER = threading.Lock()  # the interpreter patches triton.language while it runs: one launch at a time
TILE_COLUMNS = 1024  # columns (quads or sites) per program, BLOCK_Y x BLOCK_X
MAX_BLOCK_X = 128


def _colour_pass(src, dst, keys, table, ncells, ny, width, slot, step_lo, step_hi, colour,
                 HEAT_BATH: tl.constexpr, QUAD: tl.constexpr, STORE_ALL: tl.constexpr,
                 BLOCK_Y: tl.constexpr, BLOCK_X: tl.constexpr):
    """One colour of a checkerboard sweep of the (cells, L_y, width) ``src`` into ``dst``: int32 quads
    (width = L_x / 4) when ``QUAD``, else int8 spins (width = L_x).

    table: int64 (cells, 10) Metropolis thresholds by (s > 0) 5 + (n + 4) / 2, or (cells, 5)
    heat-bath thresholds of s = +1 by (n + 4) / 2; keys: int64 (2, cells).
    """
    pid = tl.program_id(0)
    tiles_x = (width + BLOCK_X - 1) // BLOCK_X
    tiles = (ny + BLOCK_Y - 1) // BLOCK_Y * tiles_x
    cell = pid // tiles
    tile = pid % tiles
    k0 = tl.load(keys + cell).to(tl.uint32)
    k1 = tl.load(keys + ncells + cell).to(tl.uint32)
    base = cell.to(tl.int64) * ny * width
    y = (tile // tiles_x) * BLOCK_Y + tl.arange(0, BLOCK_Y)[:, None]
    x = (tile % tiles_x) * BLOCK_X + tl.arange(0, BLOCK_X)[None, :]
    inside = (y < ny) & (x < width)
    j = y.to(tl.int64) * width + x  # QUAD: the block of the quad; else: the site, in block j // 4
    zero = tl.full([BLOCK_Y, BLOCK_X], 0, tl.uint32)
    c0, c1, c2, c3 = philox((j if QUAD else j >> 2).to(tl.uint32) + zero,
                            zero + slot.to(tl.uint32),  # a Python int >= 2^31 arrives as int64: its low 32 bits
                            zero + step_lo.to(tl.uint32), zero + step_hi.to(tl.uint32), k0, k1)

    up = tl.where(y == 0, ny - 1, y - 1).to(tl.int64) * width
    down = tl.where(y == ny - 1, 0, y + 1).to(tl.int64) * width
    row = y.to(tl.int64) * width
    left = tl.where(x == 0, width - 1, x - 1)
    right = tl.where(x == width - 1, 0, x + 1)
    q = tl.load(src + base + row + x, mask=inside, other=0).to(tl.int32)
    qu = tl.load(src + base + up + x, mask=inside, other=0).to(tl.int32)
    qd = tl.load(src + base + down + x, mask=inside, other=0).to(tl.int32)
    ql = tl.load(src + base + row + left, mask=inside, other=0).to(tl.int32)
    qr = tl.load(src + base + row + right, mask=inside, other=0).to(tl.int32)
    entries = 5 if HEAT_BATH else 10
    if QUAD:  # byte l of an int32, sign-extended: (v << (24 - 8 l)) >> 24 (arithmetic shift)
        s0, s1, s2, s3 = (q << 24) >> 24, (q << 16) >> 24, (q << 8) >> 24, q >> 24
        n0 = ((qu << 24) >> 24) + ((qd << 24) >> 24) + (ql >> 24) + s1
        n1 = ((qu << 16) >> 24) + ((qd << 16) >> 24) + s0 + s2
        n2 = ((qu << 8) >> 24) + ((qd << 8) >> 24) + s1 + s3
        n3 = (qu >> 24) + (qd >> 24) + s2 + ((qr << 24) >> 24)
        even = ((y + colour) & 1) == 0  # the colour's lanes: 0 and 2 (even), else 1 and 3
        sa, na, wa = tl.where(even, s0, s1), tl.where(even, n0, n1), tl.where(even, c0, c1).to(tl.int64)
        sb, nb, wb = tl.where(even, s2, s3), tl.where(even, n2, n3), tl.where(even, c2, c3).to(tl.int64)
        if HEAT_BATH:
            ta = tl.load(table + cell * entries + ((na + 4) >> 1), mask=inside, other=0)
            tb = tl.load(table + cell * entries + ((nb + 4) >> 1), mask=inside, other=0)
            new_a, new_b = tl.where(wa < ta, 1, -1), tl.where(wb < tb, 1, -1)
        else:
            ta = tl.load(table + cell * entries + 5 * ((sa + 1) >> 1) + ((na + 4) >> 1), mask=inside, other=0)
            tb = tl.load(table + cell * entries + 5 * ((sb + 1) >> 1) + ((nb + 4) >> 1), mask=inside, other=0)
            new_a, new_b = tl.where(wa < ta, -sa, sa), tl.where(wb < tb, -sb, sb)
        t0, t1 = tl.where(even, new_a, s0), tl.where(even, s1, new_a)
        t2, t3 = tl.where(even, new_b, s2), tl.where(even, s3, new_b)
        new = (t0 & 0xFF) | ((t1 & 0xFF) << 8) | ((t2 & 0xFF) << 16) | (t3 << 24)
        tl.store(dst + base + row + x, new, mask=inside)
    else:
        lane = (j & 3).to(tl.int32)
        word = tl.where(lane == 0, c0, tl.where(lane == 1, c1, tl.where(lane == 2, c2, c3))).to(tl.int64)
        n = qu + qd + ql + qr
        mine = ((x + y) & 1) == colour
        if HEAT_BATH:
            threshold = tl.load(table + cell * entries + ((n + 4) >> 1), mask=inside, other=0)
            new = tl.where(word < threshold, 1, -1)
        else:
            threshold = tl.load(table + cell * entries + 5 * ((q + 1) >> 1) + ((n + 4) >> 1), mask=inside, other=0)
            new = tl.where(word < threshold, -q, q)
        new = tl.where(mine, new, q).to(tl.int8)
        if STORE_ALL:
            tl.store(dst + base + row + x, new, mask=inside)
        else:
            tl.store(dst + base + row + x, new, mask=inside & mine)


_SPECIALIZE = dict(do_not_specialize=["slot", "step_lo", "step_hi", "colour"])
compiled = triton.jit(_colour_pass, **_SPECIALIZE)
interpreted = interpreted_twin(_colour_pass, **_SPECIALIZE)


def tile(ny: int, width: int) -> tuple[int, int]:
    """(BLOCK_Y, BLOCK_X): powers of two, about ``TILE_COLUMNS`` columns, no wider than the lattice needs."""
    block_x = min(MAX_BLOCK_X, triton.next_power_of_2(width))
    block_y = max(1, min(TILE_COLUMNS // block_x, triton.next_power_of_2(ny)))
    return block_y, block_x


def sweep(spin, keys, table, *, heat_bath: bool, slot: int, step: int):
    """One checkerboard sweep of ``spin`` (..., L_y, L_x) int8 torch tensor; a new tensor.

    keys: int64 (2, *ensemble) (``spin``'s leading dims); table: int64, 5 (heat bath) or 10
    (Metropolis) thresholds per cell, on ``spin``'s device.
    """
    ny, nx = spin.shape[-2:]
    src = spin.reshape(-1, ny, nx).contiguous()
    cells = src.shape[0]
    entries = 5 if heat_bath else 10
    if table.numel() != cells * entries:
        raise ValueError(f"table: expected {cells} x {entries} thresholds for {cells} cells, got {table.numel()}")
    keys = keys.reshape(2, -1).contiguous()
    if keys.shape[1] != cells:
        raise ValueError(f"keys: expected shape (2, {cells}) for {cells} cells, got {tuple(keys.shape)}")
    table = table.reshape(-1).contiguous()
    quad = nx % 4 == 0
    if quad and src.data_ptr() % 4:  # an int32 view needs 4-byte alignment
        src = src.clone()
    dst = torch.empty_like(src)
    source, target = (src.view(torch.int32), dst.view(torch.int32)) if quad else (src, dst)
    width = source.shape[-1]
    block_y, block_x = tile(ny, width)
    grid = (cells * triton.cdiv(ny, block_y) * triton.cdiv(width, block_x),)
    on_gpu = src.device.type == "cuda"
    kernel = compiled if on_gpu else interpreted
    step = int(step)
    with contextlib.nullcontext() if on_gpu else INTERPRETER:
        for colour, read in ((0, source), (1, target)):
            kernel[grid](read, target, keys, table, cells, ny, width, int(slot), step & 0xFFFFFFFF, step >> 32,
                         colour, HEAT_BATH=heat_bath, QUAD=quad, STORE_ALL=colour == 0, BLOCK_Y=block_y,
                         BLOCK_X=block_x)
    return dst.reshape(spin.shape)


def metropolis(*, spin, keys, slots, step, acceptance):
    """:func:`eqflow.systems.ising.operators.metropolis` as two Triton launches."""
    return {"spin": sweep(spin, keys, acceptance, heat_bath=False, slot=slots["words"], step=step)}


def heat_bath(*, spin, keys, slots, step, probability_up):
    """:func:`eqflow.systems.ising.operators.heat_bath` as two Triton launches."""
    return {"spin": sweep(spin, keys, probability_up, heat_bath=True, slot=slots["words"], step=step)}


__all__ = ["compiled", "heat_bath", "interpreted", "metropolis", "sweep", "tile"]
