"""Online SCF on the molecules of data/: iterations and inner Oja steps, from the core guess as in Li et al.

    python benchmarks/bench_scf_online.py [--max-inner 10000] [--out table.md]

For every molecule file and geometry, eqflow's diis, online_pca and adaptive_online (defaults:
DIIS 8, momentum 0.5, eta = 10, T_cut 100 / 10 / tabu 10) start from the core Hamiltonian guess
(the paper's Table 1 setting) and run to a commutator residual of 1e-9. Each entry: outer
iterations / total inner Oja steps / E - E_ref in hartree, E_ref PySCF's RHF energy from its
default minao guess (stored in the file; the lowest RHF solution PySCF finds), and PySCF's own
iterations from its '1e' (core) guess with its energy difference to E_ref.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1])]  # this checkout's eqflow
import eqflow as eq  # noqa: E402
from eqflow.systems import scf  # noqa: E402

from common import emit, machine  # noqa: E402

TOL = 1e-9
OPERATORS = ("diis", "online_pca", "adaptive_online")


def last_valid(values):
    index = np.nanmax(np.where(np.isnan(values), -1, np.arange(len(values))[:, None]), axis=0)
    return np.take_along_axis(values, index[None], axis=0)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-inner", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    head = "| molecule | r / angstrom | " + " | ".join(OPERATORS) + " | PySCF '1e' |"
    lines = [head, "|---" * (len(OPERATORS) + 3) + "|"]
    seconds = dict.fromkeys(OPERATORS, 0.0)
    with tempfile.TemporaryDirectory() as folder:
        for name in scf.available_molecules():
            ds = eq.create("scf", problem="molecule", molecule=name, guess="core")
            reference = scf.theory.molecule_reference(name, "minao")
            core = scf.theory.molecule_reference(name, "core")
            cells = {}
            for op in OPERATORS:
                t0 = time.perf_counter()
                record = {"energy": 1, "residual": 1, **({"inner_steps": 1} if op != "diis" else {})}
                hist = eq.run(ds, op, steps=args.steps, store=Path(folder) / f"{name}-{op}.zarr", record=record,
                              options={"max_inner": args.max_inner} if op != "diis" else {}, progress=False,
                              stop=eq.stop.converged("residual", TOL))
                seconds[op] += time.perf_counter() - t0
                energy = last_valid(hist.energy.values[:, 0])
                inner = (np.nansum(np.where(hist.inner_steps.values[:, 0] < 0, 0, hist.inner_steps.values[:, 0]),
                                   axis=0) if op != "diis" else np.zeros(len(energy)))
                cells[op] = [("max steps" if reason != "converged" else f"{at}") + (f" / {int(n)}" if op != "diis"
                                                                                    else "")
                             + f" / {e - ref:+.1e}"
                             for reason, at, n, e, ref in zip(hist.stop_reason.values[0], hist.stopped_at.values[0],
                                                              inner, energy, reference["energy"])]
            for g, r in enumerate(reference["geometry"]):
                pyscf = f"{core['cycles'][g]} / {core['energy'][g] - reference['energy'][g]:+.1e}"
                lines.append(f"| {name} | {r:g} | " + " | ".join(cells[op][g] for op in OPERATORS) + f" | {pyscf} |")
    lines += ["", "entries: outer iterations / inner Oja steps (online) / E - E_ref (hartree); residual < "
              f"{TOL:g}; max_inner {args.max_inner}; wall time: "
              + ", ".join(f"{op} {seconds[op]:.0f} s" for op in OPERATORS), f"machine: {machine()}"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
