"""Exact results for the alignment system: equilibria by exhaustive enumeration, closed forms on cycles.

An equilibrium is an action profile in which no node wants to switch (``unsatisfied`` = 0):
no node strictly prefers the other action (n_A > tau d_i or n_A < tau d_i against its
type), and, for tie "switch" only, no node is indifferent (n_A = tau d_i). For "keep" and
"random" these are the pure Nash equilibria of the network game, for "switch" the strict ones.

On the cycle C_n (d_i = 2, tau = 1/2, tie "keep") a coordinator is unsatisfied exactly when
both neighbours play the other action, an anti-coordinator when both play its own; the
equilibria are the binary necklace words with no isolated symbol, resp. no run of three
equal symbols, counted by the transfer matrix of the pairs (x_{i-1}, x_i): their traces
give Lucas(n) + 2 cos(n pi / 3) and Lucas(n) + 2 cos(2 n pi / 3) (the eigenvalues are phi,
-1/phi and the primitive sixth, resp. third, roots of unity). Xia, McAvoy & Su,
arXiv:2506.00046 (2025) count the equilibria of these games and their growth under rewiring.
"""
from __future__ import annotations

import math

import numpy as np

from . import graphs
from .observables import unsatisfied_mask
from .operators import TIES, prepare

MAX_NODES = 26  # 2^26 profiles: about a minute of enumeration
CHUNK = 2**15  # profiles per batch: (CHUNK, N, max degree) int8 at a time


def lucas(n: int) -> int:
    """Lucas number L(n): L(0) = 2, L(1) = 1, L(n) = L(n-1) + L(n-2)."""
    a, b = 2, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def cycle_equilibria(n: int, anti: bool = False) -> int:
    """Equilibria on the cycle C_n (n >= 3) of all coordinators (Lucas(n) + 2 cos(n pi/3)) or all
    anti-coordinators (Lucas(n) + 2 cos(2 n pi/3)), tau = 1/2, tie "keep" or "random"."""
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n: expected an integer >= 3 (a cycle), got {n!r}")
    return int(round(lucas(n) + 2.0 * math.cos((2 if anti else 1) * n * math.pi / 3.0)))


def profiles(n: int, start: int, stop: int) -> np.ndarray:
    """Profiles with codes start..stop-1 as int8 (stop - start, n); node i plays bit i of the code."""
    codes = np.arange(start, stop, dtype=np.int64)[:, None]
    return ((codes >> np.arange(n, dtype=np.int64)) & 1).astype(np.int8)


def _types(types, n: int) -> np.ndarray:
    if isinstance(types, str):
        if types not in ("coordinators", "anti"):
            raise ValueError(f"types: expected 'coordinators', 'anti', 0, 1 or an array of {n} 0/1 values, "
                             f"got {types!r}")
        types = int(types == "anti")
    kinds = np.broadcast_to(np.asarray(types), (n,)) if np.ndim(types) == 0 else np.asarray(types)
    if kinds.shape != (n,) or not np.isin(kinds, (0, 1)).all():
        raise ValueError(f"types: expected 0/1 (coordinator/anti-coordinator) of shape ({n},), got shape "
                         f"{kinds.shape} values {np.unique(kinds)[:5].tolist()}")
    return kinds.astype(np.int8)


def equilibria(graph, types=0, tie: str = "keep", threshold: float = 0.5, *, backend: str = "numpy",
               chunk: int = CHUNK) -> np.ndarray:
    """Codes (int64, increasing) of every equilibrium profile, by enumerating all 2^N profiles.

    graph : a networkx Graph (nodes in their order) or an empirical network's name; N <= 26.
    types : 0 (all coordinators), 1 or "anti" (all anti-coordinators), "coordinators", or an
        array of N 0/1 values. Profiles are batched ``chunk`` at a time as an ensemble of
        cells through the same integer tables as the dynamics (NumPy, or torch tensors).
    """
    g = graphs.empirical(graph) if isinstance(graph, str) else graph
    g = graphs.check_graph(g)
    n = g.number_of_nodes()
    if n > MAX_NODES:
        raise ValueError(f"graph: exhaustive enumeration needs at most {MAX_NODES} nodes, got {n}")
    if tie not in TIES:
        raise ValueError(f"tie: expected one of {list(TIES)}, got {tie!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a value in [0, 1], got {threshold!r}")
    table, degree = graphs.neighbor_table(g)
    kinds = _types(types, n)
    found = []
    for start in range(0, 2**n, chunk):
        stop = min(start + chunk, 2**n)
        tables = prepare(neighbors=table, degree=degree, type=kinds, threshold=np.full(stop - start, threshold),
                         sizes={"node": n})
        action = profiles(n, start, stop)
        if backend == "torch":
            import torch

            tables = {k: torch.from_numpy(v) for k, v in tables.items()}
            action = torch.from_numpy(action)
        elif backend != "numpy":
            raise ValueError(f"backend: expected 'numpy' or 'torch', got {backend!r}")
        mask = unsatisfied_mask(action, tables["table"], tables["cells"], tables["low"], tables["high"],
                                tables["anti"], tie)
        ok = ~np.asarray(mask.any(1) if backend == "numpy" else mask.any(1).numpy())
        found.append(start + np.flatnonzero(ok))
    return np.concatenate(found).astype(np.int64)


def count_equilibria(graph, types=0, tie: str = "keep", threshold: float = 0.5, **kw) -> int:
    """Number of equilibrium profiles of ``graph`` (see :func:`equilibria`)."""
    return int(equilibria(graph, types, tie, threshold, **kw).size)


def codes(action) -> np.ndarray:
    """Profile codes sum_i a_i 2^i of int 0/1 arrays (..., N), int64 (N <= 62)."""
    a = np.asarray(action, dtype=np.int64)
    return (a << np.arange(a.shape[-1], dtype=np.int64)).sum(axis=-1)
