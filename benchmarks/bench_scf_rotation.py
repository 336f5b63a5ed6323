"""The rotation case study of Li et al. (NeurIPS 2023, section 4.1, Figure 5): fraction of starts that converge.

    python benchmarks/bench_scf_rotation.py [--members 4000] [--steps 300] [--out table.md]

F(v) = -(A v)(A v)^T in R^3, A the rotation by theta about z, k = 1; the solutions are +-e_z.
Members start from unit vectors uniform on the sphere (``guess="random"``, the same starts at
every theta). A member counts as converged when the commutator residual ||F D - D F|| drops
below 1e-8 within ``--steps`` outer steps. Columns: the theory of the sample-free Oja step
(P = 1 - sqrt(-cos theta / (1 - cos theta)), see eqflow.systems.scf.theory), then fixed_point,
damping (mixing 0.5), diis (8 slots), online_pca as in the paper's Figure 5 (one sample-free
Oja step per F(v), no DIIS, eta = 1), online_pca with its defaults (DIIS, momentum 0.5,
I = ceil(1 / Delta_2) inner steps) and adaptive_online with its defaults (T_cut 100, increment
10, tabu 10), both with eta = 1 and the inner steps capped at 100 to bound the run time. Each
entry is the fraction converged +- its binomial standard error sqrt(p (1 - p) / N).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1])]  # this checkout's eqflow
import eqflow as eq  # noqa: E402
from eqflow.systems import scf  # noqa: E402

from common import emit, machine  # noqa: E402

TOL = 1e-8
SOLVERS = (  # (label, operator, options)
    ("fixed_point", "fixed_point", {}),
    ("damping 0.5", "damping", {}),
    ("diis 8", "diis", {}),
    ("online_pca sample-free", "online_pca", {"history": 1, "max_inner": 1, "momentum": 0.0}),
    ("online_pca DIIS+momentum", "online_pca", {"max_inner": 100}),
    ("adaptive_online", "adaptive_online", {"max_inner": 100}),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--points", type=int, default=9, help="theta grid points in [pi/2, pi]")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--solvers", nargs="*", help="column labels to run (default: all)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    solvers = [s for s in SOLVERS if not args.solvers or s[0] in args.solvers]
    angles = np.linspace(np.pi / 2, np.pi, args.points)
    ds = eq.create("scf", problem="rotation", angle=angles, members=args.members, seed=args.seed, learning_rate=1.0)
    fractions, seconds = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for label, op, options in solvers:
            t0 = time.perf_counter()
            hist = eq.run(ds, op, steps=args.steps, store=Path(folder) / f"{label}.zarr", record={"residual": 1},
                          options=options, stop=eq.stop.converged("residual", TOL), progress=False)
            fractions[label] = (hist.stop_reason.values == "converged").mean(axis=0)
            seconds[label] = time.perf_counter() - t0
    theory = scf.theory.rotation_convergence_probability(angles)
    n = args.members
    lines = ["| theta / pi | theory (Oja) | " + " | ".join(label for label, _, _ in solvers) + " |",
             "|---" * (len(solvers) + 2) + "|"]
    for i, theta in enumerate(angles):
        cells = [f"{fractions[label][i]:.3f} ± {np.sqrt(fractions[label][i] * (1 - fractions[label][i]) / n):.3f}"
                 for label, _, _ in solvers]
        lines.append(f"| {theta / np.pi:.4f} | {theory[i]:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"{n} members per theta, residual < {TOL:g} within {args.steps} steps, seed {args.seed}; "
              "wall time: " + ", ".join(f"{label} {seconds[label]:.0f} s" for label, _, _ in solvers),
              f"machine: {machine()}"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
