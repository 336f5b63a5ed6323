"""The SELU moment map: mean and variance of self-normalizing network activations, iterated to their fixed point.

Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks", NeurIPS 2017,
arXiv:1706.02515. A unit z = sum_i w_i x_i whose inputs have mean mu and variance nu is
z ~ N(mu omega, nu tau) with omega = sum_i w_i, tau = sum_i w_i^2; its SELU activation has mean
mu~ = E selu(z) and variance nu~ = Var selu(z) (Eq. 3-5). The map g: (mu, nu) -> (mu~, nu~) has
the stable fixed point (0, 1) at omega = 0, tau = 1, where its Jacobian's spectral norm is 0.7877.

Convention: nu is the VARIANCE of the activations, as in the paper (the second moment
nu + mu^2 is the observable ``second_moment``).

State: ``mu``, ``nu`` (member, *sweeps), and the activations ``x`` (member, *sweeps, sample,
unit) of a sampled network (sizes 0 unless ``create(samples=..., units=...)``). Sweepable
parameters ``omega`` and ``tau`` (dimensionless). Operators: ``map`` (the closed-form map, one
evaluation per step) and ``network`` (one layer of a random SELU network per step, the map's
prediction beside it). Observables: ``residual`` (|g(x) - x|, max over mu and nu) and
``second_moment``. :mod:`.theory` has the fixed points, Jacobians and a quadrature reference.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import moments, observables, operators, theory
from .moments import ALPHA, LAMBDA, jacobian, selu, selu_moments
from .observables import residual, second_moment
from .operators import init_map, init_network, map_step, network, prepare_network

KIND = "selu_map"
DTYPES = ("float64", "float32")


def create(omega=0.0, tau=1.0, *, mu=0.0, nu=1.0, members=1, samples=0, units=0, seed=0, dtype="float64"):
    """A new ensemble of SELU moment states as an xarray Dataset.

    Parameters
    ----------
    omega : float or 1-D sweep, dimensionless, default 0. omega = sum_i w_i of a unit's weights.
    tau : float or 1-D sweep > 0, dimensionless, default 1. tau = sum_i w_i^2.
    mu : float, (members,) array (one start per member) or an array broadcastable to
        (members, *sweeps); finite. The start mean, default 0.
    nu : likewise, every value finite and > 0. The start VARIANCE (not E x^2), default 1.
    members : int >= 1. Members per parameter point.
    samples, units : int, both 0 (no network, default) or both >= 2: the batch of inputs and the
        width of the network that the operator ``network`` propagates. The inputs are
        x = mu + sqrt(nu) xi, xi standard normal from the seed's initial streams (per member,
        the same at every parameter point).
    seed : int in [0, 2**64). dtype : "float64" (default) or "float32", of mu, nu and x.

    Bad inputs (tau <= 0, nu <= 0, a NaN anywhere, a bad size or dtype) are one SchemaError naming each.

    Examples
    --------
    >>> ds = create(omega=[0.0, 0.1], tau=1.0, mu=[0.5, -0.5], nu=[2.0, 0.5], members=2)
    >>> dict(ds.mu.sizes), ds.x.shape
    ({'member': 2, 'omega': 2}, (2, 2, 0, 0))
    """
    problems = _check_create(mu, nu, members, samples, units, dtype)
    try:
        coords, dims, shape = system_coords(SYSTEM.schema, members=members, parameters={"omega": omega, "tau": tau},
                                            site_sizes={"sample": samples, "unit": units}, seed=seed)
    except SchemaError as exc:
        raise SchemaError([*problems, *exc.problems], kind=KIND) from None
    if problems:
        raise SchemaError(problems, kind=KIND)
    mu, nu = (_per_cell(name, v, shape) for name, v in (("mu", mu), ("nu", nu)))
    xi = random.initial(random.normal("sample", "unit"), seed=seed, members=coords["member"], parameters={},
                        sizes={"sample": samples, "unit": units})
    xi = xi.reshape((shape[0],) + (1,) * (len(shape) - 1) + xi.shape[1:])
    x = mu[..., None, None] + np.sqrt(nu)[..., None, None] * xi
    return finish_system(SYSTEM.schema, coords, {"mu": (dims, mu.astype(dtype)), "nu": (dims, nu.astype(dtype)),
                                                 "x": ((*dims, "sample", "unit"), x.astype(dtype))}, seed=seed)


def _check_create(mu, nu, members, samples, units, dtype) -> list[str]:
    problems = []
    if dtype not in DTYPES:
        problems.append(f"dtype: expected one of {list(DTYPES)}, got {dtype!r}")
    sizes = {"samples": samples, "units": units}
    for name, value in sizes.items():
        if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
            problems.append(f"{name}: expected an integer >= 0, got {value!r}")
    if all(isinstance(v, (int, np.integer)) for v in sizes.values()) and (samples > 0 or units > 0) and \
            min(samples, units) < 2:
        problems.append(f"samples, units: expected both 0 (no network) or both >= 2, got samples={samples!r}, "
                        f"units={units!r}")
    for name, value in (("mu", mu), ("nu", nu)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{name}: expected real numbers, got {type(value).__name__} {value!r}")
            continue
        bad = ~np.isfinite(array) | ((array <= 0) if name == "nu" else False)
        if np.any(bad):
            want = "finite variances > 0" if name == "nu" else "finite means"
            problems.append(f"{name}: expected {want}, got {array[bad][:3].tolist()}")
    return problems


def _per_cell(name, value, shape) -> np.ndarray:
    """``value`` as float64 of the ensemble shape: a (members,) array is one value per member."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1 and len(shape) > 1 and array.size == shape[0]:
        array = array.reshape((shape[0],) + (1,) * (len(shape) - 1))
    try:
        return np.array(np.broadcast_to(array, shape))
    except ValueError:
        raise SchemaError(f"{name}: expected a number, a (members,) array or an array broadcastable to "
                          f"{shape}, got shape {array.shape}", kind=KIND) from None


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"map": Operator(map_step, init=init_map),
               "network": Operator(network, prepare=prepare_network, init=init_network,
                                   draws={"weights": random.normal("unit", "unit")})},
    observables={"residual": residual, "second_moment": second_moment},
    theory=theory,
    example={"omega": [0.0, 0.1], "tau": 1.2, "mu": [0.5, -0.3], "nu": [2.0, 0.5], "members": 2, "samples": 4,
             "units": 6, "seed": 3},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["ALPHA", "LAMBDA", "SYSTEM", "create", "init_map", "init_network", "jacobian", "map_step", "moments",
           "network", "observables", "operators", "prepare_network", "residual", "second_moment", "selu",
           "selu_moments", "theory"]
