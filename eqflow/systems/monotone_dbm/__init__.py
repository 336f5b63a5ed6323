"""Monotone deep Boltzmann machines: mean-field inference at a unique fixed point, trained through it.

Feng, Winston & Kolter, "Monotone deep Boltzmann machines", TMLR 2023 (code:
github.com/locuslab/MonotoneDBM). n discrete variables with k states each; the mean-field
marginals q (n, k), one distribution per variable, solve q = softmax(W q + b) with the monotone
coupling W = -s (A^T A - blockdiag(A^T A)), s = min(1, (1 - m) / max_i ||A_i^T A_i||_2), so that
I - W >= m I and the fixed point is unique (:mod:`.model`, :mod:`.theory`). Observed variables are
clamped to their state (``evidence``).

State (per member and parameter point): ``marginals (sample, variable, state)``, ``weights``
A ``(feature, variable, state)``, ``bias`` b ``(variable, state)``, float64. Constants: ``evidence
(sample, variable)`` (-1: free), and for ``train`` ``targets``, ``held_out`` and ``query``.
Parameters: ``margin`` m in (0, 1], ``learning_rate``. Attribute ``scaling``: 'monotone', 'variable' or 'none'.
Operators: ``mean_field``, ``forward_backward``, ``anderson``, ``train``. Observables:
``residual``, ``free_energy (sample)``.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, is_int, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import model, observables, operators, theory, training
from .observables import free_energy, residual
from .operators import anderson, forward_backward, init_anderson, mean_field, prepare_anderson, prepare_splitting
from .training import init_train, prepare_train, train

KIND = "monotone_dbm"
SCALINGS = model.SCALINGS
STARTS = ("uniform", "random")
DIGIT_PIXELS, DIGIT_CLASSES = 64, 10


def digits(states=10, hidden=0) -> dict:
    """scikit-learn's 8x8 digits as a DBM problem: 64 pixel variables, one label variable (index 64) and
    ``hidden`` hidden variables after it (never observed, no target: they carry the correlations a
    hollow -A^T A coupling cannot put directly between pixels).

    Pixel intensities 0..16 are binned to ``states`` levels, round(x (k - 1) / 16); the label is
    state 0..9 (so k >= 10). Returns ``targets`` (1797, 65) int64, ``held_out`` (every fifth image,
    as :func:`eqflow.ops.learning.digits`, whose loader this is), ``query`` (the label) and the pixel ``intensity``
    (1797, 64) in [0, 1].
    """
    from ...ops.learning import digits as load

    if not (is_int(states) and states >= DIGIT_CLASSES):
        raise SchemaError([f"states: expected an integer >= {DIGIT_CLASSES} for the digits (the label has "
                           f"{DIGIT_CLASSES} states), got {states!r}"], kind=KIND)
    if not (is_int(hidden) and hidden >= 0):
        raise SchemaError([f"hidden: expected an integer >= 0 (hidden variables), got {hidden!r}"], kind=KIND)
    d = load()
    levels = np.rint(d["data"] * (states - 1)).astype(np.int64)
    unknown = np.full((len(levels), int(hidden)), -1, dtype=np.int64)
    targets = np.concatenate([levels, d["labels"][:, None], unknown], axis=1)
    query = np.zeros(DIGIT_PIXELS + 1 + hidden, dtype=bool)
    query[DIGIT_PIXELS] = True
    return {"targets": targets, "held_out": d["held_out"], "query": query, "intensity": d["data"]}


def create(variables=None, states=None, *, features=None, samples=1, evidence=None, targets=None, held_out=None,
           query=None, dataset=None, hidden=0, weights=None, bias=None, marginals=None, margin=0.1, learning_rate=0.01,
           scaling="monotone", start="uniform", batch=16, members=1, seed=0):
    """A new ensemble of monotone DBMs as an xarray Dataset.

    Parameters
    ----------
    variables, states : int. n >= 1 variables with k >= 2 states each; may be omitted when arrays give them.
    features : int, rows r of A (default n).
    samples : int, evidence patterns S when ``evidence`` is not given (all variables free; default 1).
    evidence : int array (S, n): the observed state of each variable, or -1 (free). Default: all free;
        with ``dataset='digits'``: the pixels observed and the label free (classification).
    targets, held_out, query : for ``train``: true states (S, n) (-1 unknown), samples never trained
        on (S,) bool (default: none), variables never clamped in training (n,) bool (default: none).
    dataset : 'digits' (see :func:`digits`; n = 65 + ``hidden``, k = ``states`` or 10).
    weights, bias : A (r, n, k) and b (n, k), or with a leading member axis, finite. Default (seeded,
        per member, the same at every margin): A and b standard normal; with ``targets`` (or a dataset)
        A / sqrt(r) and b the log of each state's add-one-smoothed frequency among the training targets
        (as an RBM's visible biases are started, Hinton 2010).
    margin : m in (0, 1] (sweepable, default 0.1). learning_rate : Adam's step of ``train``.
    scaling : 'monotone' (default: one factor s for W), 'variable' (one factor per variable's columns of A,
        :func:`.model.column_scale`), both with I - W >= m I; or 'none' (s = 1: no uniqueness guarantee).
    marginals : initial q (S, n, k) or (members, S, n, k), each row a distribution (>= 0, sum 1); the
        clamped variables are set to their evidence. Default by ``start``: 'uniform' (q = 1/k) or
        'random' (Dirichlet(1) per member, sample and variable, seeded).
    batch : training samples per ``train`` step. members, seed : replicas and the key of every stream.

    Examples
    --------
    >>> ds = create(4, 3, margin=[0.1, 0.5], members=2)
    >>> dict(ds.marginals.sizes)
    {'member': 2, 'margin': 2, 'sample': 1, 'variable': 4, 'state': 3}
    """
    problems: list[str] = []
    data = _dataset(dataset, states, hidden, targets, held_out, query, problems)
    if data is not None:
        targets, held_out, query = data["targets"], data["held_out"], data["query"]
        variables, states = targets.shape[1], states or DIGIT_CLASSES
        if evidence is None:
            evidence = np.where(query[None, :], -1, targets)
    n, k = _sizes(variables, states, weights, bias, problems)
    _check_choices(scaling, start, batch, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    ev = _int_array("evidence", evidence, (None, n), -1, k, problems)
    s = ev.shape[0] if ev is not None else samples
    if evidence is None:
        if not (is_int(samples) and samples >= 1):
            problems.append(f"samples: expected a positive integer, got {samples!r}")
        else:
            ev = np.full((samples, n), -1, dtype=np.int64)
    r = features if features is not None else (np.shape(weights)[-3] if weights is not None else n)
    if not (is_int(r) and r >= 1):
        problems.append(f"features: expected a positive integer number of rows of A, got {r!r}")
    constants = _train_constants(targets, held_out, query, s, n, k, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    constants["evidence"] = (("sample", "variable"), ev)
    sizes = {"sample": int(s), "variable": int(n), "state": int(k), "feature": int(r), "batch": int(batch)}
    coords, dims, shape = system_coords(SYSTEM.schema, members=members, parameters={
        "margin": margin, "learning_rate": learning_rate}, site_sizes=sizes, constants=constants, seed=seed)
    prior = _log_frequency(constants, sizes["state"]) if "targets" in constants else None
    given = _weights(weights, bias, coords, shape, sizes, seed, prior, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    q = _start(start, marginals, coords, shape, sizes, seed, ev, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    state = {"marginals": ((*dims, "sample", "variable", "state"), q),
             "weights": ((*dims, "feature", "variable", "state"), given["weights"]),
             "bias": ((*dims, "variable", "state"), given["bias"])}
    return finish_system(SYSTEM.schema, coords, state, seed=seed, attributes={"scaling": scaling})


def _dataset(dataset, states, hidden, targets, held_out, query, problems):
    if dataset is None:
        return None
    if dataset != "digits":
        problems.append(f"dataset: expected 'digits' or None, got {dataset!r}")
        return None
    if targets is not None or held_out is not None or query is not None:
        problems.append("dataset: expected either dataset='digits' or targets=/held_out=/query=, got both")
        return None
    try:
        return digits(DIGIT_CLASSES if states is None else states, hidden)
    except SchemaError as exc:
        problems.extend(exc.problems if hasattr(exc, "problems") else [str(exc)])
        return None


def _sizes(variables, states, weights, bias, problems):
    """(n, k) from the arguments or the arrays; a bad one named."""
    n = variables if variables is not None else _shape_at(weights, -2, bias, -2)
    k = states if states is not None else _shape_at(weights, -1, bias, -1)
    if not (is_int(n) and n >= 1):
        problems.append(f"variables: expected a positive integer n (or weights/bias arrays), got {n!r}")
    if not (is_int(k) and k >= 2):
        problems.append(f"states: expected an integer k >= 2 (states per variable), got {k!r}")
    return n, k


def _shape_at(a, axis, b, axis_b):
    for arr, ax in ((a, axis), (b, axis_b)):
        if arr is not None and np.ndim(arr) >= -ax:
            return int(np.shape(arr)[ax])
    return None


def _check_choices(scaling, start, batch, problems):
    if scaling not in SCALINGS:
        problems.append(f"scaling: expected one of {list(SCALINGS)}, got {scaling!r}")
    if start not in STARTS:
        problems.append(f"start: expected one of {list(STARTS)}, got {start!r}")
    if not (is_int(batch) and batch >= 1):
        problems.append(f"batch: expected a positive integer minibatch size, got {batch!r}")


def _int_array(name, value, shape, low, high, problems):
    """An int64 array of ``shape`` (None: any size) with values in [low, high); None (and a problem) if not."""
    if value is None:
        return None
    a = np.asarray(value)
    want = "(" + ", ".join("S" if d is None else str(d) for d in shape) + ")"
    fits = a.ndim == len(shape) and all(d is None or d == e for d, e in zip(shape, a.shape))
    if a.dtype.kind not in "iu" or not fits:
        problems.append(f"{name}: expected an integer array of shape {want}, got dtype {a.dtype} shape {a.shape}")
        return None
    if a.size == 0 or a.min() < low or a.max() >= high:
        problems.append(f"{name}: expected states in [{low}, {high - 1}] (-1: free/unknown), got values in "
                        f"[{a.min() if a.size else None}, {a.max() if a.size else None}]")
        return None
    return a.astype(np.int64)


def _train_constants(targets, held_out, query, s, n, k, problems):
    out = {}
    t = _int_array("targets", targets, (s, n), -1, k, problems)
    if t is not None:
        out["targets"] = (("sample", "variable"), t)
    for name, value, shape, dim in (("held_out", held_out, (s,), "sample"), ("query", query, (n,), "variable")):
        if value is None:
            continue
        a = np.asarray(value)
        if a.dtype != bool or a.shape != shape:
            problems.append(f"{name}: expected a bool array of shape {shape}, got dtype {a.dtype} shape {a.shape}")
        else:
            out[name] = ((dim,), a)
    return out


def _log_frequency(constants, k):
    """log of each state's add-one-smoothed frequency among the known training targets (n, k)."""
    t = constants["targets"][1]
    if "held_out" in constants:
        t = t[~constants["held_out"][1]]
    counts = (t[..., None] == np.arange(k)).sum(axis=0) + 1.0
    return np.log(counts / counts.sum(axis=-1, keepdims=True))


def _weights(weights, bias, coords, shape, sizes, seed, prior, problems):
    """A (*shape, r, n, k) and b (*shape, n, k), float64: given (checked) or seeded per member."""
    r, n, k = sizes["feature"], sizes["variable"], sizes["state"]
    members = len(coords["member"])
    draws = {"weights": ((r, n, k), 0), "bias": ((n, k), 1)}
    out = {}
    for name, value in (("weights", weights), ("bias", bias)):
        own, slot = draws[name]
        if value is None:
            dims = ("a", "b", "c")[: len(own)]
            w = random.initial(random.normal(*dims), seed=seed, members=coords["member"], parameters={},
                               sizes=dict(zip(dims, own)), slot=slot)
            if prior is not None:  # training: small A, b at the log-frequencies of the targets
                w = w / np.sqrt(r) if name == "weights" else np.broadcast_to(prior, w.shape)
        else:
            w = np.asarray(value, dtype=np.float64) if _numeric(value) else np.full(1, np.nan)
            if w.shape not in (own, (members, *own)) or not np.all(np.isfinite(w)):
                problems.append(f"{name}: expected finite values of shape {own} or {(members, *own)}, got shape "
                                f"{w.shape}{'' if np.all(np.isfinite(w)) else ' with NaN or inf'}")
                continue
            w = np.broadcast_to(w, (members, *own))
        w = w.reshape((members,) + (1,) * (len(shape) - 1) + own)
        out[name] = np.broadcast_to(w, (*shape, *own)).astype(np.float64)
    return out


def _numeric(value):
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _start(start, marginals, coords, shape, sizes, seed, evidence, problems):
    """Initial marginals (*shape, S, n, k): given, uniform or Dirichlet(1) (= normalised -log u); evidence clamped."""
    s, n, k = sizes["sample"], sizes["variable"], sizes["state"]
    members = len(coords["member"])
    if marginals is not None:
        q = np.asarray(marginals, dtype=np.float64) if _numeric(marginals) else np.full(1, np.nan)
        if q.shape not in ((s, n, k), (members, s, n, k)) or not np.all(np.isfinite(q)) or np.any(q < 0) or \
                np.any(np.abs(q.sum(axis=-1) - 1) > 1e-9):
            problems.append(f"marginals: expected finite distributions (>= 0, summing to 1 over the states) of shape "
                            f"{(s, n, k)} or {(members, s, n, k)}, got shape {q.shape}")
            return None
        q = np.broadcast_to(q, (members, s, n, k))
    elif start == "uniform":
        q = np.full((members, s, n, k), 1.0 / k)
    else:
        u = random.initial(random.uniform("a", "b", "c"), seed=seed, members=coords["member"], parameters={},
                           sizes={"a": s, "b": n, "c": k}, slot=2)
        e = -np.log1p(-u)
        q = e / e.sum(axis=-1, keepdims=True)
    onehot, free = model.evidence_arrays(evidence, k, q)
    q = model.clamp(q, onehot, free).reshape((members,) + (1,) * (len(shape) - 1) + q.shape[1:])
    return np.broadcast_to(q, (*shape, s, n, k)).astype(np.float64)


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"mean_field": Operator(mean_field),
               "forward_backward": Operator(forward_backward, prepare=prepare_splitting),
               "anderson": Operator(anderson, prepare=prepare_anderson, init=init_anderson),
               "train": Operator(train, prepare=prepare_train, init=init_train,
                                 draws={"picks": random.uniform("batch"), "fractions": random.uniform("batch"),
                                        "hides": random.uniform("batch", "variable")})},
    observables={"residual": residual, "free_energy": free_energy},
    theory=theory,
    example={"variables": 3, "states": 3, "features": 4, "samples": 2, "evidence": [[-1, 1, -1], [2, -1, -1]],
             "targets": [[0, 1, 2], [2, 1, 0]], "query": [False, False, True], "margin": [0.1, 0.5],
             "start": "random", "batch": 2, "members": 2, "seed": 3},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["SYSTEM", "anderson", "create", "digits", "forward_backward", "free_energy", "init_anderson",
           "init_train", "mean_field", "model", "observables", "operators", "prepare_train", "residual", "theory",
           "train", "training"]
