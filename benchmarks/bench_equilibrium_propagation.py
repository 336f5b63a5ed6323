"""Equilibrium propagation on scikit-learn's digits: estimator errors against beta, and training per estimator.

Part 1 (errors). A 64-32-10 network (tanh, squared error) at its seeded initialisation, symmetric
(W_fb = W_ff^T) and asymmetric (independent W_fb); one ``gradient_error`` record of a beta x N sweep
gives ||g_e - g|| / ||g|| for the one-sided, symmetric and holomorphic (N points) estimators against
implicit differentiation, on the first ``--error-samples`` training images (free and nudged phases of
200 iterations: converged to rounding). Printed with the log2 ratio of successive errors (the order).

Part 1b (``--rotations``). The same error on networks whose feedback is W_ff^T turned by an angle towards an
independent draw of the same norm, W_fb = cos(a) W_ff^T + sin(a) R (the ``rotate`` of the paper's code,
github.com/Laborieux-Axel/generalized-holo-ep, ``utils/funcs.py``), several seeds: mean +- sd of the
relative error and of the cosine similarity with the exact gradient, per beta, one-sided, symmetric
and holomorphic N = 4 (100 training images, 200 iterations per phase).

Part 2 (training). The same network, asymmetric (or symmetric with ``--symmetric-init``), trained by
SGD (``--steps`` steps, minibatch 32, learning rate 0.1) with each estimator at the same beta, with
Jacobian homeostasis (``--homeostasis`` kappa values); ``--members`` seeds each. Held-out accuracy
(360 images, every fifth), the loss, the Jacobian symmetry and the wall time, side by side.

    python benchmarks/bench_equilibrium_propagation.py [--steps 600] [--members 2] [--betas 0.2,0.5]
        [--homeostasis 0,1] [--error-samples 200] [--skip-errors] [--skip-training] [--symmetric-init]
        [--rotations 0,15,30,60 --seeds 3] [--estimators one_sided,holomorphic] [--points 4]
        [--time-steps 30] [--nudge-steps 20] [--learning-rate 0.1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.systems import equilibrium_propagation as ep

ESTIMATORS = ("one_sided", "symmetric", "holomorphic")


def errors(samples, betas, points):
    d = ep.digits()
    keep = np.flatnonzero(~d["held_out"])[:samples]
    print(f"## Estimator errors against implicit differentiation ({samples} digits images, 64-32-10, "
          f"200 iterations per phase)\n")
    for symmetric in (True, False):
        ds = ep.create((32, 10), data=d["data"][keep], labels=d["labels"][keep], held_out=np.zeros(keep.size, bool),
                       symmetric=symmetric, beta=betas, points=points, time_steps=200, nudge_steps=200, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            hist = eq.run(ds, "free", steps=1, store=Path(tmp) / "e.zarr", progress=False,
                          record={"gradient_error": 1, "jacobian_symmetry": 1})
            err = hist.gradient_error.values[0, 0]  # (beta, points, estimator)
            sym = float(hist.jacobian_symmetry.values[0, 0, 0, 0])
            wall = time.perf_counter() - t
        print(f"### {'symmetric' if symmetric else 'asymmetric'} weights (Jacobian symmetry {sym:.3f}; "
              f"{wall:.1f} s)\n")
        head = " | ".join(["one-sided", "symmetric"] + [f"holomorphic N={n}" for n in points])
        print(f"| beta | {head} |\n|---|" + "---|" * (2 + len(points)))
        for i, b in enumerate(betas):
            row = [err[i, 0, 0], err[i, 0, 1]] + [err[i, j, 2] for j in range(len(points))]
            print(f"| {b:g} | " + " | ".join(f"{v:.2e}" for v in row) + " |")
        if symmetric:
            slope = np.log2(err[:-1] / err[1:])  # betas halve
            orders = [np.median(slope[:, 0, 0]), np.median(slope[:, 0, 1])] + \
                     [np.median(slope[:, j, 2]) for j in range(len(points))]
            print("| order (median log2 ratio) | " + " | ".join(f"{o:.2f}" for o in orders) + " |")
        print()


def rotated_errors(angles, betas, seeds, samples=100):
    from eqflow.systems.equilibrium_propagation import network
    from eqflow.systems.equilibrium_propagation.operators import estimate

    d = ep.digits()
    keep = np.flatnonzero(~d["held_out"])[:samples]
    x, y = d["data"][keep], d["labels"][keep]
    print(f"## Estimator errors on rotated feedback ({samples} digits images, 64-32-10, gain 0.5, seeds "
          f"{list(range(seeds))}; mean +- sd over seeds)\n")
    print("| angle | Jacobian symmetry | beta | " + " | ".join(f"{e} error | {e} cosine" for e in ESTIMATORS) + " |")
    print("|---|---|---|" + "---|---|" * len(ESTIMATORS))
    flat = lambda g: np.concatenate([g[k].ravel() for k in network.GROUPS])  # noqa: E731
    for angle in angles:
        table, sym = [], []
        for seed in range(seeds):
            ds = ep.create((32, 10), data=x, labels=y, held_out=np.zeros(len(x), bool), symmetric=True, seed=seed)
            w = {k: ds[k].values[0] for k in network.GROUPS}
            allowed = network.masks(ds.layer.values, x.shape[1])["feedback"]
            r = np.where(allowed, np.random.default_rng(seed + 100).standard_normal(allowed.shape), 0.0)
            r *= np.linalg.norm(w["feedback"]) / np.linalg.norm(r)
            a = np.deg2rad(angle)
            w["feedback"] = np.cos(a) * w["feedforward"].T + np.sin(a) * r
            sym.append(network.jacobian_symmetry(w["feedforward"] + w["feedback"]))
            common = dict(weights=w, inputs=x, onehot=np.eye(10)[y], layer=ds.layer.values, points=np.array(4.0),
                          time_steps=np.array(200.0), nudge_steps=np.array(200.0), dt=np.array(1.0))
            exact = flat(estimate(estimator="implicit", beta=np.array(0.1), **common)[0])
            rows = []
            for beta in betas:
                row = []
                for e in ESTIMATORS:
                    g = flat(estimate(estimator=e, beta=np.array(beta), **common)[0])
                    row += [np.linalg.norm(g - exact) / np.linalg.norm(exact),
                            g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact))]
                rows.append(row)
            table.append(rows)
        mean, sd = np.mean(table, axis=0), np.std(table, axis=0, ddof=1)
        for i, beta in enumerate(betas):
            cells = " | ".join(f"{m:.3f} +- {s:.3f}" for m, s in zip(mean[i], sd[i]))
            print(f"| {angle:g} | {np.mean(sym):.3f} | {beta:g} | {cells} |", flush=True)
    print()


def training(steps, members, betas, kappas, symmetric=False, estimators=(*ESTIMATORS, "implicit"), points=4,
             time_steps=30, nudge_steps=20, learning_rate=0.1):
    init = "symmetric" if symmetric else "asymmetric"
    print(f"## Training on digits (64-32-10, {init} init, SGD lr {learning_rate:g}, batch 32, {steps} steps, "
          f"{members} seeds, N = {points}, free/nudged phases {time_steps}/{nudge_steps} steps; held-out accuracy "
          f"on 360 images, mean +- standard deviation over the seeds)\n")
    print("| beta | homeostasis | estimator | accuracy (mean +- sd) | accuracy per seed | loss | Jacobian symmetry "
          "| wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for beta in betas:
        for kappa in kappas:
            for estimator in estimators:
                ds = ep.create((32, 10), dataset="digits", beta=beta, points=points, homeostasis=kappa,
                               learning_rate=learning_rate, members=members, seed=0, symmetric=symmetric,
                               time_steps=time_steps, nudge_steps=nudge_steps)
                with tempfile.TemporaryDirectory() as tmp:
                    t = time.perf_counter()
                    hist = eq.run(ds, "train", steps=steps, store=Path(tmp) / "t.zarr", progress=False,
                                  options={"estimator": estimator},
                                  record={"accuracy": steps, "loss": steps, "jacobian_symmetry": steps})
                    wall = time.perf_counter() - t
                    acc, loss = hist.accuracy.values[-1], hist.loss.values[-1]
                    sym = hist.jacobian_symmetry.values[-1]
                spread = acc.std(ddof=1) if acc.size > 1 else 0.0
                print(f"| {beta:g} | {kappa:g} | {estimator} | {acc.mean():.3f} +- {spread:.3f} | "
                      f"{' '.join(f'{a:.3f}' for a in acc)} | {loss.mean():.3f} | {sym.mean():.3f} | {wall:.0f} |",
                      flush=True)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--error-samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--betas", default="0.2,0.5")
    parser.add_argument("--homeostasis", default="0,1")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-errors", action="store_true")
    parser.add_argument("--symmetric-init", action="store_true", help="train from W_fb = W_ff^T")
    parser.add_argument("--rotations", default="", help="angles in degrees, e.g. 0,15,30,60 (part 1b)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of part 1b")
    parser.add_argument("--estimators", default="one_sided,symmetric,holomorphic,implicit")
    parser.add_argument("--points", type=int, default=4)
    parser.add_argument("--time-steps", type=int, default=30)
    parser.add_argument("--nudge-steps", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    args = parser.parse_args()
    if args.rotations:
        rotated_errors([float(a) for a in args.rotations.split(",")], [0.05, 0.1, 0.2, 0.5, 1.0], args.seeds)
    if not args.skip_errors:
        errors(args.error_samples, [0.8, 0.4, 0.2, 0.1, 0.05, 0.025], [3, 4, 6])
    if not args.skip_training:
        training(args.steps, args.members, [float(b) for b in args.betas.split(",")],
                 [float(k) for k in args.homeostasis.split(",")], args.symmetric_init, args.estimators.split(","),
                 args.points, args.time_steps, args.nudge_steps, args.learning_rate)


if __name__ == "__main__":
    main()
