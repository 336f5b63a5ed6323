"""Array kernels of the monotone DBM: the coupling W, softmax, the prox of the entropy, the clamping of evidence.

Raw arrays only (NumPy or torch through :func:`eqflow.backends.namespace`), vectorised over leading
ensemble dims. Shapes: ``weights`` A (*E, feature, variable, state) = (*E, r, n, k); ``bias`` b
(*E, n, k); marginals q (*E, S, n, k) for S samples; ``evidence`` (S, n) or (*E, S, n) integers, the
observed state of a variable or -1 where it is free.

The coupling (Feng, Winston & Kolter, "Monotone deep Boltzmann machines", TMLR 2023, section 4; the
hollow product of ``multitier_conv.py`` in github.com/locuslab/MonotoneDBM):

    W = -s (A^T A - blockdiag(A^T A)),   s = min(1, (1 - m) / max_i ||A_i^T A_i||_2),

A_i the k columns of variable i. A^T A >= 0 gives I - W >= I - s blockdiag(A^T A) >= m I. The code
scales each variable group's rows of the product by its own factor; here either one scalar s
(``scaling='monotone'``) or one factor per variable on its columns of A (``'variable'``,
:func:`column_scale`), both keeping W symmetric, so that the mean-field free energy
(:mod:`.observables`) is the Lyapunov function of the iteration.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ...backends import namespace

PROX_TOL = 1e-13  # |sum_s z_s - 1| at which the prox's Newton iteration on the multiplier stops
STEP_TOL = 1e-14  # relative Newton step of the log-variable at which its inner iteration stops
PROX_MAX_ITER = 100


def block_gram(weights):
    """blockdiag(A^T A) as (*E, n, k, k): A_i^T A_i of each variable's k columns."""
    xp = namespace(weights)
    lead = tuple(range(weights.ndim - 3))
    a = xp.permute_dims(weights, (*lead, weights.ndim - 2, weights.ndim - 3, weights.ndim - 1))  # (*E, n, r, k)
    return a.mT @ a


SCALINGS = ("monotone", "variable", "none")


def column_scale(weights, margin, scaling="monotone"):
    """Factors c (*E, n) of each variable's columns, A~_i = c_i A_i, so that I - W >= m I.

    'monotone': c_i = sqrt(s), s = min(1, (1 - m) / max_j rho_j), rho_j = ||A_j^T A_j||_2, the one
    scalar s of the paper's formula; 'variable': c_i = min(1, sqrt((1 - m) / rho_i)), one factor per
    variable (as the paper's code scales each variable group by its own factor, but applied to the
    columns of A, which keeps W symmetric); 'none': c = 1. A zero block gets c = 1.
    """
    xp = namespace(weights)
    rho = xp.linalg.eigvalsh(block_gram(weights))[..., -1]  # (*E, n)
    if scaling == "none":
        return xp.ones_like(rho)
    if scaling == "monotone":
        rho = xp.broadcast_to(xp.max(rho, axis=-1, keepdims=True), rho.shape)
    ratio = (1 - margin[..., None]) / xp.where(rho > 0, rho, xp.ones_like(rho))
    return xp.sqrt(xp.where(rho > 0, xp.minimum(ratio, xp.ones_like(ratio)), xp.ones_like(ratio)))


def scale(weights, margin, scaling="monotone"):
    """s of W = -s (A^T A - blockdiag(A^T A)) per cell (*E), for 'monotone' and 'none' (c_i^2, all equal)."""
    return column_scale(weights, margin, scaling)[..., 0] ** 2


def scaled_weights(weights, margin, scaling="monotone"):
    """A~ = c_i A_i (*E, r, n, k): W = -(A~^T A~ - blockdiag(A~^T A~)), I - W >= I - blockdiag(A~^T A~) >= m I."""
    return weights * column_scale(weights, margin, scaling)[..., None, :, None]


