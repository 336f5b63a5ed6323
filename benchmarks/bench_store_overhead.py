"""Fixed and per-segment cost of the store, this code against another checkout, side by side.

    python benchmarks/bench_store_overhead.py --other ../eqflow-before [--rounds 3] [--runs 12]

Each round runs one process per checkout, alternating (this tree, the other, ...); each process
times ``eq.run`` of a 64x64 Ising lattice with the numba kernel after 3 warm-up runs:

- *new store*: 10 sweeps into a new local store (the fixed cost of a run: layout, one segment,
  commit, open);
- *overwrite*: the same, replacing the store;
- *100 segments*: 1,000 sweeps with ``segment=10`` (energy and magnetization every sweep, spins
  every 10): the per-segment cost of writes, commit manifest, fsync and marker.

Prints the median and range of each, per checkout, and the ratio of the medians.
``EQFLOW_FSYNC=0`` in the environment turns fsync off (to see its share).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, tempfile, time, os
import eqflow as eq
runs = int(sys.argv[1])
system = eq.create("ising", size=64, temperature=2.0, members=1, seed=1)
folder = tempfile.mkdtemp()
def once(case, i):
    path = os.path.join(folder, f"{case}-{i}.zarr") if case != "overwrite" else os.path.join(folder, "same.zarr")
    kw = dict(steps=10, record={"energy": 1, "magnetization": 1, "spin": 10})
    if case == "segments":
        kw = dict(steps=1000, segment=10, record={"energy": 1, "magnetization": 1, "spin": 10})
    start = time.perf_counter()
    eq.run(system, "metropolis", store=path, overwrite=case == "overwrite" and os.path.exists(path),
           progress=False, **kw)
    return time.perf_counter() - start
out = {}
for case in ("new", "overwrite", "segments"):
    for i in range(3):
        once(case, -1 - i)
    out[case] = [once(case, i) for i in range(runs if case != "segments" else max(3, runs // 4))]
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, help="another checkout of eqflow (e.g. a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    trees = {"this": str(Path(__file__).resolve().parents[1]), "other": str(Path(args.other).resolve())}
    times = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree}
            result = subprocess.run([sys.executable, "-c", CHILD, str(args.runs)], env=env, capture_output=True,
                                    text=True, check=True, cwd=tree)
            for case, values in json.loads(result.stdout.splitlines()[-1]).items():
                times[name].setdefault(case, []).append(statistics.median(values))
    print("| case | this (median of rounds, range) | other | this / other |")
    print("|---|---|---|---|")
    for case in times["this"]:
        a, b = times["this"][case], times["other"][case]
        print(f"| {case} | {statistics.median(a) * 1e3:.1f} ms ({min(a) * 1e3:.1f}-{max(a) * 1e3:.1f}) | "
              f"{statistics.median(b) * 1e3:.1f} ms ({min(b) * 1e3:.1f}-{max(b) * 1e3:.1f}) | "
              f"{statistics.median(a) / statistics.median(b):.2f} |")


if __name__ == "__main__":
    main()
