"""The ``sgd`` operator of the smd system: SGD with momentum and weight decay, PyTorch's convention.

One step, per ensemble cell (eta, lambda, alpha its parameters):

    v <- alpha v + g + lambda w,    w <- w - eta_t v,

with g the gradient of the step's loss at w, eta_t = eta before step ``lr_step`` and
eta / ``lr_factor`` from it on (the update from step t to t + 1 uses eta_t; lr_step = -1:
no schedule). This is ``torch.optim.SGD(lr, momentum, weight_decay)`` with dampening 0 and
no Nesterov, whose first step sets v = g + lambda w, as v = 0 here does.

- ``model="noise"``: L_t(w) = -<w/||w||, x_t>, x_t = sigma xi, xi a standard normal vector
  drawn per member and step (the declared draw ``x``). Its gradient is analytic,
  g = -(I - w^ w^T) x_t / ||w||, orthogonal to w (w^ = w/||w||).
- ``model="network"``: the minibatch cross-entropy of the LayerNorm MLP (:mod:`.network`),
  the minibatch ``batch`` drawn per member and step as indices into the training split
  (uniform, with replacement), the gradient from torch autograd.

The operator owns ``velocity`` (v, float64) and ``previous_weight`` (the weights before the
update, float64, for the ``angular_update`` observable); both start from :func:`init_sgd`
at the first step of each run (a chained run starts with v = 0, like a new optimizer).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from . import network


def learning_rate_at(learning_rate, step, lr_step, lr_factor):
    """eta_t: ``learning_rate`` before step ``lr_step``, divided by ``lr_factor`` from it on (-1: never)."""
    return learning_rate / lr_factor if 0 <= lr_step <= step else learning_rate


def layer_slices(fan_out, fan_in, normalized) -> tuple:
    """((start, stop, fan_out, fan_in, normalized), ...) of each layer in the flat weight vector."""
    rows, cols, flags = (np.asarray(a).reshape(-1) for a in (fan_out, fan_in, normalized))
    out, start = [], 0
    for r, c, n in zip(rows.tolist(), cols.tolist(), flags.tolist()):
        out.append((start, start + r * c, r, c, bool(n)))
        start += r * c
    return tuple(out)


def prepare_sgd(*, model, fan_out, fan_in, normalized, lr_factor, sizes=None, backend=None):
    """Once per run and chunk (NumPy): the layer slices, and for the network the digits split.

    Raises a SchemaError for ``lr_factor`` <= 0, for layers that do not add up to the size
    of ``dim``, for an unknown ``model``, and for the network on a backend other than torch
    (``backend``, given by the core before anything is written).
    """
    problems = []
    if model not in ("noise", "network"):
        problems.append(f"attrs['model']: expected 'noise' or 'network', got {model!r}")
    if not lr_factor > 0:
        problems.append(f"options['lr_factor']: expected a value > 0, got {lr_factor!r}")
    layers = layer_slices(fan_out, fan_in, normalized)
    if model == "network" and backend not in (None, "torch"):
        problems.append(f"backend: model='network' of kind 'smd' runs on ['torch'] only (autograd), got {backend!r}; "
                        f"pass backend='torch'")
    if sizes is not None and layers[-1][1] != sizes["weight_entry"]:
        problems.append(f"weight_entry: expected sum(fan_out * fan_in) = {layers[-1][1]} entries, got "
                        f"{sizes['weight_entry']}")
    if problems:
        raise SchemaError(problems, kind="smd")
    data = {k: v.copy() for k, v in network.digits().items()} if model == "network" else {}
    return {"layers": layers, **data}


def init_sgd(*, weight):
    """v = 0 and previous_weight = w (float64): angular_update is 0 at the first record of a run."""
    w = np.asarray(weight, dtype=np.float64)
    return {"velocity": np.zeros_like(w), "previous_weight": w.copy()}


def noise_gradient(weight, x):
    """(g, loss) of L(w) = -<w/||w||, x>: g = -(x - w^ <w^, x>) / ||w||, loss = -<w^, x>.

    weight, x: (..., d). Exactly orthogonal to w in exact arithmetic; E||g||^2 = (d-1) sigma^2
    / ||w||^2 for x ~ N(0, sigma^2 I).
    """
    xp = namespace(weight)
    norm = xp.sqrt(xp.sum(weight * weight, axis=-1, keepdims=True))
    unit = weight / norm
    along = xp.sum(unit * x, axis=-1, keepdims=True)
    return -(x - unit * along) / norm, -along[..., 0]


def sgd(*, weight, velocity, learning_rate, weight_decay, momentum, step, lr_step, lr_factor, model, x, batch,
        layers, noise=None, train_x=None, train_y=None):
    """One SGD step: v <- alpha v + g + lambda w, w <- w - eta_t v (see the module docstring).

    weight (*E, dim) float64 (noise) or float32 (network); velocity (*E, dim) float64;
    parameters (*E); x (*E, sample) standard normals; batch (*E, batch) indices. Returns the
    new weight (its dtype kept), velocity, previous_weight and the ``batch_loss`` diagnostic.
    """
    xp = namespace(weight)
    if model == "network":
        gradient, batch_loss = network.batch_gradient(weight, batch, train_x, train_y, layers)
    else:
        gradient, batch_loss = noise_gradient(weight, noise[..., None] * x)
    eta = learning_rate_at(learning_rate, step, lr_step, lr_factor)
    w, velocity = momentum_update(weight, velocity, gradient, learning_rate=eta, weight_decay=weight_decay,
                                  momentum=momentum)
    return {"weight": xp.astype(w, weight.dtype), "velocity": velocity,
            "previous_weight": xp.astype(weight, xp.float64, copy=False),
            "batch_loss": xp.astype(batch_loss, xp.float64)}


def momentum_update(weight, velocity, gradient, *, learning_rate, weight_decay, momentum):
    """(w - eta v', v') in float64 with v' = alpha v + g + lambda w; per-cell eta, lambda, alpha (*E).

    torch: three fused multiply-adds (addcmul) instead of seven array passes.
    """
    xp = namespace(weight)
    w, g = xp.astype(weight, xp.float64, copy=False), xp.astype(gradient, xp.float64, copy=False)
    eta, lam, alpha = (xp.astype(p[..., None], xp.float64) for p in (learning_rate, weight_decay, momentum))
    if xp is np:
        velocity = alpha * velocity + g + lam * w
        return w - eta * velocity, velocity
    import torch

    velocity = torch.addcmul(g, lam, w).addcmul_(alpha, velocity)
    return torch.addcmul(w, -eta, velocity), velocity
