"""The run loop with stop rules and reporters as protocols: CPU time of two small runs.

Compare two checkouts by running this once with each on the path, e.g.
``PYTHONPATH=<checkout> python benchmarks/bench_runloop.py``; CPU time (``time.process_time``,
dask's threads included) is steadier than wall time on a shared machine. Also prints how many
times the SELU map g is evaluated in the first case (the count does not depend on the machine).
"""
import os
import sys
import tempfile
import time

import numpy as np

import eqflow as eq
from eqflow.systems.selu_map import moments, observables, operators

REPEATS = 5


def cpu_times(fn, n=REPEATS) -> list[float]:
    out = []
    for _ in range(n):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return out


def main() -> None:
    print(f"eqflow from {os.path.dirname(eq.__file__)}", file=sys.stderr)
    directory = tempfile.mkdtemp()
    made = iter(range(10**6))

    def path():
        return os.path.join(directory, f"{next(made)}.zarr")

    selu = eq.create("selu_map", omega=[0.0, 0.2], tau=1.2, mu=[0.7, -0.4], nu=[3.0, 0.4], members=64, samples=16,
                     units=16)
    ising = eq.create("ising", size=16, temperature=[2.0, 3.0], members=8, seed=1)
    never = eq.stop.converged("residual", 1e-300)
    cases = {
        "selu network, 200 steps, residual record + converged rule":
            lambda: eq.run(selu, "network", steps=200, store=path(), record={"residual": 1}, stop=never,
                           progress=False, segment=50),
        "ising metropolis 16x16, 16 members, 400 steps, equilibrated rule":
            lambda: eq.run(ising, "metropolis", steps=400, store=path(), progress=False, segment=100,
                           stop=eq.stop.equilibrated("energy", check_every=100)),
    }
    calls = [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        return moments.selu_moments(*args, **kwargs)

    operators.selu_moments = observables.selu_moments = counted
    for name, fn in cases.items():
        fn()  # warm up
        calls[0] = 0
        times = cpu_times(fn)
        extra = f"; g evaluated {calls[0] // REPEATS} times per run" if calls[0] else ""
        print(f"{name}: CPU min {min(times):.3f} s, median {np.median(times):.3f} s, max {max(times):.3f} s{extra}")


if __name__ == "__main__":
    main()
