"""The adjoint solvers of feedback_snn's ``train``: ``damped`` against Broyden at several n.

Solves g = (g D / V_th) W + v for E cells of S samples each, W with ||W||_2 = rho V_th (the
contraction factor of the adjoint), D a random half of the neurons active, to tol 1e-8
(the operator's default). Prints per (n, rho, solver): iterations, median wall time of
``repeats`` solves and their spread (min-max).

    python benchmarks/bench_feedback_snn_adjoint.py [--sizes 32 128 512] [--repeats 3]
"""
import argparse
import time

import numpy as np

from eqflow.systems.feedback_snn.implicit import adjoint_solve


def problem(n, rho, cells=4, samples=32, threshold=2.0, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, (cells, n, n))
    w *= (rho * threshold / np.linalg.norm(w, 2, axis=(-2, -1)))[:, None, None]
    active = (rng.random((cells, samples, n)) < 0.5).astype(np.float64)
    v = rng.normal(0.0, 1.0, (cells, samples, n))
    return v, w, active, np.full(cells, threshold)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| n | rho | solver | iterations | median ms | spread ms |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        for rho in args.rhos:
            v, w, active, threshold = problem(n, rho)
            for solver in ("damped", "broyden"):
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    _, iterations, residual, converged = adjoint_solve(v, w, active, threshold, solver=solver,
                                                                        tol=1e-8, max_iter=100)
                    times.append(1e3 * (time.perf_counter() - start))
                assert converged.all(), (n, rho, solver, residual)
                print(f"| {n} | {rho} | {solver} | {int(iterations.max())} | {np.median(times):.1f} | "
                      f"{min(times):.1f}-{max(times):.1f} |")


if __name__ == "__main__":
    main()
