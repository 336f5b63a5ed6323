"""Molecules from a PySCF Mole at scale: integrals by recipe (not in every history), one batched J/K
for all members, and one prepare per process."""
import json

import numpy as np
import pytest

import eqflow as eq

pyscf = pytest.importorskip("pyscf", reason="PySCF (optional extra eqflow[chem]) is not installed")
from eqflow.systems import scf  # noqa: E402

WATER = "O 0 0 0; H 0 -0.757 0.587; H 0 0.757 0.587"


@pytest.fixture(scope="module")
def water():
    mol = pyscf.gto.M(atom=WATER, basis="6-31g", verbose=0)
    return mol, eq.create("scf", problem="molecule", mol=mol, members=4, seed=3, rotation=0.2, guess="core")


def _last(values):
    index = np.where(np.isnan(values), -1, np.arange(len(values)).reshape((-1,) + (1,) * (values.ndim - 1)))
    return np.take_along_axis(values, index.max(axis=0)[None], axis=0)[0]


def test_batched_packed_fock_equals_the_supermatrix_fock(water):
    """J and K of every member from one pass over the 8-fold packed (ij|kl) equal the definition
    J_ij = sum_kl (ij|kl) P_kl, K_ij = sum_kl (ik|jl) D_kl (einsum over the full tensor), to rounding;
    a NaN member stays NaN and leaves the others unchanged; a member's Fock matrix does not depend on where
    it sits in the stack (bit for bit)."""
    mol, ds = water
    packed = scf.integrals.recipe_integrals(ds.attrs["integrals"])["packed_eri"]
    eri = mol.intor("int2e")  # the full (ij|kl), PySCF's unpacked tensor
    h = ds.core_hamiltonian.values
    density = ds.density.values  # (member, spin, n, n)
    build = scf.solvers.FockBuilder(h, np.asarray(2.0), packed_eri=scf.solvers.padded_eri(packed, mol.nao))
    fock = build(density)
    expected = (h + 2 * np.einsum("ijkl,mskl->msij", eri, density) - np.einsum("ikjl,mskl->msij", eri, density))
    np.testing.assert_allclose(fock, expected, rtol=0, atol=1e-12)
    broken = density.copy()
    broken[1] = np.nan
    out = build(broken)
    assert np.all(np.isnan(out[1]))
    np.testing.assert_array_equal(out[[0, 2, 3]], fock[[0, 2, 3]])
    for i in range(4):
        np.testing.assert_array_equal(build(density[i:i + 1]), fock[i:i + 1])
        np.testing.assert_array_equal(build(density[::-1])[3 - i], fock[i])


def test_recipe_history_holds_no_integrals_and_reaches_pyscf(water, tmp_path):
    """The history records how to rebuild the integrals, not them; the energy is PySCF's RHF to 1e-8 Eh;
    a member's history does not depend on the chunking (bit for bit)."""
    mol, ds = water
    reference = pyscf.scf.RHF(mol)
    reference.conv_tol = 1e-12
    e_ref = reference.kernel()
    runs = {}
    for chunk in (1, 4):
        runs[chunk] = eq.run(ds, "diis", steps=30, chunks={"member": chunk}, store=tmp_path / f"{chunk}.zarr",
                             record={"energy": 1, "density": 30}, progress=False,
                             stop=eq.stop.converged("residual", 1e-9))
    hist = runs[4]
    assert (hist.stop_reason.values == "converged").all()
    np.testing.assert_allclose(_last(hist.energy.values), e_ref, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(runs[1].energy.values, runs[4].energy.values)
    np.testing.assert_array_equal(runs[1].density.values, runs[4].density.values)
    assert not {"eri", "cderi"} & set(hist.variables)
    recipe = json.loads(json.loads(hist.attrs["eqflow_attributes"])["integrals"])
    assert recipe["orbitals"] == mol.nao and pyscf.gto.loads(recipe["mole"]).nao == mol.nao
    assert not [p for p in (tmp_path / "4.zarr").rglob("*") if p.name in ("eri", "cderi")]


def test_a_recipe_that_rebuilds_other_integrals_is_refused(water, tmp_path):
    _, ds = water
    recipe = json.loads(ds.attrs["integrals"])
    recipe["checksum"][1] += 1.0
    wrong = ds.copy()
    wrong.attrs["integrals"] = json.dumps(recipe, sort_keys=True)
    with pytest.raises(ValueError, match="integrals: the rebuilt integrals have checksum"):
        eq.run(wrong, "diis", steps=2, store=tmp_path / "wrong.zarr", progress=False)
    assert not (tmp_path / "wrong.zarr").exists()
    broken = ds.copy()
    broken.attrs["integrals"] = "{not json"
    with pytest.raises(eq.SchemaError, match=r"attrs\['integrals'\]: expected a JSON document"):
        eq.run(broken, "diis", steps=2, store=tmp_path / "broken.zarr", progress=False)


def test_recipe_runs_on_torch_like_numpy(water, tmp_path):
    pytest.importorskip("torch")
    _, ds = water
    runs = {b: eq.run(ds, "diis", steps=12, backend=b, store=tmp_path / f"{b}.zarr", record={"energy": 1},
                      progress=False) for b in ("numpy", "torch")}
    np.testing.assert_allclose(runs["torch"].energy.values, runs["numpy"].energy.values, rtol=0, atol=1e-10)


def test_fitted_fock_equals_the_broadcast_definition(tmp_path):
    """The recipe's density-fitted F as two large products per member equals the broadcast definition
    J = sum_P B_P tr(B_P P), K = sum_P B_P D B_P to rounding; histories do not depend on the chunking."""
    mol = pyscf.gto.M(atom=WATER, basis="6-31g", verbose=0)
    ds = eq.create("scf", problem="molecule", mol=mol, density_fit=True, auxbasis="weigend", members=3, seed=2,
                   rotation=0.2)
    b = scf.integrals.recipe_integrals(ds.attrs["integrals"])["cderi"]
    h, g = ds.core_hamiltonian.values, np.asarray(2.0)
    fock = scf.solvers.FockBuilder(h, g, fitted=b)(ds.density.values)
    np.testing.assert_allclose(fock, scf.solvers.fock_matrix(ds.density.values, core_hamiltonian=h, degeneracy=g,
                                                             cderi=b), rtol=0, atol=1e-12)
    runs = [eq.run(ds, "diis", steps=8, chunks={"member": c}, store=tmp_path / f"{c}.zarr", record={"energy": 1},
                   progress=False) for c in (1, 3)]
    np.testing.assert_array_equal(runs[0].energy.values, runs[1].energy.values)
