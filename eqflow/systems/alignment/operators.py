"""Best-response updates of coordinators and anti-coordinators on a graph: pure functions over raw arrays.

Node i with degree d_i and n_A of its neighbours playing A (action 1) compares n_A with
tau d_i (``threshold`` tau): a coordinator strictly prefers A when n_A > tau d_i and B when
n_A < tau d_i; an anti-coordinator strictly prefers B when n_A > tau d_i and A when
n_A < tau d_i. At n_A = tau d_i it is indifferent and the ``tie`` rule decides: "keep" its
action, "switch" it, or "random" (a fair coin from the declared draws). This is the linear
threshold model of Ramazi, Riehl & Cao, PNAS 113, 12985 (2016), the model of Xia, McAvoy & Su,
"Behavioral alignment in social networks", arXiv:2506.00046 (2025).

All arithmetic is on integers: ``prepare`` turns tau d_i into the integer bounds
low_i = ceil(tau d_i) and high_i = floor(tau d_i) (equal when tau d_i is an integer, within
1e-9), so that n_A > high_i and n_A < low_i are the strict preferences and NumPy and torch
take the same decisions. The ensemble is flattened to C cells inside; the neighbour table is
shared by all cells (one graph) or held per cell (random graph families), padded with the
sentinel N, a node that always plays B (0) and is never counted in n_A's denominator d_i.
"""
from __future__ import annotations

import math

import numpy as np

from ...backends import namespace

TIES = ("keep", "switch", "random")
INTEGER_TOLERANCE = 1e-9  # tau d_i within this of an integer is that integer (a tie is possible)


ACTIVATIONS = ("uniform", "unsatisfied")


def prepare(*, neighbors, degree, type, threshold, sizes, activation="uniform"):  # noqa: A002  ("type": the constant)
    """Per-cell integer tables from the constants, NumPy, once per run (chunk).

    Returns ``table`` int64 (G, N, K) (G = 1: one graph, else one per cell; -1 replaced by N),
    ``cells`` int64 (C,) = 0..C-1, ``low``, ``high`` int64 (C, N) (see the module docstring),
    ``anti`` int8 (C, N) (1 for an anti-coordinator), ``degrees`` int64 (C, N), and flat
    offsets for the asynchronous picks: ``graph_base`` = g(c) N (the row of a cell's table),
    ``node_base`` = c N and ``ext_base`` = c (N + 1).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"options['activation']: expected one of {list(ACTIVATIONS)}, got {activation!r}")
    ensemble = np.shape(threshold)
    cells = math.prod(ensemble)
    n = sizes["node"]
    per_cell = any(s > 1 for s in np.shape(neighbors)[:-2])
    if per_cell:
        table = np.broadcast_to(neighbors, (*ensemble, *np.shape(neighbors)[-2:])).reshape(cells, n, -1)
    else:
        table = np.reshape(neighbors, (1, *np.shape(neighbors)[-2:]))
    table = np.where(table < 0, n, table).astype(np.int64)
    d = np.broadcast_to(degree, (*ensemble, n)).reshape(cells, n).astype(np.int64)
    x = np.reshape(np.asarray(threshold, dtype=np.float64), (cells, 1)) * d
    r = np.rint(x)
    exact = np.abs(x - r) <= INTEGER_TOLERANCE * np.maximum(1.0, x)
    low = np.where(exact, r, np.ceil(x)).astype(np.int64)
    high = np.where(exact, r, np.floor(x)).astype(np.int64)
    anti = np.broadcast_to(type, (*ensemble, n)).reshape(cells, n).astype(np.int8)
    index = np.arange(cells, dtype=np.int64)
    return {"table": table, "cells": index, "low": low, "high": high, "anti": anti, "degrees": d,
            "graph_base": (index if per_cell else np.zeros(cells, np.int64)) * n, "node_base": index * n,
            "ext_base": index * (n + 1)}


def _take(flat, index):
    """``flat[index]`` for a 1-D array and an integer index array of any shape (a plain gather)."""
    return np.take(flat, index) if isinstance(flat, np.ndarray) else flat.take(index)


def _cumsum(x):
    """Cumulative sum along the last axis (NumPy or torch)."""
    return np.cumsum(x, axis=-1) if isinstance(x, np.ndarray) else x.cumsum(dim=-1)


def extended(action, cells):
    """``action`` (..., N) as (C, N + 1): the cells' profiles with the sentinel column (B) appended."""
    xp = namespace(action)
    flat = xp.reshape(action, (cells.shape[0], action.shape[-1]))
    return xp.concat([flat, flat[:, :1] * 0], axis=1)


def neighbors_a(ext, table, cells):
    """n_A of every node, int64 (C, N), from the extended profiles ``ext`` (C, N + 1).

    One gather per neighbour slot k (N per cell), accumulated: no (C, N, K) intermediate.
    """
    xp = namespace(ext)
    c, n = ext.shape[0], ext.shape[1] - 1
    total = xp.zeros((c, n), dtype=xp.int64) if isinstance(ext, np.ndarray) else ext.new_zeros((c, n),
                                                                                                  dtype=xp.int64)
    if table.shape[0] == 1:
        for k in range(table.shape[-1]):
            total += ext[:, table[0, :, k]]
    else:
        flat = xp.reshape(ext, (-1,))
        base = cells[:, None] * (n + 1)
        for k in range(table.shape[-1]):
            total += _take(flat, base + table[:, :, k])
    return total


