"""Monotone DBM: solvers side by side, the cycle of unscaled mean field, and training on the digits.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_monotone_dbm.py [--steps 300] [--members 2]
        [--learning-rate 0.03] [--margin 0.01] [--scaling variable] [--hidden 0] [--query-weight 1]
        [--train-only] [--out FILE]

1. Inference on a random monotone DBM (n = 24 variables, k = 4 states, r = 16, 8 evidence patterns,
   m = 0.1, 4 members): steps and wall time to a mean-field residual below 1e-10 for plain mean field,
   the damped forward-backward splitting at alpha = 0.25, 0.5, 1 and Anderson (history 5) at alpha = 0.5,
   each with ``eq.stop.converged('residual', 1e-10)``; the largest distance between their fixed points.
2. The same A without the monotone scaling (``scaling='none'``, A of :func:`theory.cycle_coupling`):
   plain mean field ends ``cycled``; with the scaling it converges.
3. Training (the ``train`` operator, every member at once) on scikit-learn's digits: 64 pixels binned
   to k = 10 levels and the label as a 65th variable (optionally hidden variables), r = 64, batch 32,
   Adam (default 0.03), m = 0.01, per-variable scaling; then on the 360 held-out images:
   classification accuracy with every pixel observed, with the bottom half hidden and with a random
   half hidden, and the completion error (MAE and RMSE of E[level] / 9 against x / 16 over the hidden
   pixels) against the mean training image; the same at step 0. BLAS in one thread (on a shared
   2-core machine, threaded BLAS on these small products is hundreds of times slower).
"""
import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import eqflow as eq  # noqa: E402
from eqflow.systems import monotone_dbm as mdbm  # noqa: E402

TOL = 1e-10
LABEL = mdbm.DIGIT_PIXELS  # the label is variable 64, the hidden variables follow it


def solvers(lines):
    ds = mdbm.create(24, 4, features=16, samples=8, evidence=_evidence(8, 24, 4), members=4, seed=1,
                     start="random")
    runs = [("mean_field", {}), ("forward_backward", {"alpha": 0.25}), ("forward_backward", {"alpha": 0.5}),
            ("forward_backward", {"alpha": 1.0}), ("anderson", {"alpha": 0.5, "history": 5})]
    lines += ["## Inference: steps to a residual < 1e-10 (n = 24, k = 4, r = 16, 8 patterns, m = 0.1, 4 members)",
              "", "| operator | options | steps (max over members) | wall s | outcome |", "|---|---|---|---|---|"]
    finals = []
    for op, options in runs:
        t0 = time.perf_counter()
        h = eq.run(ds, op, steps=2000, store=None, options=options, stop=eq.stop.converged("residual", TOL),
                   progress=False, record={"residual": 1})
        wall = time.perf_counter() - t0
        steps = int(h.stopped_at.max())
        reasons = sorted({str(r) for r in np.asarray(h.stop_reason).ravel()})
        finals.append(eq.final_state(h).marginals.values)
        lines.append(f"| {op} | {options or '-'} | {steps} | {wall:.2f} | {', '.join(reasons)} |")
    spread = max(float(np.max(np.abs(f - finals[0]))) for f in finals)
    lines += ["", f"Largest |q_a - q_b| between the fixed points of the five runs: {spread:.1e}", ""]


def _evidence(samples, n, k):
    rng = np.random.default_rng(7)
    ev = rng.integers(0, k, size=(samples, n))
    return np.where(rng.uniform(size=(samples, n)) < 0.3, ev, -1)


def cycle(lines):
    a = mdbm.theory.cycle_coupling(3.0)
    rows = ["## Unscaled vs scaled mean field (n = 2, k = 2, A = 3 (1, -1) on both variables)", "",
            "| scaling | outcome | steps |", "|---|---|---|"]
    for scaling in ("none", "monotone"):
        ds = mdbm.create(weights=a, bias=np.zeros((2, 2)), scaling=scaling, marginals=[[[0.9, 0.1], [0.8, 0.2]]])
        h = eq.run(ds, "mean_field", steps=500, store=None, progress=False,
                   stop=[eq.stop.cycled("marginals", tol=1e-12), eq.stop.converged("residual", TOL)])
        rows.append(f"| {scaling} | {np.asarray(h.stop_reason).ravel()[0]} | {int(h.stopped_at.max())} |")
    lines += rows + [""]


def train(lines, steps, members, learning_rate, margin, scaling, hidden, query_weight, hide="scattered",
          hide_fraction=0.0, seed=0):
    ds = mdbm.create(dataset="digits", hidden=hidden, features=64, batch=32, members=members,
                     learning_rate=learning_rate, margin=margin, scaling=scaling, seed=seed)
    options = {"alpha": 0.5, "history": 5, "tol": 1e-6, "max_iter": 100, "query_weight": query_weight,
               "hide": hide, "hide_fraction": hide_fraction}
    t0 = time.perf_counter()
    h = eq.run(ds, "train", steps=steps, store=None, options=options, progress=False,
               record={name: min(10, steps) for name in ("batch_loss", "forward_residual", "adjoint_residual")})
    wall = time.perf_counter() - t0
    final = eq.final_state(h)
    loss = h.batch_loss.values
    lines += [f"## Training on the digits ({members} members at once, {steps} Adam steps of {learning_rate}, batch 32, "
              f"r = 64, k = 10, {hidden} hidden variables, m = {margin}, scaling '{scaling}', "
              f"label weight {query_weight}, seed {seed}, training masks '{hide}' with "
              f"f = {hide_fraction or 'U[0, 1)'})",
              "",
              f"Wall time {wall:.0f} s ({wall / steps:.2f} s per step for all members). Minibatch loss, "
              f"mean over members: first record {np.nanmean(loss[1]):.3f}, last {np.nanmean(loss[-1]):.3f}; "
              f"largest forward residual {np.nanmax(h.forward_residual.values):.1e}, adjoint relative residual "
              f"{np.nanmax(h.adjoint_residual.values):.1e}.", ""]
    lines += evaluate(final, members, margin, scaling, hidden)
    lines += ["The same evaluation at step 0 (A ~ N(0, 1/r), b at the log-frequencies of the training states):", ""]
    lines += evaluate(ds, members, margin, scaling, hidden)


