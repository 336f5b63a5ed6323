"""Feedback spiking neural networks: simulate to the equilibrium of the firing rates, train by implicit differentiation.

Xiao, Meng, Zhang, Wang & Lin, "Training Feedback Spiking Neural Networks by Implicit
Differentiation on the Equilibrium State", NeurIPS 2021. A network of n integrate-and-fire (IF)
or leaky (LIF, leak lambda < 1) neurons with feedback weights W (n, n), input weights F (n, m) and
bias b, driven by a constant input x, has average firing rates a[T] that converge to the fixed
point a* = clamp((W a* + F x + b) / V_th, 0, 1), unique when ||W||_2 < V_th (:mod:`.theory`). A
linear readout o = R a* + r classifies. Training differentiates the loss at a* implicitly
(:mod:`.implicit`): memory does not grow with the number of time steps T.

State (the weights, per member and parameter point): ``feedback (neuron, presynaptic)``,
``input_weights (neuron, input)``, ``bias (neuron)``, ``readout (label_class, neuron)``,
``readout_bias (label_class)``; float64 or float32. Constants: ``data (sample, input)``, optional
``labels (sample)`` and ``held_out (sample)``. Sweepable parameters: ``threshold`` V_th, ``leak``
lambda, ``time_steps`` T, ``learning_rate``, ``momentum``, ``weight_decay``; scalar:
``spectral_bound``. Operators: ``integrate`` (one time step; neuron state owned), ``train`` (one
SGD step by IDE; momentum buffers owned). Observables: ``firing_rate (sample, neuron)``,
``equilibrium_residual``, ``loss``, ``accuracy``.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, is_int, system_coords
from ...errors import SchemaError
from ...ops.learning import N_IMAGES, digits
from ...schema import MAX_SIZE
from ...system import Operator, System
from . import dynamics, implicit, observables, operators, theory
from .observables import accuracy, equilibrium_residual, firing_rate, loss
from .operators import init_integrate, init_train, integrate, prepare_train, train

KIND = "feedback_snn"
DATASETS = ("digits",)
GROUPS = operators.GROUPS


def create(neurons=None, inputs=None, *, data=None, labels=None, held_out=None, dataset=None, classes=None,
           feedback=None, input_weights=None, bias=None, readout=None, readout_bias=None, threshold=2.0, leak=1.0,
           time_steps=30, learning_rate=0.1, momentum=0.9, weight_decay=5e-4, spectral_bound=None, batch=32,
           members=1, seed=0, dtype="float64", allow_expansive=False, samples=1):
    """A new ensemble of feedback spiking networks as an xarray Dataset.

    Parameters
    ----------
    neurons, inputs : int. n and m; may be omitted when arrays or data give them.
    data : array (sample, input) of constant inputs x, or ``dataset="digits"`` (scikit-learn's 8x8
        digits, all 1797 images, labels, every fifth held out). Neither: ``samples`` (default 1)
        seeded inputs uniform in [0, 1), the same for every member (needs ``inputs`` or input_weights).
    labels : int array (sample,) >= 0, needed by ``train``; ``classes`` (default max label + 1,
        1 without labels) sets the readout's size. held_out : bool array (sample,): samples for the
        accuracy, never trained on; default with labels: index % 5 == 0.
    feedback, input_weights, bias, readout, readout_bias : optional arrays, (n, n), (n, m), (n,),
        (classes, n), (classes,), or with a leading member axis. Default (seeded, per member, the
        same at every parameter point): W standard normal rescaled to ||W||_2 = spectral_bound,
        F ~ N(0, 4 / m), b = 0, R ~ N(0, 1 / n), r = 0.
    threshold : V_th > 0 (default 2.0). leak : lambda in (0, 1] (1 = IF). time_steps : T >= 1 (an
        integer) simulated per train step and by the observables. All three sweepable.
    learning_rate, momentum, weight_decay : SGD (sweepable). spectral_bound : ``train`` keeps
        ||W||_2 <= it; default 1.0 (the paper's code, with V_th = 2), or the largest ||W||_2 of a
        given feedback array when that is larger.
    batch : minibatch size of ``train``. members, seed : replicas and the key of every random stream.
    dtype : "float64" or "float32" for the weights.
    allow_expansive : accept ||W||_2 >= V_th (or spectral_bound >= V_th); the fixed point may then
        not be unique, and the adjoint of ``train`` may not converge (recorded per member).

    Examples
    --------
    >>> ds = create(neurons=4, inputs=3, data=np.ones((2, 3)), threshold=[1.5, 2.0], members=2)
    >>> dict(ds.feedback.sizes)
    {'member': 2, 'threshold': 2, 'neuron': 4, 'presynaptic': 4}
    >>> round(float(np.linalg.norm(ds.feedback.values[0, 0], 2)), 12)
    1.0
    """
    problems: list[str] = []
    given = labelled_data(data, labels, held_out, dataset, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    x, y, held = given
    if x is None:
        x = _seeded_data(inputs, input_weights, samples, seed, problems)
        if problems:
            raise SchemaError(problems, kind=KIND)
    if spectral_bound is None:
        spectral_bound = _default_bound(feedback)
    shapes = _sizes(neurons, inputs, classes, x, y, feedback, input_weights, readout, problems)
    if dtype not in ("float64", "float32"):
        problems.append(f"dtype: expected 'float64' or 'float32', got {dtype!r}")
    if not (is_int(batch) and batch >= 1):
        problems.append(f"batch: expected a positive integer minibatch size, got {batch!r}")
    _check_time_steps(time_steps, problems)
    if not isinstance(allow_expansive, (bool, np.bool_)):
        problems.append(f"allow_expansive: expected True or False, got {type(allow_expansive).__name__} "
                        f"{allow_expansive!r}")
    if problems:
        raise SchemaError(problems, kind=KIND)
    n, m, c = shapes
    constants = {"data": (("sample", "input"), x)}
    if y is not None:
        constants.update(labels=(("sample",), y), held_out=(("sample",), held))
    parameters = {"threshold": threshold, "leak": leak, "time_steps": time_steps, "learning_rate": learning_rate,
                  "momentum": momentum, "weight_decay": weight_decay, "spectral_bound": spectral_bound}
    sizes = {"neuron": n, "presynaptic": n, "input": m, "label_class": c, "sample": x.shape[0], "batch": int(batch)}
    schema = SYSTEM.schema
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes=sizes,
                                        constants=constants, seed=seed)
    arrays = {"feedback": feedback, "input_weights": input_weights, "bias": bias, "readout": readout,
              "readout_bias": readout_bias}
    weights = _weights(arrays, coords, shape, sizes, seed, float(coords["spectral_bound"][1]), problems)
    _check_contraction(weights.get("feedback"), coords, allow_expansive, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    own = {"feedback": ("neuron", "presynaptic"), "input_weights": ("neuron", "input"), "bias": ("neuron",),
           "readout": ("label_class", "neuron"), "readout_bias": ("label_class",)}
    state = {k: ((*dims, *own[k]), weights[k].astype(dtype)) for k in GROUPS}
    return finish_system(schema, coords, state, seed=seed)


def labelled_data(data, labels, held_out, dataset, problems):
    """(x (S, m) float64, labels (S,) int64 or None, held_out (S,) bool or None) of a labelled data set
    given as arrays or by name (``dataset="digits"``); problems are appended to ``problems``. Shared
    with the other systems that train on data (equilibrium_propagation)."""
    if dataset is not None:
        if dataset not in DATASETS:
            problems.append(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
            return None
        if data is not None or labels is not None:
            problems.append("dataset: expected either dataset='digits' or data=/labels=, got both")
            return None
        d = digits()
        return d["data"], d["labels"], d["held_out"] if held_out is None else _held(held_out, N_IMAGES, problems)
    if data is None:
        if labels is not None or held_out is not None:
            problems.append("labels: given without data; expected data=(sample, input) too")
        return None, None, None
    try:
        x = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"data: expected a real array (sample, input), got {type(data).__name__}")
        return None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or not np.all(np.isfinite(x)):
        problems.append(f"data: expected a finite 2-D array (sample, input) with sizes >= 1, got shape {x.shape}")
        return None
    if labels is None:
        if held_out is not None:
            problems.append("held_out: given without labels; expected labels (sample,) too")
        return x, None, None
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        problems.append(f"labels: expected non-negative integers of shape ({x.shape[0]},) (one per sample), "
                        f"got dtype {y.dtype} shape {y.shape}")
        return None
    held = np.arange(x.shape[0]) % 5 == 0 if held_out is None else _held(held_out, x.shape[0], problems)
    return x, y.astype(np.int64), held


def _seeded_data(inputs, input_weights, samples, seed, problems):
    """(samples, m) inputs uniform in [0, 1) from the seed's initial streams (member label 0, for all members)."""
    m = inputs if inputs is not None else (np.shape(input_weights)[-1] if input_weights is not None else None)
    if m is None:
        problems.append("data: expected an array (sample, input), dataset='digits', or the size inputs=m for "
                        "seeded inputs, got none of them")
    elif not (is_int(m) and m >= 1):
        problems.append(f"inputs: expected a positive integer, got {m!r}")
    if not (is_int(samples) and samples >= 1):
        problems.append(f"samples: expected a positive integer number of seeded inputs, got {samples!r}")
    if problems:
        return None
    try:
        return random.initial(random.uniform("a", "b"), seed=seed, members=np.zeros(1, dtype=np.int64), parameters={},
                              sizes={"a": int(samples), "b": int(m)}, slot=5)[0]
    except ValueError as exc:
        problems.append(f"seed: {exc}")
        return None


def _default_bound(feedback):
    """1.0, or the largest ||W||_2 of a given feedback array when larger (so create does not rescale it)."""
    if feedback is None:
        return 1.0
    try:
        w = np.asarray(feedback, dtype=np.float64)
        norm = float(np.max(np.linalg.matrix_norm(w, ord=2))) if w.ndim >= 2 and np.all(np.isfinite(w)) else 0.0
    except (TypeError, ValueError, np.linalg.LinAlgError):
        return 1.0
    return max(1.0, norm)


def _held(held_out, samples, problems):
    h = np.asarray(held_out)
    if h.shape != (samples,) or h.dtype != bool:
        problems.append(f"held_out: expected a bool array of shape ({samples},), got dtype {h.dtype} shape {h.shape}")
        return None
    if h.all():
        problems.append(f"held_out: expected at least one training sample, got all {samples} held out")
    return h


def _sizes(neurons, inputs, classes, x, y, feedback, input_weights, readout, problems):
    """(n, m, classes) from the arguments; every disagreement named."""
    n = neurons if neurons is not None else (np.shape(feedback)[-1] if feedback is not None else None)
    m = x.shape[1]
    if inputs is not None and inputs != m:
        problems.append(f"inputs: expected {m} (the columns of data), got {inputs!r}")
    if n is None:
        problems.append("neurons: expected a positive integer (or a feedback array (n, n)), got None")
    elif not (is_int(n) and n >= 1):
        problems.append(f"neurons: expected a positive integer, got {n!r}")
    c = classes
    if c is None:
        c = np.shape(readout)[-2] if readout is not None else (int(y.max()) + 1 if y is not None else 1)
    if not (is_int(c) and 1 <= c <= MAX_CLASSES):
        problems.append(f"classes: expected a positive integer, at most {MAX_CLASSES} (the readout has one row "
                        f"per class; default: the largest label + 1), got {c!r}")
    elif y is not None and y.max() >= c:
        problems.append(f"classes: expected more than the largest label {int(y.max())}, got {c}")
    return (int(n) if is_int(n) else n), m, c


MAX_CLASSES = 2**16


def _check_time_steps(time_steps, problems):
    t = np.asarray(time_steps, dtype=np.float64) if not isinstance(time_steps, str) else np.nan
    if not (np.all(np.isfinite(t)) and np.all(t >= 1) and np.all(t <= MAX_SIZE) and np.all(t == np.round(t))):
        problems.append(f"time_steps: expected integers >= 1 (T), at most 2**31 - 1, got {time_steps!r}")


def _weights(arrays, coords, shape, sizes, seed, bound, problems):
    """Each weight group broadcast to (*ensemble shape, *own shape), float64: given or seeded."""
    n, m, c = sizes["neuron"], sizes["input"], sizes["label_class"]
    own = {"feedback": (n, n), "input_weights": (n, m), "bias": (n,), "readout": (c, n), "readout_bias": (c,)}
    members = len(coords["member"])
    seeded = _seeded(coords, n, m, c, seed, bound)
    out = {}
    for slot, name in enumerate(GROUPS):
        value = arrays[name]
        if value is None:
            w = seeded[name]
        else:
            w = np.asarray(value, dtype=np.float64)
            if w.shape not in (own[name], (members, *own[name])) or not np.all(np.isfinite(w)):
                bad = "" if w.shape not in (own[name], (members, *own[name])) else " with non-finite values"
                problems.append(f"{name}: expected finite values of shape {own[name]} or {(members, *own[name])}, "
                                f"got shape {w.shape}{bad}")
                continue
            if w.shape == own[name]:
                w = np.broadcast_to(w, (members, *own[name]))
        w = w.reshape((members,) + (1,) * (len(shape) - 1) + own[name])
        out[name] = np.broadcast_to(w, (*shape, *own[name])).copy()
    return out


def _seeded(coords, n, m, c, seed, bound):
    """Per-member initial weights (members, *own) from the seed's initial-state streams."""
    labels = coords["member"]

    def normal(slot, *dims):
        sizes = {"a": dims[0], "b": dims[1]} if len(dims) == 2 else {"a": dims[0]}
        draw = random.normal(*("a", "b")[: len(dims)])
        return random.initial(draw, seed=seed, members=labels, parameters={}, sizes=sizes, slot=slot)

    z = normal(0, n, n)
    norm = np.linalg.matrix_norm(z, ord=2)[:, None, None]
    return {"feedback": z * (bound / norm), "input_weights": normal(1, n, m) * (2.0 / np.sqrt(m)),
            "bias": np.zeros((len(labels), n)), "readout": normal(3, c, n) / np.sqrt(n),
            "readout_bias": np.zeros((len(labels), c))}


def _check_contraction(feedback, coords, allow, problems):
    """||W||_2 < V_th (every member and threshold) and spectral_bound < V_th, unless ``allow``."""
    if allow or feedback is None:
        return
    v_min = float(np.min(coords["threshold"][1]))
    bound = float(coords["spectral_bound"][1])
    norm = float(np.max(np.linalg.matrix_norm(feedback, ord=2)))
    if norm >= v_min:
        problems.append(f"feedback: expected ||W||_2 < threshold V_th = {v_min:g} (a contraction, so that the "
                        f"fixed point is unique), got ||W||_2 = {norm:.6g}; pass allow_expansive=True to accept it")
    elif norm > bound * (1 + 1e-12):
        problems.append(f"feedback: expected ||W||_2 <= spectral_bound = {bound:g}, got ||W||_2 = {norm:.6g}; "
                        f"raise spectral_bound (below V_th) or rescale W")
    if bound >= v_min:
        problems.append(f"spectral_bound: expected a value < threshold V_th = {v_min:g}, got {bound:g}; pass "
                        f"allow_expansive=True to accept it")


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"integrate": Operator(integrate, init=init_integrate),
               "train": Operator(train, prepare=prepare_train, init=init_train,
                                 draws={"uniforms": random.uniform("batch")})},
    observables={"firing_rate": firing_rate, "equilibrium_residual": equilibrium_residual, "loss": loss,
                 "accuracy": accuracy},
    theory=theory,
    example={"neurons": 5, "data": [[0.9, 0.2, 0.5], [0.1, 0.8, 0.3], [0.6, 0.6, 0.1], [0.3, 0.1, 0.9],
                                    [0.7, 0.4, 0.8], [0.2, 0.9, 0.6]],
             "labels": [0, 1, 2, 0, 1, 2], "threshold": [1.5, 2.0], "time_steps": 4, "batch": 3, "members": 2,
             "seed": 3},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["SYSTEM", "accuracy", "create", "digits", "dynamics", "equilibrium_residual", "firing_rate", "implicit",
           "init_integrate", "init_train", "integrate", "loss", "observables", "operators", "prepare_train", "theory",
           "train"]
