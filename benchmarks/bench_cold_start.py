"""A cold process: the many-small-cells ensemble (10,000 8^2 lattices, 200 sweeps, energy every 10)
run twice in a fresh process, with the cell-major loop ("cell") or the row loop ("row").

    rm -f eqflow/systems/ising/__pycache__/kernels.*.nb[ic]   # optional: a cold numba cache
    python benchmarks/bench_cold_start.py cell "cold cache"
    python benchmarks/bench_cold_start.py row "warm cache"
"""
import sys
import time


def main(loop: str, label: str) -> None:
    start = time.perf_counter()
    import numpy as np

    import eqflow as eq
    from eqflow.systems.ising import kernels

    if loop == "row":
        kernels.CELL_MAJOR_CELLS = 2**62
    system = eq.create("ising", size=8, temperature=np.linspace(1.5, 3.3, 10).tolist(), members=1000, seed=1)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        eq.run(system, "metropolis", steps=200, store=None, progress=False, record={"energy": 10})
        times.append(time.perf_counter() - t)
    print(f"{loop} {label}: first run {times[0]:.2f} s, second {times[1]:.2f} s, "
          f"process {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
