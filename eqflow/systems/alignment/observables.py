"""Observables of the alignment system: unsatisfied nodes, fraction playing A, discordant edges.

They use the integer tables of :func:`.operators.prepare` (every operator of this kind
prepares them), so each is one gather over the neighbour table.
"""
from __future__ import annotations

from ...backends import namespace
from .operators import extended, neighbors_a, wants_switch


def unsatisfied_mask(action, table, cells, low, high, anti, tie):
    """bool (C, N): nodes whose best response differs from their action (tie "switch": the
    indifferent ones too; "keep" and "random" count an indifferent node as satisfied)."""
    ext = extended(action, cells)
    return wants_switch(neighbors_a(ext, table, cells), low, high, anti, ext[:, :-1], tie)


def unsatisfied(*, action, table, cells, low, high, anti, tie):
    """Number of nodes that want to switch (int64); 0 is an equilibrium."""
    xp = namespace(action)
    mask = unsatisfied_mask(action, table, cells, low, high, anti, tie)
    return xp.reshape(xp.sum(xp.astype(mask, xp.int64), axis=1), action.shape[:-1])


def fraction_a(*, action):
    """Fraction of nodes playing A (action 1), float64."""
    xp = namespace(action)
    return xp.sum(xp.astype(action, xp.float64), axis=-1) / action.shape[-1]


def discordant_edges(*, action, table, cells, degrees):
    """Edges whose ends differ: sum_i a_i (d_i - n_A,i), each counted once at its A end (int64)."""
    xp = namespace(action)
    ext = extended(action, cells)
    a = xp.astype(ext[:, :-1], xp.int64)
    return xp.reshape(xp.sum(a * (degrees - neighbors_a(ext, table, cells)), axis=1), action.shape[:-1])