def evaluate(final, members, margin, scaling, hidden=0):
    """Accuracy and completion error on the held-out images, three evidence patterns."""
    data = mdbm.digits(10, hidden)
    held = data["held_out"]
    targets, x = data["targets"][held], data["intensity"][held]
    mean_image = data["intensity"][~held].mean(axis=0)
    full = targets.copy()
    full[:, LABEL] = -1
    half = full.copy()
    half[:, 32:64] = -1
    scattered = full.copy()
    scattered[:, :64][np.random.default_rng(11).uniform(size=(len(x), 64)) < 0.5] = -1
    train_images = data["intensity"][~held]
    rows = ["| held-out images (360) | " + " | ".join(f"member {i}" for i in range(members))
            + " | mean image | nearest neighbour | linear regression |", "|---|" + "---|" * (members + 3)]
    for name, ev in (("all pixels", full), ("bottom half hidden", half), ("random half hidden", scattered)):
        ds = mdbm.create(weights=final.weights.values, bias=final.bias.values, evidence=ev, members=members,
                         margin=margin, scaling=scaling)
        h = eq.run(ds, "anderson", steps=300, store=None, progress=False, options={"alpha": 0.5},
                   stop=eq.stop.converged("residual", 1e-8), record={"residual": 300})
        q = eq.final_state(h).marginals.values  # (member, S, n, k)
        acc = (q[..., LABEL, :].argmax(-1) == targets[:, LABEL]).mean(axis=-1)
        rows.append(f"| accuracy, {name} | " + " | ".join(f"{a:.3f}" for a in acc) + " | - | - | - |")
        if name == "all pixels":
            continue
        hidden = ev[:, :64] < 0
        pred = (q[..., :64, :] * np.arange(10)).sum(-1) / 9
        gap = np.where(hidden, pred - x, 0.0)
        mae = np.abs(gap).sum(axis=(-2, -1)) / hidden.sum()
        rmse = np.sqrt((gap ** 2).sum(axis=(-2, -1)) / hidden.sum())
        bases = [np.where(hidden, b - x, 0.0) for b in (np.broadcast_to(mean_image, x.shape),
                                                        nearest_neighbour(train_images, x, hidden),
                                                        linear_regression(train_images, x, hidden))]
        rows.append(f"| completion MAE, {name} | " + " | ".join(f"{e:.3f}" for e in mae) + " | "
                    + " | ".join(f"{np.abs(b).sum() / hidden.sum():.3f}" for b in bases) + " |")
        rows.append(f"| completion RMSE, {name} | " + " | ".join(f"{e:.3f}" for e in rmse) + " | "
                    + " | ".join(f"{np.sqrt((b ** 2).sum() / hidden.sum()):.3f}" for b in bases) + " |")
    return rows + ["", "Completion: E[level] / 9 of the marginals against x / 16, over the hidden pixels; "
                   "baselines from the 1437 training images: their mean, the nearest one on the observed pixels, "
                   "and the linear regression of the hidden on the observed pixels (the Gaussian conditional mean "
                   "with the training mean and covariance + 1e-3 I, clipped to [0, 1]); chance accuracy 0.100.", ""]


def nearest_neighbour(train, x, hidden):
    """Each image's hidden pixels from the training image closest on its observed pixels (squared distance)."""
    out = np.empty_like(x)
    for i in range(len(x)):
        seen = ~hidden[i]
        out[i] = train[np.argmin(((train[:, seen] - x[i, seen]) ** 2).sum(axis=1))]
    return out


def linear_regression(train, x, hidden, ridge=1e-3):
    """E[x_h | x_o] of a Gaussian with the training images' mean and covariance (+ ridge I), clipped to [0, 1]."""
    mu = train.mean(axis=0)
    cov = np.cov(train.T) + ridge * np.eye(train.shape[1])
    out = np.broadcast_to(mu, x.shape).copy()
    for i in range(len(x)):
        h, o = hidden[i], ~hidden[i]
        out[i, h] = mu[h] + cov[np.ix_(h, o)] @ np.linalg.solve(cov[np.ix_(o, o)], x[i, o] - mu[o])
    return np.clip(out, 0.0, 1.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=0.03)
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--scaling", default="variable", choices=["monotone", "variable"])
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--query-weight", type=float, default=1.0)
    parser.add_argument("--hide", default="scattered", choices=["scattered", "band"])
    parser.add_argument("--hide-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = []
    if not args.train_only:
        solvers(lines)
        cycle(lines)
    train(lines, args.steps, args.members, args.learning_rate, args.margin, args.scaling, args.hidden,
          args.query_weight, args.hide, args.hide_fraction, args.seed)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
