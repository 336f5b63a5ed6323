"""The two-dimensional Coulomb gas (one-component log-gas) in a harmonic trap, sampled by Monte Carlo.

De Bruyne, Le Doussal, Majumdar & Schehr, "Linear statistics for Coulomb gases: higher order
cumulants", arXiv:2310.16420 (2023): for smooth rotationally invariant linear statistics
sum_i f(z_i / sqrt(N)) the cumulant of order p scales as N^(2 - p) and depends on f only near
the droplet's edge. This package samples the standard model of that setting.

Conventions (every length in units of the trap length, so everything is dimensionless):
N particles z_i = x_i + i y_i in the plane with Boltzmann weight

    prod_{i<j} |z_i - z_j|^beta exp(-(beta/2) sum_i |z_i|^2) = exp(-beta E),
    E = -sum_{i<j} ln|z_i - z_j| + (1/2) sum_i |z_i|^2,

at inverse temperature ``beta`` (sweepable, > 0). At beta = 2 this is exactly the law of the
eigenvalues of an N x N complex Ginibre matrix with independent entries of E|G_ij|^2 = 1
(real and imaginary parts of variance 1/2): the density exp(-sum |z|^2) prod |z_i - z_j|^2.
For large N the gas fills the disk |z| < sqrt(N) with density 1/pi. Radial quantities are
given as squared radii s = |z|^2 (the disk |z|^2 < s has area pi s).

State ``position(member, *sweeps, particle, component)`` float64, component (x, y).
Constants ``radii(radius)`` (squared radii s of the disks that ``inside`` counts) and
``bin_edges(radius_edge)`` (the annuli of ``density``, as squared radii). Operators:
``metropolis`` and ``mala`` (one sweep of N single-particle moves per step, O(N) each, option
``step_size``; diagnostic ``acceptance``). Observables: ``energy``, ``sum_r2``, ``sum_x``,
``inside`` (dim radius), ``density`` (dim radius_bin). Exact results: :mod:`.theory`
(sum |z|^2 is exactly Gamma(beta N (N - 1)/4 + N, 2/beta) at every beta; Kostlan at beta = 2;
:func:`.theory.ginibre`, an independent exact sampler).
"""
from __future__ import annotations

import math

import numpy as np

from ... import random
from ...dataset import finish_system, is_int, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import observables, operators, theory
from .observables import density, energy, inside, sum_r2, sum_x
from .operators import mala, metropolis, prepare

KIND = "coulomb_gas"
STARTS = ("random", "ginibre")
START_SLOT = {"random": 0, "ginibre": 1}  # initial-state stream slots
DEFAULT_RADII = (0.25, 0.5, 0.75, 1.0, 1.25)  # times N: squared radii of the 'inside' disks
DEFAULT_BINS, DEFAULT_RANGE = 15, 1.5  # annuli of equal area from s = 0 to 1.5 N


