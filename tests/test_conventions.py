"""Each field's conventions: PySCF's densities, networkx's labels and weights, spiking neurons.

Each test holds eqflow to another library's convention (or to a hand-written reference of it).
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow.errors import SchemaError


@pytest.fixture(scope="module")
def water():
    gto = pytest.importorskip("pyscf.gto")
    scf = pytest.importorskip("pyscf.scf")
    mol = gto.M(atom="O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692", basis="sto-3g", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-12
    mf.kernel()
    return mol, mf


def test_scf_takes_pyscf_make_rdm1_as_the_total_density(water, tmp_path):
    mol, mf = water
    total = mf.make_rdm1()  # PySCF's RHF convention: 2 D, trace(D S) = 10 electrons
    assert np.trace(total @ mol.intor("int1e_ovlp")) == pytest.approx(10.0)
    system = eq.create("scf", problem="molecule", mol=mol, guess=total)
    np.testing.assert_allclose(system.density.values[0, 0], total / 2, atol=1e-10)
    hist = eq.run(system, "damping", steps=1, store=tmp_path / "h.zarr", progress=False)
    # the start is PySCF's converged density: its energy, not -67.68 Eh as when taken per spin
    assert float(hist.energy.isel(step=0, member=0)) == pytest.approx(mf.e_tot, abs=1e-8)
    same = eq.create("scf", problem="molecule", mol=mol, guess=total / 2)  # eqflow's own convention
    np.testing.assert_array_equal(same.density.values, system.density.values)


def test_scf_refuses_a_density_of_neither_convention_by_name(water):
    mol, mf = water
    with pytest.raises(SchemaError, match=r"guess: expected an \(n, n\) density whose trace .* got a trace of 7\.5"):
        eq.create("scf", problem="molecule", mol=mol, guess=mf.make_rdm1() * 0.75)
