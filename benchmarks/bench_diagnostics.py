"""Benchmark eqflow's equilibration detection against pymbar 4.

Times ``eqflow.diagnostics.detect_equilibration`` on an ensemble of AR(1) series
(default 64 members x 20,000 steps, phi = 0.95, started 10 sd away from equilibrium)
against ``pymbar.timeseries.detect_equilibration_binary_search`` looped over members,
checks that t0 agrees per member, and prints the speed-up.  The exhaustive method is
also timed, and compared exactly with pymbar's O(T^2) ``detect_equilibration(fast=False)``
on a few short members.  pymbar's binary search needs statsmodels.

Run:  python benchmarks/bench_diagnostics.py [--members 64] [--steps 20000] [--repeats 3]

``--rule 2000 20000 100000`` instead times whole runs with and without the equilibrated stop rule,
side by side, ``--repeats`` times each (alternating), CPU and wall, with the load average, on two
examples: the README's Ising ensemble (32^2, T = 1.8, 2.269, 3.0, 64 members, Metropolis) and an
SCF ensemble (Yang-Gao-Meza nonlinear problem, alpha = 0.5, 1, 2, 16 rotated guesses, damping;
up to 20,000 steps: an SCF step costs ~20x an Ising one here). Where ``--exhaustive`` allows, the
stop steps of the exhaustive rule (t0 re-detected over the whole history at every check) are
printed beside the rule's (both wait for each check, ``overlap=False``, the default; the rule's
stops match within one check, where its screen passes late); ``--overlap`` also times the rule
with ``overlap=True`` (checks while the next segment runs, stops one check later);
``--one-thread 20000`` also times the rule with its t0 detection on one thread; ``--store dir`` writes
local directory stores (the README's setting) instead of in-memory ones; ``--busy N`` keeps N other
processes burning a core each meanwhile (a busy machine); ``--cluster`` runs
everything on a dask.distributed LocalCluster of one single-threaded worker (directory stores), so
that the client, which checks the rule, has a core the worker does not use (CPU figures are then
the client's alone).
"""

import argparse
import logging
import os
import platform
import sys
import time
import warnings

import numpy as np
import xarray as xr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from eqflow import diagnostics  # noqa: E402


def ar1_ensemble(members, steps, phi, seed, start_sd=10.0):
    """AR(1) with unit innovations, every member started ``start_sd`` stationary sd high."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((members, steps))
    x = np.empty_like(noise)
    x[:, 0] = start_sd / np.sqrt(1 - phi**2)
    for t in range(1, steps):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return xr.DataArray(x, dims=("member", "step"), name="energy")


def best_time(func, repeats):
    """Smallest wall time of ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), result


