"""Initial guesses of the SCF ensemble: the guess density and each member's random rotation."""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import SchemaError
from ..random import INITIAL, CellStreams

KIND = "scf"
MATRIX_DIMS = ("spin", "orbital", "orbital_")


def guess_density(guess, data, spins, n, dims, shape):
    """The guess density broadcast to (*ensemble, spin, n, n), or None for the core guess.

    ``guess``: "core", "minao" (``data`` from a molecule file holds PySCF's guess) or an array
    (n, n), (spin, n, n) or (geometry, spin, n, n) in the per-spin convention of ``density``.
    """
    if isinstance(guess, str) and guess == "core":
        return None
    if isinstance(guess, str) and guess == "minao":
        if data is None:
            raise SchemaError("guess: 'minao' needs a molecule file (molecule=<name>); use 'core' or an array",
                              kind=KIND)
        value = data["minao_density"]
    elif isinstance(guess, str):
        raise SchemaError(f"guess: expected 'core', 'minao' or an array of densities, got {guess!r}", kind=KIND)
    else:
        value = np.asarray(guess, dtype=np.float64)
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


def rotations(seed, members, spins, n, theta):
    """Q_m = (I - A)^-1 (I + A), A = theta (G - G^T) / (2 sqrt 2): (members, spin, n, n), orthogonal.

    The Cayley transform of a scaled antisymmetric Gaussian matrix; G is standard normal by
    Box-Muller from member m's own initial-state stream (seed, m), the same at every parameter
    point. For small theta, Q ~ I + theta (G - G^T) / sqrt 2: pairwise rotation angles ~ N(0, theta^2).
    """
    u = CellStreams(seed, np.arange(members), np.zeros((), dtype=np.int64), (spins, n, n, 2), step=0,
                    domain=INITIAL).next()
    g = np.sqrt(-2.0 * np.log1p(-u[..., 0])) * np.cos(2.0 * np.pi * u[..., 1])
    a = theta * (g - np.swapaxes(g, -1, -2)) / (2.0 * np.sqrt(2.0))
    eye = np.eye(n)
    return np.linalg.solve(eye - a, eye + a)
