"""Equilibrium propagation without weight symmetry: a layered network relaxed to a fixed point, trained by EP.

Laborieux & Zenke, "Improving equilibrium propagation without weight symmetry through Jacobian
homeostasis", ICLR 2024. A layered network of pre-activations u (layers n_1..n_L, the last the
output, packed along ``unit``) with independent feed-forward and feedback weights follows
u <- u + dt F(u), F(u) = W_ff tanh(u_below) + W_fb tanh(u_above) + b - u (the input x is the layer
below layer 1), to a free fixed point; nudged phases push the output by beta times the gradient of
the squared error. The gradient is estimated from the nudged fixed points (one-sided, symmetric or
holomorphic EP with N points on a circle of radius beta, complex-valued dynamics) or computed
exactly by implicit differentiation; Jacobian homeostasis regularises ||J - J^T||. See
:mod:`.network` for the equations and the estimators.

State (per member and parameter point): ``input_weights (unit, input)``, ``feedforward (unit,
presynaptic)``, ``feedback (unit, presynaptic)``, ``bias (unit)``; float64 or float32. Constants:
``data (sample, input)``, ``labels (sample)``, ``held_out (sample)``, ``layer (unit)``. Sweepable
parameters: ``beta``, ``points`` N, ``time_steps``, ``nudge_steps``, ``dt`` dt,
``learning_rate``, ``homeostasis``. Operators: ``free`` (one step of the free dynamics; the
pre-activations owned), ``train`` (one SGD step by the chosen estimator). Observables: ``residual``,
``gradient_error (estimator)``, ``jacobian_symmetry``, ``loss``, ``accuracy``.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, is_int, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from ..feedback_snn import digits, labelled_data
from . import network, observables, operators, theory
from .observables import accuracy, gradient_error, jacobian_symmetry, loss, residual
from .operators import free, init_free, prepare_train, train

KIND = "equilibrium_propagation"
GROUPS = network.GROUPS


def create(layers=(32, 10), *, data=None, labels=None, held_out=None, dataset=None, input_weights=None,
           feedforward=None, feedback=None, bias=None, symmetric=False, gain=0.5, beta=0.1, points=4, time_steps=30,
           nudge_steps=20, dt=1.0, learning_rate=0.1, homeostasis=0.0, batch=32, members=1, seed=0,
           dtype="float64"):
    """A new ensemble of layered EP networks as an xarray Dataset.

    Parameters
    ----------
    layers : sequence of int >= 1, the sizes n_1..n_L of the hidden layers and the output layer (default
        (32, 10)); the output layer needs one unit per class (labels < n_L).
    data, labels : arrays (sample, input) float and (sample,) int >= 0, or ``dataset="digits"``
        (scikit-learn's 8x8 digits, every fifth image held out). held_out : bool (sample,), default
        index % 5 == 0: samples for the accuracy, never trained on.
    input_weights, feedforward, feedback, bias : optional arrays (D, m), (D, D), (D, D), (D,) (D = sum of
        ``layers``), or with a leading member axis; zero outside the layered pattern (W_in on layer 1,
        W_ff from layer l - 1 to l, W_fb from l + 1 to l). Default (seeded per member, the same at every
        parameter point): N(0, gain^2 / fan-in) on the allowed entries, b = 0, and W_fb = W_ff^T when
        ``symmetric`` (else drawn independently).
    gain : scale of the seeded weights (default 0.5).
    beta : nudging strength > 0 (default 0.1). points : N >= 2 points on the circle (holomorphic
        estimator, an integer, default 4). time_steps, nudge_steps : iterations of the free phase (from
        u = 0) and of each nudged phase (from the free state), integers >= 1. dt : dt in (0, 1]
        (1 in the paper). learning_rate : SGD step eta > 0. homeostasis : kappa >= 0, weight of the
        homeostatic loss. All sweepable.
    batch : minibatch size of ``train``. members, seed : replicas and the key of every random stream.
    dtype : "float64" or "float32" for the weights.

    Examples
    --------
    >>> ds = create((3, 2), data=np.eye(4)[:, :3], labels=[0, 1, 0, 1], beta=[0.1, 0.2], members=2)
    >>> dict(ds.feedforward.sizes)
    {'member': 2, 'beta': 2, 'unit': 5, 'presynaptic': 5}
    >>> ds.layer.values.tolist()
    [1, 1, 1, 2, 2]
    """
    x, y, held = _labelled(data, labels, held_out, dataset)
    problems: list[str] = []
    sizes = _layers(layers, y, problems)
    _check_scalars(points=points, time_steps=time_steps, nudge_steps=nudge_steps, problems=problems)
    if dtype not in ("float64", "float32"):
        problems.append(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    if not (is_int(batch) and batch >= 1):
        problems.append(f"batch: expected a positive integer minibatch size, got {batch!r}")
    layer = np.repeat(np.arange(1, len(sizes or (1,)) + 1, dtype=np.int64), sizes or (1,))
    d, m = layer.size, x.shape[1]
    constants = {"data": (("sample", "input"), x), "labels": (("sample",), y), "held_out": (("sample",), held),
                 "layer": (("unit",), layer)}
    parameters = {"beta": beta, "points": points, "time_steps": time_steps, "nudge_steps": nudge_steps,
                  "dt": dt, "learning_rate": learning_rate, "homeostasis": homeostasis}
    site_sizes = {"unit": d, "presynaptic": d, "input": m, "sample": x.shape[0], "batch": 1,
                  "estimator": len(network.ESTIMATORS)}
    if is_int(batch) and batch >= 1:
        site_sizes["batch"] = int(batch)
    schema = SYSTEM.schema
    try:
        coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes=site_sizes,
                                            constants=constants, seed=seed)
    except SchemaError as exc:  # reported with the problems found above, all at once
        problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    given_arrays = {"input_weights": input_weights, "feedforward": feedforward, "feedback": feedback, "bias": bias}
    weights = _weights(given_arrays, layer, m, len(coords["member"]), shape, seed, gain, symmetric, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    own = {"input_weights": ("unit", "input"), "feedforward": ("unit", "presynaptic"),
           "feedback": ("unit", "presynaptic"), "bias": ("unit",)}
    state = {k: ((*dims, *own[k]), weights[k].astype(dtype)) for k in GROUPS}
    return finish_system(schema, coords, state, seed=seed)


def _labelled(data, labels, held_out, dataset):
    """(x (S, m), labels (S,), held_out (S,)) checked by feedback_snn's reader; labels are required here."""
    problems: list[str] = []
    given = labelled_data(data, labels, held_out, dataset, problems)
    if not problems and given[1] is None:
        problems.append("labels: expected class labels (sample,) with data=..., or dataset='digits'; got none")
    if problems:
        raise SchemaError(problems, kind=KIND)
    return given


def _layers(layers, labels, problems):
    """The layer sizes as a tuple of ints; a bad sequence or an output layer too small for the labels named."""
    try:
        sizes = tuple(layers)
    except TypeError:
        sizes = None
    if not sizes or not all(is_int(n) and n >= 1 for n in sizes):
        problems.append(f"layers: expected a non-empty sequence of positive integers (hidden sizes, then the "
                        f"output size), got {layers!r}")
        return None
    if labels is not None and labels.size and int(labels.max()) >= sizes[-1]:
        problems.append(f"layers: expected an output layer of at least {int(labels.max()) + 1} units (one per class, "
                        f"labels up to {int(labels.max())}), got {sizes[-1]} (layers={list(sizes)})")
    return sizes


def _check_scalars(*, problems, **integers):
    """points, time_steps and nudge_steps are integers (scalars or sequences); the schema checks their bounds."""
    for name, value in integers.items():
        v = np.asarray(value, dtype=np.float64) if not isinstance(value, str) else np.array(np.nan)
        finite = v.size and np.all(np.isfinite(v))
        if finite and not np.all(v == np.round(v)):
            problems.append(f"{name}: expected integers, got {value!r}")


def _weights(arrays, layer, m, members, shape, seed, gain, symmetric, problems):
    """Each weight group broadcast to (*ensemble shape, *own shape), float64: given (checked) or seeded."""
    d = layer.size
    allowed = network.masks(layer, m)
    own = {"input_weights": (d, m), "feedforward": (d, d), "feedback": (d, d), "bias": (d,)}
    if not (isinstance(gain, (int, float)) and np.isfinite(gain) and gain > 0):
        problems.append(f"gain: expected a finite number > 0, got {gain!r}")
        return None
    seeded = _seeded(layer, m, members, seed, float(gain), bool(symmetric), allowed)
    out = {}
    for name in GROUPS:
        value = arrays[name]
        w = seeded[name] if value is None else _given(name, value, own[name], members, allowed[name], problems)
        if w is None:
            continue
        w = w.reshape((members,) + (1,) * (len(shape) - 1) + own[name])
        out[name] = np.broadcast_to(w, (*shape, *own[name])).copy()
    return out


def _given(name, value, own, members, allowed, problems):
    try:
        w = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name}: expected a real array of shape {own} or {(members, *own)}, "
                        f"got {type(value).__name__}")
        return None
    if w.shape not in (own, (members, *own)) or not np.all(np.isfinite(w)):
        problems.append(f"{name}: expected finite values of shape {own} or {(members, *own)}, got shape {w.shape}"
                        + ("" if np.all(np.isfinite(w)) else " with non-finite values"))
        return None
    if np.any(w[..., ~allowed] != 0):
        problems.append(f"{name}: expected zeros outside the layered pattern (the 'layer' of each unit), got "
                        f"{int(np.count_nonzero(w[..., ~allowed]))} nonzero entries there")
        return None
    return np.broadcast_to(w, (members, *own))


