"""Triton kernels of the checkerboard Ising sweeps: the reference operators' histories, bit for bit, on a GPU.

One fused launch per colour: a program takes a tile of ``BLOCK_Y`` rows x ``BLOCK_X`` columns of
one ensemble cell, reads each spin of the tile and its four neighbours (periodic), makes the
Philox4x32-10 words of its sites in registers and writes the sites of the colour. The words
are keyed as :func:`eqflow.random.generate` keys them (the DYNAMICS domain is 0): the word of
site (y, x) is word j mod 4 of the block with counter (j // 4, slot, step mod 2^32, step >> 32)
under the cell's key, j = y L_x + x. When 4 divides L_x a block is 4 sites of one row: the tile
is cut into quads and each block is made once per colour pass (2 of its 4 words used); else
each site makes its own block and keeps its lane. A word w is compared with the same integer
thresholds round(P 2^32) as the reference, so every decision is the same.

The first pass (black, (x + y) even) reads the input and writes every site of a new array (the
white ones unchanged), the second (white) updates that array in place at its own sites only:
per sweep each spin is read twice and written twice, with no other copy. Triton's own
``tl.randint`` keys Philox differently (seed as key, offset as counter word 0), so the rounds
are written here (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).

On CUDA tensors the kernels are compiled; on CPU tensors they run in Triton's interpreter
(exact but slow: the tests use it to check bit-identity without a GPU).
"""
from __future__ import annotations

import contextlib
import threading

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

PHILOX_M0, PHILOX_M1 = tl.constexpr(0xD2511F53), tl.constexpr(0xCD9E8D57)  # round multipliers
PHILOX_W0, PHILOX_W1 = tl.constexpr(0x9E3779B9), tl.constexpr(0xBB67AE85)  # key increments (Weyl sequence)
INTERPRETER = threading.Lock()  # the interpreter patches triton.language while it runs: one launch at a time
TILE_SITES = 1024  # sites per program (BLOCK_Y x BLOCK_X)
MAX_BLOCK_X = 128


