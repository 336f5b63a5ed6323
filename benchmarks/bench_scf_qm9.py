"""Table 1 of Li et al. (NeurIPS 2023) on QM9: RHF/6-31G from the core guess, PySCF vs eqflow's solvers.

    python benchmarks/bench_scf_qm9.py [--molecules 100 | --all] [--seed 0] [--out table.md]
                                       [--cache benchmarks/qm9_table1.jsonl]

Samples QM9 molecules (geometries from the ``qm9pack`` wheel, a benchmark-only dependency:
``pip install qm9pack``) with a fixed seed: ``--molecules`` of them (default 100), ``--all``
for 1,338 (the paper's 1% sample size). For each: PySCF's default RHF (DIIS) from its '1e'
(core Hamiltonian) guess, and eqflow's diis, online_pca and adaptive_online from the core guess
on the same integrals (built from the PySCF Mole; ``--density-fit`` uses PySCF's
density-fitting factor on both sides). Convergence: PySCF's defaults (conv_tol 1e-9, 50
cycles); eqflow: residual ||FDS - SDF|| < 1e-7 (about PySCF's sqrt(conv_tol) gradient
criterion) within ``--steps`` outer steps. Prints: not converged (count, %), mean iterations of
the converged, and for eqflow how many converged energies agree with PySCF's within 1e-8 Eh
where both converged.

``--scale`` measures instead eqflow's cost against PySCF's, side by side in one run (see :func:`scale`):
one molecule at equal iterations, 16 members of one molecule against 16 PySCF runs, the same with
density fitting, and ``--cluster N`` molecules through a 2-worker dask cluster against a
sequential PySCF loop; ``--repeat`` times each, wall and CPU time.

``--cache FILE`` appends each molecule's results to a JSON-lines file as soon as it is done and
reuses the lines of the same settings on the next run: a run that is killed, or cut into several
shorter runs, goes on where it stopped and prints the same table.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1])]  # this checkout's eqflow
import eqflow as eq  # noqa: E402

from common import emit, machine  # noqa: E402

OPERATORS = ("diis", "online_pca", "adaptive_online")
PAPER = {"Regular SCF (PySCF)": "124 (9.27%) / 25.49", "Full online SCF": "13 (0.97%) / 584.68",
         "Adaptive online SCF": "0 (0%) / 42.97"}
TOL = 1e-7


def qm9_sample(count, seed):
    """(index, atoms) of ``count`` QM9 molecules drawn without replacement with ``seed``."""
    import importlib.util

    import pandas as pd
    spec = importlib.util.find_spec("qm9pack")  # not imported: its __init__ needs pkg_resources
    if spec is None:
        raise SystemExit("qm9pack: the QM9 geometries ship in the qm9pack wheel: pip install qm9pack")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    frames = [pd.read_csv(folder / f"qm9_part{i}.csv", usecols=["Index", "Elements", "XYZ_Ang"]) for i in (1, 2, 3)]
    table = pd.concat(frames, ignore_index=True)
    rows = np.random.default_rng(seed).choice(len(table), size=min(count, len(table)), replace=False)
    out = []
    for row in rows:
        elements = [e.strip().strip("'") for e in table.Elements[row].strip("[]").split(",")]
        xyz = np.array(ast.literal_eval(table.XYZ_Ang[row]), dtype=float)  # "0." is not JSON
        out.append((int(table.Index[row]), list(zip(elements, xyz.tolist()))))
    return out


def read_cache(path, settings) -> dict:
    """{QM9 index: row} of the molecules a cache file holds for these settings."""
    cached = {}
    if path is not None and path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: that molecule runs again
                continue
            if row["settings"] == settings:
                cached[row["index"]] = row
    return cached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=100)
    parser.add_argument("--all", action="store_true", help="1,338 molecules, the paper's sample size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--max-inner", type=int, default=10000)
    parser.add_argument("--basis", default="6-31g")
    parser.add_argument("--density-fit", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cache", type=Path, help="JSON lines of finished molecules, reused and extended")
    parser.add_argument("--second-order", action="store_true",
                        help="where PySCF's default fails, also run its second-order solver (mf.newton()) from "
                             "the same guess: the RHF energy the others are then compared with")
    parser.add_argument("--scale", action="store_true", help="time eqflow against PySCF instead (see scale())")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--cluster", type=int, default=0, help="--scale: molecules through a 2-worker dask cluster")
    parser.add_argument("--cases", default="one,df,members", help="--scale: which of one, df, members to time")
    args = parser.parse_args()
    if args.scale:
        return scale(args)
    from pyscf import gto, scf

    sample = qm9_sample(1338 if args.all else args.molecules, args.seed)
    results = {"pyscf": [], **{op: [] for op in OPERATORS}}  # (converged, iterations, energy)
    seconds = dict.fromkeys(results, 0.0)
    settings = {"basis": args.basis, "density_fit": args.density_fit, "steps": args.steps,
                "max_inner": args.max_inner, "tol": TOL}
    cached = read_cache(args.cache, settings)
    with tempfile.TemporaryDirectory() as folder:
        for index, atoms in sample:
            if index in cached:
                for key, (converged, iterations, energy) in cached[index]["results"].items():
                    results[key].append((converged, iterations, energy))
                    seconds[key] += cached[index]["seconds"][key]
                continue
            mol = gto.M(atom=atoms, basis=args.basis, verbose=0)
            spent = {}
            t0 = time.perf_counter()
            mf = scf.RHF(mol)
            mf = mf.density_fit() if args.density_fit else mf
            mf.init_guess = "1e"
            cycles = []
            mf.callback = lambda env: cycles.append(env["cycle"])
            energy = mf.kernel()
            spent["pyscf"] = time.perf_counter() - t0
            results["pyscf"].append((bool(mf.converged), len(cycles), float(energy)))
            ds = eq.create("scf", problem="molecule", mol=mol, density_fit=args.density_fit, guess="core")
            for op in OPERATORS:
                t0 = time.perf_counter()
                hist = eq.run(ds, op, steps=args.steps, store=Path(folder) / f"{index}-{op}.zarr",
                              record={"energy": 1, "residual": 1}, progress=False,
                              options={"max_inner": args.max_inner} if op != "diis" else {},
                              stop=eq.stop.converged("residual", TOL))
                spent[op] = time.perf_counter() - t0
                e = hist.energy.values[:, 0]
                last = e[np.max(np.where(np.isnan(e), -1, np.arange(len(e))))]
                results[op].append((bool(hist.stop_reason.values[0] == "converged"), int(hist.stopped_at.values[0]),
                                    float(last)))
                shutil.rmtree(Path(folder) / f"{index}-{op}.zarr")  # each holds the molecule's ERI (~1 GB)
            for key, value in spent.items():
                seconds[key] += value
            if args.cache is not None:
                with args.cache.open("a") as out:
                    out.write(json.dumps({"index": index, "nao": mol.nao, "settings": settings, "seconds": spent,
                                          "results": {k: r[-1] for k, r in results.items()}}) + "\n")
            print(f"QM9 {index}: n = {mol.nao}, " + ", ".join(
                f"{k} {'ok' if r[-1][0] else 'not converged'} {r[-1][1]}" for k, r in results.items()), flush=True)
    n = len(sample)
    checks = second_order(sample, results, args, settings) if args.second_order else []
    lines = ["| method | not converged | mean iterations (converged) | energy = PySCF's within 1e-8 Eh |",
             "|---|---|---|---|"]
    reference = results["pyscf"]
    for key, rows in results.items():
        done = np.array([r[0] for r in rows])
        iterations = np.array([r[1] for r in rows])
        mean = f"{iterations[done].mean():.2f}" if done.any() else "-"
        if key == "pyscf":
            agree = "-"
        else:
            both = [(r[2], p[2]) for r, p in zip(rows, reference) if r[0] and p[0]]
            agree = f"{sum(abs(a - b) < 1e-8 for a, b in both)} of {len(both)}"
        lines.append(f"| {key} | {(~done).sum()} ({100 * (~done).mean():.2f}%) | {mean} | {agree} |")
    lines += ["", f"{n} QM9 molecules (seed {args.seed}), RHF/{args.basis}"
              f"{' with density fitting' if args.density_fit else ''}, core guess; eqflow residual < {TOL:g} "
              f"within {args.steps} steps, max_inner {args.max_inner}; wall time: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()),
              *checks,
              "paper (1,338 molecules, HF): " + "; ".join(f"{k} {v}" for k, v in PAPER.items()),
              f"machine: {machine()}"]
    emit(lines, args.out)


def second_order(sample, results, args, settings) -> list[str]:
    """Lines on the molecules where PySCF's default RHF fails: the energy its second-order solver
    (``mf.newton()``, same core guess, 200 cycles) reaches, and which eqflow solvers agree (1e-8 Eh)."""
    from pyscf import gto, scf

    check = {**settings, "check": "pyscf second order"}
    cached = read_cache(args.cache, check)
    lines = []
    for position, (index, atoms) in enumerate(sample):
        if results["pyscf"][position][0]:
            continue
        if index not in cached:
            mol = gto.M(atom=atoms, basis=args.basis, verbose=0)
            mf = scf.RHF(mol)
            mf = (mf.density_fit() if args.density_fit else mf).newton()
            mf.init_guess, mf.max_cycle = "1e", 200
            energy = float(mf.kernel())
            cached[index] = {"index": index, "settings": check, "newton": [bool(mf.converged), float(energy)]}
            if args.cache is not None:
                with args.cache.open("a") as out:
                    out.write(json.dumps(cached[index]) + "\n")
        converged, energy = cached[index]["newton"]
        agree = [op for op in OPERATORS if results[op][position][0] and abs(results[op][position][2] - energy) < 1e-8]
        lines.append(f"QM9 {index}: PySCF's default not converged; second order {'converged' if converged else 'NOT'} "
                     f"at {energy:.10f} Eh; eqflow agreeing within 1e-8 Eh: {', '.join(agree) or 'none'}")
    return lines


def _clock(fn):
    """(wall s, CPU s of this process, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def _fresh():
    """Forget what this process prepared: each timed eqflow run builds its integrals as a new process would."""
    from eqflow.system import clear_prepared
    from eqflow.systems.scf import integrals

    clear_prepared()
    integrals._kept.clear()


def _pyscf_rhf(mol, density_fit):
    from pyscf import scf

    mf = scf.RHF(mol)
    mf = mf.density_fit() if density_fit else mf
    mf.init_guess = "1e"
    cycles = []
    mf.callback = lambda env: cycles.append(env["cycle"])
    energy = mf.kernel()
    return float(energy), len(cycles), bool(mf.converged)


def _eqflow_rhf(mol, density_fit, folder, name, steps, members=1, stop=None, chunks=None):
    ds = eq.create("scf", problem="molecule", mol=mol, density_fit=density_fit, guess="core", members=members,
                   rotation=0.05 if members > 1 else 0.0, seed=1)
    hist = eq.run(ds, "diis", steps=steps, store=Path(folder) / name, record={"energy": 1, "residual": 1},
                  progress=False, stop=stop, chunks=chunks)
    e = hist.energy.values
    last = np.max(np.where(np.isnan(e), -1, np.arange(len(e))[:, None]), axis=0)
    stopped = hist.stopped_at.values if stop is not None else np.full(members, steps)
    return e[last, np.arange(members)], stopped


def _spread(values):
    values = np.asarray(values)
    return f"{np.median(values):.2f} ({values.min():.2f}-{values.max():.2f})"


def scale(args):
    """eqflow vs PySCF, side by side, ``--repeat`` times each (median and range; wall and CPU seconds).

    1. one molecule, RHF from the core guess: PySCF's default RHF; eqflow ``diis`` for the same
       number of iterations, timed from ``eq.create`` (which builds the integrals, as PySCF's kernel
       does) to the history; 2. ``--members`` members (rotated core guesses) of that molecule in one
       run (2 chunks) against as many PySCF runs, each to convergence (eqflow: residual < 1e-7);
       3. density fitting, both sides on PySCF's default auxiliary basis, as 1.; 4. with
       ``--cluster N``: N molecules, one eqflow run each through a 2-worker dask cluster, against a
       sequential PySCF loop. The molecule: the smallest of the ``--molecules`` sampled.
    """
    from pyscf import gto, lib

    sample = qm9_sample(args.molecules, args.seed)
    mols = [(index, gto.M(atom=atoms, basis=args.basis, verbose=0)) for index, atoms in sample]
    index, mol = min(mols, key=lambda m: m[1].nao)
    lines = [f"QM9 {index} ({mol.nao} basis functions, RHF/{args.basis}), PySCF {lib.num_threads()} OpenMP threads, "
             f"repeat {args.repeat}: median (min-max) seconds", "",
             "| case | PySCF wall | PySCF CPU | eqflow wall | eqflow CPU | wall ratio eqflow/PySCF | iterations |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        cases = args.cases.split(",")
        for fit in [f for f, case in ((False, "one"), (True, "df")) if case in cases]:
            pw, pc, ew, ec, ratio = [], [], [], [], []
            for r in range(args.repeat):
                w, c, (e_ref, cycles, _) = _clock(lambda: _pyscf_rhf(mol, fit))
                pw.append(w), pc.append(c)
                _fresh()
                w, c, (e, _) = _clock(lambda: _eqflow_rhf(mol, fit, folder, f"one-{fit}-{r}.zarr", cycles))
                ew.append(w), ec.append(c), ratio.append(ew[-1] / pw[-1])
            lines.append(f"| one molecule{' (DF)' if fit else ''} | {_spread(pw)} | {_spread(pc)} | {_spread(ew)} | "
                         f"{_spread(ec)} | {_spread(ratio)} | {cycles} both (|dE| {abs(e[0] - e_ref):.1e} Eh) |")
            print(lines[-1], flush=True)
        m = args.members
        pw, pc, ew, ec, ratio = [], [], [], [], []
        for r in range(args.repeat if "members" in cases else 0):
            w, c, runs = _clock(lambda: [_pyscf_rhf(mol, False) for _ in range(m)])
            pw.append(w), pc.append(c)
            _fresh()
            w, c, (e, stopped) = _clock(lambda: _eqflow_rhf(
                mol, False, folder, f"members-{r}.zarr", 100, members=m, stop=eq.stop.converged("residual", TOL),
                chunks={"member": -(-m // 2)}))
            ew.append(w), ec.append(c), ratio.append(pw[-1] / ew[-1])
        if "members" in cases:
            lines.append(f"| {m} members vs {m} PySCF runs | {_spread(pw)} | {_spread(pc)} | {_spread(ew)} | "
                         f"{_spread(ec)} | PySCF/eqflow {_spread(ratio)} | PySCF mean "
                         f"{np.mean([x[1] for x in runs]):.1f}, eqflow mean {np.mean(stopped):.1f} "
                         f"(max |E - E_PySCF| {np.max(np.abs(e - runs[0][0])):.1e} Eh) |")
            print(lines[-1], flush=True)
        if args.cluster:
            lines.append(_cluster(mols[: args.cluster], folder, args.repeat))
    lines += ["", f"machine: {machine()}, load average {os.getloadavg()[0]:.1f} at the end"]
    emit(lines, args.out)


def _cluster(mols, folder, repeat):
    """N molecules: one eqflow run each, 2 at a time on a 2-worker (1 thread each) dask cluster, against
    a sequential PySCF loop (each: default RHF from the core guess; eqflow to residual < 1e-7)."""
    from dask.distributed import Client, LocalCluster

    pw, ew = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for r in range(repeat):
            w, _, _ = _clock(lambda: [_pyscf_rhf(mol, False) for _, mol in mols])
            pw.append(w)
            client.run(_fresh)

            def one(mol, name):
                import dask

                with dask.config.set(scheduler="synchronous"):  # the run's one task, in this worker's thread
                    return _eqflow_rhf(mol, False, folder, name, 100, stop=eq.stop.converged("residual", TOL))[1][0]

            w, _, _ = _clock(lambda: client.gather([client.submit(one, mol, f"cluster-{r}-{i}.zarr", pure=False)
                                                    for i, (_, mol) in enumerate(mols)]))
            ew.append(w)
    ratio = np.array(pw) / np.array(ew)
    return (f"| {len(mols)} molecules: 2-worker dask cluster vs sequential PySCF | {_spread(pw)} | - | {_spread(ew)} | "
            f"- | PySCF/eqflow {_spread(ratio)} | to convergence |")


if __name__ == "__main__":
    main()
