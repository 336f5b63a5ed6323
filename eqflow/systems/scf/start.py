"""Initial guesses of the SCF ensemble: the guess density and each member's random rotation."""
from __future__ import annotations

import numpy as np
import xarray as xr

from ... import random
from ...errors import SchemaError

KIND = "scf"
MATRIX_DIMS = ("spin", "orbital_i", "orbital_j")
GUESSES = ("core", "minao", "neel", "random")


def neel_density(sublattice, occupied):
    """Antiferromagnetic guess: spin up fills the + sublattice first, spin down the - sublattice.

    ``sublattice`` (n,) signs +-1, ``occupied`` (2,) electrons up and down. Returns the
    diagonal densities (2, n, n); sites beyond a sublattice's size are filled from the other.
    """
    order = {0: np.argsort(-sublattice, kind="stable"), 1: np.argsort(sublattice, kind="stable")}
    n = len(sublattice)
    out = np.zeros((2, n, n))
    for s in (0, 1):
        sites = order[s][: int(occupied[s])]
        out[s, sites, sites] = 1.0
    return out


def guess_density(guess, data, spins, n, dims, shape, constants=None):
    """The guess density broadcast to (*ensemble, spin, n, n), or None for the core guess.

    ``guess``: "core", "random" (both None here: see :func:`random_orbitals`), "minao" (``data``
    from a molecule file holds PySCF's guess), "neel"
    (Hubbard: the antiferromagnetic occupation of :func:`neel_density`) or an array (n, n),
    (spin, n, n) or (geometry, spin, n, n) in the per-spin convention of ``density``; an (n, n)
    total density (PySCF's ``make_rdm1()`` of RHF, trace N) is recognised and halved (:func:`per_spin`).
    """
    if isinstance(guess, str) and guess in ("core", "random"):
        return None
    if isinstance(guess, str) and guess == "neel":
        if constants is None or "sublattice" not in constants or spins != 2:
            raise SchemaError("guess: 'neel' needs a lattice with two spin channels (problem='hubbard'); "
                              "use 'core' or an array", kind=KIND)
        value = neel_density(constants["sublattice"][1], constants["occupied"][1])
    elif isinstance(guess, str) and guess == "minao":
        if data is None:
            raise SchemaError("guess: 'minao' needs a molecule file (molecule=<name>); use 'core' or an array",
                              kind=KIND)
        value = data["minao_density"]
    elif isinstance(guess, str):
        raise SchemaError(f"guess: expected one of {list(GUESSES)} or an array of densities, got {guess!r}", kind=KIND)
    else:
        value = np.asarray(guess, dtype=np.float64)
        if value.ndim == 2 and value.shape == (n, n) and np.all(np.isfinite(value)):
            value = per_spin(value, spins, constants)
    lead = ("geometry",) if value.ndim == 4 else ()
    value = value if value.ndim >= 3 else value[None]
    sweep = dict(zip(dims, shape)).get("geometry")
    if (value.ndim not in (3, 4) or value.shape[-3:] not in ((spins, n, n), (1, n, n))
            or (lead and value.shape[0] != sweep) or not np.all(np.isfinite(value))):
        raise SchemaError(f"guess: expected a finite density of shape (n, n), ({spins}, n, n) or "
                          f"(geometry, {spins}, n, n) with n = {n} and geometry = {sweep}, got shape {np.shape(guess)}",
                          kind=KIND)
    template = xr.DataArray(np.zeros(shape), dims=dims)
    da = xr.DataArray(value, dims=(*lead, *MATRIX_DIMS)) + template
    return np.broadcast_to(da.transpose(*dims, *MATRIX_DIMS).values, (*shape, spins, n, n))


def per_spin(density, spins, constants=None, rtol=1e-6):
    """An (n, n) guess in the per-spin convention of ``density``, from either convention.

    PySCF's ``make_rdm1()`` of an RHF calculation is the total density 2 D (trace of D S =
    N electrons), eqflow's the density of one spin (trace N / 2). An (n, n) guess whose trace
    tr(D S) equals the total electron count is taken as PySCF's and halved; one whose trace is
    the per-spin count is kept; any other trace is refused by name (it fits neither convention).
    S is the overlap (the identity where the problem has none; the first geometry's where the
    overlap varies along ``geometry``).
    """
    constants = constants or {}
    if "occupied" not in constants:
        return density
    occupied = np.asarray(constants["occupied"][1], dtype=np.float64)
    overlap = np.asarray(constants["overlap"][1], dtype=np.float64) if "overlap" in constants else None
    if overlap is not None and overlap.ndim > 2:
        overlap = overlap.reshape(-1, *overlap.shape[-2:])[0]
    trace = float(np.trace(density if overlap is None else density @ overlap))
    total = float(occupied.sum()) if spins == 2 else 2.0 * float(occupied[0])
    own = sorted({float(o) for o in occupied})
    close = lambda a, b: abs(a - b) <= rtol * max(abs(b), 1.0)  # noqa: E731
    if any(close(trace, o) for o in own) and not close(total, trace):
        return density
    if close(trace, total):
        return density / 2.0
    raise SchemaError(f"guess: expected an (n, n) density whose trace tr(D S) is the electrons of one spin "
                      f"({' or '.join(f'{o:g}' for o in own)}: eqflow's per-spin convention) or of both ({total:g}: "
                      f"PySCF's make_rdm1() total density), got a trace of {trace:.6g}", kind=KIND)


def rotations(seed, members, spins, n, theta):
    """Q_m = (I - A)^-1 (I + A), A = theta (G - G^T) / (2 sqrt 2): (members, spin, n, n), orthogonal.

    The Cayley transform of a scaled antisymmetric Gaussian matrix; G is standard normal from
    member m's initial-state stream keyed by no parameter (eqflow.random.initial with no
    parameters), so every parameter point of a sweep starts from the same guesses: a sweep
    over U compares the same starts. For small theta, Q ~ I + theta (G - G^T) / sqrt 2:
    pairwise rotation angles ~ N(0, theta^2).
    """
    g = random.initial(random.normal("spin", "orbital_i", "orbital_j"), seed=seed, members=np.arange(members),
                       parameters={}, sizes={"spin": spins, "orbital_i": n, "orbital_j": n})
    a = theta * (g - np.swapaxes(g, -1, -2)) / (2.0 * np.sqrt(2.0))
    eye = np.eye(n)
    return np.linalg.solve(eye - a, eye + a)


def random_orbitals(seed, members, spins, n):
    """Haar-random orthonormal columns (members, spin, n, n): V = Q sign(diag R), G = Q R, G standard normal.

    G comes from member m's initial-state stream (slot 1, keyed by no parameter: every
    parameter point starts from the same vectors). Each column of V is uniform on the unit
    sphere S^(n-1); the first is G[:, 0] / |G[:, 0]|. Mezzadri, Notices AMS 54, 592 (2007).
    """
    g = random.initial(random.normal("spin", "orbital_i", "orbital_j"), seed=seed, members=np.arange(members),
                       parameters={}, sizes={"spin": spins, "orbital_i": n, "orbital_j": n}, slot=1)
    q, r = np.linalg.qr(g)
    return q * np.where(np.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)[..., None, :]
