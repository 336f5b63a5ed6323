"""Per-step overhead of eq.run on many small cells, against a bare NumPy loop, side by side.

    python benchmarks/bench_overhead.py [--members 1000] [--temperatures 10] [--size 8] [--steps 200] [--repeat 5]

The case of the contract issue: 8x8 Ising, 1,000 members x 10 temperatures (10,000 cells),
200 checkerboard Metropolis sweeps, energy and magnetization recorded every sweep. The bare
loop calls the same operator (eqflow.systems.ising.metropolis) with the same draws (Philox
words from eqflow.random.generate, keyed like eq.run's) and keeps the records in memory;
eq.run also writes them to Zarr with its checkpoint. Runs alternate (bare, eqflow, ...), and
the ratio of each pair is reported: median and range over the repeats.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow import random
from eqflow.dataset import parameter_arrays
from eqflow.systems import ising

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402


def bare_loop(system, steps):
    """The same sweeps and records by hand: operator, observables and generator, no store."""
    schema = ising.SYSTEM.schema
    params = parameter_arrays(system, schema)
    spin = system.spin.values
    sizes = {"y": system.sizes["y"], "x": system.sizes["x"]}
    tables = ising.metropolis_acceptance(**params, sizes=sizes)
    keys = random.cell_keys(int(system.attrs["eqflow_seed"]), system.member.values,
                            random.point_ids({k: v[0] for k, v in params.items()}, params["temperature"].shape[1:]))
    draw = random.bits("y", "x")
    energy = np.empty((steps + 1, *spin.shape[:-2]))
    magnetization = np.empty_like(energy)
    energy[0] = ising.energy(spin=spin, coupling=params["coupling"], field=params["field"])
    magnetization[0] = ising.magnetization(spin=spin)
    for step in range(steps):
        words = random.generate(draw, keys, step=step, slot=0, sizes=sizes)
        spin = ising.metropolis(spin=spin, words=words, **tables)["spin"]
        energy[step + 1] = ising.energy(spin=spin, coupling=params["coupling"], field=params["field"])
        magnetization[step + 1] = ising.magnetization(spin=spin)
    return energy, magnetization


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--temperatures", type=int, default=10)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    temperatures = np.linspace(1.5, 3.5, args.temperatures)
    system = eq.create("ising", size=args.size, temperature=temperatures, members=args.members, seed=1)
    tmp = Path(tempfile.mkdtemp())
    record = {"energy": 1, "magnetization": 1}
    print(f"machine: {machine()}")
    print(f"case: {args.size}x{args.size} Ising, {args.members} members x {args.temperatures} temperatures, "
          f"{args.steps} sweeps, energy + magnetization every sweep")
    reference, _ = bare_loop(system, 3)
    check = eq.run(system, "metropolis", steps=3, store=tmp / "check.zarr", record=record, progress=False)
    assert np.array_equal(check.energy.values, reference), "eq.run and the bare loop must give the same history"
    for label, chunks in (("one chunk", None), ("2 member chunks", {"member": args.members // 2})):
        ratios, bare_times, eq_times = [], [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            bare_loop(system, args.steps)
            bare_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            eq.run(system, "metropolis", steps=args.steps, store=tmp / f"run-{label}-{i}.zarr", record=record,
                   chunks=chunks,
                   progress=False)
            eq_times.append(time.perf_counter() - start)
            ratios.append(eq_times[-1] / bare_times[-1])
        print(f"  eq.run ({label}) / bare loop: median {statistics.median(ratios):.2f}x, range "
              f"{min(ratios):.2f}-{max(ratios):.2f}x over {args.repeat} pairs; bare median "
              f"{statistics.median(bare_times):.2f} s, eq.run median {statistics.median(eq_times):.2f} s")


if __name__ == "__main__":
    main()
