"""Operators of the coulomb_gas system: single-particle Metropolis and Metropolis-adjusted Langevin sweeps.

Energy (trap units) E = -sum_{i<j} ln|z_i - z_j| + (1/2) sum_i |z_i|^2, weight exp(-beta E).
Moving particle i from z to z' changes it by

    Delta E = -(1/2) sum_{j != i} [ln|z' - z_j|^2 - ln|z - z_j|^2] + (|z'|^2 - |z|^2) / 2,

O(N) per move. Its gradient with respect to z_i (as a 2-vector) is

    grad_i E = z_i - sum_{j != i} (z_i - z_j) / |z_i - z_j|^2.

One step is one sweep: particles i = 0, 1, ..., N-1 in turn (a fixed order: each move keeps
the law exp(-beta E) invariant, so their composition does too). The ensemble is flattened to
C cells and every move is vectorised over them: N moves of a few (C, N) array passes each.
Draws per step and cell: ``kick`` (N, 2) standard normals and ``accept`` (N,) uniforms; move
i uses ``kick[i]`` and ``accept[i]`` (it accepts when ln u < ln(acceptance ratio)).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError


def prepare(*, step_size):
    """Check the option before anything is written: ``step_size`` must be a finite number > 0."""
    if not (isinstance(step_size, (int, float)) and 0 < step_size < float("inf")):
        raise SchemaError(f"options['step_size']: expected a finite number > 0 (trap lengths), got {step_size!r}",
                          kind="coulomb_gas")
    return {}


def _offsets(z, cells, i):
    """(z_j - z, |z - z_j|^2) for z (C, 2) and every particle j of ``cells`` (C, N, 2); entry i set to (0, 1)."""
    d = cells - z[:, None, :]
    r2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]
    d[:, i, :] = 0.0
    r2[:, i] = 1.0
    return d, r2


def _pair_change(r2_new, r2_old, xp):
    """sum_{j != i} ln(|z' - z_j|^2 / |z - z_j|^2), one log per pair (entry i is 1 / 1)."""
    return xp.sum(xp.log(r2_new / r2_old), axis=1)


def _square(v, xp):
    """|v|^2 of 2-vectors (C, 2)."""
    return xp.sum(v * v, axis=1)


def _flat(position, beta, kick, accept):
    """The ensemble as C cells: positions (C, N, 2) (a copy), beta (C, 1), kicks (C, N, 2), uniforms (C, N)."""
    xp = namespace(position)
    n = position.shape[-2]
    cells = xp.reshape(position, (-1, n, 2))
    cells = cells.copy() if isinstance(cells, np.ndarray) else cells.clone()
    return (cells, xp.reshape(beta, (-1, 1)), xp.reshape(kick, (-1, n, 2)), xp.reshape(accept, (-1, n)))


def _finish(cells, accepted, position):
    """The new ``position`` (its shape) and the per-cell ``acceptance`` (fraction of the N moves)."""
    xp = namespace(cells)
    n = position.shape[-2]
    fraction = xp.astype(accepted, xp.float64) / n
    return {"position": xp.reshape(cells, position.shape), "acceptance": xp.reshape(fraction, position.shape[:-2])}


def metropolis(*, position, beta, kick, accept, step_size):
    """One sweep of single-particle Metropolis moves (the reference; NumPy or torch).

    position : float64 (*E, N, 2), trap lengths. beta : float64 (*E). kick : (*E, N, 2)
    standard normals; accept : (*E, N) uniforms in [0, 1) (declared draws). step_size :
    epsilon > 0, trap lengths (default 0.5).

    Move i proposes z' = z_i + epsilon kick[i] and accepts it when
    ln accept[i] < -beta Delta E (Metropolis et al. 1953). Returns the new ``position`` and
    the ``acceptance`` diagnostic (*E).
    """
    xp = namespace(position)
    cells, b, kick, accept = _flat(position, beta, kick, accept)
    accepted = xp.zeros_like(b[:, 0])
    for i in range(cells.shape[1]):
        z = cells[:, i, :]
        proposal = z + step_size * kick[:, i, :]
        _, r2_old = _offsets(z, cells, i)
        _, r2_new = _offsets(proposal, cells, i)
        delta = -0.5 * _pair_change(r2_new, r2_old, xp) + 0.5 * (_square(proposal, xp) - _square(z, xp))
        ok = xp.log(accept[:, i]) < -b[:, 0] * delta
        cells[:, i, :] = xp.where(ok[:, None], proposal, z)
        accepted = accepted + xp.astype(ok, accepted.dtype)
    return _finish(cells, accepted, position)


def mala(*, position, beta, kick, accept, step_size):
    """One sweep of single-particle Metropolis-adjusted Langevin moves (the reference; NumPy or torch).

    Arguments as :func:`metropolis`. With g(z) = -beta grad_i E (the gradient of the log
    weight in z_i) and h = epsilon^2 / 2, move i proposes

        z' = z + h g(z) + epsilon kick[i],

    a Gaussian q(z'|z) = N(z + h g(z), epsilon^2 I), and accepts when ln accept[i] < ln a with

        ln a = -beta Delta E - |z - z' - h g(z')|^2 / (2 epsilon^2) + |kick[i]|^2 / 2,

    the Metropolis-Hastings ratio pi(z') q(z|z') / (pi(z) q(z'|z)): the stationary law is
    exactly exp(-beta E) / Z (Roberts & Tweedie 1996). O(N) per move.
    """
    xp = namespace(position)
    cells, b, kick, accept = _flat(position, beta, kick, accept)
    h = 0.5 * step_size * step_size
    accepted = xp.zeros_like(b[:, 0])
    for i in range(cells.shape[1]):
        z = cells[:, i, :]
        d, r2_old = _offsets(z, cells, i)
        drift = -b * (z + xp.sum(d / r2_old[..., None], axis=1))  # g(z) = -beta grad_i E
        proposal = z + h * drift + step_size * kick[:, i, :]
        d, r2_new = _offsets(proposal, cells, i)
        back = z - proposal + h * b * (proposal + xp.sum(d / r2_new[..., None], axis=1))  # z - z' - h g(z')
        delta = -0.5 * _pair_change(r2_new, r2_old, xp) + 0.5 * (_square(proposal, xp) - _square(z, xp))
        log_ratio = (-b[:, 0] * delta - _square(back, xp) / (2.0 * step_size * step_size)
                     + 0.5 * _square(kick[:, i, :], xp))
        ok = xp.log(accept[:, i]) < log_ratio
        cells[:, i, :] = xp.where(ok[:, None], proposal, z)
        accepted = accepted + xp.astype(ok, accepted.dtype)
    return _finish(cells, accepted, position)
