"""Molecules built from a PySCF Mole, with density fitting (kind "scf").

PySCF is an optional extra (``pip install eqflow[chem]``): the tests that need it are skipped
without it, and the error raised when it is missing is tested with PySCF hidden.
"""
import sys

import numpy as np
import pytest

import eqflow as eq

WATER = "O 0 0 0; H 0 -0.757 0.587; H 0 0.757 0.587"


def _final_energy(hist):
    e = hist.energy.values
    return e[np.max(np.where(np.isnan(e[:, 0]), -1, np.arange(len(e))))]


@pytest.mark.parametrize("op", ["diis", "adaptive_online"])
def test_density_fitted_energy_equals_pyscf_df_rhf(op, tmp_path):
    """Same auxiliary basis, same B: eqflow's DF-RHF energy equals PySCF's DF-RHF to 1e-8 Eh (also on torch)."""
    pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow[chem]) is not installed")
    mol = pyscf.gto.M(atom=WATER, basis="sto-3g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol, basis="6-31g", density_fit=True, auxbasis="weigend")
    assert ds.cderi.dims == ("aux", "orbital_i", "orbital_j") and "eri" not in ds
    mf = pyscf.scf.RHF(pyscf.gto.M(atom=WATER, basis="6-31g", verbose=0)).density_fit(auxbasis="weigend")
    mf.conv_tol = 1e-12
    reference = mf.kernel()
    for backend in ("numpy", "torch"):
        hist = eq.run(ds, op, steps=60, store=tmp_path / f"{backend}.zarr", record={"energy": 1, "residual": 1},
                      backend=backend, options={"max_inner": 500} if op != "diis" else {}, progress=False,
                      stop=eq.stop.converged("residual", 1e-9))
        assert hist.stop_reason.values[0] == "converged", backend
        assert abs(_final_energy(hist)[0] - reference) < 1e-8, backend
    exact = eq.create("scf", problem="molecule", mol=mol, basis="6-31g")
    print(f"\nmemory: exact (ij|kl) {exact.eri.nbytes} B, DF factor {ds.cderi.nbytes} B "
          f"({ds.sizes['aux']} auxiliary functions, n = {ds.sizes['orbital_i']})")


def test_exact_integrals_from_a_mole_equal_the_data_file(tmp_path):
    pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow[chem]) is not installed")
    from eqflow.systems import scf
    data = scf.load_molecule("h2o_sto-3g")
    mol = pyscf.gto.M(atom=data["metadata"]["atoms_angstrom"][0], basis="sto-3g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol)
    np.testing.assert_allclose(ds.core_hamiltonian.values, data["core_hamiltonian"][0], atol=1e-10)
    np.testing.assert_allclose(ds.eri.values, data["eri"][0], atol=1e-10)


def test_missing_pyscf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyscf", None)  # import pyscf now raises ImportError
    with pytest.raises(eq.SchemaError, match=r"pip install eqflow\[chem\]"):
        eq.create("scf", problem="molecule", mol=object(), density_fit=True)


@pytest.mark.parametrize("kwargs,message", [
    ({"density_fit": True, "molecule": "h2o_sto-3g"}, "density_fit: needs mol=<PySCF Mole>"),
    ({"auxbasis": "weigend", "molecule": "h2o_sto-3g"}, "auxbasis: only with mol=<PySCF Mole>, got 'weigend'"),
])
def test_density_fit_needs_a_mole(kwargs, message):
    with pytest.raises(eq.SchemaError, match=message):
        eq.create("scf", problem="molecule", **kwargs)


def test_bad_cderi_shape_is_reported():
    from eqflow.systems.scf import problems
    h = np.eye(3)
    p = problems.molecule(h, np.eye(3), None, 2, cderi=np.zeros((5, 3, 4)))
    assert p.errors == ["cderi: expected shape (aux, n, n) with n = 3 for one geometry, got (5, 3, 4)"]
