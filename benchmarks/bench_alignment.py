"""Alignment benchmarks: the questions of Xia, McAvoy & Su (arXiv:2506.00046) as eqflow workflows.

    python benchmarks/bench_alignment.py [equilibria|path|resilience|mixed|scale|all] [--quick]

equilibria : exact equilibrium counts (enumeration of all 2^N profiles) of the cycle C_16 as it
             is rewired edge by edge (one endpoint of a random edge moved to a random non-neighbour,
             as in Watts-Strogatz), mean and range over 8 rewiring sequences; coordinators and
             anti-coordinators, tau = 1/2, tie keep.
path       : equilibrium time (asynchronous best response, in sweeps = N picks) against the average
             shortest path length L (networkx), over a Watts-Strogatz rewiring sweep (N = 100, k = 4,
             one graph per member) and the four empirical networks; mean and standard error over
             members; least-squares fits T = a + b L and log T = a + b log L over the WS points.
resilience : from each member's equilibrium x* (WS, N = 100, k = 4, beta = 0.1), flip k random nodes
             and run best response again. Resilience(k) = the fraction of members that come back to
             exactly x*; the re-equilibration time is the time (sweeps) to reach any equilibrium.
mixed      : anti_fraction sweep: asynchronous equilibrium time and converged fraction, and the
             synchronous outcome fractions (converged / cycled / max_steps).
scale      : updates per second, 1,000 members on a 1,000-node Watts-Strogatz graph (k = 10),
             eq.run (NumPy, torch) and the bare operator vs a plain NumPy loop over members and picks.
"""
import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eqflow as eq  # noqa: E402
from eqflow.systems.alignment import graph_of, perturb, theory  # noqa: E402

from common import machine  # noqa: E402

CONVERGED = eq.stop.converged("unsatisfied", 0.5)
ACTIVATION = {"activation": "uniform"}  # --activation unsatisfied: picks among the nodes that want to switch
TMP = Path(tempfile.mkdtemp())


def rewire_once(g, rng):
    """Move one endpoint of a uniformly random edge to a uniformly random non-neighbour (edge count kept)."""
    edges = list(g.edges())
    while True:
        u, v = edges[rng.integers(len(edges))]
        if rng.random() < 0.5:
            u, v = v, u
        choices = [w for w in g.nodes() if w != u and not g.has_edge(u, w)]
        if choices:
            g.remove_edge(u, v)
            g.add_edge(u, choices[rng.integers(len(choices))])
            return g


def equilibria(quick=False):
    n, sequences, steps = (12, 3, 6) if quick else (16, 8, 10)
    out = {}
    for k in (2, 4):
        print(f"equilibria: ring lattice N = {n}, k = {k} rewired edge by edge ({sequences} sequences), exact counts "
              f"(tau = 1/2, tie keep)")
        print(f"{'rewired':>7} | {'coordinators: mean':>18} {'min':>5} {'max':>5} | {'anti: mean':>10} {'min':>5} "
              f"{'max':>5}")
        counts = np.zeros((sequences, steps + 1, 2), dtype=np.int64)
        start = time.perf_counter()
        for s in range(sequences):
            rng = np.random.default_rng(s)
            g = nx.watts_strogatz_graph(n, k, 0.0)
            for r in range(steps + 1):
                if r:
                    rewire_once(g, rng)
                counts[s, r] = [theory.count_equilibria(g, t) for t in (0, 1)]
        for r in range(steps + 1):
            c, a = counts[:, r, 0], counts[:, r, 1]
            print(f"{r:7d} | {c.mean():18.1f} {c.min():5d} {c.max():5d} | {a.mean():10.1f} {a.min():5d} {a.max():5d}")
        closed = f"closed forms {theory.cycle_equilibria(n)} and {theory.cycle_equilibria(n, True)}; " if k == 2 else ""
        print(f"  ({closed}{counts.size} enumerations of 2^{n} profiles in {time.perf_counter() - start:.1f} s)\n")
        out[k] = counts
    return out


def equilibrium_times(ds, store, picks, steps, **kw):
    """(history, times in sweeps: member x point, NaN where not converged)."""
    options = {"picks_per_step": picks, **ACTIVATION}
    h = eq.run(ds, "best_response", steps=steps, store=store, stop=CONVERGED, options=options,
               record={"unsatisfied": steps}, overwrite=True, progress=False, **kw)
    start = ds.attrs["eqflow_step"]
    t = (h.stopped_at.values - start) * picks / ds.sizes["node"]
    return h, np.where(h.stop_reason.values == "converged", t, np.nan)