def respond(n_a, low, high, anti, current, tie, coin):
    """The best response (int8) of nodes with n_A ``n_a``, bounds, types and ``current`` actions.

    Strict preferences: n_A > high gives A (1) to a coordinator and B (0) to an anti-coordinator,
    n_A < low the reverse; indifferent nodes follow ``tie`` ("keep", "switch", or "random":
    ``coin``, int8 0/1).
    """
    xp = namespace(n_a)
    above, below = n_a > high, n_a < low
    strict = xp.where(above, 1 - anti, anti)
    if tie == "keep":
        indifferent = current
    elif tie == "switch":
        indifferent = 1 - current
    else:
        indifferent = coin
    return xp.where(above | below, strict, indifferent)


def wants_switch(n_a, low, high, anti, current, tie):
    """bool: nodes whose best response differs from ``current`` (tie "switch": the indifferent ones
    too; "keep" and "random" count an indifferent node as satisfied)."""
    xp = namespace(n_a)
    above, below = n_a > high, n_a < low
    mask = (above | below) & (xp.where(above, 1 - anti, anti) != current)
    return mask | ~(above | below) if tie == "switch" else mask


def best_response(*, action, picks, coins, table, cells, low, high, anti, tie, picks_per_step, graph_base,
                  node_base, ext_base, activation="uniform"):
    """``picks_per_step`` asynchronous best responses, one after the other, per cell.

    picks : int64 (..., P), the nodes picked (uniform in [0, N), a declared draw); coins : int64
    (..., P) 32-bit words, the fair coin of pick j being the top bit of word j (tie "random").
    activation : "uniform" (any node; equilibrium time counts every pick) or "unsatisfied" (a
    node drawn uniformly among those that want to switch, the k-th with k = floor(w u / 2^32)
    for the coin word w and u unsatisfied nodes; every pick flips until the equilibrium, so the
    time counts flips; no pick is wasted, none is made in an equilibrium).
    Returns the new ``action`` and ``flips`` (picks that changed the picked node's action).
    Every access is a gather or scatter on a flat array (cheap on NumPy and torch alike).
    """
    xp = namespace(action)
    c = cells.shape[0]
    ext = extended(action, cells)
    if activation == "unsatisfied":
        return _unsatisfied_picks(ext, action.shape, coins, table, cells, low, high, anti, tie, picks_per_step)
    flat = xp.reshape(ext, (-1,))
    rows = xp.reshape(table, (-1, table.shape[-1]))
    low, high, anti = (xp.reshape(v, (-1,)) for v in (low, high, anti))
    picks = xp.reshape(picks, (c, picks_per_step))
    coins = xp.astype(xp.reshape(coins, (c, picks_per_step)) >= 2**31, xp.int8)
    flips = xp.zeros_like(cells)
    gather_base = ext_base[:, None]
    for j in range(picks_per_step):
        p = picks[:, j]
        n_a = xp.sum(_take(flat, gather_base + rows[graph_base + p]), axis=1, dtype=xp.int64)
        at, node = ext_base + p, node_base + p
        current = _take(flat, at)
        new = respond(n_a, _take(low, node), _take(high, node), _take(anti, node), current, tie, coins[:, j])
        flips = flips + xp.astype(new != current, flips.dtype)
        flat[at] = new
    shape = action.shape
    return {"action": xp.reshape(ext[:, :shape[-1]], shape), "flips": xp.reshape(flips, shape[:-1])}


def _unsatisfied_picks(ext, shape, coins, table, cells, low, high, anti, tie, picks_per_step):
    """Best response with activation among the unsatisfied nodes (see :func:`best_response`)."""
    xp = namespace(ext)
    c, n = ext.shape[0], shape[-1]
    words = xp.reshape(coins, (c, picks_per_step))
    flips = xp.zeros_like(cells)
    for j in range(picks_per_step):
        current = ext[:, :-1]
        mask = wants_switch(neighbors_a(ext, table, cells), low, high, anti, current, tie)
        ranks = _cumsum(xp.astype(mask, xp.int64))
        count = ranks[:, -1]
        k = (words[:, j] * count) >> 32  # uniform in [0, count): w < 2^32, count < 2^30
        chosen = mask & (ranks == k[:, None] + 1)  # exactly one node where count > 0, none otherwise
        ext = xp.concat([xp.where(chosen, 1 - current, current), ext[:, -1:]], axis=1)
        flips = flips + xp.astype(count > 0, flips.dtype)
    return {"action": xp.reshape(ext[:, :n], shape), "flips": xp.reshape(flips, shape[:-1])}


def synchronous(*, action, coins, table, cells, low, high, anti, tie):
    """Every node plays its best response to the current profile at once (may cycle with period 2).

    coins : int64 (..., N) 32-bit words; node i's fair coin is the top bit of word i (tie "random").
    """
    xp = namespace(action)
    ext = extended(action, cells)
    current = ext[:, :-1]
    coin = xp.astype(xp.reshape(coins, current.shape) >= 2**31, xp.int8)
    new = respond(neighbors_a(ext, table, cells), low, high, anti, current, tie, coin)
    flips = xp.sum(xp.astype(new != current, xp.int64), axis=1)
    return {"action": xp.reshape(new, action.shape), "flips": xp.reshape(flips, action.shape[:-1])}
