"""Pulay's DIIS (Anderson) extrapolation, shared by every fixed-point system that accelerates with it
(SCF's ``diis``, monotone DBM's ``anderson``): array-API code over NumPy or torch arrays.

P. Pulay, Chem. Phys. Lett. 73, 393 (1980); D. G. Anderson, J. ACM 12, 547 (1965).
"""
from __future__ import annotations

from array_api_compat import array_namespace, device

DIIS_RIDGE = 1e-12  # relative ridge on the normalised DIIS matrix: keeps it invertible when errors repeat


def _eye(xp, n, like):
    return xp.eye(n, dtype=like.dtype, device=device(like))


def _finite_cells(a, axes=(-2, -1)):
    xp = array_namespace(a)
    return xp.all(xp.isfinite(a), axis=axes)


def diis_push(history, new):
    """Drop the oldest entry of ``history`` (..., m, spin, n, n) and append ``new`` (..., spin, n, n)."""
    xp = array_namespace(history)
    return xp.concat([history[..., 1:, :, :, :], new[..., None, :, :, :]], axis=-4)


def diis_coefficients(errors, count):
    """Pulay's c minimising ||sum_i c_i e_i|| subject to sum_i c_i = 1, over the newest ``count`` entries.

    ``errors`` (..., m, spin, n, n), newest last; ``count`` (...) integer. Entries older than
    ``count`` get c = 0. The matrix B_ij = <e_i, e_j> is normalised by its largest valid
    diagonal and given a relative ridge of 1e-12 so repeated errors do not make it singular.
    """
    xp = array_namespace(errors)
    m = errors.shape[-4]
    flat = xp.reshape(errors, (*errors.shape[:-4], m, -1))
    b = flat @ xp.linalg.matrix_transpose(flat)
    valid = xp.arange(m, device=device(errors)) >= (m - count[..., None])
    pair = valid[..., :, None] & valid[..., None, :]
    eye = _eye(xp, m, b)
    scale = xp.max(xp.where(valid, xp.linalg.diagonal(b), 0.0), axis=-1)[..., None, None]
    scale = xp.where(scale > 0, scale, 1.0)
    b = xp.where(pair, b / scale + DIIS_RIDGE * eye, eye)
    ones = xp.astype(valid, b.dtype)[..., :, None]
    top = xp.concat([b, -ones], axis=-1)
    bottom = xp.concat([-xp.linalg.matrix_transpose(ones), xp.zeros_like(ones[..., :1, :])], axis=-1)
    system = xp.concat([top, bottom], axis=-2)
    rhs = xp.concat([xp.zeros_like(ones), -xp.ones_like(ones[..., :1, :])], axis=-2)
    ok = _finite_cells(system)
    eye_aug = _eye(xp, m + 1, system)
    solution = xp.linalg.solve(xp.where(ok[..., None, None], system, eye_aug), rhs)
    return xp.where(ok[..., None], solution[..., :m, 0], float("nan"))