def path_lengths(ds):
    """Average shortest path length of each member's graph (largest component when disconnected)."""
    lead = [d for d in ds.neighbors.dims[:-2]]
    out = np.full(tuple(ds.sizes[d] for d in lead), np.nan)
    for index in np.ndindex(out.shape):
        g = graph_of(ds, **{d: ds[d].values[i] for d, i in zip(lead, index)})
        g = g.subgraph(max(nx.connected_components(g), key=len))
        out[index] = nx.average_shortest_path_length(g)
    return out


def fit(x, y):
    """Least-squares (a, b) of y = a + b x and its R^2."""
    b, a = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - a - b * x) ** 2) / np.sum((y - y.mean()) ** 2)
    return a, b, r2


def path(quick=False):
    n, members = (60, 16) if quick else (100, 64)
    betas = [0.0, 0.01, 0.03, 0.1, 0.3, 1.0]
    print(f"\npath: equilibrium time (sweeps of N picks) vs average path length L, {members} members per point, "
          f"activation {ACTIVATION['activation']}")
    rows = []
    for anti in (0.0, 1.0):
        ds = eq.create("alignment", graph="watts_strogatz", nodes=n, degree=4, rewiring=betas, anti_fraction=anti,
                       members=members, seed=1)
        picks = 1 if ACTIVATION["activation"] == "unsatisfied" else n // 10  # every pick a flip: resolve each
        _, t = equilibrium_times(ds, TMP / "ws.zarr", picks=picks, steps=200_000 // picks)
        lengths = path_lengths(ds)
        for j, beta in enumerate(betas):
            rows.append((("coordinators", "anti")[int(anti)], f"WS beta={beta:g}", lengths[:, j].mean(), t[:, j]))
        for name in ("florentine", "davis", "karate", "les_miserables"):
            ds = eq.create("alignment", graph=name, anti_fraction=anti, members=members, seed=1)
            _, t = equilibrium_times(ds, TMP / "emp.zarr", picks=1, steps=200 * ds.sizes["node"])
            rows.append((("coordinators", "anti")[int(anti)], name, path_lengths(ds).item(), t.reshape(-1)))
    print(f"{'population':>12} {'network':>16} {'L':>6} | {'T mean':>7} {'s.e.':>6} {'conv.':>6}")
    for who, name, length, t in rows:
        ok = t[np.isfinite(t)]
        print(f"{who:>12} {name:>16} {length:6.2f} | {ok.mean():7.3f} {ok.std(ddof=1) / math.sqrt(ok.size):6.3f} "
              f"{ok.size / t.size:6.0%}")
    for who in ("coordinators", "anti"):
        ws = [(length, np.nanmean(t)) for w, name, length, t in rows if w == who and name.startswith("WS")]
        x, y = np.array(ws).T
        a, b, r2 = fit(x, y)
        la, lb, lr2 = fit(np.log(x), np.log(y))
        print(f"  {who} on WS: T = {a:.3f} + {b:.4f} L (R^2 {r2:.3f});  T ~ {math.exp(la):.3f} L^{lb:.3f} "
              f"(R^2 {lr2:.3f})")
    return rows


def resilience(quick=False):
    n, members = (60, 16) if quick else (100, 64)
    flips = [1, 2, 5, 10, 20, 40] if not quick else [1, 5, 20]
    ds = eq.create("alignment", graph="watts_strogatz", nodes=n, degree=4, rewiring=0.1, members=members, seed=2)
    h, _ = equilibrium_times(ds, TMP / "res0.zarr", picks=n // 10, steps=20000)
    start = eq.final_state(h)
    assert (h.stop_reason == "converged").all()
    print(f"\nresilience: WS N={n} k=4 beta=0.1 coordinators, {members} members, from each member's equilibrium x*")
    print(f"{'k':>4} | {'back to x*':>10} {'s.e.':>6} | {'re-equilibration (sweeps)':>26} {'s.e.':>6}")
    out = []
    for k in flips:
        pert = perturb(start, k, seed=k)
        h2, t = equilibrium_times(pert, TMP / "res.zarr", picks=1, steps=100 * n)
        back = (eq.final_state(h2).action == start.action).all("node").values & np.isfinite(t[:, ]).reshape(-1)
        frac = back.mean()
        print(f"{k:4d} | {frac:10.3f} {math.sqrt(frac * (1 - frac) / members):6.3f} | {np.nanmean(t):26.3f} "
              f"{np.nanstd(t, ddof=1) / math.sqrt(np.isfinite(t).sum()):6.3f}")
        out.append((k, frac, np.nanmean(t)))
    return out


def mixed(quick=False):
    n, members = (60, 16) if quick else (100, 64)
    fractions = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]
    ds = eq.create("alignment", graph="watts_strogatz", nodes=n, degree=4, rewiring=0.1, anti_fraction=fractions,
                   members=members, seed=3)
    _, t = equilibrium_times(ds, TMP / "mix.zarr", picks=n // 10, steps=5000)
    rules = [CONVERGED, eq.stop.cycled("action", period=16)]
    hs = eq.run(ds, "synchronous", steps=500, store=TMP / "sync.zarr", stop=rules,
                record={"unsatisfied": 500}, overwrite=True, progress=False)
    reason = hs.stop_reason.values
    print(f"\nmixed populations: WS N={n} k=4 beta=0.1, {members} members; asynchronous budget 500 sweeps, "
          f"synchronous 500 steps (cycles of period <= 16 detected)")
    print(f"{'anti_fraction':>13} | {'async T':>8} {'s.e.':>6} {'conv.':>6} | {'sync conv.':>10} {'cycled':>7} "
          f"{'max_steps':>9}")
    for j, f in enumerate(fractions):
        ok = t[:, j][np.isfinite(t[:, j])]
        se = ok.std(ddof=1) / math.sqrt(ok.size) if ok.size > 1 else float("nan")
        print(f"{f:13.1f} | {ok.mean():8.3f} {se:6.3f} {ok.size / members:6.0%} | "
              f"{(reason[:, j] == 'converged').mean():10.0%} {(reason[:, j] == 'cycled').mean():7.0%} "
              f"{(reason[:, j] == 'max_steps').mean():9.0%}")


def plain_loop(action, neighbors, degree, types, picks):
    """Asynchronous best response, one member and one pick at a time (tau = 1/2, tie keep)."""
    action = action.copy()
    for m in range(action.shape[0]):
        a = action[m]
        for p in picks[m]:
            n_a = a[neighbors[p]].sum()
            d = degree[p]
            if 2 * n_a != d:
                a[p] = (2 * n_a > d) != types[m, p]
    return action


def scale(quick=False):
    members, n, sweeps = (200, 1000, 2) if quick else (1000, 1000, 3)
    g = nx.watts_strogatz_graph(n, 10, 0.1, seed=1)
    ds = eq.create("alignment", graph=g, members=members, seed=1)
    print(f"\nscale: {members} members on a {n}-node WS graph (k = 10), best response, one sweep (N picks) per step")
    results = {}
    for backend in ("numpy", "torch"):
        t0 = time.perf_counter()
        eq.run(ds, "best_response", steps=sweeps, store=TMP / "scale.zarr", options={"picks_per_step": n},
               record={"unsatisfied": 1}, backend=backend, overwrite=True, progress=False)
        results[f"eq.run {backend}"] = members * n * sweeps / (time.perf_counter() - t0)
    # the bare operator with the same inputs (no store, no observables)
    from eqflow.dataset import constant_arrays, parameter_arrays
    from eqflow.systems.alignment import operators
    schema = eq.get_system("alignment").schema
    c, p = constant_arrays(ds, schema), parameter_arrays(ds, schema)
    tables = operators.prepare(neighbors=c["neighbors"], degree=c["degree"], type=c["type"],
                               threshold=p["threshold"], sizes={"node": n})
    rng = np.random.default_rng(0)
    picks = rng.integers(0, n, (members, n))
    t0 = time.perf_counter()
    bare = operators.best_response(action=ds.action.values, picks=picks, coins=np.zeros_like(picks), tie="keep",
                                   picks_per_step=n, **{k: tables[k] for k in (
                                       "table", "cells", "low", "high", "anti", "graph_base", "node_base",
                                       "ext_base")})
    results["bare operator numpy"] = members * n / (time.perf_counter() - t0)
    few = 50 if not quick else 20
    nbrs = [np.array(sorted(g.neighbors(i))) for i in range(n)]
    deg = np.array([g.degree(i) for i in range(n)])
    t0 = time.perf_counter()
    plain = plain_loop(ds.action.values[:few], nbrs, deg, ds.type.values[:few], picks[:few])
    results["plain NumPy loop"] = few * n / (time.perf_counter() - t0)
    assert (plain == bare["action"][:few]).all()  # the same updates
    base = results["plain NumPy loop"]
    for name, rate in results.items():
        print(f"  {name:>20}: {rate / 1e6:7.3f} M updates/s  ({rate / base:6.1f}x the plain loop)")
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", default="all",
                        choices=["equilibria", "path", "resilience", "mixed", "scale", "all"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--activation", default="uniform", choices=["uniform", "unsatisfied"],
                        help="best_response activation (path, resilience, mixed)")
    args = parser.parse_args()
    ACTIVATION["activation"] = args.activation
    print(machine())
    for name in ("equilibria", "path", "resilience", "mixed", "scale"):
        if args.what in (name, "all"):
            globals()[name](args.quick)


if __name__ == "__main__":
    main()