def _colour_pass(src, dst, keys, table, ncells, ny, nx, slot, step_lo, step_hi, colour,
                 HEAT_BATH: tl.constexpr, QUAD: tl.constexpr, STORE_ALL: tl.constexpr,
                 BLOCK_Y: tl.constexpr, BLOCK_X: tl.constexpr):
    """One colour of a checkerboard sweep over the (cells, L_y, L_x) int8 ``src`` into ``dst``.

    table: int64 (cells, 10) Metropolis thresholds by (s > 0) 5 + (n + 4) / 2, or (cells, 5)
    heat-bath thresholds of s = +1 by (n + 4) / 2; keys: int64 (2, cells).
    """
    pid = tl.program_id(0)
    tiles_x = (nx + BLOCK_X - 1) // BLOCK_X  # no tl.cdiv: the interpreter runs builtins only
    tiles = (ny + BLOCK_Y - 1) // BLOCK_Y * tiles_x
    cell = pid // tiles
    tile = pid % tiles
    k0 = tl.load(keys + cell).to(tl.uint32)
    k1 = tl.load(keys + ncells + cell).to(tl.uint32)
    base = cell.to(tl.int64) * ny * nx
    zero = tl.full([1, 1, 1], 0, tl.uint32)  # (tl.zeros is not a builtin: the interpreter refuses it)
    c1 = zero + slot.to(tl.uint32)  # a Python int >= 2^31 arrives as int64: keep its low 32 bits
    c2 = zero + step_lo.to(tl.uint32)
    c3 = zero + step_hi.to(tl.uint32)
    # sites as (row, quad, lane): x = 4 quad + lane
    y = (tile // tiles_x) * BLOCK_Y + tl.arange(0, BLOCK_Y)[:, None, None]
    quad = (tile % tiles_x) * (BLOCK_X // 4) + tl.arange(0, BLOCK_X // 4)[None, :, None]
    lane = tl.arange(0, 4)[None, None, :]
    x = 4 * quad + lane
    inside = (y < ny) & (x < nx)
    if QUAD:  # one block per quad: counter word 0 = (y L_x + 4 quad) / 4
        c0 = (y.to(tl.int64) * (nx // 4) + quad).to(tl.uint32)
    else:  # one block per site: word 0 = j // 4, keep lane j mod 4
        j = y.to(tl.int64) * nx + x
        c0 = (j >> 2).to(tl.uint32)
        lane = (j & 3).to(tl.int32)
    c0 = c0 + zero
    a0, a1 = k0, k1
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, PHILOX_M0)
        hi1 = tl.umulhi(c2, PHILOX_M1)
        lo0 = c0 * PHILOX_M0
        lo1 = c2 * PHILOX_M1
        c0, c1, c2, c3 = hi1 ^ c1 ^ a0, lo1, hi0 ^ c3 ^ a1, lo0
        a0 = a0 + PHILOX_W0
        a1 = a1 + PHILOX_W1
    word = tl.where(lane == 0, c0, tl.where(lane == 1, c1, tl.where(lane == 2, c2, c3))).to(tl.int64)

    up = tl.where(y == 0, ny - 1, y - 1)
    down = tl.where(y == ny - 1, 0, y + 1)
    left = tl.where(x == 0, nx - 1, x - 1)
    right = tl.where(x == nx - 1, 0, x + 1)
    row = base + y.to(tl.int64) * nx
    s = tl.load(src + row + x, mask=inside, other=1).to(tl.int32)
    n = (tl.load(src + base + up.to(tl.int64) * nx + x, mask=inside, other=0).to(tl.int32)
         + tl.load(src + base + down.to(tl.int64) * nx + x, mask=inside, other=0).to(tl.int32)
         + tl.load(src + row + left, mask=inside, other=0).to(tl.int32)
         + tl.load(src + row + right, mask=inside, other=0).to(tl.int32))
    mine = ((x + y) & 1) == colour
    if HEAT_BATH:
        threshold = tl.load(table + cell * 5 + ((n + 4) >> 1), mask=inside, other=0)
        new = tl.where(word < threshold, 1, -1)
    else:
        threshold = tl.load(table + cell * 10 + 5 * ((s + 1) >> 1) + ((n + 4) >> 1), mask=inside, other=0)
        new = tl.where(word < threshold, -s, s)
    new = tl.where(mine, new, s).to(tl.int8)
    if STORE_ALL:
        tl.store(dst + row + x, new, mask=inside)
    else:
        tl.store(dst + row + x, new, mask=inside & mine)


# the step words change every call (no recompiling); the sizes stay specialised (L_x % 16 == 0 lets loads vectorise)
_SPECIALIZE = dict(do_not_specialize=["slot", "step_lo", "step_hi", "colour"])
compiled = triton.jit(_colour_pass, **_SPECIALIZE)
interpreted = InterpretedFunction(_colour_pass, **_SPECIALIZE)


def tile(ny: int, nx: int) -> tuple[int, int]:
    """(BLOCK_Y, BLOCK_X): powers of two, BLOCK_X >= 4, about ``TILE_SITES`` sites, no wider than the lattice needs."""
    block_x = max(4, min(MAX_BLOCK_X, triton.next_power_of_2(nx)))
    block_y = max(1, min(TILE_SITES // block_x, triton.next_power_of_2(ny)))
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
    dst = torch.empty_like(src)
    block_y, block_x = tile(ny, nx)
    grid = (cells * triton.cdiv(ny, block_y) * triton.cdiv(nx, block_x),)
    on_gpu = src.device.type == "cuda"
    kernel = compiled if on_gpu else interpreted
    step = int(step)
    with contextlib.nullcontext() if on_gpu else INTERPRETER:
        for colour, source in ((0, src), (1, dst)):
            kernel[grid](source, dst, keys, table, cells, ny, nx, int(slot), step & 0xFFFFFFFF, step >> 32,
                         colour,
                         HEAT_BATH=heat_bath, QUAD=nx % 4 == 0, STORE_ALL=colour == 0, BLOCK_Y=block_y,
                         BLOCK_X=block_x)
    return dst.reshape(spin.shape)


def metropolis(*, spin, keys, slots, step, acceptance):
    """:func:`eqflow.systems.ising.operators.metropolis` as two Triton launches."""
    return {"spin": sweep(spin, keys, acceptance, heat_bath=False, slot=slots["words"], step=step)}


def heat_bath(*, spin, keys, slots, step, probability_up):
    """:func:`eqflow.systems.ising.operators.heat_bath` as two Triton launches."""
    return {"spin": sweep(spin, keys, probability_up, heat_bath=True, slot=slots["words"], step=step)}


def bytes_per_flip() -> float:
    """DRAM bytes per attempted flip of the two-pass sweep: each int8 spin read twice and written twice."""
    return 4.0


__all__ = ["compiled", "heat_bath", "interpreted", "metropolis", "sweep", "tile"]