def create(particles=None, *, beta=2.0, members=1, seed=0, position=None, start=None, radii=None, bins=None):
    """A new ensemble of Coulomb gases as an xarray Dataset.

    Parameters
    ----------
    particles : int >= 2, N (may be left out when ``position`` is given; must match it).
    beta : float > 0 or a 1-D sweep: the inverse temperature (default 2, the Ginibre point).
    members : int. Independent replicas per value of beta (own start and draws).
    seed : int in [0, 2**64). Keys the starts and every update.
    position : the start, instead of a random one: float (..., N, 2) = (x, y) or complex (..., N),
        of shape (N, ...), (members, N, ...) or (members, *sweeps, N, ...); finite, no two
        particles of a configuration at the same point (the energy would be infinite).
    start : without ``position``: "random" (default; N points uniform in the droplet disk
        |z| < sqrt(N)) or "ginibre" (the eigenvalues of a complex Ginibre matrix with
        E|G_ij|^2 = 1, an exact sample of beta = 2), drawn per member from the seed's
        initial-state streams, the same start at every beta.
    radii : squared radii s >= 0 (1-D) of the disks that ``inside`` counts (|z|^2 < s);
        default N (1/4, 1/2, 3/4, 1, 5/4).
    bins : the radial histogram ``density``: an int (that many annuli of equal area from s = 0
        to 3N/2; default 15) or the increasing edges s_0 < s_1 < ... >= 0 (squared radii).

    Examples
    --------
    >>> ds = create(particles=6, beta=[1.0, 2.0, 4.0], members=2, seed=1)
    >>> dict(ds.position.sizes)
    {'member': 2, 'beta': 3, 'particle': 6, 'component': 2}
    >>> ds.radii.values.tolist(), ds.sizes["radius_bin"]
    ([1.5, 3.0, 4.5, 6.0, 7.5], 15)
    """
    problems = []
    given, n = _given_position(position, particles, problems)
    if position is not None and start is not None:
        problems.append(f"start: expected None when position is given, got {start!r}")
    start = "random" if start is None else start
    if start not in STARTS:
        problems.append(f"start: expected one of {list(STARTS)}, got {start!r}")
    size = n if n is not None else 2
    s = _radii(radii, size, problems)
    edges = _edges(bins, size, problems)
    constants = {"radii": (("radius",), s), "bin_edges": (("radius_edge",), edges)}
    sizes = {"particle": size, "component": 2, "radius": len(s), "radius_edge": len(edges),
             "radius_bin": max(len(edges) - 1, 1)}
    try:
        coords, dims, shape = system_coords(SYSTEM.schema, members=members, parameters={"beta": beta},
                                            site_sizes=sizes, constants=constants, seed=seed)
    except SchemaError as exc:
        raise SchemaError(problems + exc.problems, kind=KIND) from None
    if not problems and given is not None:
        state = _broadcast_position(given, shape, n, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    if given is None:
        state = _start(start, coords["member"], seed, shape, n)
    return finish_system(SYSTEM.schema, coords, {"position": ((*dims, "particle", "component"), state)}, seed=seed)


def _given_position(position, particles, problems):
    """(positions float64 (..., N, 2) or None, N or None); appends problems."""
    n = None
    if particles is not None:
        if is_int(particles) and particles >= 2:
            n = int(particles)
        else:
            problems.append(f"particles: expected an integer >= 2, got {particles!r}")
    if position is None:
        if particles is None:
            problems.append("particles: required (an integer N >= 2) unless position is given, got None")
        return None, n
    values = np.asarray(position)
    if values.dtype.kind == "c":
        values = theory.as_position(values)
    elif values.dtype.kind in "iuf":
        values = values.astype(np.float64)
    else:
        problems.append(f"position: expected real (..., N, 2) or complex (..., N) numbers, got dtype {values.dtype}")
        return None, n
    if values.ndim < 2 or values.shape[-1] != 2 or values.shape[-2] < 2:
        problems.append(f"position: expected shape (..., N, 2) with N >= 2 (or complex (..., N)), got "
                        f"{np.shape(position)}")
        return None, n
    if n is not None and values.shape[-2] != n:
        problems.append(f"position: expected {n} particles (particles={n}), got shape {np.shape(position)}")
        return None, n
    if not np.all(np.isfinite(values)):
        problems.append("position: expected finite coordinates, got NaN or inf")
        return None, n
    d = values[..., :, None, :] - values[..., None, :, :]
    r2 = np.sum(d * d, axis=-1) + np.eye(values.shape[-2])
    if np.any(r2 == 0):
        problems.append("position: expected distinct particles (a coinciding pair has infinite energy), got "
                        f"{int(np.sum(r2 == 0)) // 2} coinciding pair(s)")
        return None, n
    return values, values.shape[-2]


def _broadcast_position(values, shape, n, problems):
    """``values`` (N, 2), (members, N, 2) or (*shape, N, 2) as (*shape, N, 2); appends a problem otherwise."""
    full = (*shape, n, 2)
    if values.shape == (shape[0], n, 2):
        values = values.reshape((shape[0],) + (1,) * (len(shape) - 1) + (n, 2))
    elif values.shape not in ((n, 2), full):
        problems.append(f"position: expected shape {(n, 2)}, {(shape[0], n, 2)} or {full}, got {values.shape}")
        return None
    return np.broadcast_to(values, full).copy()


def _radii(radii, n, problems):
    """The squared radii of 'inside' as float64 (radius,); appends problems."""
    if radii is None:
        return n * np.asarray(DEFAULT_RADII)
    try:
        s = np.asarray(radii, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"radii: expected a 1-D array of squared radii >= 0, got {radii!r}")
        return np.zeros(0)
    if s.ndim > 1 or not np.all(np.isfinite(s)) or np.any(s < 0):
        problems.append(f"radii: expected a 1-D array of finite squared radii >= 0, got {s.tolist()}")
        return np.zeros(0)
    return np.atleast_1d(s)


def _edges(bins, n, problems):
    """The histogram edges as float64 (radius_edge,); appends problems."""
    if bins is None or is_int(bins):
        count = DEFAULT_BINS if bins is None else int(bins)
        if count < 1:
            problems.append(f"bins: expected an integer >= 1 or increasing edges >= 0, got {bins!r}")
            count = DEFAULT_BINS
        return np.linspace(0.0, DEFAULT_RANGE * n, count + 1)
    try:
        edges = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError):
        edges = np.zeros(0)
    if (edges.ndim != 1 or len(edges) < 2 or not np.all(np.isfinite(edges)) or edges[0] < 0
            or np.any(np.diff(edges) <= 0)):
        problems.append(f"bins: expected an integer >= 1 or at least 2 increasing finite edges >= 0 (squared radii), "
                        f"got {bins!r}")
        return np.linspace(0.0, DEFAULT_RANGE * n, DEFAULT_BINS + 1)
    return edges


def _start(start, labels, seed, shape, n):
    """(*shape, N, 2) float64: per member, N points uniform in the disk |z| < sqrt(N), or Ginibre eigenvalues."""
    if start == "ginibre":
        normals = random.initial(random.normal("particle", "column", "part"), seed=seed, members=labels,
                                 parameters={}, sizes={"particle": n, "column": n, "part": 2},
                                 slot=START_SLOT[start])
        z = theory.as_position(theory.ginibre_eigenvalues(normals))
    else:
        u = random.initial(random.uniform("particle", "component"), seed=seed, members=labels, parameters={},
                           sizes={"particle": n, "component": 2}, slot=START_SLOT[start])
        r, angle = np.sqrt(n * u[..., 0]), 2 * math.pi * u[..., 1]
        z = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=-1)
    z = z.reshape((shape[0],) + (1,) * (len(shape) - 1) + (n, 2))
    return np.broadcast_to(z, (*shape, n, 2)).copy()


DRAWS = {"kick": random.normal("particle", "component"), "accept": random.uniform("particle")}
SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"metropolis": Operator(metropolis, prepare=prepare, draws=DRAWS),
               "mala": Operator(mala, prepare=prepare, draws=DRAWS)},
    observables={"energy": energy, "sum_r2": sum_r2, "sum_x": sum_x, "inside": inside, "density": density},
    theory=theory,
    example={"particles": 4, "beta": [1.0, 2.0], "members": 3, "seed": 7},
)

__all__ = ["SYSTEM", "create", "density", "energy", "inside", "mala", "metropolis", "observables", "operators",
           "prepare", "sum_r2", "sum_x", "theory"]
