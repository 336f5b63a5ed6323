"""Observables of the monotone DBM: the mean-field residual and the mean-field free energy."""
from __future__ import annotations

from ...backends import namespace
from . import model


def residual(*, marginals, weights, bias, margin, evidence, scaling="monotone"):
    """max |q - softmax(W q + b)| over free variables, states and samples, per cell (*E) float64.

    The fixed-point residual of the mean field: zero exactly at q*, whichever operator (and
    alpha) got there; clamped variables do not count.
    """
    xp = namespace(marginals)
    w = model.factored(weights, margin, scaling)
    onehot, free = model.evidence_arrays(evidence, marginals.shape[-1], marginals)
    gap = free * (marginals - model.softmax(model.field(marginals, w, bias)))
    return xp.astype(xp.max(xp.abs(gap), axis=(-3, -2, -1)), xp.float64)


def free_energy(*, marginals, weights, bias, margin, evidence, scaling="monotone"):
    """F(q) = -q^T W q / 2 - b^T q + sum_{i,s} q_is log q_is per sample (*E, S), in units of kT.

    The naive mean-field free energy of p(x) proportional to exp(x^T W x / 2 + b^T x), x the one-hot
    states (W hollow, so no self-coupling). Its Hessian on the free variables is diag(1/q) - W >= I - W
    >= m I, so F is m-strongly convex on the product of simplices and its minimum is the unique fixed
    point q* = softmax(W q* + b). 0 log 0 = 0; clamped variables enter through their one-hot.
    """
    xp = namespace(marginals)
    w = model.factored(weights, margin, scaling)
    quadratic = xp.sum(model.couple(marginals, w) * marginals, axis=(-2, -1)) / 2
    linear = xp.sum(marginals * bias[..., None, :, :], axis=(-2, -1))
    positive = marginals > 0
    logs = xp.log(xp.where(positive, marginals, xp.ones_like(marginals)))
    entropy = xp.sum(xp.where(positive, marginals * logs, xp.zeros_like(marginals)), axis=(-2, -1))
    return xp.astype(-quadratic - linear + entropy, xp.float64)