def _seeded(layer, m, members, seed, gain, symmetric, allowed):
    """Per-member initial weights (members, *own) from the seed's initial-state streams."""
    d = layer.size
    labels = np.arange(members, dtype=np.int64)
    counts = np.bincount(layer)

    def normal(slot, cols):
        return random.initial(random.normal("a", "b"), seed=seed, members=labels, parameters={},
                              sizes={"a": d, "b": cols}, slot=slot)

    w_in = np.where(allowed["input_weights"], normal(0, m), 0.0) * (gain / np.sqrt(m))
    ff_fan = counts[np.maximum(layer - 1, 1)][:, None]
    w_ff = np.where(allowed["feedforward"], normal(1, d), 0.0) * (gain / np.sqrt(ff_fan))
    fb_fan = counts[np.minimum(layer + 1, layer.max())][:, None]
    w_fb = np.swapaxes(w_ff, -1, -2).copy() if symmetric else \
        np.where(allowed["feedback"], normal(2, d), 0.0) * (gain / np.sqrt(fb_fan))
    return {"input_weights": w_in, "feedforward": w_ff, "feedback": w_fb, "bias": np.zeros((members, d))}


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"free": Operator(free, init=init_free),
               "train": Operator(train, prepare=prepare_train, draws={"uniforms": random.uniform("batch"),
                                                                      "noise": random.normal("probes", "unit")})},
    observables={"residual": residual, "gradient_error": gradient_error, "jacobian_symmetry": jacobian_symmetry,
                 "loss": loss, "accuracy": accuracy},
    theory=theory,
    example={"layers": [3, 2], "data": [[0.9, 0.2, 0.5], [0.1, 0.8, 0.3], [0.6, 0.6, 0.1], [0.3, 0.1, 0.9],
                                        [0.7, 0.4, 0.8], [0.2, 0.9, 0.6]],
             "labels": [0, 1, 0, 1, 1, 0], "beta": [0.1, 0.2], "points": 3, "time_steps": 8, "nudge_steps": 6,
             "learning_rate": 0.2, "homeostasis": 0.1, "batch": 3, "members": 2, "seed": 3},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["GROUPS", "SYSTEM", "accuracy", "create", "digits", "free", "gradient_error", "init_free",
           "jacobian_symmetry", "loss", "network", "observables", "operators", "prepare_train", "residual", "theory",
           "train"]
