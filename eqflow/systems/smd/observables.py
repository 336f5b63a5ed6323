"""Observables of the smd system: per-layer norm, angular update and effective learning rate; loss, accuracy.

All float64 (a float32 network's weights are widened first). ``layers`` are the slices of
:func:`.operators.layer_slices`; per-layer observables have the dim ``layer`` (one entry
for the noise model).
"""
from __future__ import annotations

from ...backends import as_float64 as _wide
from ...backends import namespace
from . import network
from .operators import learning_rate_at


def _per_layer(fn, layers, *arrays):
    """Stack ``fn(*slices)`` over the layers along a new last axis."""
    xp = namespace(arrays[0])
    return xp.stack([fn(*(a[..., start:stop] for a in arrays)) for start, stop, *_ in layers], axis=-1)


def _squared_norm(w):
    xp = namespace(w)
    return xp.sum(w * w, axis=-1)


def weight_norm(*, weight, layers):
    """||w_l|| (Frobenius) of each layer l, shape (*E, layer)."""
    xp = namespace(weight)
    return xp.sqrt(_per_layer(_squared_norm, layers, _wide(weight)))


def _angle(w, p):
    """Angle between w and p along the last axis: 2 atan2(||u - q||, ||u + q||), u, q the unit vectors.

    Accurate for every angle (arccos of the cosine loses half the digits near 0).
    """
    xp = namespace(w)
    u = w / xp.sqrt(_squared_norm(w))[..., None]
    q = p / xp.sqrt(_squared_norm(p))[..., None]
    return 2.0 * xp.atan2(xp.sqrt(_squared_norm(u - q)), xp.sqrt(_squared_norm(u + q)))


def angular_update(*, weight, previous_weight, layers):
    """Delta_t = angle(w_{t-1}, w_t) of each layer, radians, shape (*E, layer); 0 at the first step of a run."""
    return _per_layer(_angle, layers, _wide(weight), previous_weight)


def effective_learning_rate(*, weight, learning_rate, layers, step, lr_step, lr_factor):
    """eta_t / ||w_l||^2 of each layer: the step size on the unit sphere of the next update (Wan et al. 2021)."""
    xp = namespace(weight)
    eta = xp.astype(learning_rate_at(learning_rate, step, lr_step, lr_factor), xp.float64)
    return eta[..., None] / _per_layer(_squared_norm, layers, _wide(weight))


def loss(*, weight, model, layers, train_x=None, train_y=None):
    """Expected loss: 0 for the noise model (E_x <w/||w||, x> = 0 for every w); the network's
    mean cross-entropy (nats) over the training split."""
    xp = namespace(weight)
    if model != "network":
        return xp.zeros_like(_wide(weight)[..., 0])
    return network.evaluate(weight, train_x, train_y, layers)[0]


def accuracy(*, weight, model, layers, test_x=None, test_y=None):
    """Fraction of the held-out digits classified correctly (network); NaN for the noise model."""
    xp = namespace(weight)
    if model != "network":
        return xp.full_like(_wide(weight)[..., 0], float("nan"))
    return network.evaluate(weight, test_x, test_y, layers)[1]
