"""numba kernels of the Ising operators: the same histories as the array-API references, bit for bit.

Each kernel makes its random words itself, with the Philox4x32-10 of :mod:`eqflow.random.numba_philox`
inlined and keyed exactly as :func:`eqflow.random.generate` keys them: word j of a draw of a cell is
word j mod 4 of the block with counter (j // 4, slot, step mod 2^32, step >> 32) under the cell's key (the
DYNAMICS domain is 0). A word is compared with the same integer thresholds as the reference,
so both take the same decisions. The checkerboard sweep runs in tasks of whole rows: each makes
its rows' words (the whole Philox blocks in one vectorised loop) and updates their colour-0 sites;
after one barrier, their colour-1 sites. Cells larger than one task (L_x is even) first pack each
row's even-x and odd-x sites into two contiguous rows (the split layout), so a colour pass
computes only its own sites; small cells compute every site of a row and keep the pass's colour.
The site loops pick thresholds with a chain of selects instead of a table gather, so LLVM
vectorises them. The cluster steps make the words they need where they need them. Tasks run in
parallel (``prange``) when a call has at least ``PARALLEL_SITES`` sites, else on one thread.
Compiled on first use and cached on disk (``cache=True``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ...backends import configure_numba
from ...random.numba_philox import below, philox, word

configure_numba()  # the thread pool's wait policy, before any parallel loop of this module runs

HALF = 2**31
SITES_PER_TASK = 16384  # rows one parallel task updates: enough work to pay for a task


@njit(inline="always", cache=True)
def _words(words, keys, slot, step_lo, step_hi, c, first, last):
    """Words ``first .. last - 1`` of cell c's draw into ``words[c]``: the whole Philox blocks in one
    contiguous loop over a 1-d view, which LLVM vectorises (about 4x a loop of 2-d stores), the
    partial blocks at the ends word by word. Tasks that make adjacent ranges write disjoint words."""
    out = words[c]
    k0, k1 = np.uint64(keys[0, c]), np.uint64(keys[1, c])
    inner, outer = (first + 3) >> 2, last >> 2
    if inner >= outer:
        for j in range(first, last):
            out[j] = word(j, slot, step_lo, step_hi, k0, k1)
        return
    for j in range(first, 4 * inner):
        out[j] = word(j, slot, step_lo, step_hi, k0, k1)
    run, base = out[4 * inner:4 * outer], np.uint64(inner)  # a view from the run's first block: the loop
    for i in range(outer - inner):  # from 0 over it is what LLVM vectorises (4x a loop from `inner`)
        w0, w1, w2, w3 = philox(base + np.uint64(i), slot, step_lo, step_hi, k0, k1)
        run[4 * i] = w0
        run[4 * i + 1] = w1
        run[4 * i + 2] = w2
        run[4 * i + 3] = w3
    for j in range(4 * outer, last):
        out[j] = word(j, slot, step_lo, step_hi, k0, k1)


@njit(inline="always", cache=True)
def _rows(spin, c, y):
    """Rows y - 1, y + 1 and y of cell c (periodic)."""
    ny = spin.shape[1]
    return spin[c, y - 1 if y > 0 else ny - 1], spin[c, y + 1 if y < ny - 1 else 0], spin[c, y]


@njit(inline="always", cache=True)
def _threshold(table, k, n):
    """``table[k]`` for k < n, as a chain of selects: a gather keeps the site loop from vectorising (2x)."""
    value = table[0]
    for j in range(1, n):
        value = table[j] if k == j else value
    return value


@njit(inline="always", cache=True)
def _metropolis_site(s8, n, w, t, mine):
    """The new spin of one site (s int8, n the int32 neighbour sum, w its word, t the cell's
    thresholds): flipped when w < t[5 (s > 0) + (n + 4) / 2] and the site has the pass's colour."""
    s = np.int32(s8)
    flip = np.int32(np.int64(w) < _threshold(t, 5 * ((s + 1) >> 1) + ((n + 4) >> 1), 10)) & np.int32(mine)
    return s - 2 * s * flip


@njit(inline="always", cache=True)
def _heat_bath_site(s8, n, w, t, mine):
    """:func:`_metropolis_site` for the heat bath: s = +1 when w < t[(n + 4) / 2], else -1."""
    s = np.int32(s8)
    up = np.int32(np.int64(w) < _threshold(t, (n + 4) >> 1, 5))
    return s + np.int32(mine) * (2 * up - 1 - s)


