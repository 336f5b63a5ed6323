"""Observables of the feedback_snn system: firing rates, the equilibrium residual, loss and held-out accuracy.

Under ``integrate`` the rates are those of the run so far, N / t (0 before the first step). Under
``train`` (or any operator without neuron state) they are the average rates a[T] of a fresh
simulation of T = ``time_steps`` steps from rest on the system's data. Loss and accuracy always
simulate T steps from rest with the current weights: the mean cross-entropy (nats) of the
readout on the training samples (not held out) and the fraction of held-out samples classified
correctly; NaN without labels (or without held-out samples, for the accuracy).
"""
from __future__ import annotations

from ...backends import as_float64 as _wide
from ...backends import namespace
from ...ops.learning import cross_entropy_and_gradient
from . import dynamics


def _rates(feedback, input_weights, bias, inputs, threshold, leak, time_steps):
    rates, _, _ = dynamics.simulate(feedback, input_weights, bias, inputs, threshold=threshold, leak=leak,
                                    time_steps=time_steps)
    return rates


def firing_rate(*, feedback, input_weights, bias, data, threshold, leak, time_steps, spike_count=None, time=None):
    """Average firing rate (*E, sample, neuron) in spikes per time step, float64."""
    xp = namespace(feedback)
    if spike_count is not None:
        elapsed = xp.astype(time, xp.float64)[..., None, None]
        return xp.astype(spike_count, xp.float64) / xp.where(elapsed > 0, elapsed, xp.ones_like(elapsed))
    return _wide(_rates(feedback, input_weights, bias, data, threshold, leak, time_steps))


def equilibrium_residual(*, feedback, input_weights, bias, data, threshold, leak, time_steps, spike_count=None,
                         time=None):
    """||a - clamp((W a + F x + b) / V_th, 0, 1)||_inf over samples and neurons (*E), a the firing rates."""
    rates = firing_rate(feedback=feedback, input_weights=input_weights, bias=bias, data=data, threshold=threshold,
                        leak=leak, time_steps=time_steps, spike_count=spike_count, time=time)
    current = dynamics.drive(_wide(input_weights), _wide(bias), _wide(data))
    return dynamics.residual(rates, _wide(feedback), current, _wide(threshold))


def _subset(data, labels, held_out, want_held):
    """(inputs (S', m), labels (S',)) of the held-out (or training) samples; None when there are none."""
    xp = namespace(data)
    data, labels = data.reshape(data.shape[-2:]), labels.reshape(-1)
    if held_out is None:
        held = xp.zeros_like(labels, dtype=xp.bool)
    else:
        held = held_out.reshape(-1)
    (index,) = xp.nonzero(held if want_held else ~held)
    if index.shape[0] == 0:
        return None, None
    return xp.take(data, index, axis=0), xp.take(labels, index, axis=0)


def _scores(feedback, input_weights, bias, readout, readout_bias, inputs, threshold, leak, time_steps):
    rates = _rates(feedback, input_weights, bias, inputs, threshold, leak, time_steps)
    return _wide(rates @ readout.mT + readout_bias[..., None, :])


def _nan(feedback):
    xp = namespace(feedback)
    return xp.full_like(_wide(feedback)[..., 0, 0], float("nan"))


def loss(*, feedback, input_weights, bias, readout, readout_bias, data, threshold, leak, time_steps, labels=None,
         held_out=None):
    """Mean cross-entropy (nats) of the readout at a[T] over the training samples (*E); NaN without labels."""
    xp = namespace(feedback)
    if labels is None:
        return _nan(feedback)
    inputs, y = _subset(data, labels, held_out, want_held=False)
    if inputs is None:
        return _nan(feedback)
    scores = _scores(feedback, input_weights, bias, readout, readout_bias, inputs, threshold, leak, time_steps)
    onehot = xp.astype(y[:, None] == xp.arange(readout.shape[-2], dtype=y.dtype), xp.float64)
    return cross_entropy_and_gradient(scores, onehot)[0]


def accuracy(*, feedback, input_weights, bias, readout, readout_bias, data, threshold, leak, time_steps,
             labels=None, held_out=None):
    """Fraction of held-out samples whose largest readout score is their label (*E); NaN without them."""
    xp = namespace(feedback)
    if labels is None or held_out is None:
        return _nan(feedback)
    inputs, y = _subset(data, labels, held_out, want_held=True)
    if inputs is None:
        return _nan(feedback)
    scores = _scores(feedback, input_weights, bias, readout, readout_bias, inputs, threshold, leak, time_steps)
    return xp.mean(xp.astype(xp.argmax(scores, axis=-1) == y, xp.float64), axis=-1)
