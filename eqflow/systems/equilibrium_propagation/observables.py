"""Observables of the equilibrium_propagation system: residual, gradient errors, Jacobian symmetry, loss, accuracy.

The free state is the owned ``neurons`` under ``free`` (for ``residual``), else that of ``time_steps``
steps from u = 0 on the system's data. ``loss`` is the mean squared error |s_L - y|^2 / 2 of the
output activations over the training samples (not held out), ``accuracy`` the fraction of held-out
samples whose largest output activation is their label (NaN without held-out samples).
``gradient_error (estimator)`` is ||g_e - g|| / ||g|| over all weight groups for e = one_sided,
symmetric, holomorphic (in that order), g the exact gradient by implicit differentiation, on the
training samples at the cell's beta and N.
"""
from __future__ import annotations

from ...backends import namespace
from . import network
from .operators import estimate


def _wide(x):
    xp = namespace(x)
    return xp.astype(x, xp.float64, copy=False)


def _weights(input_weights, feedforward, feedback, bias):
    return {"input_weights": input_weights, "feedforward": feedforward, "feedback": feedback, "bias": bias}


def _subset(data, labels, held_out, want_held, dtype):
    """(inputs (S', m), labels (S',)) of the held-out (or training) samples; (None, None) when there are none."""
    xp = namespace(data)
    data, held = data.reshape(data.shape[-2:]), held_out.reshape(-1)
    (index,) = xp.nonzero(held if want_held else ~held)
    if index.shape[0] == 0:
        return None, None
    return xp.astype(xp.take(data, index, axis=0), dtype), xp.take(labels.reshape(-1), index, axis=0)


def _free_state(input_weights, feedforward, feedback, bias, inputs, time_steps, dt):
    xp = namespace(inputs)
    current = network.drive(input_weights, bias, inputs)
    u = network.relax(xp.zeros_like(current), feedforward + feedback, current, steps=time_steps, dt=dt)
    return u, current


def _nan(bias):
    xp = namespace(bias)
    return xp.full_like(_wide(bias)[..., 0], float("nan"))


def residual(*, input_weights, feedforward, feedback, bias, data, time_steps, dt, neurons=None):
    """||F(u)||_inf over samples and units of the free phase (*E), u the owned state or T steps from 0."""
    xp = namespace(bias)
    if neurons is not None:  # the free operator's float64 state: evaluate F in float64
        input_weights, feedforward, feedback, bias = (_wide(a) for a in (input_weights, feedforward, feedback, bias))
    inputs = xp.astype(data, bias.dtype)
    if neurons is None:
        neurons, current = _free_state(input_weights, feedforward, feedback, bias, inputs, time_steps, dt)
    else:
        current = network.drive(input_weights, bias, inputs)
    f = network.vector_field(neurons, feedforward + feedback, current)
    return _wide(xp.max(xp.abs(f), axis=(-2, -1)))


def _onehot(y, layer, dtype):
    xp = namespace(y)
    classes = int(xp.sum(xp.astype(network.output_mask(layer), xp.int64)))
    return xp.astype(y[:, None] == xp.arange(classes, dtype=y.dtype), dtype)


def loss(*, input_weights, feedforward, feedback, bias, data, labels, held_out, layer, time_steps, dt):
    """Mean |s_L - y|^2 / 2 over the training samples at the free state (*E), float64."""
    inputs, y = _subset(data, labels, held_out, False, bias.dtype)
    if inputs is None:
        return _nan(bias)
    u, _ = _free_state(input_weights, feedforward, feedback, bias, inputs, time_steps, dt)
    out = network.output_mask(layer)
    target = network.targets(_onehot(y, layer, bias.dtype), out)
    return _wide(network.squared_error(namespace(u).tanh(u), target, out))


def accuracy(*, input_weights, feedforward, feedback, bias, data, labels, held_out, layer, time_steps, dt):
    """Fraction of held-out samples whose largest output activation is their label (*E); NaN without them."""
    xp = namespace(bias)
    inputs, y = _subset(data, labels, held_out, True, bias.dtype)
    if inputs is None:
        return _nan(bias)
    u, _ = _free_state(input_weights, feedforward, feedback, bias, inputs, time_steps, dt)
    (index,) = xp.nonzero(network.output_mask(layer))
    scores = xp.take(u, index, axis=u.ndim - 1)  # tanh is monotone: the largest u_L is the largest s_L
    return xp.mean(xp.astype(xp.argmax(scores, axis=-1) == y, xp.float64), axis=-1)


def jacobian_symmetry(*, feedforward, feedback):
    """||J_sym||_F / (||J_sym||_F + ||J_anti||_F) of J = W_ff + W_fb - I (*E), float64."""
    return _wide(network.jacobian_symmetry(feedforward + feedback))


def gradient_error(*, input_weights, feedforward, feedback, bias, data, labels, held_out, layer, beta, points,
                   time_steps, nudge_steps, dt):
    """Relative error of each EP estimator against implicit differentiation (*E, estimator), float64."""
    xp = namespace(bias)
    inputs, y = _subset(data, labels, held_out, False, bias.dtype)
    if inputs is None:
        return xp.stack([_nan(bias)] * len(network.ESTIMATORS), axis=-1)
    weights = _weights(input_weights, feedforward, feedback, bias)
    common = {"weights": weights, "inputs": inputs, "onehot": _onehot(y, layer, bias.dtype), "layer": layer,
              "beta": beta, "points": points, "time_steps": time_steps, "nudge_steps": nudge_steps,
              "dt": dt}
    exact, u, _ = estimate(estimator="implicit", **common)
    norm = _norm(exact)
    errors = []
    for name in network.ESTIMATORS:
        grads, _, _ = estimate(estimator=name, free=u, **common)
        diff = _norm({k: grads[k] - exact[k] for k in exact})
        errors.append(diff / xp.where(norm > 0, norm, xp.ones_like(norm)))
    return _wide(xp.stack(errors, axis=-1))


def _norm(grads):
    """sqrt of the sum of squares over every group (*E)."""
    xp = namespace(grads["bias"])
    total = sum(xp.sum(g * g, axis=tuple(range(-(g.ndim - grads["bias"].ndim + 1), 0))) for g in grads.values())
    return xp.sqrt(total)