@njit(inline="always", cache=True)
def _colour_row(spin, words, table, colour, c, y, new, site):
    """The sites of one colour in row y of cell c. Every site of the row is computed into ``new``
    (the other colour keeping its spin), then copied back: a contiguous loop without branches
    (the decisions are coin flips, which a branch predictor gets wrong half the time) that does not
    write what it reads; the periodic ends apart, so the interior loads are contiguous."""
    nx = spin.shape[2]
    up, down, row = _rows(spin, c, y)
    w = words[c, y * nx:(y + 1) * nx]
    t = table[c]
    parity = (y + colour) & 1
    for x in range(1, nx - 1):
        n = np.int32(up[x]) + np.int32(down[x]) + np.int32(row[x - 1]) + np.int32(row[x + 1])
        new[x] = site(row[x], n, w[x], t, (x & 1) == parity)
    for x in (0, nx - 1):
        left, right = row[x - 1 if x > 0 else nx - 1], row[x + 1 if x < nx - 1 else 0]
        n = np.int32(up[x]) + np.int32(down[x]) + np.int32(left) + np.int32(right)
        new[x] = site(row[x], n, w[x], t, (x & 1) == parity)
    for x in range(nx):
        row[x] = new[x]


@njit(inline="always", cache=True)
def _rows_per_task(ny, nx):
    """Rows of one task (about SITES_PER_TASK sites) and runs of them per cell."""
    per = max(1, min(ny, SITES_PER_TASK // nx))
    return per, -(-ny // per)


@njit(inline="always", cache=True)
def _rows_of(task, ny, nx):
    """Cell and rows [y0, y1) of a task: runs of about SITES_PER_TASK sites."""
    per, runs = _rows_per_task(ny, nx)
    y0 = (task % runs) * per
    return task // runs, y0, min(y0 + per, ny)


@njit(inline="always", cache=True)
def _first_colour(spin, keys, table, slot, step_lo, step_hi, words, task, site):
    """A task's rows: their words, then their sites of colour 0 (which read only colour 1)."""
    cells, ny, nx = spin.shape
    c, y0, y1 = _rows_of(task, ny, nx)
    _words(words, keys, slot, step_lo, step_hi, c, y0 * nx, y1 * nx)
    new = np.empty(nx, np.int8)
    for y in range(y0, y1):
        _colour_row(spin, words, table, 0, c, y, new, site)


@njit(inline="always", cache=True)
def _second_colour(spin, words, table, task, site):
    cells, ny, nx = spin.shape
    c, y0, y1 = _rows_of(task, ny, nx)
    new = np.empty(nx, np.int8)
    for y in range(y0, y1):
        _colour_row(spin, words, table, 1, c, y, new, site)


@njit(inline="always", cache=True)
def _whole_cell(spin, keys, table, slot, step_lo, step_hi, words, c, site):
    """A whole sweep of cell c: its words, then its colour-0 rows, then its colour-1 rows."""
    ny, nx = spin.shape[1], spin.shape[2]
    _words(words, keys, slot, step_lo, step_hi, c, 0, ny * nx)
    new = np.empty(nx, np.int8)
    for colour in range(2):
        for y in range(ny):
            _colour_row(spin, words, table, colour, c, y, new, site)


@njit(inline="always", cache=True)
def _tasks(spin):
    cells, ny, nx = spin.shape
    return cells * _rows_per_task(ny, nx)[1], np.empty((cells, ((ny * nx + 3) >> 2) * 4), np.uint32)


@njit(parallel=True, cache=True, nogil=True)
def checkerboard_sweep(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """One checkerboard sweep of ``spin`` (cells, L_y, L_x) int8, in place, in parallel. Cells of up
    to SITES_PER_TASK sites: one task per cell (both colours), one fork-join per sweep. Larger
    cells: tasks of runs of rows, each making its rows' words and updating their colour-0 sites,
    then (after one barrier) their colour-1 sites. (The prange loops are written out per rule:
    numba parallelises only the loops of the function it compiles, not those of inlined ones.)

    table : int64 (cells, 10) Metropolis thresholds by (s > 0) 5 + (n + 4) / 2, or (cells, 5)
    heat-bath thresholds of s = +1 by (n + 4) / 2; keys : int64 (2, cells).
    """
    tasks, words = _tasks(spin)
    cells, whole = spin.shape[0], spin.shape[1] * spin.shape[2] <= SITES_PER_TASK
    if heat_bath and whole:  # one loop per rule: a branch on the rule inside the site loop slows it 2x
        for c in prange(cells):
            _whole_cell(spin, keys, table, slot, step_lo, step_hi, words, c, _heat_bath_site)
    elif heat_bath:
        for task in prange(tasks):
            _first_colour(spin, keys, table, slot, step_lo, step_hi, words, task, _heat_bath_site)
        for task in prange(tasks):
            _second_colour(spin, words, table, task, _heat_bath_site)
    elif whole:
        for c in prange(cells):
            _whole_cell(spin, keys, table, slot, step_lo, step_hi, words, c, _metropolis_site)
    else:
        for task in prange(tasks):
            _first_colour(spin, keys, table, slot, step_lo, step_hi, words, task, _metropolis_site)
        for task in prange(tasks):
            _second_colour(spin, words, table, task, _metropolis_site)


@njit(cache=True, nogil=True)
def checkerboard_sweep_serial(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """:func:`checkerboard_sweep` on one thread (small work: no thread start-up and barriers)."""
    words = np.empty((spin.shape[0], ((spin.shape[1] * spin.shape[2] + 3) >> 2) * 4), np.uint32)
    for c in range(spin.shape[0]):
        if heat_bath:
            _whole_cell(spin, keys, table, slot, step_lo, step_hi, words, c, _heat_bath_site)
        else:
            _whole_cell(spin, keys, table, slot, step_lo, step_hi, words, c, _metropolis_site)


# --------------------------------------------------------------------------------------------
# Large cells of even L_x: the split layout. Each row's even-x and odd-x sites are packed into two
# contiguous rows, so a colour pass computes only its own sites with contiguous loads (the full-row
# loop above computes every site and keeps half). 1.4-1.7x the full-row loop on 2 threads, 1.6-2x
# on one (RESULTS.md). Small cells (one task each) keep the full-row loop: their packed rows are
# too short to vectorise.
# --------------------------------------------------------------------------------------------


@njit(inline="always", cache=True)
def _repack_rows(spin, even, odd, c, y0, y1, pack):
    """Rows [y0, y1) of cell c into the packed even-x and odd-x rows (``pack``), or back."""
    half = spin.shape[2] >> 1
    for y in range(y0, y1):
        row, e, o = spin[c, y], even[c, y], odd[c, y]
        if pack:
            for k in range(half):
                e[k] = row[2 * k]
                o[k] = row[2 * k + 1]
        else:
            for k in range(half):
                row[2 * k] = e[k]
                row[2 * k + 1] = o[k]


@njit(inline="always", cache=True)
def _split_colour_row(even, odd, words, table, colour, c, y, site):
    """The sites of one colour in row y of cell c, on the packed rows: the sites x = 2k + p (p the
    row's parity for this colour) are ``mine[k]``; their left and right neighbours are the other
    array's k - 1 + p and k + p (periodic), up and down the same array's rows y -+ 1 at k."""
    ny, half = even.shape[1], even.shape[2]
    nx = 2 * half
    p = (y + colour) & 1
    ya, yb = (y - 1 if y > 0 else ny - 1), (y + 1 if y < ny - 1 else 0)
    w = words[c, y * nx:(y + 1) * nx]
    t = table[c]
    if p == 0:
        mine, up, down, side = even[c, y], even[c, ya], even[c, yb], odd[c, y]
        first = np.int32(mine[0])
        n0 = np.int32(up[0]) + np.int32(down[0]) + np.int32(side[half - 1]) + np.int32(side[0])
        for k in range(1, half):
            n = np.int32(up[k]) + np.int32(down[k]) + np.int32(side[k - 1]) + np.int32(side[k])
            mine[k] = site(mine[k], n, w[2 * k], t, True)
        mine[0] = site(first, n0, w[0], t, True)
    else:
        mine, up, down, side = odd[c, y], odd[c, ya], odd[c, yb], even[c, y]
        last = np.int32(mine[half - 1])
        nl = (np.int32(up[half - 1]) + np.int32(down[half - 1]) + np.int32(side[half - 1])
              + np.int32(side[0]))
        for k in range(half - 1):
            n = np.int32(up[k]) + np.int32(down[k]) + np.int32(side[k]) + np.int32(side[k + 1])
            mine[k] = site(mine[k], n, w[2 * k + 1], t, True)
        mine[half - 1] = site(last, nl, w[nx - 1], t, True)


@njit(cache=True, nogil=True)
def _split_rows_task(spin, keys, table, heat_bath, slot, step_lo, step_hi, words, even, odd, task, phase):
    """Phase 0: a task's words and packed rows; 1: their colour-0 sites; 2: colour 1, then unpacked.
    A compiled call, not inlined: inlined into the prange loop, numba's parfor passes changed the
    history (the same code on one thread, without prange, did not)."""
    ny, nx = spin.shape[1], spin.shape[2]
    c, y0, y1 = _rows_of(task, ny, nx)
    if phase == 0:
        _words(words, keys, slot, step_lo, step_hi, c, y0 * nx, y1 * nx)
        _repack_rows(spin, even, odd, c, y0, y1, True)
        return
    for y in range(y0, y1):
        if heat_bath:
            _split_colour_row(even, odd, words, table, phase - 1, c, y, _heat_bath_site)
        else:
            _split_colour_row(even, odd, words, table, phase - 1, c, y, _metropolis_site)
    if phase == 2:
        _repack_rows(spin, even, odd, c, y0, y1, False)


@njit(inline="always", cache=True)
def _split_buffers(spin):
    """The number of row tasks, the words of every cell, and the packed even-x and odd-x rows."""
    cells, ny, nx = spin.shape
    tasks, words = _tasks(spin)
    return tasks, words, np.empty((cells, ny, nx >> 1), np.int8), np.empty((cells, ny, nx >> 1), np.int8)


@njit(parallel=True, cache=True, nogil=True)
def split_sweep(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """:func:`checkerboard_sweep` for cells of more than SITES_PER_TASK sites and even L_x, in the
    split layout: tasks of runs of rows make their words and pack their rows; after a barrier,
    their colour-0 sites; after another, their colour-1 sites, then unpack them."""
    tasks, words, even, odd = _split_buffers(spin)
    for phase in range(3):
        for task in prange(tasks):
            _split_rows_task(spin, keys, table, heat_bath, slot, step_lo, step_hi, words, even, odd, task, phase)


@njit(cache=True, nogil=True)
def split_sweep_serial(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """:func:`split_sweep` on one thread (the same tasks in order: their rows stay in cache)."""
    tasks, words, even, odd = _split_buffers(spin)
    for phase in range(3):
        for task in range(tasks):
            _split_rows_task(spin, keys, table, heat_bath, slot, step_lo, step_hi, words, even, odd, task, phase)


# --------------------------------------------------------------------------------------------
# Many small cells: the cell-major layout. A task takes a block of cells and lays their spins out
# (L_y, L_x, block) in a buffer of its own, so that the innermost loop runs over cells: one
# contiguous loop per site, which LLVM vectorises however small the lattice (the full-row loop
# above runs rows of L_x sites: 8 on an 8^2 lattice, too short to vectorise, and computes both
# colours). Its words and thresholds are laid out the same way, in buffers that stay in cache.
# Each site's word and update are those of the loops above, so the history is the same bit for
# bit (RESULTS.md has the speed-ups).
# --------------------------------------------------------------------------------------------

CELL_MAJOR_SITES = 256  # cells of at most this many sites (16^2) take the cell-major layout ...
CELL_MAJOR_CELLS = 64  # ... when a call has at least this many cells
CELL_MAJOR_WORDS = 16384  # words of one block's draw buffer (64 KiB): blocks of 16384 / sites cells


@njit(inline="always", cache=True)
def _cell_major_threshold(table, k, n, c):
    """``table[k, c]`` for k < n (table (n, cells)), as a chain of selects (a gather does not vectorise)."""
    value = table[0, c]
    for j in range(1, n):
        value = table[j, c] if k == j else value
    return value


@njit(inline="always", cache=True)
def _cell_major_pass(spin, words, table, heat_bath, colour, cells):
    """The sites of one colour of a block; spin (L_y, L_x, block) int8, table (10 or 5, block)."""
    ny, nx = spin.shape[0], spin.shape[1]
    for y in range(ny):
        ya, yb = (y - 1 if y > 0 else ny - 1), (y + 1 if y < ny - 1 else 0)
        for x in range((y + colour) & 1, nx, 2):
            xl, xr = (x - 1 if x > 0 else nx - 1), (x + 1 if x < nx - 1 else 0)
            me, up, down, left, right = spin[y, x], spin[ya, x], spin[yb, x], spin[y, xl], spin[y, xr]
            w = words[y * nx + x]
            if heat_bath:  # s = +1 when w < t[(n + 4) / 2], else -1
                for c in range(cells):
                    n = np.int32(up[c]) + np.int32(down[c]) + np.int32(left[c]) + np.int32(right[c])
                    aligned = np.int32(np.int64(w[c]) < _cell_major_threshold(table, (n + 4) >> 1, 5, c))
                    me[c] = 2 * aligned - 1
            else:  # flipped when w < t[5 (s > 0) + (n + 4) / 2]
                for c in range(cells):
                    s = np.int32(me[c])
                    n = np.int32(up[c]) + np.int32(down[c]) + np.int32(left[c]) + np.int32(right[c])
                    k = 5 * ((s + 1) >> 1) + ((n + 4) >> 1)
                    flip = np.int32(np.int64(w[c]) < _cell_major_threshold(table, k, 10, c))
                    me[c] = s - 2 * s * flip


@njit(inline="always", cache=True)
def _cell_major_block(spin, keys, table, heat_bath, slot, step_lo, step_hi, c0, c1, local, words, thresholds):
    """A whole sweep of cells [c0, c1) of ``spin`` (cells, L_y, L_x) through the block's buffers."""
    ny, nx = spin.shape[1], spin.shape[2]
    cells = c1 - c0
    for c in range(cells):
        for y in range(ny):
            for x in range(nx):
                local[y, x, c] = spin[c0 + c, y, x]
        for j in range(table.shape[1]):
            thresholds[j, c] = table[c0 + c, j]
    for i in range(words.shape[0] >> 2):
        r0, r1, r2, r3 = words[4 * i], words[4 * i + 1], words[4 * i + 2], words[4 * i + 3]
        block = np.uint64(i)
        for c in range(cells):
            w0, w1, w2, w3 = philox(block, slot, step_lo, step_hi, np.uint64(keys[0, c0 + c]),
                                    np.uint64(keys[1, c0 + c]))
            r0[c] = w0
            r1[c] = w1
            r2[c] = w2
            r3[c] = w3
    _cell_major_pass(local, words, thresholds, heat_bath, 0, cells)
    _cell_major_pass(local, words, thresholds, heat_bath, 1, cells)
    for c in range(cells):
        for y in range(ny):
            for x in range(nx):
                spin[c0 + c, y, x] = local[y, x, c]


@njit(inline="always", cache=True)
def _cell_major_buffers(spin, table, block):
    ny, nx = spin.shape[1], spin.shape[2]
    return (np.empty((ny, nx, block), np.int8), np.empty((((ny * nx + 3) >> 2) * 4, block), np.uint32),
            np.empty((table.shape[1], block), np.int64))


@njit(inline="always", cache=True)
def _cell_major_block_size(spin):
    return max(16, CELL_MAJOR_WORDS // (spin.shape[1] * spin.shape[2]))


@njit(parallel=True, cache=True, nogil=True)
def cell_major_sweep(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """One checkerboard sweep of ``spin`` (cells, L_y, L_x) int8, in place, in parallel over blocks of
    cells (independent: one fork-join per sweep); arguments as :func:`checkerboard_sweep`."""
    cells, block = spin.shape[0], _cell_major_block_size(spin)
    for task in prange(-(-cells // block)):
        local, words, thresholds = _cell_major_buffers(spin, table, block)
        c0 = task * block
        _cell_major_block(spin, keys, table, heat_bath, slot, step_lo, step_hi, c0, min(c0 + block, cells),
                          local, words, thresholds)


@njit(cache=True, nogil=True)
def cell_major_sweep_serial(spin, keys, table, heat_bath, slot, step_lo, step_hi):
    """:func:`cell_major_sweep` on one thread (the blocks in order, one set of buffers)."""
    cells, block = spin.shape[0], _cell_major_block_size(spin)
    local, words, thresholds = _cell_major_buffers(spin, table, block)
    for c0 in range(0, cells, block):
        _cell_major_block(spin, keys, table, heat_bath, slot, step_lo, step_hi, c0, min(c0 + block, cells),
                          local, words, thresholds)


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


@njit(inline="always", cache=True)
def _row_sums(spin, c, y):
    """(sum over x of s (s_right + s_down), sum over x of s) of row y of cell c, periodic; int32
    accumulators (|sums| <= 2 L_x), so LLVM vectorises the loop."""
    ny, nx = spin.shape[1], spin.shape[2]
    row, down = spin[c, y], spin[c, y + 1 if y + 1 < ny else 0]
    bonds, total = np.int32(0), np.int32(0)
    for x in range(nx - 1):
        s = np.int32(row[x])
        bonds += s * (np.int32(row[x + 1]) + np.int32(down[x]))
        total += s
    s = np.int32(row[nx - 1])
    return bonds + s * (np.int32(row[0]) + np.int32(down[nx - 1])), total + s


@njit(cache=True, nogil=True)
def lattice_sums_serial(spin):
    """The exact int64 (bond sum, spin sum) of each cell of ``spin`` (cells, L_y, L_x) int8, one pass."""
    cells, ny = spin.shape[0], spin.shape[1]
    bonds, total = np.zeros(cells, np.int64), np.zeros(cells, np.int64)
    for c in range(cells):
        for y in range(ny):
            b, t = _row_sums(spin, c, y)
            bonds[c] += b
            total[c] += t
    return bonds, total


def ising_sums(spin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum_<ij> s_i s_j, sum_i s_i) per lattice of int8 ``spin`` (..., L_y, L_x), periodic, as
    exact int64 arrays of shape ``spin.shape[:-2]``: the integers the array-API observables
    compute, in one compiled pass on one thread (E and M of 64²: 44 -> 26 us)."""
    work = np.ascontiguousarray(spin).reshape(-1, *spin.shape[-2:])
    # one thread always: observables also run outside a task's numba thread setting (its first
    # and last records), where parallel calls from side-by-side dask threads could collide in
    # numba's workqueue layer
    bonds, total = lattice_sums_serial(work)
    return bonds.reshape(spin.shape[:-2]), total.reshape(spin.shape[:-2])


PARALLEL_SITES = 2**18  # below this many sites per call one thread is faster (thread barriers; see RESULTS.md)


def _parallel(work) -> bool:
    return work.size >= PARALLEL_SITES and work.shape[0] * work.shape[1] > 1 and numba.get_num_threads() > 1


def _cells(spin, keys, step):
    """A private C-contiguous copy of ``spin`` as (cells, L_y, L_x), the keys as (2, cells), the step words."""
    shape = spin.shape
    work = np.array(spin, dtype=np.int8, order="C").reshape(-1, *shape[-2:])
    step = int(step)
    return work, np.ascontiguousarray(keys).reshape(2, -1), np.uint64(step & 0xFFFFFFFF), np.uint64(step >> 32)


def _sweep(work):
    """The checkerboard loop for these cells: the cell-major layout for many small cells, the split
    layout for cells larger than one task with even L_x, else the full-row loop; in parallel when
    the call has the work for it."""
    sites = work.shape[1] * work.shape[2]
    if sites <= CELL_MAJOR_SITES and work.shape[0] >= CELL_MAJOR_CELLS:
        return cell_major_sweep if _parallel(work) else cell_major_sweep_serial
    split = work.shape[2] % 2 == 0 and sites > SITES_PER_TASK
    if _parallel(work):
        return split_sweep if split else checkerboard_sweep
    return split_sweep_serial if split else checkerboard_sweep_serial


def _local_update(spin, keys, slots, step, table, heat_bath: bool) -> dict:
    """One checkerboard sweep (Metropolis or heat bath) with the loop that suits these cells."""
    work, k, lo, hi = _cells(spin, keys, step)
    _sweep(work)(work, k, table.reshape(work.shape[0], -1), heat_bath, np.uint64(slots["words"]), lo, hi)
    return {"spin": work.reshape(spin.shape)}


def metropolis(*, spin, keys, slots, step, acceptance):
    """:func:`eqflow.systems.ising.operators.metropolis`, compiled."""
    return _local_update(spin, keys, slots, step, acceptance, False)


def heat_bath(*, spin, keys, slots, step, probability_up):
    """:func:`eqflow.systems.ising.operators.heat_bath`, compiled."""
    return _local_update(spin, keys, slots, step, probability_up, True)


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
