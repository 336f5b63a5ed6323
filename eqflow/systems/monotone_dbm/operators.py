"""Inference operators of the monotone DBM: plain mean field, damped forward-backward splitting, Anderson.

Every operator maps the marginals q (*E, S, n, k) to new marginals with the evidence clamped; the
coupling W is built from the weights A at every step (:func:`.model.coupling`), so that ``train``
and inference share one state. Feng, Winston & Kolter, "Monotone deep Boltzmann machines", TMLR
2023: the fixed point q* = softmax(W q* + b) is the zero of the monotone operator (I - W) q - b +
d f(q), f = -H - ||.||^2 / 2 (whose prox at step 1 is the softmax), unique when I - W >= m I; the
damped splitting ``forward_backward`` is the iteration of ``MONForwardBackwardSplitting.
damped_forward`` (``deq_model.py``), and ``anderson`` accelerates it as ``anderson()`` there does.
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from ...ops.diis import diis_coefficients, diis_push
from . import model

KIND = "monotone_dbm"


def check_alpha(alpha, problems):
    if not (isinstance(alpha, (int, float, np.floating)) and not isinstance(alpha, bool) and 0 < alpha <= 1):
        problems.append(f"options['alpha']: expected a damping alpha in (0, 1], got {alpha!r}")


def check_history(history, problems):
    if not (isinstance(history, (int, np.integer)) and not isinstance(history, bool) and history >= 1):
        problems.append(f"options['history']: expected an integer number of Anderson slots >= 1, got {history!r}")


def prepare_splitting(*, alpha):
    """Once per run: alpha in (0, 1] (a named error before anything is written)."""
    problems: list[str] = []
    check_alpha(alpha, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    return {}


def prepare_anderson(*, alpha, history):
    """Once per run: alpha in (0, 1] and an integer history >= 1."""
    problems: list[str] = []
    check_alpha(alpha, problems)
    check_history(history, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    return {}


def _setup(marginals, weights, margin, evidence, scaling):
    w = model.factored(weights, margin, scaling)
    onehot, free = model.evidence_arrays(evidence, marginals.shape[-1], marginals)
    return w, onehot, free


def mean_field(*, marginals, weights, bias, margin, evidence, scaling="monotone"):
    """Synchronous mean field: q <- softmax(W q + b) on every free variable at once.

    marginals (*E, S, n, k) float64; weights A (*E, r, n, k); bias b (*E, n, k); margin m (*E);
    evidence (S, n) int64 (-1: free). The comparison method: without the monotone scaling
    (``scaling='none'``) it can end in a cycle of period 2 (``eq.stop.cycled``).
    """
    w, onehot, free = _setup(marginals, weights, margin, evidence, scaling)
    return {"marginals": model.mean_field_map(marginals, w, bias, onehot, free)}


def forward_backward(*, marginals, weights, bias, margin, evidence, alpha, scaling="monotone"):
    """Damped forward-backward splitting q <- prox_f^alpha((1 - alpha) q + alpha (W q + b)).

    Shapes as :func:`mean_field`; alpha in (0, 1] (option, default 0.5). The prox is solved to
    |sum_s z_s - 1| <= 1e-13 (:func:`.model.prox`). Its fixed points are those of the mean field
    for every alpha; with I - W >= m I the iteration converges for alpha small enough (monotone
    operator splitting; Feng et al. 2023, section 4).
    """
    w, onehot, free = _setup(marginals, weights, margin, evidence, scaling)
    return {"marginals": model.splitting_map(marginals, w, bias, onehot, free, float(alpha))}


def init_anderson(*, marginals, history):
    """An empty Anderson history of ``history`` slots (zeros, count 0)."""
    zeros = np.zeros((*marginals.shape[:-3], int(history), *marginals.shape[-3:]))
    return {"anderson_point": zeros, "anderson_value": zeros.copy(),
            "anderson_count": np.zeros(marginals.shape[:-3], dtype=np.int64)}


def anderson_step(q, value, points, values, count):
    """Push (q, T(q)) and extrapolate: returns (new q, points, values, count).

    c minimises ||sum_j c_j (T(q_j) - q_j)|| with sum_j c_j = 1 over the valid history (Pulay's
    equations, :func:`eqflow.ops.diis.diis_coefficients`); q <- sum_j c_j T(q_j), clipped
    at 0 and renormalised on each simplex (inactive near an interior fixed point).
    """
    xp = namespace(q)
    points, values = diis_push(points, q), diis_push(values, value)
    count = xp.minimum(count + 1, xp.full_like(count, points.shape[-4]))
    c = diis_coefficients(values - points, count)
    flat = xp.reshape(values, (*values.shape[:-3], -1))
    new = xp.reshape(c[..., None, :] @ flat, q.shape)
    new = xp.where(new > 0, new, xp.zeros_like(new))
    return new / xp.sum(new, axis=-1, keepdims=True), points, values, count


def anderson(*, marginals, weights, bias, margin, evidence, anderson_point, anderson_value, anderson_count, alpha,
             scaling="monotone"):
    """Anderson-accelerated forward-backward splitting (history owned by the operator, like SCF's DIIS).

    Shapes as :func:`mean_field`; ``anderson_point``/``anderson_value`` (*E, history, S, n, k),
    ``anderson_count`` (*E) int64. One evaluation of T = the damped splitting map per step.
    """
    w, onehot, free = _setup(marginals, weights, margin, evidence, scaling)
    value = model.splitting_map(marginals, w, bias, onehot, free, float(alpha))
    q, points, values, count = anderson_step(marginals, value, anderson_point, anderson_value, anderson_count)
    return {"marginals": model.clamp(q, onehot, free), "anderson_point": points, "anderson_value": values,
            "anderson_count": count}
