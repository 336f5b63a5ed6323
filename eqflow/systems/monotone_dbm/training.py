"""``train``: one Adam step of every member by implicit differentiation through the mean-field fixed point.

Joint completion and classification (Feng, Winston & Kolter, TMLR 2023, section 5): per member, a
minibatch of training samples is drawn; in each sample the ``query`` variables (a label) are free,
and every other variable with a known target is hidden with probability f, f drawn uniformly in
[0, 1) per sample (a mask of declared draws), the rest clamped to their targets. Two options change
the masks, to train on those a completion will be asked for: ``hide_fraction`` F in (0, 1) fixes
f = F (0, the default, draws it), and ``hide="band"`` hides instead a contiguous run of
round(f n) variable indices (n variables; the start drawn uniformly from the per-sample uniform
``fractions``, f = F then required): for row-major images a band of rows, the bottom half among them. The fixed point is
solved by Anderson on the damped forward-backward map (:mod:`.operators`); the loss

    L = (1 / B) sum_b [ w sum_{query i} -log q_bi(t_bi) + mean_{hidden i} -log q_bi(t_bi) ]

(w the option ``query_weight``, default 1) is differentiated implicitly (:mod:`.implicit`), and A and
b take one Adam step (beta = 0.9, 0.999, eps = 1e-8; Kingma & Ba 2015). The paper's code trains with
Adam too (``train_and_eval.py``).
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from . import implicit, model
from .operators import KIND, anderson_step, check_alpha, check_history

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
ADJOINT_TOL = 1e-10


HIDES = ("scattered", "band")


def prepare_train(*, sizes, alpha, history, tol, max_iter, query_weight=1.0, hide="scattered", hide_fraction=0.0,
                  targets=None, held_out=None, query=None):
    """Once per run (NumPy): the training indices and the query mask; every bad option named."""
    problems: list[str] = []
    if hide not in HIDES:
        problems.append(f"options['hide']: expected one of {list(HIDES)}, got {hide!r}")
    if not (isinstance(hide_fraction, (int, float)) and not isinstance(hide_fraction, bool)
            and 0 <= hide_fraction < 1):
        problems.append(f"options['hide_fraction']: expected 0 (drawn per sample) or a fraction in (0, 1), "
                        f"got {hide_fraction!r}")
    elif hide == "band" and hide_fraction == 0:
        problems.append("options['hide_fraction']: expected a fraction in (0, 1) with hide='band' (the band's "
                        "length), got 0")
    check_alpha(alpha, problems)
    check_history(history, problems)
    if not (isinstance(tol, (int, float)) and tol > 0):
        problems.append(f"options['tol']: expected a tolerance > 0, got {tol!r}")
    if not (isinstance(query_weight, (int, float)) and not isinstance(query_weight, bool) and query_weight >= 0):
        problems.append(f"options['query_weight']: expected a weight >= 0, got {query_weight!r}")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        problems.append(f"options['max_iter']: expected an integer >= 1, got {max_iter!r}")
    if targets is None:
        problems.append("targets: the train operator needs the true states (sample, variable); create the system "
                        "with targets=... or dataset='digits'")
    samples = sizes["sample"]
    held = np.zeros(samples, dtype=bool) if held_out is None else np.asarray(held_out).reshape(-1)
    index = np.flatnonzero(~held).astype(np.int64)
    if index.size == 0:
        problems.append(f"held_out: expected at least one training sample, got all {samples} held out")
    if problems:
        raise SchemaError(problems, kind=KIND)
    mask = np.zeros(sizes["variable"], dtype=bool) if query is None else np.asarray(query).reshape(-1)
    return {"train_index": index, "query_mask": mask}


def init_train(*, weights, bias):
    """Adam's moments at zero (float64) and no steps taken, like a new torch.optim.Adam."""
    return {"moment_weights": np.zeros(np.shape(weights)), "square_weights": np.zeros(np.shape(weights)),
            "moment_bias": np.zeros(np.shape(bias)), "square_bias": np.zeros(np.shape(bias)),
            "adam_steps": np.zeros(np.shape(bias)[:-2], dtype=np.int64)}


def minibatch(picks, fractions, hides, train_index, targets, query_mask, query_weight=1.0, hide="scattered",
              hide_fraction=0.0):
    """(evidence (*E, B, n) int64, targets (*E, B, n), loss weights (*E, B, n)) of one drawn minibatch."""
    xp = namespace(picks)
    targets, train_index = targets.reshape(targets.shape[-2:]), train_index.reshape(-1)
    query_mask = query_mask.reshape(-1)
    count = train_index.shape[0]
    pick = xp.astype(xp.floor(picks * count), xp.int64)
    pick = xp.where(pick >= count, xp.full_like(pick, count - 1), pick)
    rows = xp.take(train_index, xp.reshape(pick, (-1,)), axis=0)
    t = xp.reshape(xp.take(targets, rows, axis=0), (*picks.shape, targets.shape[-1]))
    known = t >= 0
    if hide == "band":
        n = t.shape[-1]
        length = int(round(hide_fraction * n))
        start = xp.floor(fractions * (n - length + 1))[..., None]
        index = xp.astype(xp.arange(n, dtype=xp.int64), fractions.dtype)
        inside = (index >= start) & (index < start + length)
    else:
        inside = hides < (fractions[..., None] if hide_fraction == 0 else hide_fraction)
    hidden = known & inside & ~query_mask
    evidence = xp.where(known & ~hidden & ~query_mask, t, xp.full_like(t, -1))
    per = xp.sum(xp.astype(hidden, hides.dtype), axis=-1, keepdims=True)
    weight = query_weight * xp.astype(known & query_mask, hides.dtype) + xp.astype(hidden, hides.dtype) / xp.where(
        per > 0, per, xp.ones_like(per))
    return evidence, t, weight