def print_machine():
    import pymbar
    import scipy

    print(f"machine : {platform.platform()} | {platform.machine()} | {platform.processor() or '?'}")
    print(f"cpus    : os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}")
    print(f"python  : {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"xarray {xr.__version__}, pymbar {pymbar.__version__}")


def _examples():
    """name: (system, operator, rule variable, record, chunks, longest length timed)."""
    import eqflow as eq

    ising = eq.create("ising", size=32, temperature=[1.8, 2.269, 3.0], members=64, seed=1)
    scf = eq.create("scf", problem="nonlinear", alpha=[0.5, 1.0, 2.0], members=16, rotation=1.0, seed=1)
    return {"ising": (ising, "metropolis", "energy", {"energy": 1, "magnetization": 1}, {"member": 16}, None),
            "scf": (scf, "damping", "energy", {"energy": 1, "residual": 1}, None, 20000)}


RULE_SECONDS = [0.0]  # wall time spent inside the rule's evaluation, summed over checks
CLUSTER = {}  # {"client": the --cluster Client, "folder": a folder for directory stores (--cluster, --store dir)}


def _timed_run(system, operator, steps, record, chunks, stop, **options):
    """(wall s, CPU s of the process, s inside the rule, stop step per point, load average) of one in-memory run."""
    import eqflow as eq

    RULE_SECONDS[0] = 0.0
    load = os.getloadavg()[0]
    store, client = None, CLUSTER.get("client")
    if client is not None or CLUSTER.get("folder"):  # a directory store (on a cluster: the workers write it)
        CLUSTER["runs"] = CLUSTER.get("runs", 0) + 1
        store = os.path.join(CLUSTER["folder"], f"run-{CLUSTER['runs']}.zarr")
    wall, cpu = time.perf_counter(), time.process_time()
    hist = eq.run(system, operator, steps=steps, store=store, record=record, chunks=chunks, stop=stop, progress=False,
                  client=client, **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, RULE_SECONDS[0], hist.stopped_at.max("member").values.ravel().tolist(), load


def _timed(monitor):
    class Timed(monitor):
        def evaluate(self, *args):
            start = time.perf_counter()
            try:
                return super().evaluate(*args)
            finally:
                RULE_SECONDS[0] += time.perf_counter() - start
    return Timed


def _stat(values):
    """'median (spread %)', spread = (max - min) / median."""
    med = float(np.median(values))
    return f"{med:6.1f} ({100 * (max(values) - min(values)) / med:3.0f}%)"


def rule_costs(lengths, exhaustive_up_to, repeats, names, one_thread, overlap=False):
    """Whole runs with and without the equilibrated rule, side by side (see the module docstring)."""
    import eqflow as eq
    from eqflow import stop as stop_rules

    class Exhaustive(stop_rules.Monitor):  # the rule before the screen: full re-detection at every check
        def evaluate(self, outcomes, history, steps, now):
            stop_rules.evaluate_equilibrated(self.rule, outcomes, history, steps, now, self.dims)

    linear = stop_rules.Monitor
    print(f"{repeats} repeats, plain and rule alternating; seconds: median (spread = (max - min) / median); "
          "ratios: rule / plain medians; 'in rule': wall seconds inside the rule's checks")
    print("| system | steps | plain wall | plain CPU | rule wall | rule CPU | in rule | wall ratio | CPU ratio | "
          "stop step per point: rule ; exhaustive | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    examples = _examples()
    for name in names:
        system, operator, var, record, chunks, longest = examples[name]
        _timed_run(system, operator, 20, record, chunks, None)  # warm-up (compilation)
        for steps in lengths:
            if longest is not None and steps > longest:
                print(f"| {name} | {steps} | not run (see --help) | | | | | | | | |", flush=True)
                continue
            variants = [("rule", eq.stop.equilibrated(var), 0)]
            if overlap:
                variants.append(("rule, overlap=True", eq.stop.equilibrated(var, overlap=True), 0))
            if one_thread and steps in one_thread:
                variants.append(("rule, t0 detection on 1 thread", eq.stop.equilibrated(var), 1))
            stop_rules.Monitor = _timed(linear)
            threads = stop_rules.DETECT_THREADS
            try:
                plain, runs = [], {label: [] for label, _, _ in variants}
                for r in range(repeats):
                    order = [None] + variants if r % 2 == 0 else variants + [None]
                    for variant in order:
                        if variant is None:
                            plain.append(_timed_run(system, operator, steps, record, chunks, None))
                            continue
                        label, rule, n_threads = variant
                        stop_rules.DETECT_THREADS = n_threads or threads
                        runs[label].append(_timed_run(system, operator, steps, record, chunks, rule))
                        stop_rules.DETECT_THREADS = threads
                full = "-"
                if steps <= exhaustive_up_to:
                    stop_rules.Monitor = Exhaustive
                    full = _timed_run(system, operator, steps, record, chunks,
                                      eq.stop.equilibrated(var, overlap=False))[3]
            finally:
                stop_rules.Monitor, stop_rules.DETECT_THREADS = linear, threads
            loads = [run[4] for run in plain + [x for v in runs.values() for x in v]]
            for label, rows in runs.items():
                pw, pc = np.median([x[0] for x in plain]), np.median([x[1] for x in plain])
                rw, rc = np.median([x[0] for x in rows]), np.median([x[1] for x in rows])
                stops = sorted({str(x[3]) for x in rows})
                print(f"| {name} ({label}) | {steps} | {_stat([x[0] for x in plain])} | "
                      f"{_stat([x[1] for x in plain])} | "
                      f"{_stat([x[0] for x in rows])} | {_stat([x[1] for x in rows])} | "
                      f"{np.median([x[2] for x in rows]):5.1f} | {rw / pw:4.2f} | {rc / pc:4.2f} | "
                      f"{' or '.join(stops)} ; {full} | {min(loads):.1f}-{max(loads):.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", type=int, nargs="*", help="time runs of these lengths with and without the rule")
    parser.add_argument("--exhaustive", type=int, default=20000,
                        help="longest run whose stop steps are also found with the exhaustive rule")
    parser.add_argument("--systems", nargs="*", default=["ising", "scf"], help="examples for --rule")
    parser.add_argument("--one-thread", type=int, nargs="*", default=[],
                        help="lengths also timed with the t0 detection on one thread")
    parser.add_argument("--overlap", action="store_true", help="also time the rule with overlap=True")
    parser.add_argument("--cluster", action="store_true",
                        help="run on a dask.distributed LocalCluster of 1 worker process with 1 thread, writing "
                             "directory stores: the client's other core is free for the rule's checks")
    parser.add_argument("--store", choices=["memory", "dir"], default="memory",
                        help="where --rule runs write: in memory, or a local directory store (the README's)")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes that each burn a core while --rule runs (a machine busy with other work)")
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--phi", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    if args.rule:
        print(f"machine : {platform.platform()}, usable cpus {len(os.sched_getaffinity(0))}")
        print(f"load average before: {os.getloadavg()}")
        if args.cluster:
            import tempfile

            from dask.distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
            CLUSTER.update(client=Client(cluster), folder=tempfile.mkdtemp(prefix="bench-rule-"))
            print("on a LocalCluster: 1 worker process, 1 thread; directory stores; CPU is the client's only")
        elif args.store == "dir":
            import tempfile

            CLUSTER.update(folder=tempfile.mkdtemp(prefix="bench-rule-"))
            print("directory stores (each run its own, in a temporary folder)")
        from common import busy

        procs = busy(args.busy, 3600.0)
        if procs:
            print(f"{len(procs)} busy processes, each burning a core (pure-Python loops)")
        try:
            rule_costs(args.rule, args.exhaustive, args.repeats, args.systems, set(args.one_thread), args.overlap)
        finally:
            for proc in procs:
                proc.kill()
        return 0
    logging.getLogger("pymbar").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    from pymbar import timeseries

    print_machine()
    da = ar1_ensemble(args.members, args.steps, args.phi, args.seed)
    print(f"data    : {args.members} members x {args.steps} steps, AR(1) phi={args.phi}, "
          f"best of {args.repeats} runs\n")
    diagnostics.detect_equilibration(da[:2, :1000], method="binary")  # warm-up (FFT plans)

    t_binary, ours = best_time(lambda: diagnostics.detect_equilibration(da, method="binary"), args.repeats)
    t_exhaustive, exhaustive = best_time(lambda: diagnostics.detect_equilibration(da), args.repeats)
    print(f"eqflow  binary     : {t_binary:8.3f} s")
    print(f"eqflow  exhaustive : {t_exhaustive:8.3f} s")
    try:
        t_pymbar, reference = best_time(
            lambda: np.array([timeseries.detect_equilibration_binary_search(row) for row in da.values]),
            args.repeats)
    except ImportError as error:
        print(f"\npymbar's binary search could not run ({error}); install statsmodels to compare.")
        return 2
    print(f"pymbar  binary     : {t_pymbar:8.3f} s   (detect_equilibration_binary_search, looped)\n")

    same_t0 = ours.t0.values == reference[:, 0].astype(int)
    g_error = np.max(np.abs(ours.g.values / reference[:, 1] - 1))
    print(f"binary t0 agrees with pymbar for {same_t0.sum()}/{same_t0.size} members; "
          f"max relative g difference {g_error:.1e}")
    print(f"speed-up binary     vs pymbar binary: {t_pymbar / t_binary:6.1f}x")
    print(f"speed-up exhaustive vs pymbar binary: {t_pymbar / t_exhaustive:6.1f}x")
    global_ok = exhaustive.n_eff.values >= ours.n_eff.values * (1 - 1e-6)
    print(f"exhaustive (global) t0 equals the binary (local) t0 for "
          f"{(exhaustive.t0.values == ours.t0.values).sum()}/{same_t0.size} members; "
          f"its N_eff is >= the binary one for {global_ok.sum()}/{same_t0.size}")
    print(f"t0 quartiles: binary {np.percentile(ours.t0, [25, 50, 75])}, "
          f"exhaustive {np.percentile(exhaustive.t0, [25, 50, 75])}\n")

    short = da[:4, :2000]  # pymbar's exhaustive loop is O(T^2): keep it short
    t_short_pymbar, short_ref = best_time(
        lambda: np.array([timeseries.detect_equilibration(row, fast=False) for row in short.values]), 1)
    t_short_ours, short_ours = best_time(lambda: diagnostics.detect_equilibration(short), 1)
    exact = ((short_ours.t0.values == short_ref[:, 0]) & (short_ours.g.values == short_ref[:, 1])
             & (short_ours.n_eff.values == short_ref[:, 2]))
    print(f"exhaustive, 4 x 2000 steps: pymbar fast=False {t_short_pymbar:.2f} s, eqflow "
          f"{t_short_ours:.3f} s ({t_short_pymbar / t_short_ours:.0f}x); identical (t0, g, N_eff) "
          f"for {exact.sum()}/{exact.size} members")
    ok = same_t0.all() and global_ok.all() and exact.all()
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
