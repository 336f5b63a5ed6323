"""Behavioural alignment on networks (Xia, McAvoy & Su, arXiv:2506.00046; Ramazi, Riehl & Cao, PNAS 2016)
======================================================================================================

    python examples/alignment.py [--out alignment.png]

1. Exact equilibrium counts on cycles C_n (enumeration of all 2^n profiles) against the closed
   forms Lucas(n) + 2 cos(n pi/3) (coordinators) and Lucas(n) + 2 cos(2 n pi/3) (anti-coordinators).
2. Equilibrium time of asynchronous best response over a Watts-Strogatz rewiring sweep
   (N = 60, k = 4, 32 members, one graph per member) against the average shortest path length,
   with standard errors and a least-squares line.
3. Synchronous updates of a mixed population: converged, 2-cycles (``cycled``) and the rest.
   A PNG of part 2. About a minute on a 2-core CPU.
"""
import argparse
import tempfile
from pathlib import Path

import networkx as nx
import numpy as np

import eqflow as eq
from eqflow.systems.alignment import graph_of, theory


def counts():
    print(" n | coordinators  closed | anti  closed")
    for n in range(3, 15):
        c, a = (theory.count_equilibria(nx.cycle_graph(n), t) for t in (0, 1))
        print(f"{n:2d} | {c:12d} {theory.cycle_equilibria(n):7d} | {a:4d} {theory.cycle_equilibria(n, True):7d}")


def time_vs_path(store, out):
    betas = [0.0, 0.02, 0.05, 0.1, 0.3, 1.0]
    n = 60
    ds = eq.create("alignment", graph="watts_strogatz", nodes=n, degree=4, rewiring=betas, members=32, seed=1)
    h = eq.run(ds, "best_response", steps=3000, store=store, options={"picks_per_step": 6},
               stop=eq.stop.converged("unsatisfied", 0.5), record={"unsatisfied": 10}, overwrite=True,
               progress=False)
    sweeps = h.stopped_at.values * 6 / n  # time in sweeps (N picks)
    ok = h.stop_reason.values == "converged"
    lengths = np.array([[nx.average_shortest_path_length(g) if nx.is_connected(g := graph_of(ds, member=m, rewiring=b))
                         else np.nan for b in betas] for m in range(32)])
    print("\nWatts-Strogatz N = 60, k = 4: equilibrium time (sweeps) vs average path length L")
    print(" beta |     L |  T mean   s.e. | converged")
    mean_t, se_t, mean_l = [], [], []
    for j, b in enumerate(betas):
        t = sweeps[ok[:, j], j]
        mean_t.append(t.mean())
        se_t.append(t.std(ddof=1) / np.sqrt(t.size))
        mean_l.append(np.nanmean(lengths[:, j]))
        print(f"{b:5.2f} | {mean_l[-1]:5.2f} | {mean_t[-1]:7.3f} {se_t[-1]:6.3f} | {ok[:, j].mean():.0%}")
    slope, intercept = np.polyfit(mean_l, mean_t, 1)
    print(f"least squares: T = {intercept:.3f} {slope:+.4f} L (sweeps)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(mean_l, mean_t, yerr=se_t, fmt="o")
    x = np.linspace(min(mean_l), max(mean_l), 10)
    ax.plot(x, intercept + slope * x, "--", label=f"T = {intercept:.2f} {slope:+.3f} L")
    for b, lx, ty in zip(betas, mean_l, mean_t):
        ax.annotate(f"beta={b:g}", (lx, ty), fontsize=7)
    ax.set_xlabel("average shortest path length L")
    ax.set_ylabel("equilibrium time (sweeps)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"figure: {out}")


def synchronous(store):
    fractions = [0.0, 0.25, 0.5, 1.0]
    ds = eq.create("alignment", graph="karate", anti_fraction=fractions, members=32, seed=2)
    h = eq.run(ds, "synchronous", steps=200, store=store, stop=[eq.stop.converged("unsatisfied", 0.5),
                                                               eq.stop.cycled("action")],
               record={"unsatisfied": 200}, overwrite=True, progress=False)
    print("\nkarate club, synchronous best response, 32 members: outcome fractions")
    for j, f in enumerate(fractions):
        reason = h.stop_reason.values[:, j]
        print(f"anti_fraction {f:4.2f}: converged {np.mean(reason == 'converged'):4.0%}, "
              f"cycled {np.mean(reason == 'cycled'):4.0%}, max_steps {np.mean(reason == 'max_steps'):4.0%}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="alignment.png")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    counts()
    time_vs_path(tmp / "ws.zarr", args.out)
    synchronous(tmp / "sync.zarr")


if __name__ == "__main__":
    main()
