"""Operators of the equilibrium_propagation system: ``free`` (one step of the dynamics) and ``train``.

``free`` advances the pre-activations u (operator-owned, ``neurons (sample, unit)``, 0 at the start of a
run) of every sample by one step u <- u + dt F(u) of the free phase (beta = 0, :mod:`.network`).

``train`` is one SGD step on a minibatch (``batch`` training samples per member, drawn uniformly with
replacement from the declared uniforms, as in feedback_snn): the free phase runs ``time_steps`` steps
from u = 0, then the chosen ``estimator`` gives the cotangent of the parameters:

- ``"one_sided"``, ``"symmetric"``, ``"holomorphic"``: equilibrium propagation, nudged phases of
  ``nudge_steps`` steps started at the free state, with nudging strength ``beta`` and ``points`` N on
  the circle for the holomorphic estimator (Laborieux & Zenke, ICLR 2024);
- ``"implicit"``: the exact gradient by implicit differentiation at the free state (the ground truth).

The update is w <- w - eta (g + kappa dR/dw) on the allowed entries of each weight group, R the
homeostatic loss estimated with ``probes`` standard normal vectors per step (declared draws) and
kappa = ``homeostasis`` (the paper's Jacobian homeostasis; kappa = 0 switches it off, R is still
recorded). Diagnostics: ``batch_loss`` (before the update), ``homeostatic_loss`` and
``forward_residual`` (||F(u)||_inf of the free phase over the minibatch).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from ..feedback_snn.operators import minibatch
from . import network

KIND = "equilibrium_propagation"


def init_free(*, data, bias):
    """u = 0 (float64, whatever the weights' dtype) for every cell and sample: (*E, sample, unit)."""
    return {"neurons": np.zeros((*bias.shape[:-1], data.shape[-2], bias.shape[-1]), dtype=np.float64)}


def free(*, input_weights, feedforward, feedback, bias, data, dt, neurons):
    """One step u <- u + dt (M tanh(u) + W_in x + b - u) of the free phase for every cell and sample.

    Weights (*E, D, m), (*E, D, D), (*E, D), data (S, m), dt (*E), neurons u (*E, S, D) float64; the
    step is taken in float64 (the owned state's dtype).
    """
    xp = namespace(neurons)
    wide = [xp.astype(a, xp.float64) for a in (input_weights, feedforward, feedback, bias, data, dt)]
    w_in, w_ff, w_fb, b, x, step = wide
    current = network.drive(w_in, b, x)
    return {"neurons": neurons + step[..., None, None] * network.vector_field(neurons, w_ff + w_fb, current)}


def prepare_train(*, labels, held_out, sizes, estimator):
    """Once per run (NumPy): the training indices; every bad option named (the schema checks ``probes``)."""
    problems = []
    if estimator not in network.TRAIN_ESTIMATORS:
        problems.append(f"options['estimator']: expected one of {list(network.TRAIN_ESTIMATORS)}, got {estimator!r}")
    train_index = np.flatnonzero(~np.asarray(held_out).reshape(-1)).astype(np.int64)
    if train_index.size == 0:
        problems.append("held_out: expected at least one training sample, got every sample held out")
    if sizes.get("batch", 0) < 1:
        problems.append(f"batch: expected a minibatch size >= 1 for train, got {sizes.get('batch')}")
    if problems:
        raise SchemaError(problems, kind=KIND)
    return {"train_index": train_index}


def estimate(*, weights, inputs, onehot, layer, beta, points, time_steps, nudge_steps, dt, estimator, free=None):
    """(gradients {group: (*E, ...)}, free state u* (*E, B, D), targets (*E, B, D)) for one estimator.

    ``free``: the free state u* when already known (else ``time_steps`` iterations from u = 0).
    """
    xp = namespace(inputs)
    out = network.output_mask(layer)
    matrix = weights["feedforward"] + weights["feedback"]
    current = network.drive(weights["input_weights"], weights["bias"], inputs)
    target = network.targets(onehot, out)
    u = network.relax(xp.zeros_like(current), matrix, current, steps=time_steps, dt=dt) if free is None else free
    if estimator == "implicit":
        cotangent = network.implicit_cotangent(u, matrix, target, out)
    else:
        cotangent = network.ep_cotangent(u, matrix, current, target, out, beta=beta, points=points,
                                         estimator=estimator, steps=nudge_steps, dt=dt)
    allowed = network.masks(layer, inputs.shape[-1])
    return network.parameter_gradients(cotangent, xp.tanh(u), inputs, allowed), u, target


def train(*, input_weights, feedforward, feedback, bias, data, labels, layer, train_index, uniforms, noise, beta,
          points, time_steps, nudge_steps, dt, learning_rate, homeostasis, estimator):
    """One SGD step by the chosen gradient estimator, with Jacobian homeostasis (see the module docstring).

    Weights W_in (*E, D, m), W_ff and W_fb (*E, D, D), b (*E, D), float64 or float32 (kept); data (S, m),
    labels (S,) int64, layer (D,) int64; train_index (S_train,) from :func:`prepare_train`; draws
    uniforms (*E, batch) in [0, 1) and noise (*E, probes, D) standard normal. Parameters (*E), cast to
    the weights' dtype: beta > 0, points N, time_steps, nudge_steps, dt, learning_rate eta, homeostasis
    kappa. ``estimator``: "one_sided", "symmetric", "holomorphic" or "implicit". Returns the new weights
    and the float64 (*E) diagnostics batch_loss, homeostatic_loss, forward_residual.
    Laborieux & Zenke, ICLR 2024 (the estimators, eqs. of :mod:`.network`; Jacobian homeostasis).
    """
    xp = namespace(input_weights)
    dtype = input_weights.dtype
    weights = {"input_weights": input_weights, "feedforward": feedforward, "feedback": feedback, "bias": bias}
    out = network.output_mask(layer)
    classes = int(xp.sum(xp.astype(out, xp.int64)))
    inputs, onehot = minibatch(uniforms, train_index, xp.astype(data, dtype), labels, classes)
    grads, u, target = estimate(weights=weights, inputs=inputs, onehot=onehot, layer=layer, beta=beta, points=points,
                                time_steps=time_steps, nudge_steps=nudge_steps, dt=dt,
                                estimator=estimator)
    matrix = feedforward + feedback
    reg, reg_grad = network.homeostasis(matrix, xp.astype(noise, dtype))
    allowed = network.masks(layer, inputs.shape[-1])
    kappa = homeostasis[..., None, None]
    result = {}
    for name, w in weights.items():
        g = grads[name]
        if name in ("feedforward", "feedback"):
            g = g + kappa * xp.where(allowed[name], reg_grad, xp.zeros_like(reg_grad))
        result[name] = w - learning_rate.reshape(tuple(learning_rate.shape) + (1,) * (w.ndim - learning_rate.ndim)) * g
    current = network.drive(input_weights, bias, inputs)
    residual = xp.max(xp.abs(network.vector_field(u, matrix, current)), axis=(-2, -1))
    result.update(batch_loss=xp.astype(network.squared_error(xp.tanh(u), target, out), xp.float64),
                  homeostatic_loss=xp.astype(reg, xp.float64), forward_residual=xp.astype(residual, xp.float64))
    return result
