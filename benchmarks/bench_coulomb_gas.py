"""Cumulants of the linear statistic sum |z_i|^2 / N of the 2-D Coulomb gas against N, at several beta.

    python benchmarks/bench_coulomb_gas.py [--sizes 8 16 32] [--betas 1 2 4] [--members 256]
                                           [--sweeps 800] [--burn 100] [--step-size 0.8] [--operator mala]

De Bruyne, Le Doussal, Majumdar & Schehr, arXiv:2310.16420: for a smooth rotationally invariant
linear statistic L = sum_i f(z_i / sqrt(N)) the cumulant of order p scales as N^(2 - p). Here
f(w) = |w|^2, L = sum |z_i|^2 / N. For every beta, sum |z_i|^2 is exactly Gamma(beta N (N - 1)/4
+ N, scale 2/beta) (:mod:`eqflow.systems.coulomb_gas.theory`), so kappa_2(L) -> 1/beta and
N kappa_3(L) -> 4/beta^2; at beta = 2 this is Kostlan's Gamma(N (N + 1)/2).

For each N one eq.run of ``--members`` chains per beta (a beta sweep), started from Ginibre
eigenvalues (exact at beta = 2), ``--sweeps`` sweeps of single-particle moves recording
sum |z|^2 every sweep; the first ``--burn`` are dropped. kappa_2 and kappa_3 are the central
moments of the pooled window; their standard errors come from a delete-one-group jackknife
over 16 groups of members (independent chains, so the autocorrelation is inside the errors).
The table gives measured and exact values side by side with z = (measured - exact) / SE, and the
fitted exponent of kappa_3 in N (expected -1 = 2 - p).

Cost: one core; the defaults took 50 s of CPU (2-core shared x86-64 VM), --sizes 8 16 32 64 took 186 s.
"""
import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.systems.coulomb_gas import theory

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

GROUPS = 16


def cumulants(x):
    """(kappa_2, kappa_3) of the pooled samples x (any shape): central moments (bias O(1/size))."""
    c = x - x.mean()
    return np.array([np.mean(c**2), np.mean(c**3)])


def jackknife(x):
    """Estimates and jackknife standard errors of :func:`cumulants` over member groups; x (step, member)."""
    full = cumulants(x)
    groups = np.array_split(np.arange(x.shape[1]), GROUPS)
    leave = np.array([cumulants(np.delete(x, g, axis=1)) for g in groups])
    se = np.sqrt((GROUPS - 1) / GROUPS * np.sum((leave - leave.mean(0)) ** 2, axis=0))
    return full, se


def measure(n, args, folder):
    """{beta: (estimates, standard errors, acceptance)} of L = sum |z|^2 / N for N = n; and the run's seconds."""
    ds = eq.create("coulomb_gas", particles=n, beta=args.betas, members=args.members, seed=n, start="ginibre")
    t0 = time.perf_counter()
    hist = eq.run(ds, args.operator, steps=args.sweeps, store=Path(folder) / f"n{n}.zarr",
                  record={"sum_r2": 1, "acceptance": 1}, options={"step_size": args.step_size}, progress=False)
    hist = hist.load()
    seconds = time.perf_counter() - t0
    out = {}
    for beta in args.betas:
        x = hist.sum_r2.sel(beta=beta).isel(step=slice(args.burn + 1, None)).values / n
        est, se = jackknife(x)
        out[beta] = (est, se, float(hist.acceptance.sel(beta=beta).mean()))
    return out, seconds


def slope(sizes, values, errors):
    """Weighted least-squares slope of log|values| against log N, and its standard error."""
    x, y = np.log(sizes), np.log(np.abs(values))
    w = (np.abs(values) / errors) ** 2  # var log y ~ (se / y)^2
    xm = np.sum(w * x) / np.sum(w)
    s = np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / np.sum(w * (x - xm) ** 2)
    return s, 1 / np.sqrt(np.sum(w * (x - xm) ** 2))


def table(sizes, results, betas):
    lines = ["| N | beta | acceptance | kappa_2 measured | kappa_2 exact | z "
             "| N kappa_3 measured | N kappa_3 exact | z |",
             "|---|---|---|---|---|---|---|---|---|"]
    for beta in betas:
        for n in sizes:
            (k2, k3), (s2, s3), acc = results[n][beta]
            e2, e3 = theory.scaled_cumulant(n, beta, 2), theory.scaled_cumulant(n, beta, 3)
            lines.append(f"| {n} | {beta:g} | {acc:.2f} | {k2:.4f} +- {s2:.4f} | {e2:.4f} | {(k2 - e2) / s2:+.1f} "
                         f"| {n * k3:.3f} +- {n * s3:.3f} | {n * e3:.3f} | {(k3 - e3) / s3:+.1f} |")
        lines.append(f"| large N | {beta:g} | | | {theory.scaled_cumulant_limit(beta, 2):.4f} | | | "
                     f"{theory.scaled_cumulant_limit(beta, 3):.3f} | |")
    lines += ["", "| beta | exponent of kappa_3 in N (fit) | exact over the same N | expected (large N) |",
              "|---|---|---|---|"]
    for beta in betas:
        k3 = np.array([results[n][beta][0][1] for n in sizes])
        s3 = np.array([results[n][beta][1][1] for n in sizes])
        fit, err = slope(np.array(sizes, float), k3, s3)
        exact = np.array([theory.scaled_cumulant(n, beta, 3) for n in sizes])
        ref, _ = slope(np.array(sizes, float), exact, s3)
        lines.append(f"| {beta:g} | {fit:.3f} +- {err:.3f} | {ref:.3f} | -1 |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--members", type=int, default=256)
    parser.add_argument("--sweeps", type=int, default=800)
    parser.add_argument("--burn", type=int, default=100)
    parser.add_argument("--step-size", type=float, default=0.8)
    parser.add_argument("--operator", default="mala", choices=["mala", "metropolis"])
    args = parser.parse_args(argv)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"# {args.operator}, step_size {args.step_size}, {args.members} members per beta, {args.sweeps} sweeps, "
          f"burn-in {args.burn}; kappa_p of L = sum |z_i|^2 / N")
    results, total = {}, 0.0
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            results[n], seconds = measure(n, args, folder)
            total += seconds
            print(f"# N = {n}: {seconds:.1f} s for {len(args.betas) * args.members} chains x {args.sweeps} sweeps",
                  flush=True)
    print(f"# total {total:.1f} s")
    print("\n".join(table(args.sizes, results, args.betas)))


if __name__ == "__main__":
    main()
