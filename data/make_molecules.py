"""Generate the molecular integral files in this folder with PySCF (run once; not needed by eqflow).

    python data/make_molecules.py            # writes data/<molecule>_<basis>.npz

Each file holds, for a scan of one bond length r (the ``geometry`` coordinate, angstrom):
``core_hamiltonian``, ``overlap`` (G, n, n), ``eri_packed`` (G, n_pair (n_pair + 1) / 2), the
8-fold-symmetric packing of the chemists'-notation integrals (ij|kl) read back by
``eqflow.systems.scf.load_molecule``, ``nuclear_repulsion`` (G,), ``geometry`` (G,), ``electrons``,
``minao_density`` (G, 1, n, n): PySCF's superposition-of-atomic-densities guess, halved to the
per-spin convention of eqflow, and PySCF's converged RHF energies from its ``minao`` and ``1e``
(core Hamiltonian) initial guesses with their iteration counts. ``metadata`` is a JSON string:
molecule, atoms per geometry (angstrom), basis, PySCF and NumPy versions, SCF settings.
All energies in hartree. PySCF is an optional, generation- and test-only dependency.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONV_TOL = 1e-12  # PySCF energy tolerance of the stored reference energies (hartree)
WATER_ANGLE = 104.52  # degrees, H-O-H, kept fixed while both O-H bonds are stretched

MOLECULES = {
    # name: (basis, bond lengths r in angstrom: equilibrium first, then stretched)
    "h2_sto-3g": ("sto-3g", [0.74, 1.4, 2.5]),
    "h2_6-31gss": ("6-31g**", [0.74, 1.4, 2.5]),
    "h2o_sto-3g": ("sto-3g", [0.9572, 1.4, 1.9]),
    "h2o_6-31g": ("6-31g", [0.9572, 1.4, 1.9]),
    "n2_sto-3g": ("sto-3g", [1.0977, 1.3, 1.5]),
    "n2_6-31g": ("6-31g", [1.0977, 1.3]),
}


def atoms(molecule: str, r: float) -> str:
    """Cartesian geometry (angstrom) of ``molecule`` at bond length ``r``, in PySCF's atom format."""
    if molecule == "h2":
        return f"H 0 0 0; H 0 0 {r:.10f}"
    if molecule == "n2":
        return f"N 0 0 0; N 0 0 {r:.10f}"
    if molecule == "h2o":
        half = np.deg2rad(WATER_ANGLE / 2)
        y, z = r * np.sin(half), r * np.cos(half)
        return f"O 0 0 0; H 0 {y:.10f} {z:.10f}; H 0 {-y:.10f} {z:.10f}"
    raise ValueError(f"molecule: expected 'h2', 'h2o' or 'n2', got {molecule!r}")


def pack_eri(eri: np.ndarray) -> np.ndarray:
    """Keep one of each 8 symmetric copies of (ij|kl): i >= j, k >= l, pair(ij) >= pair(kl)."""
    n = eri.shape[-1]
    i, j = np.tril_indices(n)
    pairs = eri[i[:, None], j[:, None], i[None, :], j[None, :]]
    p, q = np.tril_indices(len(i))
    return pairs[p, q]


def rhf(mol, guess: str):
    from pyscf import scf

    mf = scf.RHF(mol)
    mf.init_guess, mf.conv_tol, mf.max_cycle, mf.verbose = guess, CONV_TOL, 200, 0
    energy = mf.kernel()
    stable = bool(mf.stability(return_status=True)[2])
    return mf, float(energy), int(mf.cycles), bool(mf.converged), stable


def scan(name: str, basis: str, lengths: list[float]) -> dict:
    import pyscf
    from pyscf import gto

    from eqflow.systems.scf.problems import unpack_eri  # the loader must read back what is written here

    molecule = name.split("_")[0]
    arrays = {k: [] for k in ("core_hamiltonian", "overlap", "eri_packed", "nuclear_repulsion", "minao_density",
                              "pyscf_energy", "pyscf_cycles", "pyscf_energy_core_guess", "pyscf_cycles_core_guess")}
    geometries, stability = [], []
    for r in lengths:
        mol = gto.M(atom=atoms(molecule, r), basis=basis, unit="angstrom", verbose=0)
        eri = mol.intor("int2e")
        packed = pack_eri(eri)
        # PySCF computes the symmetric copies separately: they agree to ~1e-16, not bit for bit
        assert np.max(np.abs(unpack_eri(packed, mol.nao) - eri)) < 1e-12, "ERI packing does not round-trip"
        minao, e_minao, n_minao, ok_minao, st_minao = rhf(mol, "minao")
        _, e_core, n_core, ok_core, st_core = rhf(mol, "1e")
        assert ok_minao and ok_core, f"{name} r={r}: PySCF did not converge"
        for key, value in [("core_hamiltonian", mol.intor("int1e_kin") + mol.intor("int1e_nuc")),
                           ("overlap", mol.intor("int1e_ovlp")), ("eri_packed", packed),
                           ("nuclear_repulsion", mol.energy_nuc()),
                           ("minao_density", minao.get_init_guess(key="minao")[None] / 2),
                           ("pyscf_energy", e_minao), ("pyscf_cycles", n_minao),
                           ("pyscf_energy_core_guess", e_core), ("pyscf_cycles_core_guess", n_core)]:
            arrays[key].append(value)
        geometries.append(atoms(molecule, r))
        stability.append({"minao": st_minao, "core": st_core})
        electrons = mol.nelectron
    metadata = {
        "molecule": {"h2": "H2", "h2o": "H2O", "n2": "N2"}[molecule], "basis": basis,
        "geometry": "bond length r (angstrom)"
        + (f", both O-H bonds, H-O-H angle {WATER_ANGLE} degrees" if molecule == "h2o" else ""),
        "bond_lengths_angstrom": lengths, "atoms_angstrom": geometries, "electrons": electrons, "orbitals": mol.nao,
        "pyscf_version": pyscf.__version__, "numpy_version": np.__version__, "python": sys.version.split()[0],
        "scf": f"pyscf.scf.RHF, conv_tol={CONV_TOL}, max_cycle=200, default DIIS; pyscf_energy from init_guess='minao' "
               "(PySCF's default), pyscf_energy_core_guess from init_guess='1e' (core Hamiltonian)",
        "internally_stable": stability, "made_by": "data/make_molecules.py",
        "made_on": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "units": "hartree (energies), angstrom (geometry)",
    }
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out.update(geometry=np.asarray(lengths, dtype=np.float64), electrons=np.asarray(electrons),
               metadata=np.asarray(json.dumps(metadata)))
    return out


def main(names: list[str]) -> None:
    for name in names or MOLECULES:
        basis, lengths = MOLECULES[name]
        arrays = scan(name, basis, lengths)
        path = HERE / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path.name}: {arrays['core_hamiltonian'].shape}, E_minao = {arrays['pyscf_energy'].round(9).tolist()}, "
              f"E_core = {arrays['pyscf_energy_core_guess'].round(9).tolist()}, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
