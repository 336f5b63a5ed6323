"""2D Ising model on an L x L periodic square lattice.

E = -J sum_<ij> s_i s_j - h sum_i s_i with spins s = +-1, nearest-neighbour coupling J and
field h (energies, canonical unit k_B K) at temperature T (kelvin). With J = 1 k_B K the
temperature is in units of J/k_B and the critical point is T_c = 2 / ln(1 + sqrt 2) = 2.269.

State: ``spin(member, *sweeps, y, x)`` int8. Operators: checkerboard ``metropolis`` and
``heat_bath`` sweeps (one step = one sweep of all L^2 spins, black then white sublattice), and
at h = 0 the cluster updates ``wolff`` (one step = one cluster) and ``swendsen_wang`` (one
step = every cluster), see :mod:`.clusters`. Each has a ``numba`` kernel (:mod:`.kernels`),
which ``eq.run(kernel="auto")`` picks on NumPy when numba is installed; the local sweeps also have
a ``triton`` kernel (:mod:`.gpu`), picked on torch CUDA tensors when triton is installed (on CPU
tensors it runs in Triton's interpreter, by name only).
Observables: ``energy``, ``magnetization`` and ``abs_magnetization`` per spin. ``theory``: exact
values (Onsager, Yang, Kaufman's finite lattice, enumeration); ``thermodynamics``: specific heat,
susceptibility and Binder cumulant with errors from a history. The flow-matching generator of
equilibria and its fidelity measures are applications, in :mod:`eqflow.generators` (the old
names ``ising.flow`` and ``ising.fidelity`` still import, with a DeprecationWarning).
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, point_values, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import clusters, observables, operators, theory, variants
from .clusters import swendsen_wang, swendsen_wang_probability, wolff, wolff_probability
from .observables import abs_magnetization, energy, magnetization
from .operators import heat_bath, heat_bath_probability, metropolis, metropolis_acceptance
from .thermodynamics import thermodynamics

KIND = "ising"


def _sides(size):
    """(L_y, L_x) of ``size``: one side L or a pair of sides (each checked by the schema)."""
    if np.ndim(size) == 0 and not isinstance(size, (str, bytes)):
        return size, size
    if isinstance(size, (tuple, list, np.ndarray)) and np.ndim(size) == 1 and len(size) == 2:
        return tuple(size)
    raise SchemaError(f"size: expected a side L or a pair (L_y, L_x) of even integers >= 2, got {size!r}", kind="ising")


def create(size=32, temperature=2.269, *, members=1, seed=0, coupling=1.0, field=0.0, start="random"):
    """A new ensemble of Ising lattices as an xarray Dataset.

    Parameters
    ----------
    size : int or (int, int), even, >= 2. Lattice side L (or (L_y, L_x)).
    temperature : float, sequence, str or pint Quantity. T in kelvin (bare numbers), or an
        energy k_B T; a sequence becomes the ``temperature`` sweep dimension.
    members : int. Independent replicas per parameter point (the ``member`` dimension).
    seed : int in [0, 2**64). Keys every random stream of this ensemble.
    coupling, field : float, sequence, str or Quantity. J and h, energies (bare: k_B K).
    start : "random" (hot: independent +-1 per spin, drawn from the seed's initial-state
        streams, keyed by member and parameter values), "up" or "down" (cold, ordered).

    Examples
    --------
    >>> ds = create(8, temperature=[1.5, 3.0], members=2, seed=1)
    >>> dict(ds.spin.sizes)
    {'member': 2, 'temperature': 2, 'y': 8, 'x': 8}
    """
    schema = SYSTEM.schema
    ny, nx = _sides(size)
    parameters = {"temperature": temperature, "coupling": coupling, "field": field}
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes={"y": ny, "x": nx},
                                        seed=seed)
    if start == "random":
        words = random.initial(random.bits("y", "x"), seed=seed, members=coords["member"],
                               parameters=point_values(coords, schema), sizes={"y": ny, "x": nx})
        spin = np.where(words < 2**31, 1, -1).astype(np.int8)
    elif start in ("up", "down"):
        spin = np.full((*shape, ny, nx), 1 if start == "up" else -1, dtype=np.int8)
    else:
        raise ValueError(f"start: expected 'random', 'up' or 'down', got {start!r}")
    return finish_system(schema, coords, {"spin": ((*dims, "y", "x"), spin)}, seed=seed)


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={
        "metropolis": Operator(metropolis, prepare=metropolis_acceptance, draws={"words": random.bits("y", "x")},
                               kernels={**variants.numba("metropolis"), **variants.triton("metropolis")}),
        "heat_bath": Operator(heat_bath, prepare=heat_bath_probability, draws={"words": random.bits("y", "x")},
                              kernels={**variants.numba("heat_bath"), **variants.triton("heat_bath")}),
        "wolff": Operator(wolff, prepare=wolff_probability, kernels=variants.numba("wolff"),
                          draws={"row": random.integers("y"), "column": random.integers("x"),
                                 "bonds": random.bits(2, "y", "x")}),
        "swendsen_wang": Operator(swendsen_wang, prepare=swendsen_wang_probability,
                                  kernels=variants.numba("swendsen_wang"),
                                  draws={"bonds": random.bits(2, "y", "x"), "coins": random.bits("y", "x")}),
    },
    observables={"energy": energy, "magnetization": magnetization, "abs_magnetization": abs_magnetization},
    theory=theory,
    example={"size": 4, "temperature": [1.5, 3.0], "members": 3, "seed": 5},
)

__all__ = ["SYSTEM", "abs_magnetization", "clusters", "create", "energy", "heat_bath", "magnetization", "metropolis",
           "observables", "operators", "swendsen_wang", "theory", "thermodynamics", "wolff"]


def __getattr__(name):
    if name in ("flow", "fidelity"):  # deprecated aliases of eqflow.generators' modules (they warn)
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
