"""Molecules built from a PySCF Mole, with density fitting (kind "scf").

PySCF is an optional extra (``pip install eqflow-ensembles[chem]``): the tests that need it are skipped
without it, and the error raised when it is missing is tested with PySCF hidden.
"""
import json
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
    pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow-ensembles[chem]) is not installed")
    mol = pyscf.gto.M(atom=WATER, basis="sto-3g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol, basis="6-31g", density_fit=True, auxbasis="weigend")
    recipe = json.loads(ds.attrs["integrals"])  # how to rebuild B, not B itself
    assert "cderi" not in ds and "eri" not in ds and recipe["density_fit"] and recipe["auxbasis"] == "weigend"
    mf = pyscf.scf.RHF(pyscf.gto.M(atom=WATER, basis="6-31g", verbose=0)).density_fit(auxbasis="weigend")
    mf.conv_tol = 1e-12
    reference = mf.kernel()
    for backend in ("numpy", "torch"):
        hist = eq.run(ds, op, steps=60, store=tmp_path / f"{backend}.zarr", record={"energy": 1, "residual": 1},
                      backend=backend, options={"max_inner": 500} if op != "diis" else {}, progress=False,
                      stop=eq.stop.converged("residual", 1e-9))
        assert hist.stop_reason.values[0] == "converged", backend
        assert abs(_final_energy(hist)[0] - reference) < 1e-8, backend
        assert "cderi" not in hist and json.loads(hist.attrs["eqflow_attributes"])["integrals"] == ds.attrs["integrals"]


def test_exact_integrals_from_a_mole_equal_the_data_file(tmp_path):
    pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow-ensembles[chem]) is not installed")
    from eqflow.systems import scf
    data = scf.load_molecule("h2o_sto-3g")
    mol = pyscf.gto.M(atom=data["metadata"]["atoms_angstrom"][0], basis="sto-3g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol)
    np.testing.assert_allclose(ds.core_hamiltonian.values, data["core_hamiltonian"][0], atol=1e-10)
    packed = scf.integrals.recipe_integrals(ds.attrs["integrals"])["packed_eri"]
    np.testing.assert_allclose(scf.solvers.unpack_packed_eri(packed, mol.nao), data["eri"][0], atol=1e-10)


def test_missing_pyscf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyscf", None)  # import pyscf now raises ImportError
    with pytest.raises(eq.SchemaError, match=r"pip install eqflow-ensembles\[chem\]"):
        eq.create("scf", problem="molecule", mol=object(), density_fit=True)


@pytest.mark.parametrize("kwargs,message", [
    ({"auxbasis": "weigend", "molecule": "h2o_sto-3g"}, "auxbasis: only with mol=<PySCF Mole>, got 'weigend'"),
    ({"density_fit": True, "molecule": "h2o_sto-3g"},
     r"density_fit: the Cholesky factor is made for one geometry, got 3 \(pick one with geometry"),
    ({"density_fit": "ri", "molecule": "h2o_sto-3g"}, r"density_fit: expected False, True .* or 'cholesky', got 'ri'"),
    ({"cholesky_tol": 1e-6, "molecule": "h2o_sto-3g"},
     "cholesky_tol: only with density_fit='cholesky', got density_fit=False"),
    ({"density_fit": "cholesky", "cholesky_tol": -1.0, "molecule": "h2o_sto-3g", "geometry": 1.4},
     r"cholesky_tol: expected a finite number > 0 \(hartree\), got -1.0"),
])
def test_density_fit_arguments_are_checked(kwargs, message):
    with pytest.raises(eq.SchemaError, match=message):
        eq.create("scf", problem="molecule", **kwargs)


@pytest.mark.parametrize("tol", [1e-4, 1e-7, 1e-10])
def test_cholesky_factor_bounds_every_integral(tol):
    """The pivoted Cholesky factor: |(ij|kl) - sum_P B_Pij B_Pkl| <= tol for every integral (the
    residual is positive semidefinite with diagonal <= tol), B symmetric in (i, j), and at most
    n (n + 1) / 2 vectors (the distinct pairs)."""
    from eqflow.systems.scf import problems
    eri = problems.load_molecule("n2_6-31g")["eri"][0]
    n = eri.shape[-1]
    errors = []
    b = problems.cholesky_factor(eri, tol, errors)
    assert errors == [] and b.shape[0] <= n * (n + 1) // 2
    assert np.abs(np.einsum("pij,pkl->ijkl", b, b) - eri).max() <= tol
    np.testing.assert_array_equal(b, np.swapaxes(b, -1, -2))
    coarser = problems.cholesky_factor(eri, tol * 1e3, errors)
    assert coarser.shape[0] < b.shape[0]


def test_cholesky_factor_refuses_integrals_that_are_not_positive_semidefinite():
    from eqflow.systems.scf import problems
    eri = problems.load_molecule("h2_sto-3g")["eri"][0].copy()
    eri[0, 0, 0, 0] = eri[1, 1, 1, 1] = -1.0  # negative self-repulsion: no Gram matrix
    errors = []
    assert problems.cholesky_factor(eri, 1e-10, errors) is None
    assert errors and errors[0].startswith("eri: expected a positive semidefinite (ij|kl)")


@pytest.mark.parametrize("name", ["h2o_6-31g", "n2_sto-3g", "h2_6-31gss"])
def test_cholesky_density_fit_reaches_the_exact_rhf_energy(name, tmp_path):
    """No PySCF needed: B from the pivoted Cholesky decomposition of a data/ molecule's exact
    integrals (default tolerance 1e-10 hartree); diis and adaptive_online from PySCF's minao guess
    reach PySCF's exact-integral RHF energy within 1e-8 Eh (numpy, and torch for diis)."""
    from eqflow.systems import scf
    geometry = float(scf.load_molecule(name)["geometry"][0])
    ds = eq.create("scf", problem="molecule", molecule=name, geometry=geometry, density_fit="cholesky",
                   guess="minao")
    assert "eri" not in ds and ds.cderi.dims == ("aux", "orbital_i", "orbital_j")
    reference = scf.theory.molecule_reference(name, "minao")["energy"][0]
    for op, backend in (("diis", "numpy"), ("diis", "torch"), ("adaptive_online", "numpy")):
        hist = eq.run(ds, op, steps=80, store=tmp_path / f"{op}-{backend}.zarr", backend=backend, progress=False,
                      record={"energy": 1, "residual": 1}, options={"max_inner": 500} if op != "diis" else {},
                      stop=eq.stop.converged("residual", 1e-9))
        assert hist.stop_reason.values.ravel()[0] == "converged", (op, backend)
        assert abs(_final_energy(hist).ravel()[0] - reference) < 1e-8, (op, backend)


def test_bad_cderi_shape_is_reported():
    from eqflow.systems.scf import problems
    h = np.eye(3)
    p = problems.molecule(h, np.eye(3), None, 2, cderi=np.zeros((5, 3, 4)))
    assert p.errors == ["cderi: expected shape (aux, n, n) with n = 3 for one geometry, got (5, 3, 4)"]


def test_numpy_true_takes_pyscfs_auxiliary_basis_like_true():
    """density_fit=numpy.True_ (e.g. read from an array of options) is True: PySCF's factor, not the exact (ij|kl)."""
    pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow-ensembles[chem]) is not installed")
    mol = pyscf.gto.M(atom=WATER, basis="sto-3g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol, density_fit=np.True_, auxbasis="weigend")
    reference = eq.create("scf", problem="molecule", mol=mol, density_fit=True, auxbasis="weigend")
    assert "eri" not in ds and json.loads(ds.attrs["integrals"])["density_fit"] is True
    assert ds.attrs["integrals"] == reference.attrs["integrals"]
