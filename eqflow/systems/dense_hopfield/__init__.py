"""Dense Hopfield network (dense associative memory) with P-body interactions.

N neurons sigma_i = +-1 store K patterns xi^mu (+-1) with energy

    H(sigma) = -N sum_mu (m_mu)^P / P,   m_mu = (1/N) sum_i xi_i^mu sigma_i,

the interaction order P >= 2 (``order``; the normalisation c_P = P, P = 2 the Hopfield model),
at temperature T = 1/beta (dimensionless, k_B = 1). The model of Albanese, Alemanno,
Alessandrelli & Barra, "Replica symmetry breaking in dense neural networks", arXiv:2111.12997
(2021), after Krotov & Hopfield (2016) and Baldi & Venkatesh, PRL 58, 913 (1987).

The field on neuron i excludes its self-interaction: h_i = [H(sigma_i = -1) - H(sigma_i = +1)] / 2
depends only on the other neurons, and a flip of sigma_i changes H by exactly 2 sigma_i h_i
(:mod:`.operators` gives h_i in closed form; to leading order h_i = sum_mu xi_i^mu (m_mu^(i))^(P-1)).

State ``spin(member, *sweeps, neuron)`` int8. Constant ``patterns(pattern, neuron)`` int8, per
member when drawn. Parameters: ``temperature`` (sweepable), ``order`` (an integer, not sweepable).
Operators: ``glauber`` (heat bath) and ``zero_temperature`` (asynchronous sign updates), one step
= one sweep of N sequential updates in a random order drawn per sweep; each has a ``numba``
kernel (:mod:`.kernels`, the same history bit for bit) that ``kernel="auto"`` picks on NumPy. Observables: ``overlap``
(pattern), ``energy`` (per neuron), ``retrieval`` = max_mu |m_mu|, ``unstable`` (neurons against
their field; ``eq.stop.converged("unstable", 0.5)`` ends a zero-temperature run ``converged``).
``theory``: the low-load self-consistency m = tanh(beta m^(P-1)), its spinodal and transition,
exact enumeration and the exact one-pattern law at any N.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import observables, operators, theory, variants
from .observables import energy, overlap, retrieval, unstable
from .operators import glauber, prepare, zero_temperature

KIND = "dense_hopfield"
PATTERN_SLOT, SPIN_SLOT, SHARED_SLOT = 0, 1, 2  # initial-state stream slots
INTEGER_LIMIT = 2**62  # K N^P below this keeps the integer fields exact in int64


def create(neurons=None, patterns=1, *, order=2, temperature=0.0, start="pattern", members=1, seed=0,
           shared_patterns=False):
    """A new ensemble of dense Hopfield networks as an xarray Dataset.

    Parameters
    ----------
    neurons : int >= 2, N. Required with ``patterns=K``; taken from the array when patterns are given
        (then it must match, if given).
    patterns : int K >= 1 (random +-1 patterns, independent per member, drawn from the seed; the
        same at every temperature of a member) or an array of +-1, shared (K, N) or per member
        (members, K, N).
    order : int >= 2, the interaction order P (default 2, the Hopfield model).
    temperature : float >= 0 or a 1-D sweep, T = 1/beta (dimensionless; default 0).
    start : "pattern" (sigma = xi^1, the first pattern of each member), "random" (independent
        fair +-1 per neuron, drawn per member from the seed, the same at every temperature), or
        an array of +-1 broadcastable to (members, *sweeps, N).
    members : int. Independent replicas per parameter point.
    seed : int in [0, 2**64). Keys the patterns, the random start and every update.
    shared_patterns : bool. With ``patterns=K``: one set of random patterns for every member
        (its own stream of the seed) instead of one per member.

    Examples
    --------
    >>> ds = create(64, 3, order=3, temperature=[0.3, 0.8], members=2, seed=1)
    >>> dict(ds.spin.sizes), dict(ds.patterns.sizes)
    ({'member': 2, 'temperature': 2, 'neuron': 64}, {'member': 2, 'pattern': 3, 'neuron': 64})
    >>> float(overlap(spin=ds.spin.values, patterns=ds.patterns.values[:, None])[0, 0, 0])
    1.0
    """
    schema = SYSTEM.schema
    problems = []
    n, k, given = _sizes(neurons, patterns, members, problems)
    if not (isinstance(order, (int, np.integer)) and not isinstance(order, bool) and order >= 2):
        problems.append(f"order: expected an integer P >= 2, got {order!r}")
    elif n and k and k * float(n) ** order >= INTEGER_LIMIT:
        problems.append(f"order, neurons, patterns: expected K N^P < 2^62 (exact int64 fields), got K = {k}, "
                        f"N = {n}, P = {order}; use fewer neurons or patterns, or a lower order")
    start_array = _check_start(start, problems)
    if shared_patterns not in (False, True):
        problems.append(f"shared_patterns: expected True or False, got {shared_patterns!r}")
    elif shared_patterns and given is not None:
        problems.append("shared_patterns: only with patterns=K (a given (K, N) array is already shared)")
    if problems:
        raise SchemaError(problems, kind=KIND)
    parameters = {"temperature": temperature, "order": int(order)}
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters,
                                        site_sizes={"neuron": n, "pattern": k}, seed=seed)
    if given is None:
        labels, slot = (np.zeros(1, np.int64), SHARED_SLOT) if shared_patterns else (coords["member"], PATTERN_SLOT)
        words = random.initial(random.bits("pattern", "neuron"), seed=seed, members=labels, parameters={},
                               sizes={"pattern": k, "neuron": n}, slot=slot)
        given = np.where(words < 2**31, 1, -1).astype(np.int8)
        given = given[0] if shared_patterns else given
    lead = ("member",) if given.ndim == 3 else ()
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters,
                                        site_sizes={"neuron": n, "pattern": k},
                                        constants={"patterns": ((*lead, "pattern", "neuron"), given)}, seed=seed)
    spin = _initial_spin(start, start_array, given, coords["member"], seed, shape, n)
    return finish_system(schema, coords, {"spin": ((*dims, "neuron"), spin)}, seed=seed)


def _sizes(neurons, patterns, members, problems):
    """(N, K, given patterns int8 or None); appends problems (bad sizes, shapes or values)."""
    if isinstance(patterns, (int, np.integer)) and not isinstance(patterns, bool):
        if patterns < 1:
            problems.append(f"patterns: expected a number of patterns K >= 1 or an array of +-1, got {patterns!r}")
        if neurons is None:
            problems.append("neurons: required with patterns=K (the number of neurons N >= 2)")
        elif not (isinstance(neurons, (int, np.integer)) and not isinstance(neurons, bool) and neurons >= 2):
            problems.append(f"neurons: expected an integer N >= 2, got {neurons!r}")
        return (neurons if not problems else 0), (int(patterns) if patterns >= 1 else 0), None
    try:
        values = np.asarray(patterns)
    except (TypeError, ValueError):
        values = np.asarray(None)
    shapes = "(K, N) or (members, K, N)"
    if values.ndim not in (2, 3) or values.dtype.kind not in "iuf" or 0 in values.shape:
        problems.append(f"patterns: expected an integer K >= 1 or an array of +-1 of shape {shapes}, got "
                        f"{type(patterns).__name__} of shape {values.shape} and dtype {values.dtype}")
        return 0, 0, None
    k, n = values.shape[-2:]
    if values.ndim == 3 and values.shape[0] != members:
        problems.append(f"patterns: expected shape {shapes} with members = {members}, got {values.shape}")
    if not np.isin(values, (-1, 1)).all():
        problems.append(f"patterns: expected values -1 and +1 only, got {_others(values)}")
    if n < 2:
        problems.append(f"patterns: expected N >= 2 neurons (the last axis), got shape {values.shape}")
    if neurons is not None and neurons != n:
        problems.append(f"neurons: expected {n} (the patterns' last axis) or None, got {neurons!r}")
    return n, k, values.astype(np.int8)


def _others(values) -> list:
    """Up to six distinct values of ``values`` other than -1 and +1 (for error messages)."""
    values = np.asarray(values)
    return np.unique(values[~np.isin(values, (-1, 1))])[:6].tolist() if values.ndim else [values.tolist()]


def _check_start(start, problems):
    """The start array (int8) or None for a named start; appends a problem for a bad one."""
    if isinstance(start, str):
        if start not in ("pattern", "random"):
            problems.append(f"start: expected 'pattern', 'random' or an array of +-1, got {start!r}")
        return None
    values = np.asarray(start)
    if values.ndim == 0 or not np.isin(values, (-1, 1)).all():
        problems.append(f"start: expected 'pattern', 'random' or an array of +-1, got values {_others(values)} of "
                        f"shape {values.shape}")
        return None
    return values.astype(np.int8)


def _initial_spin(start, start_array, patterns, members, seed, shape, n):
    """int8 (*shape, N): the given start, the first pattern, or fair coins per member."""
    lead = (len(members),) + (1,) * (len(shape) - 1)
    if start_array is not None:
        try:
            return np.broadcast_to(start_array, (*shape, n)).copy()
        except ValueError:
            raise SchemaError(f"start: expected +-1 values broadcastable to {(*shape, n)}, got shape "
                              f"{start_array.shape}", kind=KIND) from None
    if start == "pattern":
        first = patterns[..., 0, :]
        first = first.reshape(lead + (n,)) if first.ndim == 2 else first
        return np.broadcast_to(first, (*shape, n)).copy()
    words = random.initial(random.bits("neuron"), seed=seed, members=members, parameters={}, sizes={"neuron": n},
                           slot=SPIN_SLOT)
    coin = np.where(words < 2**31, 1, -1).astype(np.int8)
    return np.broadcast_to(coin.reshape(lead + (n,)), (*shape, n)).copy()


_DRAWS = {"sequence": random.permutation("neuron")}

SYSTEM = System(
    kind=KIND,
    create=create,
    operators={
        "glauber": Operator(glauber, prepare=prepare, draws={**_DRAWS, "uniforms": random.uniform("neuron")},
                            kernels=variants.numba("glauber")),
        "zero_temperature": Operator(zero_temperature, prepare=prepare, draws=dict(_DRAWS),
                                     kernels=variants.numba("zero_temperature")),
    },
    observables={"overlap": overlap, "energy": energy, "retrieval": retrieval, "unstable": unstable},
    theory=theory,
    example={"neurons": 12, "patterns": 3, "order": 3, "temperature": [0.3, 1.0], "members": 2, "seed": 3,
             "start": "random"},
)

__all__ = ["SYSTEM", "create", "energy", "glauber", "observables", "operators", "overlap", "prepare", "retrieval",
           "theory", "unstable", "zero_temperature"]
