"""Dense Hopfield benchmarks: zero-temperature retrieval against load, low-load theory, sweep cost.

    python benchmarks/bench_dense_hopfield.py [capacity|lowload|cost|all] [--quick]

capacity : retrieval at T = 0 against the load alpha = K / N^(P-1) (Baldi & Venkatesh scaling), for
           P = 2 and P = 4 over several N. Each member draws its own K random patterns, starts at
           its first pattern and runs asynchronous zero-temperature sweeps until no neuron wants to
           flip (stop rule converged('unstable', 0.5)). Reported per (N, alpha): the fraction of
           members whose final overlap with the first pattern is >= 0.9, and the mean final overlap
           with its standard error. P = 2: the N -> infinity threshold is alpha_c = 0.138
           (Amit, Gutfreund & Sompolinsky 1985); finite N smooth and shift the drop. The crosstalk
           variance K (2P - 3)!! / N^(P-1) makes (2P - 3)!! alpha the comparable load (15 alpha at P = 4).
lowload  : K = 2 patterns, N = 400, P = 3 and 4: Glauber from the first pattern at temperatures on
           both sides of the spinodal; mean overlap after burn-in against m = tanh(beta m^(P-1)).
cost     : milliseconds per Glauber sweep against N and K, the NumPy reference operator and the
           numba kernel side by side (8 members): the O(N K) of a sweep with incrementally updated
           overlaps. The capacity and low-load runs use eq.run's default kernel="auto" (numba).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eqflow as eq  # noqa: E402
from eqflow.systems.dense_hopfield import observables, theory  # noqa: E402

from common import machine  # noqa: E402

CONVERGED = eq.stop.converged("unstable", 0.5)
THRESHOLD = 0.9  # a member "retrieves" when its final overlap with the first pattern is at least this


def final_overlap(neurons, patterns, order, members, seed):
    """Final overlaps with the first pattern (members,) and the sweeps each member took, at T = 0."""
    ds = eq.create("dense_hopfield", neurons=neurons, patterns=patterns, order=order, members=members, seed=seed)
    hist = eq.run(ds, "zero_temperature", steps=100, store=None, progress=False, stop=CONVERGED,
                  record={"unstable": 1})
    final = eq.final_state(hist)
    m = observables.overlap(spin=final.spin.values, patterns=ds.patterns.values)[:, 0]
    return m, hist.stopped_at.values, hist.stop_reason.values


def capacity(quick):
    grids = {2: ([100, 200, 400, 800] if not quick else [100, 200],
                 [0.06, 0.09, 0.11, 0.13, 0.15, 0.17, 0.20, 0.25]),
             4: ([12, 16, 24, 32, 40] if not quick else [12, 16],
                 [0.002, 0.004, 0.006, 0.008, 0.010, 0.013, 0.017, 0.025, 0.035])}
    members = 16 if quick else 48
    for order, (sizes, loads) in grids.items():
        print(f"\n## Capacity, P = {order}: fraction retrieving (final m_1 >= {THRESHOLD}) | mean final m_1 "
              f"+- SE, {members} members, start at pattern 1, T = 0")
        print(f"load alpha = K / N^{order - 1}; comparable Hopfield load (2P-3)!! alpha = "
              f"{theory.crosstalk_variance(1, order, 1):g} alpha" + ("; AGS alpha_c = 0.138" if order == 2 else ""))
        print("| alpha | " + " | ".join(f"N = {n}" for n in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for alpha in loads:
            cells = []
            for n in sizes:
                k = max(1, round(alpha * n ** (order - 1)))
                m, steps, reason = final_overlap(n, k, order, members, seed=1000 * order + n)
                done = (reason == "converged").mean()
                note = "" if done == 1 else f" ({done:.0%} conv.)"
                cells.append(f"{(m >= THRESHOLD).mean():.2f} / {m.mean():.3f}+-{m.std(ddof=1) / np.sqrt(len(m)):.3f}"
                             f" (K={k}){note}")
            print(f"| {alpha:g} | " + " | ".join(cells) + " |")


def lowload(quick):
    n, members, sweeps, burn = (400, 8, 300, 100) if not quick else (200, 4, 150, 50)
    print(f"\n## Low load: K = 2, N = {n}, Glauber from pattern 1, {members} members, {sweeps} sweeps "
          f"(burn-in {burn}); mean m_1 +- SE against m = tanh(beta m^(P-1)) (N -> infinity)")
    print("| P | beta | beta_sp, beta_t | measured m_1 | theory m |")
    print("|---|---|---|---|---|")
    for order in (3, 4):
        beta_sp, beta_t = theory.spinodal(order)[0], theory.transition(order)
        betas = [0.9 * beta_sp, 1.05 * beta_sp, 0.5 * (beta_sp + beta_t), 1.2 * beta_t, 2.0 * beta_t]
        ds = eq.create("dense_hopfield", neurons=n, patterns=2, order=order, temperature=[1 / b for b in betas],
                       members=members, seed=order)
        hist = eq.run(ds, "glauber", steps=sweeps, store=None, progress=False, record={"overlap": 1})
        per_member = hist.overlap.values[burn:, :, :, 0].mean(axis=0)  # (member, temperature)
        for j, beta in enumerate(betas):
            x = per_member[:, j]
            print(f"| {order} | {beta:.4f} | {beta_sp:.4f}, {beta_t:.4f} | {x.mean():.4f} +- "
                  f"{x.std(ddof=1) / np.sqrt(members):.4f} | {theory.retrieval_overlap(beta, order):.4f} |")


def _best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cost(quick):
    from eqflow.systems.dense_hopfield import kernels, operators

    members = 8
    print(f"\n## Cost of one Glauber sweep, P = 2, {members} members, T = 0.5 (NumPy reference vs numba kernel, "
          f"one thread, best of 3)")
    print("| N | K | reference ms | numba ms | ratio | numba ns / (neuron x pattern x member) |")
    print("|---|---|---|---|---|---|")
    sizes = [(100, 10), (100, 100), (400, 10), (400, 100), (400, 400), (1600, 200)]
    for n, k in (sizes if not quick else sizes[:2]):
        ds = eq.create("dense_hopfield", neurons=n, patterns=k, order=2, temperature=0.5, members=members)
        given = operators.prepare(patterns=ds.patterns.values, temperature=np.full((members,), 0.5), order=2,
                                  sizes={"neuron": n, "pattern": k})
        given.pop("cells")
        rng = np.random.default_rng(0)
        draws = {"sequence": np.argsort(rng.random((members, n)), axis=-1), "uniforms": rng.random((members, n))}
        spin = ds.spin.values
        kernels.glauber(spin=spin, **draws, table=given["table"], scale=given["scale"], power=2)  # compile / load
        slow = _best(lambda: operators.glauber(spin=spin, **draws, **given))
        fast = _best(lambda: kernels.glauber(spin=spin, **draws, table=given["table"], scale=given["scale"],
                                             power=2))
        print(f"| {n} | {k} | {1e3 * slow:.2f} | {1e3 * fast:.3f} | {slow / fast:.0f} | "
              f"{1e9 * fast / (n * k * members):.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=["capacity", "lowload", "cost", "all"])
    parser.add_argument("--quick", action="store_true", help="smaller grids (a smoke run)")
    args = parser.parse_args()
    print(f"# dense_hopfield benchmarks ({machine()})")
    start = time.perf_counter()
    for name, fn in (("capacity", capacity), ("lowload", lowload), ("cost", cost)):
        if args.what in (name, "all"):
            fn(args.quick)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
