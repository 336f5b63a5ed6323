"""Throughput of the SELU moment map: eq.run (NumPy, torch) against bare NumPy loops, side by side.

    python benchmarks/bench_selu_map.py [--cells 1000 30000] [--steps 100] [--repeat 3]

The case: an ensemble of C cells (members x an omega x tau sweep) iterating g for S steps from
scattered starts. Contenders, in turns within each repeat, the same cells and steps:

- textbook loop: a bare NumPy loop of the paper's Eq. 4-5 with erfc and exp as printed (it
  overflows once nu tau passes ~350; fine for these starts);
- closed-form loop: a bare NumPy loop of eqflow's overflow-free closed form
  (``selu_moments``), no eqflow machinery;
- eq.run numpy / torch: ``eq.run(system, "map")`` with the residual recorded every step and
  the state at the start and end, to an in-memory store (one chunk, one segment), and with a
  converged stop rule (tol 1e-300: never met, so every step is still run and checked); and
  NumPy with the residual recorded every 10 steps. At many cells most of eq.run's extra time
  is the history itself: the records of every cell and step compressed into the store.

Throughput: map evaluations per second (cell-steps/s); every figure is the best of ``repeat``
runs, and the ratios compare contenders measured in the same repeat set. One torch thread.
First checks that eq.run's final state equals the closed-form loop's (NumPy: bit for bit).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import erfc

import eqflow as eq
from eqflow.systems.selu_map import ALPHA, LAMBDA, selu_moments

sys.path.insert(0, str(Path(__file__).parent))
from common import best_time, machine  # noqa: E402


def textbook(mu, nu, omega, tau):
    """Eq. 4-5 of the paper as printed: erfc and exp, no overflow guard."""
    m, v = mu * omega, nu * tau
    r2 = np.sqrt(2 * v)
    mean = 0.5 * LAMBDA * (m * (2 - erfc(m / r2)) + ALPHA * np.exp(m + v / 2) * erfc((m + v) / r2)
                           - ALPHA * erfc(m / r2) + np.sqrt(2 / np.pi) * np.sqrt(v) * np.exp(-m * m / (2 * v)) + m)
    square = 0.5 * LAMBDA**2 * ((m * m + v) * (2 - erfc(m / r2)) + ALPHA**2 * (
        -2 * np.exp(m + v / 2) * erfc((m + v) / r2) + np.exp(2 * (m + v)) * erfc((m + 2 * v) / r2)
        + erfc(m / r2)) + np.sqrt(2 / np.pi) * m * np.sqrt(v) * np.exp(-m * m / (2 * v)))
    return mean, square - mean * mean


def system_of(cells):
    """cells = members x 10 omegas x 10 taus, starts scattered per member."""
    members = max(1, cells // 100)
    rng = np.random.default_rng(0)
    return eq.create("selu_map", omega=np.linspace(-0.1, 0.1, 10), tau=np.linspace(0.95, 1.1, 10),
                     mu=rng.uniform(-0.1, 0.1, members), nu=rng.uniform(0.8, 1.5, members), members=members)


def bare_loop(fn, system, steps):
    mu, nu = system.mu.values.copy(), system.nu.values.copy()
    omega, tau = system.omega.values[:, None], system.tau.values[None, :]
    for _ in range(steps):
        mu, nu = fn(mu, nu, omega, tau)
    return mu, nu


def run(system, steps, backend, stop=None, every=1):
    return eq.run(system, "map", steps=steps, store=None, progress=False, backend=backend, segment=steps,
                  record={"residual": every, "mu": steps, "nu": steps}, stop=stop, torch_threads=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[1000, 30_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}; numpy {np.__version__}, torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    check = system_of(1000)
    final = eq.final_state(run(check, 20, "numpy"))
    mu, nu = bare_loop(selu_moments, check, 20)
    assert np.array_equal(final.mu.values, mu) and np.array_equal(final.nu.values, nu), "eq.run != the bare loop"
    print("check: eq.run's final state equals the closed-form loop's, bit for bit (20 steps, 1000 cells)")
    never = eq.stop.converged("residual", 1e-300)
    contenders = {
        "textbook loop (NumPy)": lambda s: bare_loop(textbook, s, args.steps),
        "closed-form loop (NumPy)": lambda s: bare_loop(selu_moments, s, args.steps),
        "eq.run numpy": lambda s: run(s, args.steps, "numpy"),
        "eq.run numpy, record/10": lambda s: run(s, args.steps, "numpy", every=10),
        "eq.run numpy + stop rule": lambda s: run(s, args.steps, "numpy", never),
        "eq.run torch": lambda s: run(s, args.steps, "torch"),
        "eq.run torch + stop rule": lambda s: run(s, args.steps, "torch", never),
    }
    print(f"\n{args.steps} steps, best of {args.repeat}; map evaluations per second (cell-steps/s) and ratio to the "
          f"closed-form loop")
    print(f"{'cells':>8} | " + " | ".join(f"{name:>26}" for name in contenders))
    for cells in args.cells:
        system = system_of(cells)
        n = system.mu.size
        rates = {name: n * args.steps / best_time(lambda f=f: f(system), args.repeat)[0] for name, f in
                 contenders.items()}
        base = rates["closed-form loop (NumPy)"]
        print(f"{n:8d} | " + " | ".join(f"{rate:13.3g} ({rate / base:5.2f}x)" + " " * 5 for rate in rates.values()))


if __name__ == "__main__":
    main()
