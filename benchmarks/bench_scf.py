"""Benchmark of the SCF solvers: convergence over ensembles of guesses, molecules vs PySCF, backends.

    python benchmarks/bench_scf.py [--quick] [--out results.md]

Prints Markdown tables (and writes them to ``--out``):
1. the nonlinear problem of Yang, Gao & Meza and the half-filled Hubbard ring: for a sweep of
   alpha (resp. U) and an ensemble of randomly rotated initial guesses, the fraction of members
   that converge (residual ||FDS - SDF|| < 1e-8 within the step limit) and the median number of
   iterations of those that do, per solver (the kind of table of Li et al., NeurIPS 2023);
   for Hubbard also the fraction that lands on the Neel ground state (gap equation);
2. the molecules in data/: iterations to a residual of 1e-8 from PySCF's minao guess, for each
   solver and for PySCF's own DIIS on the same problem (same residual definition, measured in a
   PySCF callback; PySCF is optional: the column reads n/a without it);
3. wall time per iteration of a whole ensemble batch, NumPy vs torch on the CPU (and CUDA when
   present), timing the operator function itself on the backend arrays.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.backends import Backend
from eqflow.dataset import constant_arrays, parameter_arrays
from eqflow.system import call_with
from eqflow.systems import scf

# (column label, operator, solver parameters set on the system)
SOLVERS = (("fixed_point", "fixed_point", {}), ("damping 0.5", "damping", {}), ("diis 8", "diis", {}),
           ("online_pca 10", "online_pca", {}), ("online_pca 1000", "online_pca", {"learning_rate": 1000.0}))
TOL = 1e-8


def outcome(create_kwargs, solver, steps, folder):
    """Run to convergence or ``steps``; return (stop_reason, stopped_at, final energy) arrays."""
    _, op, settings = solver
    ds = eq.create("scf", **{**create_kwargs, **settings})
    hist = eq.run(ds, op, steps=steps, store=Path(folder) / f"{op}.zarr", record={"energy": 1, "residual": 1},
                  stop=eq.stop.converged("residual", TOL), overwrite=True, progress=False)
    energy = hist.energy.values
    last = np.where(np.isnan(energy), -np.inf, np.arange(len(energy)).reshape((-1,) + (1,) * (energy.ndim - 1)))
    final = np.take_along_axis(energy, last.argmax(axis=0)[None], axis=0)[0]
    return hist.stop_reason.values, hist.stopped_at.values, final


def cell(reasons, stopped, extra=None):
    done = reasons == "converged"
    text = f"{done.mean():.2f} / " + (f"{np.median(stopped[done]):.0f}" if done.any() else "-")
    return text + (f" / {extra.mean():.2f}" if extra is not None else "")


def sweep_table(title, name, values, create_kwargs, steps, folder, ground=None):
    lines = [f"### {title}", "",
             f"fraction converged / median iterations{' / fraction at the Neel state' if ground else ''}"
             f" (residual < {TOL:g} within {steps} steps)", "",
             "| " + name + " | " + " | ".join(s[0] for s in SOLVERS) + " |", "|---" * (len(SOLVERS) + 1) + "|"]
    results = {s[0]: outcome(create_kwargs, s, steps, folder) for s in SOLVERS}
    for i, value in enumerate(values):
        row = []
        for op in results:
            reasons, stopped, energy = (a[:, i] for a in results[op])
            at_ground = None
            if ground is not None:
                at_ground = (reasons == "converged") & (np.abs(energy - ground(value)) < 1e-6)
            row.append(cell(reasons, stopped, at_ground))
        lines.append(f"| {value:g} | " + " | ".join(row) + " |")
    return lines + [""]


def pyscf_iterations(name, index):
    """PySCF RHF (DIIS, minao guess) iterations until ||FDS - SDF|| < TOL with D = P / 2, or None."""
    try:
        from pyscf import gto
        from pyscf import scf as pyscf_scf
    except ImportError:
        return None
    data = scf.load_molecule(name)
    mol = gto.M(atom=data["metadata"]["atoms_angstrom"][index], basis=data["metadata"]["basis"], verbose=0)
    mf = pyscf_scf.RHF(mol)
    mf.conv_tol, mf.conv_tol_grad, mf.max_cycle = 1e-14, 1e-10, 200
    residuals = []

    def callback(env):
        f, d, s = env["h1e"] + env["vhf"], env["dm"] / 2, env["s1e"]
        fds = f @ d @ s
        residuals.append(np.linalg.norm(fds - fds.T))

    mf.callback = callback
    mf.kernel()
    below = [i + 1 for i, r in enumerate(residuals) if r < TOL]
    return below[0] if below else None


def molecule_table(steps, folder):
    lines = ["### Molecules (RHF, PySCF's minao guess): iterations to residual < 1e-8", "",
             "| molecule | r / angstrom | E / hartree | " + " | ".join(s[0] for s in SOLVERS) + " | PySCF DIIS |",
             "|---" * (len(SOLVERS) + 4) + "|"]
    for name in scf.available_molecules():
        create_kwargs = dict(problem="molecule", molecule=name, guess="minao")
        results = {s[0]: outcome(create_kwargs, s, steps, folder) for s in SOLVERS}
        for i, r in enumerate(scf.load_molecule(name)["geometry"]):
            cells = []
            for op in results:
                reason, stopped = results[op][0][0, i], results[op][1][0, i]
                cells.append(str(stopped) if reason == "converged" else reason.replace("_", " "))
            energy = results["diis 8"][2][0, i]
            pyscf = pyscf_iterations(name, i)
            lines.append(f"| {name} | {r:g} | {energy:.8f} | " + " | ".join(cells) + f" | {pyscf or 'n/a'} |")
    return lines + [""]


def backend_timing(repeats):
    """Milliseconds per operator call on a whole ensemble batch, per backend/device."""
    cases = [
        ("H2O/6-31G (n=13) x 3 geometries", "diis", dict(problem="molecule", molecule="h2o_6-31g", members=128,
                                                          rotation=0.1)),
        ("Hubbard ring N=64", "diis", dict(problem="hubbard", sites=64, interaction=4.0, members=128, rotation=0.3)),
        ("nonlinear n=100, k=20", "online_pca", dict(problem="nonlinear", size=100, occupied=20, alpha=[1.0, 4.0],
                                                     members=64, rotation=0.3)),
    ]
    engines = [Backend("numpy"), Backend("torch", "cpu")]
    try:
        import torch

        if torch.cuda.is_available():
            engines.append(Backend("torch", "cuda"))
    except ImportError:
        engines = engines[:1]
    lines = ["### Wall time per iteration of the whole batch (operator call, ms)", "",
             "| case | cells | " + " | ".join(f"{e.name} {e.device or 'cpu'}" for e in engines) + " |",
             "|---" * (len(engines) + 2) + "|"]
    for label, op_name, kwargs in cases:
        ds = eq.create("scf", **kwargs)
        op = scf.SYSTEM.operator(op_name)
        schema = scf.SYSTEM.schema
        given = {**parameter_arrays(ds, schema), **constant_arrays(ds, schema), "problem": ds.attrs["problem"],
                 "history": 8}
        prepared = call_with(op.prepare, given)
        cells = int(np.prod([ds.sizes[d] for d in schema.ensemble_dims(ds)]))
        row = []
        for engine in engines:
            if engine.name == "torch":
                import torch

                torch.set_num_threads(os.cpu_count() or 1)
            inputs = {k: engine.asarray(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else
                      v.on_backend(lambda a: engine.asarray(np.ascontiguousarray(a))) if hasattr(v, "on_backend")
                      else v for k, v in {**given, **prepared}.items()}
            numpy_state = {v: ds[v].values for v in schema.variables}
            numpy_state.update(call_with(op.init, {**numpy_state, **given, **prepared}))
            state = {k: engine.asarray(v) for k, v in numpy_state.items()}
            state.update(call_with(op.update, {**state, **inputs}))  # warm-up
            times = []
            for _ in range(repeats):
                _sync(engine)
                start = time.perf_counter()
                state.update(call_with(op.update, {**state, **inputs}))
                _sync(engine)
                times.append(time.perf_counter() - start)
            row.append(f"{1000 * np.median(times):.1f}")
        lines.append(f"| {label} | {cells} | " + " | ".join(row) + " |")
    return lines + ["", f"median of {repeats} calls after a warm-up; threads: torch {os.cpu_count()} (set here), "
                        "NumPy/BLAS default", ""]


def _sync(engine):
    if engine.device == "cuda":
        import torch

        torch.cuda.synchronize()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small ensembles and sweeps (a smoke test)")
    parser.add_argument("--out", type=Path, help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    members, steps = (8, 200) if args.quick else (32, 500)
    alphas = [0.05, 0.5, 8.0] if args.quick else [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    interactions = [2.0, 4.0] if args.quick else [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
    ring = 18

    def neel(u):
        return scf.theory.hubbard_antiferromagnet("ring", ring, 1.0, u)["energy"]

    started = time.perf_counter()
    lines = ["## SCF solvers (eqflow.systems.scf)", ""]
    with tempfile.TemporaryDirectory() as folder:
        lines += sweep_table(f"Nonlinear problem (Yang, Gao & Meza), n = 40, k = 8, "
                             f"{members} random guesses (rotation 1)",
                             "alpha", alphas, dict(problem="nonlinear", size=40, occupied=8, alpha=alphas,
                                                   members=members, seed=1, rotation=1.0), steps, folder)
        lines += sweep_table(f"Hubbard ring, N = {ring}, half filling, t = 1, {members} random guesses (rotation 1)",
                             "U", interactions, dict(problem="hubbard", sites=ring, interaction=interactions,
                                                     members=members, seed=1, rotation=1.0), steps, folder, ground=neel)
        lines += molecule_table(200, folder)
    lines += backend_timing(5 if args.quick else 20)
    lines += ["columns: damping with mixing 0.5, DIIS with 8 slots, online_pca with learning_rate 10 (the defaults) "
              f"and 1000; total {time.perf_counter() - started:.0f} s", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
