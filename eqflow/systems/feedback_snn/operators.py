"""Operators of the feedback_snn system: ``integrate`` (one time step) and ``train`` (one SGD step by IDE).

``integrate`` advances the neurons of every member, sample and neuron by one time step of the
IF/LIF dynamics (:mod:`.dynamics`); the neuron state is operator-owned: ``potential`` u, the last
``spikes`` s, the ``spike_count`` N and the elapsed ``time`` t (steps since the start of the run), so
the ``firing_rate`` observable is N / t.

``train`` is one optimizer step on a minibatch (Xiao et al., NeurIPS 2021): the minibatch (``batch``
training samples per member, drawn uniformly with replacement from the declared uniforms, so each
member has its own data order) is simulated T steps from rest without a graph, a* = a[T], and the
gradient of the mean cross-entropy of the readout o = R a* + r is computed by implicit
differentiation (:mod:`.implicit`), the adjoint fixed point solved by Broyden's method or damped
iteration. Then SGD with momentum and weight decay, PyTorch's convention (v <- alpha v + g + lambda w,
w <- w - eta v, every weight group), and spectral normalisation W <- W min(1, bound / ||W||_2).
A member whose adjoint solve does not converge keeps its weights and velocities for that step
(``adjoint_failure="skip"``) or is stopped as diverged (``"stop"``: its velocity turns NaN);
the others go on. Diagnostics: ``batch_loss``, ``adjoint_iterations``, ``adjoint_residual``
(relative), ``forward_residual`` (||a[T] - f(a[T])||_inf of the batch).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from . import dynamics
from .implicit import SOLVERS, implicit_gradients

KIND = "feedback_snn"
GROUPS = ("feedback", "input_weights", "bias", "readout", "readout_bias")
FAILURES = ("skip", "stop")


def init_integrate(*, data, bias):
    """Neurons at rest: u = 0, s = 0, N = 0, t = 0 for every cell and sample."""
    shape = (*bias.shape[:-1], data.shape[-2], bias.shape[-1])
    return {"potential": np.zeros(shape, dtype=np.float64), "spikes": np.zeros(shape, dtype=np.float64),
            "spike_count": np.zeros(shape, dtype=np.int64), "time": np.zeros(bias.shape[:-1], dtype=np.int64)}


def integrate(*, feedback, input_weights, bias, data, threshold, leak, potential, spikes, spike_count, time):
    """One time step of u <- lambda u + W s + F x + b, s = H(u - V_th), u <- u - V_th s for every cell."""
    xp = namespace(potential)
    current = dynamics.drive(xp.astype(input_weights, potential.dtype), xp.astype(bias, potential.dtype),
                             xp.astype(data, potential.dtype))
    u, s = dynamics.step(potential, xp.astype(spikes, potential.dtype), xp.astype(feedback, potential.dtype),
                         current, xp.astype(threshold, potential.dtype), xp.astype(leak, potential.dtype))
    return {"potential": u, "spikes": xp.astype(s, spikes.dtype),
            "spike_count": spike_count + xp.astype(s, spike_count.dtype), "time": time + 1}


def prepare_train(*, data, labels=None, held_out=None, sizes, solver, adjoint_failure, adjoint_tol,
                  adjoint_max_iter, damping):
    """Once per run (NumPy): the training indices and the number of classes; every bad option named."""
    problems = []
    if labels is None:
        problems.append("labels: the train operator needs class labels (sample,); create the system with "
                        "labels=... or dataset='digits'")
    if solver not in SOLVERS:
        problems.append(f"options['solver']: expected one of {list(SOLVERS)}, got {solver!r}")
    if adjoint_failure not in FAILURES:
        problems.append(f"options['adjoint_failure']: expected one of {list(FAILURES)}, got {adjoint_failure!r}")
    if not adjoint_tol > 0:
        problems.append(f"options['adjoint_tol']: expected a value > 0, got {adjoint_tol!r}")
    if not 0 < damping <= 1:
        problems.append(f"options['damping']: expected a value in (0, 1], got {damping!r}")
    if int(adjoint_max_iter) != adjoint_max_iter or adjoint_max_iter < 1:
        problems.append(f"options['adjoint_max_iter']: expected an integer >= 1, got {adjoint_max_iter!r}")
    held = np.zeros(data.shape[-2], dtype=bool) if held_out is None else np.asarray(held_out).reshape(-1)
    train_index = np.flatnonzero(~held).astype(np.int64)
    if train_index.size == 0:
        problems.append(f"held_out: expected at least one training sample, got all {held.size} held out")
    if sizes.get("batch", 0) < 1:
        problems.append(f"batch: expected a minibatch size >= 1 for train, got {sizes.get('batch')}")
    if problems:
        raise SchemaError(problems, kind=KIND)
    return {"train_index": train_index}


def init_train(*, feedback, input_weights, bias, readout, readout_bias):
    """Momentum buffers v = 0 (float64) for every weight group, like a new torch.optim.SGD."""
    arrays = {"feedback": feedback, "input_weights": input_weights, "bias": bias, "readout": readout,
              "readout_bias": readout_bias}
    return {f"velocity_{k}": np.zeros(np.shape(v), dtype=np.float64) for k, v in arrays.items()}


def minibatch(uniforms, train_index, data, labels, classes):
    """(inputs (*E, B, m), one-hot labels (*E, B, C)) of the samples train_index[floor(u N)], u the draws."""
    xp = namespace(uniforms)
    data, labels = data.reshape(data.shape[-2:]), labels.reshape(-1)
    n = train_index.shape[0]
    pick = xp.astype(xp.floor(uniforms * n), xp.int64)
    pick = xp.where(pick >= n, xp.full_like(pick, n - 1), pick)
    rows = xp.take(train_index, pick.reshape(-1), axis=0)
    inputs = xp.take(data, rows, axis=0).reshape((*uniforms.shape, data.shape[-1]))
    label = xp.take(labels, rows, axis=0).reshape((*uniforms.shape, 1))
    onehot = xp.astype(label == xp.arange(classes, dtype=label.dtype), data.dtype)
    return inputs, onehot


def train(*, feedback, input_weights, bias, readout, readout_bias, velocity_feedback, velocity_input_weights,
          velocity_bias, velocity_readout, velocity_readout_bias, data, labels, train_index, uniforms, threshold,
          leak, time_steps, learning_rate, momentum, weight_decay, spectral_bound, solver, adjoint_tol,
          adjoint_max_iter, damping, adjoint_failure):
    """One SGD step by implicit differentiation at a* = a[T] (see the module docstring)."""
    xp = namespace(feedback)
    weights = {"feedback": feedback, "input_weights": input_weights, "bias": bias, "readout": readout,
               "readout_bias": readout_bias}
    velocities = {"feedback": velocity_feedback, "input_weights": velocity_input_weights, "bias": velocity_bias,
                  "readout": velocity_readout, "readout_bias": velocity_readout_bias}
    inputs, onehot = minibatch(uniforms, train_index, data, labels, readout.shape[-2])
    rates, _, _ = dynamics.simulate(feedback, input_weights, bias, inputs, threshold=threshold, leak=leak,
                                    time_steps=time_steps)
    grads, loss, info = implicit_gradients(
        feedback=feedback, input_weights=input_weights, bias=bias, readout=readout, readout_bias=readout_bias,
        inputs=inputs, onehot=onehot, rates=rates, threshold=threshold, solver=solver, tol=adjoint_tol,
        max_iter=int(adjoint_max_iter), damping=damping)
    ok = info["converged"]
    out = {}
    for name, w in weights.items():
        keep = ok.reshape(tuple(ok.shape) + (1,) * (w.ndim - ok.ndim))
        w64 = xp.astype(w, xp.float64)
        cell = (w.ndim - ok.ndim)
        eta, lam, alpha = (xp.astype(p, xp.float64).reshape(tuple(p.shape) + (1,) * cell)
                           for p in (learning_rate, weight_decay, momentum))
        gradient = xp.where(keep, xp.astype(grads[name], xp.float64), xp.zeros_like(w64))
        velocity = xp.where(keep, alpha * velocities[name] + gradient + lam * w64, velocities[name])
        new = w64 - eta * velocity
        if name == "feedback":
            new = project(new, xp.astype(spectral_bound, xp.float64))
        new = xp.where(keep, new, w64)  # a member whose adjoint failed keeps its weights
        if adjoint_failure == "stop":  # ... and is reported as diverged
            velocity = xp.where(keep, velocity, xp.full_like(velocity, float("nan")))
        out[name] = xp.astype(new, w.dtype)
        out[f"velocity_{name}"] = velocity
    out.update(batch_loss=xp.astype(loss, xp.float64), adjoint_iterations=info["iterations"],
               adjoint_residual=info["residual"], forward_residual=info["equilibrium_residual"])
    return out


def project(feedback, bound):
    """Spectral normalisation: W * min(1, bound / ||W||_2) per cell (bound (*E) or a scalar)."""
    xp = namespace(feedback)
    finite = xp.isfinite(feedback)  # a stopped member's NaN weights must not break the SVD of the others
    norm = dynamics.spectral_norm(xp.where(finite, feedback, xp.zeros_like(feedback)))
    factor = xp.where(norm > bound, bound / xp.where(norm > 0, norm, xp.ones_like(norm)), xp.ones_like(norm))
    return feedback * factor[..., None, None]