def coupling(weights, margin, scaling="monotone"):
    """W (*E, nk, nk) = -(A~^T A~ - blockdiag(A~^T A~)) (rows and columns ordered variable-major)."""
    xp = namespace(weights)
    *lead, r, n, k = weights.shape
    a = xp.reshape(scaled_weights(weights, margin, scaling), (*lead, r, n * k))
    gram = a.mT @ a
    same = xp.astype(xp.arange(n * k) // k, xp.int64)
    return -gram * xp.astype(same[:, None] != same[None, :], gram.dtype)


class Factored(NamedTuple):
    """W = -(A~^T A~ - blockdiag(A~^T A~)) kept factored: A~ (*E, r, nk), its blocks (*E, n, k, k), A~^T (*E, nk, r)."""

    factor: Any
    blocks: Any
    transposed: Any  # C-contiguous: NumPy's stacked matmul runs BLAS only on contiguous operands


def contiguous(x):
    """``x`` in C order (a copy where it is a strided view)."""
    return np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x.contiguous()


def factored(weights, margin, scaling="monotone"):
    """The coupling of :func:`coupling` as a :class:`Factored` (W q in O(r n k) per sample, not O((n k)^2))."""
    return factor_of(scaled_weights(weights, margin, scaling))


def factor_of(scaled):
    """:class:`Factored` of already scaled weights A~ (*E, r, n, k)."""
    xp = namespace(scaled)
    *lead, r, n, k = scaled.shape
    a = contiguous(xp.reshape(scaled, (*lead, r, n * k)))
    return Factored(a, block_gram(scaled), contiguous(a.mT))


def couple(q, coupling):
    """W q = -(A~^T (A~ q) - blockdiag(A~^T A~) q): q (*E, S, n, k), ``coupling`` a :class:`Factored`."""
    xp = namespace(q)
    a, blocks, a_t = coupling
    flat = contiguous(xp.reshape(q, (*q.shape[:-2], q.shape[-2] * q.shape[-1])))
    gram = xp.reshape((flat @ a_t) @ a, q.shape)
    own = (blocks[..., None, :, :, :] @ q[..., None])[..., 0]
    return own - gram


def field(q, coupling, bias):
    """W q + b: q (*E, S, n, k), ``coupling`` a :class:`Factored`, b (*E, n, k) -> (*E, S, n, k)."""
    return couple(q, coupling) + bias[..., None, :, :]


def softmax(y):
    """softmax over the last (state) axis."""
    xp = namespace(y)
    e = xp.exp(y - xp.max(y, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def evidence_arrays(evidence, states, like):
    """(one-hot of the observed states (.., S, n, k), free (.., S, n, 1)) in the dtype of ``like``."""
    xp = namespace(like)
    levels = xp.arange(states, dtype=evidence.dtype)
    onehot = xp.astype(evidence[..., None] == levels, like.dtype)
    return onehot, xp.astype(evidence[..., None] < 0, like.dtype)


def clamp(q, onehot, free):
    """q on the free variables, the observed state's one-hot on the clamped ones (the code's ``mask``)."""
    return free * q + (1 - free) * onehot


def _log_root(t, alpha, x):
    """Solve (1 - alpha) e^x + alpha x = t elementwise by Newton from an upper bound ``x`` (monotone)."""
    xp = namespace(t)
    done = xp.zeros_like(t, dtype=xp.bool)
    for _ in range(PROX_MAX_ITER):
        e = xp.exp(x)
        step = ((1 - alpha) * e + alpha * x - t) / ((1 - alpha) * e + alpha)
        step = xp.where(done, xp.zeros_like(step), step)
        x = x - step
        done = done | (xp.abs(step) <= STEP_TOL * (1 + xp.abs(x)))
        if bool(xp.all(done)):
            break
    return x


def _upper_bound(t, alpha):
    """An upper bound of the root of (1 - alpha) e^x + alpha x = t (see the docs page)."""
    xp = namespace(t)
    x = xp.minimum(t / alpha, t + alpha - 1)
    big = t > 1 - alpha
    return xp.where(big, xp.minimum(x, xp.log(xp.where(big, t, xp.ones_like(t)) / (1 - alpha))), x)


def prox(y, alpha):
    """prox_f^alpha(y) over the last axis, f(z) = sum_s z_s log z_s - ||z||^2 / 2 on the simplex.

    z = argmin_z ||z - y||^2 / 2 + alpha f(z) solves (1 - alpha) z_s + alpha log z_s = y_s - alpha - nu
    with nu such that sum_s z_s = 1. As in ``proxsoftmax.py`` of the paper's code: an inner root
    in x = log z_s per state (Newton here, Halley there) and Newton's method on nu, started where
    sum_s z_s >= 1 (nu = max_s y_s - 1), which converges monotonically since sum_s z_s(nu) is convex
    and decreasing. Tolerances: |sum_s z_s - 1| <= 1e-13 (the code: 1e-4), then z /= sum_s z_s.
    Each group stops on its own, so a result does not depend on the other groups in the batch.
    alpha = 1 is the softmax (closed form).
    """
    if alpha == 1:
        return softmax(y)
    xp = namespace(y)
    nu = xp.max(y, axis=-1, keepdims=True) - 1
    x = _upper_bound(y - alpha - nu, alpha)
    done = xp.zeros_like(nu, dtype=xp.bool)
    for _ in range(PROX_MAX_ITER):
        t = y - alpha - nu
        x = xp.where(done, x, _log_root(t, alpha, xp.minimum(x, _upper_bound(t, alpha))))
        z = xp.exp(x)
        gap = xp.sum(z, axis=-1, keepdims=True) - 1
        done = done | (xp.abs(gap) <= PROX_TOL)
        if bool(xp.all(done)):
            break
        slope = xp.sum(z / ((1 - alpha) * z + alpha), axis=-1, keepdims=True)
        nu = xp.where(done, nu, nu + gap / slope)
    z = xp.exp(x)
    return z / xp.sum(z, axis=-1, keepdims=True)


def mean_field_map(q, coupling, bias, onehot, free):
    """softmax(W q + b) on the free variables, the evidence on the clamped ones."""
    return clamp(softmax(field(q, coupling, bias)), onehot, free)


def splitting_map(q, coupling, bias, onehot, free, alpha):
    """One damped forward-backward step: prox_f^alpha((1 - alpha) q + alpha (W q + b)), evidence clamped."""
    return clamp(prox((1 - alpha) * q + alpha * field(q, coupling, bias), alpha), onehot, free)