def solve(q, coupling, bias, onehot, free, *, alpha, history, tol, max_iter):
    """Anderson on the damped splitting from q until the mean-field residual is <= tol per cell.

    Returns (q*, residual (*E)). Cells stop on their own (frozen), so none depends on another.
    One field W q + b per iteration serves both the residual of q and the map T(q).
    """
    xp = namespace(q)
    lead = q.shape[:-3]
    points = xp.zeros((*lead, history, *q.shape[-3:]), dtype=q.dtype)
    values, count = xp.zeros_like(points), xp.zeros(lead, dtype=xp.int64)
    done = xp.zeros(lead, dtype=xp.bool)
    err = xp.zeros(lead, dtype=q.dtype)
    for _ in range(max_iter + 1):
        z = model.field(q, coupling, bias)
        err = xp.where(done, err, xp.max(xp.abs(free * (q - model.softmax(z))), axis=(-3, -2, -1)))
        done = done | (err <= tol)
        if bool(xp.all(done)):
            break
        value = model.clamp(model.prox((1 - alpha) * q + alpha * z, alpha), onehot, free)
        new, points, values, count = anderson_step(q, value, points, values, count)
        q = xp.where(done[..., None, None, None], q, model.clamp(new, onehot, free))
    return q, err


def loss_and_rhs(q, targets, weight):
    """(L (*E), dL/dq (*E, B, n, k)) of the weighted cross-entropy of the marginals at the targets."""
    xp = namespace(q)
    hit = xp.astype(targets[..., None] == xp.arange(q.shape[-1], dtype=targets.dtype), q.dtype)
    p = xp.sum(q * hit, axis=-1)
    safe = xp.where(p > 0, p, xp.ones_like(p))
    batch = q.shape[-3]
    loss = -xp.sum(weight * xp.log(safe), axis=(-2, -1)) / batch
    return loss, -(weight / (safe * batch))[..., None] * hit


def train(*, weights, bias, moment_weights, square_weights, moment_bias, square_bias, adam_steps, targets,
          train_index, query_mask, picks, fractions, hides, margin, learning_rate, alpha, history, tol, max_iter,
          query_weight=1.0, hide="scattered", hide_fraction=0.0,
          scaling="monotone"):
    """One Adam step of A and b on a drawn minibatch (see the module docstring)."""
    xp = namespace(weights)
    evidence, t, weight = minibatch(picks, fractions, hides, train_index, targets, query_mask, float(query_weight),
                                    hide, float(hide_fraction))
    w = model.factored(weights, margin, scaling)
    k = weights.shape[-1]
    onehot, free = model.evidence_arrays(evidence, k, weights)
    start = model.clamp(xp.full_like(onehot, 1.0 / k), onehot, free)
    q, forward = solve(start, w, bias, onehot, free, alpha=float(alpha), history=int(history), tol=float(tol),
                       max_iter=int(max_iter))
    loss, rhs = loss_and_rhs(q, t, weight)
    u, relative = implicit.adjoint(q, free, w, rhs, tol=ADJOINT_TOL, max_iter=int(max_iter))
    grad_a, grad_b = implicit.parameter_gradients(weights, margin, scaling, q, u)
    steps = adam_steps + 1
    out = {"adam_steps": steps, "batch_loss": xp.astype(loss, xp.float64),
           "forward_residual": xp.astype(forward, xp.float64), "adjoint_residual": relative}
    for name, value, grad, m1, m2 in (("weights", weights, grad_a, moment_weights, square_weights),
                                      ("bias", bias, grad_b, moment_bias, square_bias)):
        m1 = BETA1 * m1 + (1 - BETA1) * grad
        m2 = BETA2 * m2 + (1 - BETA2) * grad * grad
        n = xp.astype(steps, value.dtype)
        c1 = implicit._expand(1 - BETA1 ** n, value)
        c2 = implicit._expand(1 - BETA2 ** n, value)
        eta = implicit._expand(learning_rate, value)
        out[name] = value - eta * (m1 / c1) / (xp.sqrt(m2 / c2) + EPS)
        out[f"moment_{name}"], out[f"square_{name}"] = m1, m2
    return out
