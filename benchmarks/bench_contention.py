"""numba's threading under contention: eqflow and the bare NumPy loop side by side while 0, 1, 2
and 4 busy processes compete for the cores.

    python benchmarks/bench_contention.py [--busy 0 1 2 4] [--repeats 3] [--configs default one omp-active ...]

Each busy process is a pure-Python loop that burns one core for at most ``--bound`` seconds
and is killed when its level is done. At each level every threading configuration runs in a
fresh child process (numba's threading layer and OpenMP's wait policy are fixed when its
thread pool starts): one child process per configuration, started once and asked for one
round of timings at each level in turn (the configurations in a rotating order, never two at
once), each round timing every case ``--repeats`` times:

a. one 1024^2 lattice, Metropolis at T = 2.5, through eq.run (in-memory store; final spins and
   the energy every 10 sweeps recorded);
b. the many-small-cells ensemble: 8x8 lattices, 1,000 members x 10 temperatures (1.5-3.3), 200
   sweeps (the bare loop 20);
c. case b through dask's threaded scheduler with two threads (two member chunks, one task each);
bare: the vectorised NumPy checkerboard loop of ``bench_ising.py`` (``bare_sweeps``, one thread)
   on the lattices of a and b.

Configurations (environment variables of the child; eqflow leaves any the user set alone):
default    : none set: what eqflow chooses (eqflow.backends: OMP_WAIT_POLICY=PASSIVE, numba's
             default layer, a lone task on the cores free as it starts), printed as resolved;
omp-spin   : GOMP_SPINCOUNT=300000, numba's OpenMP layer with libgomp's own default spinning
             (300,000 spins before sleeping: what eqflow ran with before it set a wait policy);
omp-passive: OMP_WAIT_POLICY=PASSIVE, NUMBA_THREADING_LAYER=omp;
workqueue  : NUMBA_THREADING_LAYER=workqueue (numba's own pool: condition variables);
tbb        : NUMBA_THREADING_LAYER=tbb (skipped where TBB is not installed);
one        : NUMBA_NUM_THREADS=1 (eqflow's own single-thread rate: the floor to stay above);
row-loop   : default, but small cells on the full-row loop (what ran before the cell-major loop).
All but default and one also set NUMBA_NUM_THREADS to every CPU (the user's count, taken as it
is: the layer and wait policy alone, without eqflow's cap at the free cores).
Rates are spin flips per ns (attempted; one sweep = one attempt per site); the table gives the
median of the repeats and their range, the load average before each level, and the ratios
eqflow / bare and eqflow / one thread of the medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

CPUS = str(len(os.sched_getaffinity(0)))
CONFIGS = {  # NUMBA_NUM_THREADS = every CPU in the others: the layer and wait policy alone, no thread cap
    "default": {},
    "omp-spin": {"GOMP_SPINCOUNT": "300000", "NUMBA_THREADING_LAYER": "omp", "NUMBA_NUM_THREADS": CPUS},
    "omp-passive": {"OMP_WAIT_POLICY": "PASSIVE", "NUMBA_THREADING_LAYER": "omp", "NUMBA_NUM_THREADS": CPUS},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": CPUS},
    "tbb": {"NUMBA_THREADING_LAYER": "tbb", "NUMBA_NUM_THREADS": CPUS},
    "one": {"NUMBA_NUM_THREADS": "1"},
    "row-loop": {"BENCH_ROW_LOOP": "1"},  # default, but small cells on the full-row loop (before the cell-major one)
}
CLEARED = ("NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
           "OMP_NUM_THREADS")
CASES = {"a": (1024, 1, 1, 30, 3), "b": (8, 1000, 10, 200, 20), "c": (8, 1000, 10, 200, 20)}  # L, members, temps,
# eq.run sweeps, bare sweeps (b and c: the 200 sweeps of the many-small-cells case; until 2026-12-07 20,
# so that eq.run's fixed cost per call, ~0.2-0.35 s, was most of what b measured)
def child(repeats: int, bare: bool) -> None:
    """Serve the parent: for each line "go" on stdin, time every case ``repeats`` times in this process
    and print {case: [flips per ns, ...], "info": ...} as one JSON line (one process per configuration,
    its pool started once, measured at every level)."""
    import dask
    from bench_ising import bare_sweeps

    import eqflow as eq

    if os.environ.get("BENCH_ROW_LOOP"):
        from eqflow.systems.ising import kernels

        kernels.CELL_MAJOR_CELLS = 2**62
    cases = {}
    for case, (size, members, temps, steps, bare_steps) in CASES.items():
        temperature = 2.5 if temps == 1 else np.linspace(1.5, 3.3, temps).tolist()
        system = eq.create("ising", size=size, temperature=temperature, members=members, seed=1)
        chunks = {"member": members // 2} if case == "c" else None
        options = {"scheduler": "threads", "num_workers": 2} if case == "c" else {"scheduler": "sync"}

        def run(n, system=system, chunks=chunks, options=options):
            with dask.config.set(**options):
                return eq.run(system, "metropolis", steps=n, store=None, progress=False, chunks=chunks,
                              record={"spin": n, "energy": 10})

        if bare:
            spin = system.spin.values.reshape(-1, size, size)
            cases[case] = (lambda spin=spin, n=bare_steps: bare_sweeps(spin, n, 2.5), system.spin.size * bare_steps)
        else:
            assert run(2).attrs["eqflow_kernel"] == "numba"  # compile (or load the cache) outside the timings
            cases[case] = (lambda run=run, n=steps: run(n), system.spin.size * steps)
    if bare:
        del cases["c"]  # the bare loop has no dask variant: c compares with b's bare rate
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        out = {}
        for case, (fn, flips) in cases.items():
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                rates.append(flips / (time.perf_counter() - start) / 1e9)
            out[case] = rates
        if not bare:
            import numba

            out["info"] = {"layer": numba.threading_layer(), "threads": numba.get_num_threads(),
                           **{k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}}
        print(json.dumps(out), flush=True)


def start_child(env_extra: dict, repeats: int, bare: bool = False):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(env_extra)
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(repeats), *(["--bare"] if bare else [])],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc


def ask(proc) -> dict | None:
    """One round of timings from a child (None if it died, e.g. a threading layer not installed)."""
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        return json.loads(line) if line else None
    except (BrokenPipeError, json.JSONDecodeError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=["default", "omp-spin", "omp-passive", "one"],
                        choices=sorted(CONFIGS))
    parser.add_argument("--bound", type=float, default=600.0, help="seconds a busy process may live at most")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.bare)
        return
    from common import busy, machine

    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command: python benchmarks/bench_contention.py --busy {' '.join(map(str, args.busy))} --repeats "
          f"{args.repeats} --configs {' '.join(args.configs)}")
    print("cases: a = 1 x 1024^2 (eq.run), b = 1,000 x 10 x 8^2 (eq.run), c = b on dask threads=2; flips/ns, "
          "median (min-max) of the repeats", flush=True)
    children = {"bare": start_child({}, args.repeats, bare=True)}
    children.update({name: start_child(CONFIGS[name], args.repeats) for name in args.configs})
    for name, proc in list(children.items()):  # one at a time, so that loading does not overlap the timings
        if proc.stdout.readline().strip() != "ready":
            print(f"  {name}: not available here (the child failed to start)", flush=True)
            children.pop(name)
    results = {}
    try:
        for level, count in enumerate(args.busy):
            load = os.getloadavg()[0]
            procs = busy(count, args.bound)
            try:
                time.sleep(1.0 if count else 0.0)
                names = [n for n in args.configs if n in children]
                order = names[level % len(names):] + names[:level % len(names)]
                for name in [*(["bare"] if "bare" in children else []), *order]:
                    found = ask(children[name])
                    if found is None:
                        print(f"  busy {count}: {name} failed", flush=True)
                        continue
                    results[count, name] = found
                    print(f"  busy {count} (load before {load:.1f}) {name:10s} " + " | ".join(
                        f"{c} {statistics.median(r):.4f} ({min(r):.4f}-{max(r):.4f})" for c, r in found.items()
                        if c != "info") + (f"  [{found['info']}]" if "info" in found else ""), flush=True)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    finally:
        for proc in children.values():
            proc.stdin.close()
            proc.wait()
    table(results, args)


def table(results: dict, args) -> None:
    med = {key: {c: statistics.median(r) for c, r in v.items() if c != "info"} for key, v in results.items()}
    print("\n| busy | config | a: 1 x 1024² | b: 10,000 x 8² | c: b on 2 dask threads | a / bare | b / bare | "
          "a / one | b / one | c / one |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for count in args.busy:
        for name in ["bare", *args.configs]:
            if (count, name) not in results:
                continue
            r, m = results[count, name], med[count, name]
            cells = [f"{m[c]:.4f} ({min(r[c]):.4f}-{max(r[c]):.4f})" if c in r else "" for c in "abc"]
            ratios = []
            for base, cases in (("bare", "ab"), ("one", "abc")):
                b = med.get((count, base), {})
                ratios += [f"{m[c] / b[c]:.2f}x" if name not in ("bare", base) and c in b and c in m else ""
                           for c in cases]
            print(f"| {count} | {name} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
