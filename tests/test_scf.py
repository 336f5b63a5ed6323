"""Physics and error tests of the SCF system (kind "scf").

Tolerances: a run is taken as converged at a commutator residual r = ||FDS - SDF|| <= 1e-10.
Near a non-degenerate fixed point the density error is O(r / gap) and the energy error
O(r^2 / gap) (the energy is stationary), so energies agree with references to ~1e-14 and
order parameters to ~1e-9 for gaps >= 0.1; the asserted 1e-8 (energies, magnetizations) and
1e-10 (backends) leave room for rounding in the reference values.
"""
import numpy as np
import pytest
import xarray as xr

import eqflow as eq
from eqflow.system import call_with
from eqflow.systems import scf
from eqflow.systems.scf import solvers

MOLECULES = scf.available_molecules()
RESIDUAL = 1e-10
HAS_STOP = hasattr(eq, "stop")
needs_stop = pytest.mark.skipif(not HAS_STOP, reason="needs the core stop API (eq.stop.converged, stop_reason)")


def _run(ds, op, steps, path, **kw):
    record = kw.pop("record", {"energy": 1, "residual": 1})
    return eq.run(ds, op, steps=steps, store=path, record=record, progress=False, **kw)


def _final(history, var):
    """Last recorded value per member (records after a member's stop are NaN)."""
    values = history[var].values
    index = np.where(np.isnan(values), -1, np.arange(len(values)).reshape((-1,) + (1,) * (values.ndim - 1))).max(axis=0)
    return np.take_along_axis(values, index[None], axis=0)[0]


# ---- molecules: RHF energies equal PySCF's


@pytest.mark.parametrize("name", MOLECULES)
@pytest.mark.parametrize("guess", ["minao", "core"])
def test_rhf_energy_equals_pyscf_reference(name, guess, tmp_path):
    """DIIS from PySCF's own starting guess reaches PySCF's RHF energy (stored in the file) to 1e-8 Eh.

    From the core guess N2 lands on an excited RHF solution; PySCF's '1e' guess finds the same one.
    """
    ds = eq.create("scf", problem="molecule", molecule=name, guess=guess)
    hist = _run(ds, "diis", 80, tmp_path / "h.zarr")
    reference = scf.theory.molecule_reference(name, guess)
    assert np.all(hist.residual.values[-1] < RESIDUAL)
    np.testing.assert_allclose(hist.energy.values[-1, 0], reference["energy"], rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", MOLECULES)
def test_stored_references_match_live_pyscf(name):
    """PySCF as a test-only oracle: recompute the stored RHF energies from the file's geometry and basis."""
    pyscf = pytest.importorskip("pyscf", reason="PySCF (test-only oracle) is not installed: pip install pyscf")
    data = scf.load_molecule(name)
    for atoms, energy, h in zip(data["metadata"]["atoms_angstrom"], data["pyscf_energy"], data["core_hamiltonian"]):
        mol = pyscf.gto.M(atom=atoms, basis=data["metadata"]["basis"], verbose=0)
        np.testing.assert_allclose(mol.intor("int1e_kin") + mol.intor("int1e_nuc"), h, atol=1e-10)
        mf = pyscf.scf.RHF(mol)
        mf.conv_tol, mf.verbose = 1e-12, 0
        assert abs(mf.kernel() - energy) < 1e-8


def test_molecule_from_user_arrays_and_quantities(tmp_path):
    """Integrals given as arrays, pint quantities (eV) or xarray in hartree build the same system."""
    data = scf.load_molecule("h2o_sto-3g")
    h, s, eri, e_nuc = (data[k][0] for k in ("core_hamiltonian", "overlap", "eri", "nuclear_repulsion"))
    plain = eq.create("scf", problem="molecule", core_hamiltonian=h, overlap=s, eri=eri, electrons=10,
                      nuclear_repulsion=e_nuc)
    quantified = eq.create("scf", problem="molecule", core_hamiltonian=eq.ureg.Quantity(h, "hartree").to("eV"),
                           overlap=s, eri=xr.DataArray(eri, attrs={"units": "hartree"}), electrons=10,
                           nuclear_repulsion=f"{e_nuc} hartree")
    np.testing.assert_allclose(quantified.core_hamiltonian.values, plain.core_hamiltonian.values, rtol=1e-13,
                               atol=1e-13)
    hist = _run(plain, "diis", 40, tmp_path / "h.zarr")
    assert abs(hist.energy.values[-1, 0] - data["pyscf_energy"][0]) < 1e-8
    assert hist.energy.attrs["units"] == "4.3597447222071e-18 J"


# ---- Hubbard model: analytic UHF references


@pytest.mark.parametrize("interaction", [1.5, 3.0, 4.0, 8.0])
def test_hubbard_dimer_analytic(interaction, tmp_path):
    """Two sites, one up and one down electron: m = sqrt(1 - (2t/U)^2), E = -2t^2/U for U > 2t."""
    ds = eq.create("scf", problem="hubbard", sites=2, hopping=1.0, interaction=interaction, members=3, seed=4,
                   rotation=0.5)
    hist = _run(ds, "damping", 200, tmp_path / "h.zarr",
                record={"energy": 1, "residual": 1, "staggered_magnetization": 1})
    exact = scf.theory.hubbard_dimer(1.0, interaction)
    assert np.all(hist.residual.values[-1] < RESIDUAL)
    np.testing.assert_allclose(hist.staggered_magnetization.values[-1], exact["magnetization"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(hist.energy.values[-1], exact["energy"], rtol=0, atol=1e-8)


@pytest.mark.parametrize("lattice,sites", [("ring", 10), ("ring", 14), ("square", 4)])
def test_hubbard_half_filled_antiferromagnet_gap_equation(lattice, sites, tmp_path):
    """The Neel state satisfies 1 = (U/2N) sum_k 1/sqrt(eps_k^2 + Delta^2), Delta = U m / 2: m and E to 1e-8.

    Started, as a physicist would, from a staggered guess n_i,s = (1 + s sign_i) / 2 (other UHF
    solutions, spin-density waves and the paramagnet, are stationary points too).
    """
    u = [3.0, 4.0, 6.0]
    ds = eq.create("scf", problem="hubbard", lattice=lattice, sites=sites, interaction=u)
    sign = ds.sublattice.values
    neel = np.stack([np.diag((1 + sign) / 2), np.diag((1 - sign) / 2)])
    ds = eq.create("scf", problem="hubbard", lattice=lattice, sites=sites, interaction=u, guess=neel)
    hist = _run(ds, "damping", 300, tmp_path / "h.zarr",
                record={"energy": 1, "residual": 1, "staggered_magnetization": 1})
    exact = [scf.theory.hubbard_antiferromagnet(lattice, sites, 1.0, ui) for ui in u]
    assert np.all(hist.residual.values[-1] < RESIDUAL)
    np.testing.assert_allclose(hist.energy.values[-1, 0], [e["energy"] for e in exact], rtol=0, atol=1e-8)
    np.testing.assert_allclose(hist.staggered_magnetization.values[-1, 0], [e["magnetization"] for e in exact],
                               rtol=0, atol=1e-8)


def test_random_guesses_find_the_neel_state_among_other_solutions(tmp_path):
    """From randomly rotated guesses the lowest converged UHF energy of the ring is the Neel state's."""
    ds = eq.create("scf", problem="hubbard", sites=10, interaction=4.0, members=16, seed=3, rotation=0.3)
    hist = _run(ds, "damping", 300, tmp_path / "h.zarr")
    converged = hist.residual.values[-1] < RESIDUAL
    assert converged.sum() >= 8
    lowest = hist.energy.values[-1, converged].min()
    assert abs(lowest - scf.theory.hubbard_antiferromagnet("ring", 10, 1.0, 4.0)["energy"]) < 1e-8


def test_hubbard_energy_matches_its_definition():
    """E = sum_s tr(h D_s) + U sum_i n_i,up n_i,down for any (also non-self-consistent) density."""
    ds = eq.create("scf", problem="hubbard", sites=6, interaction=3.0, members=2, seed=1, rotation=0.7)
    d, h = ds.density.values, ds.core_hamiltonian.values
    n = np.diagonal(d, axis1=-2, axis2=-1)
    expected = np.einsum("ij,msij->m", h, d) + 3.0 * np.sum(n[:, 0] * n[:, 1], axis=-1)
    arrays = scf.problem_arrays(problem="hubbard", core_hamiltonian=h[None], occupied=ds.occupied.values[None],
                                interaction=np.full(2, 3.0))
    energy = scf.energy(density=d, fock=ds.fock.values, core_hamiltonian=h[None], energy_scale=arrays["energy_scale"],
                        energy_shift=arrays["energy_shift"])
    np.testing.assert_allclose(energy, expected, rtol=0, atol=1e-13)
    owned = scf.operators.init_previous_energy(density=d, fock=ds.fock.values, core_hamiltonian=h[None],
                                               energy_scale=arrays["energy_scale"], energy_shift=arrays["energy_shift"])
    np.testing.assert_allclose(owned["previous_energy"], expected, rtol=0, atol=1e-13)


# ---- the nonlinear problem of Yang, Gao & Meza


def test_nonlinear_energy_and_gradient():
    """E(X) = tr(X^T L X)/2 + alpha rho^T L^-1 rho / 4, and dE/dX = H(X) X (finite differences, 1e-6)."""
    n, k, alpha = 8, 2, 1.7
    lap = scf.theory.laplacian(n)
    x = np.linalg.qr(np.random.default_rng(0).normal(size=(n, k)))[0]
    arrays = scf.problem_arrays(problem="nonlinear", core_hamiltonian=lap, occupied=np.array([k]),
                                hartree_kernel=np.linalg.inv(lap),
                                alpha=np.asarray(alpha))
    build_fock = arrays["fock_builder"]

    def e(x):
        d = (x @ x.T)[None]
        return float(solvers.energy(d, build_fock(d), core_hamiltonian=lap,
                                    energy_scale=arrays["energy_scale"], energy_shift=arrays["energy_shift"]))

    rho = np.sum(x * x, axis=1)
    assert abs(e(x) - (0.5 * np.trace(x.T @ lap @ x) + alpha / 4 * rho @ np.linalg.solve(lap, rho))) < 1e-12
    step = 1e-6
    grad = np.array([[(e(x + step * np.eye(n)[:, [i]] @ np.eye(k)[[j]])
                       - e(x - step * np.eye(n)[:, [i]] @ np.eye(k)[[j]])) / (2 * step)
                      for j in range(k)] for i in range(n)])
    fock = build_fock((x @ x.T)[None])[0]
    np.testing.assert_allclose(grad, fock @ x, atol=1e-6)


def test_fixed_point_converges_for_small_alpha_only(tmp_path):
    """Plain SCF converges for small alpha and fails for large alpha (Yang, Gao & Meza); damping and DIIS converge."""
    ds = eq.create("scf", problem="nonlinear", size=10, occupied=2, alpha=[0.5, 10.0], members=3, seed=2, rotation=0.3)
    plain = _run(ds, "fixed_point", 150, tmp_path / "a.zarr")
    assert np.all(plain.residual.values[-1, :, 0] < RESIDUAL)
    assert np.all(plain.residual.values[-50:, :, 1] > 1e-2)  # oscillates, never settles
    for op in ("damping", "diis"):
        hist = _run(ds, op, 150, tmp_path / f"{op}.zarr")
        assert np.all(hist.residual.values[-1] < RESIDUAL), op


# ---- all solvers: same fixed point; backend independence


@pytest.mark.parametrize("problem", [
    {"problem": "nonlinear", "size": 10, "occupied": 2, "alpha": 0.5},
    {"problem": "molecule", "molecule": "h2o_sto-3g", "geometry": 0.9572},
    {"problem": "hubbard", "sites": 10, "interaction": 1.0, "members": 2, "rotation": 0.3},
])
def test_all_solvers_reach_the_same_fixed_point(problem, tmp_path):
    """Where the solution is unique (weak coupling, small alpha, H2O at equilibrium) every solver finds it.

    (At strong coupling the Hubbard model has several UHF solutions and solvers may pick different ones.)
    """
    ds = eq.create("scf", learning_rate=100.0, **problem)
    energies, densities = {}, {}
    for op in ("fixed_point", "damping", "diis", "online_pca"):
        hist = _run(ds, op, 250, tmp_path / f"{op}.zarr")
        assert hist.residual.values[-1].max() < RESIDUAL, op
        energies[op] = hist.energy.values[-1]
        densities[op] = eq.final_state(hist).density.values
    for op in energies:
        np.testing.assert_allclose(energies[op], energies["diis"], rtol=0, atol=1e-10, err_msg=op)
        np.testing.assert_allclose(densities[op], densities["diis"], rtol=0, atol=1e-8, err_msg=op)


@pytest.mark.parametrize("op,steps,problem", [
    ("diis", 60, {"problem": "molecule", "molecule": "n2_6-31g", "guess": "minao"}),
    ("damping", 300, {"problem": "hubbard", "sites": 10, "interaction": [3.0, 5.0], "members": 3, "seed": 1,
                      "rotation": 0.5}),
])
def test_converged_energy_is_backend_independent(op, steps, problem, tmp_path):
    """NumPy and torch (CPU, batched eigh) reach the same energies to 1e-10 hartree."""
    ds = eq.create("scf", **problem)
    a = _run(ds, op, steps, tmp_path / "np.zarr")
    b = _run(ds, op, steps, tmp_path / "torch.zarr", backend="torch", chunks={"member": 1})
    assert a.residual.values[-1].max() < RESIDUAL and b.residual.values[-1].max() < RESIDUAL
    np.testing.assert_allclose(b.energy.values[-1], a.energy.values[-1], rtol=0, atol=1e-10)


def test_diis_with_one_slot_is_the_fixed_point_and_full_mixing_too(tmp_path):
    ds = eq.create("scf", problem="nonlinear", size=8, occupied=3, alpha=[1.0, 4.0], members=2, seed=1, rotation=0.4,
                   mixing=1.0)
    plain = _run(ds, "fixed_point", 10, tmp_path / "a.zarr")
    for op in ("diis", "damping"):
        other = _run(ds, op, 10, tmp_path / f"{op}.zarr", **({"options": {"history": 1}} if op == "diis" else {}))
        np.testing.assert_allclose(other.energy.values, plain.energy.values, rtol=0, atol=1e-12, err_msg=op)


def test_members_are_rotated_guesses():
    """Members differ only by an orthogonal rotation: every initial density is idempotent with the right trace."""
    ds = eq.create("scf", problem="molecule", molecule="h2o_sto-3g", members=4, seed=9, rotation=0.5)
    d, s = ds.density.values, ds.overlap.values[None, :, None]
    np.testing.assert_allclose(d @ s @ d, d, atol=1e-12)
    np.testing.assert_allclose(np.trace(d @ s, axis1=-2, axis2=-1), 5.0, atol=1e-12)
    assert np.ptp(d.reshape(4, -1), axis=0).max() > 1e-3  # different densities
    same = eq.create("scf", problem="molecule", molecule="h2o_sto-3g", members=4, seed=9, rotation=0.5)
    assert np.array_equal(same.density.values, ds.density.values)


# ---- failure is data (needs the core stop API)


@needs_stop
def test_max_steps_and_diverged_are_reported_per_member(tmp_path):
    """Non-convergence is reported as max_steps, a NaN state as diverged; the other members converge."""
    ds = eq.create("scf", problem="nonlinear", size=10, occupied=2, alpha=[0.5, 10.0], members=3, seed=2, rotation=0.3)
    density = ds.density.values.copy()
    density[1, 0] = np.nan
    ds["density"] = (ds.density.dims, density, ds.density.attrs)
    hist = eq.run(ds, "fixed_point", steps=120, store=tmp_path / "h.zarr", record={"energy": 1, "residual": 1},
                  stop=eq.stop.converged("residual", 1e-8), progress=False)
    reasons = hist.stop_reason.values
    assert reasons[1, 0] == "diverged"
    assert list(reasons[[0, 2], 0]) == ["converged", "converged"]
    assert list(reasons[:, 1]) == ["max_steps"] * 3
    assert np.all(hist.stopped_at.values[:, 1] == 120)
    for member in (0, 2):
        at = hist.stopped_at.values[member, 0]
        assert hist.residual.values[at, member, 0] < 1e-8 <= hist.residual.values[at - 1, member, 0]
        assert np.all(np.isnan(hist.residual.values[at + 1:, member, 0]))


def test_operators_propagate_nan_without_raising():
    """A NaN member stays NaN and leaves the other members' update bit for bit unchanged."""
    ds = eq.create("scf", problem="molecule", molecule="h2_6-31gss", members=3, seed=1, rotation=0.2)
    inputs = {**scf.problem_arrays(problem="molecule", core_hamiltonian=ds.core_hamiltonian.values[None],
                                   occupied=ds.occupied.values[None, None],
                                   overlap=ds.overlap.values[None], eri=ds.eri.values[None],
                                   nuclear_repulsion=ds.nuclear_repulsion.values[None]),
              "core_hamiltonian": ds.core_hamiltonian.values[None], "mixing": np.full((3, 3), 0.5),
              "learning_rate": np.full((3, 3), 10.0)}
    for name, op in scf.SYSTEM.operators.items():
        state = {v: ds[v].values for v in scf.SYSTEM.schema.variables}
        state.update(call_with(op.init, {**state, **inputs, "history": 4}))
        broken = {k: v.copy() for k, v in state.items()}
        broken["fock"][1] = np.nan
        clean = call_with(op.update, {**state, **inputs})
        out = call_with(op.update, {**broken, **inputs})
        assert np.all(np.isnan(out["density"][1])), name
        for var, value in out.items():
            np.testing.assert_array_equal(value[[0, 2]], clean[var][[0, 2]], err_msg=f"{name}: {var}")


# ---- errors name the variable, the expected and the actual value


def _problems(**kwargs):
    with pytest.raises(eq.SchemaError) as info:
        eq.create("scf", **kwargs)
    return info.value.problems


def test_bad_user_integrals_are_all_reported():
    data = scf.load_molecule("h2o_sto-3g")
    h, s, eri = data["core_hamiltonian"][0], data["overlap"][0], data["eri"][0]
    asym = h.copy()
    asym[0, 1] += 0.1
    problems = _problems(problem="molecule", core_hamiltonian=asym, overlap=s, eri=eri[:6], electrons=9)
    text = "\n".join(problems)
    assert len(problems) == 3
    assert "core_hamiltonian: expected a symmetric matrix, got max |A - A^T| = 0.1" in text
    assert "eri: expected shape (n, n, n, n) or (geometry, n, n, n, n) with n = 7, got (6, 7, 7, 7)" in text
    assert "electrons: expected an even integer in [2, 14] for restricted Hartree-Fock (n = 7 orbitals), got 9" in text


@pytest.mark.parametrize("kwargs,message", [
    ({"overlap": "flip"}, "overlap: expected a positive definite matrix, got smallest eigenvalue"),
    ({"overlap": "small"}, "overlap: expected the shape of core_hamiltonian (7, 7), got (6, 6)"),
    ({"eri": "swap"}, "eri: expected chemists' notation with (ij|kl) = (kl|ij)"),
    ({"core_hamiltonian": "vector"},
     "core_hamiltonian: expected a square matrix (n, n) or a stack (geometry, n, n), got shape (7,)"),
    ({"core_hamiltonian": "units"}, "core_hamiltonian: expected units compatible with 'hartree', got 'meter'"),
    ({"geometry": [1.0, 2.0]}, "geometry: expected one label for one set of integrals, got [1.0, 2.0]"),
])
def test_molecule_input_errors(kwargs, message):
    data = scf.load_molecule("h2o_sto-3g")
    args = {"core_hamiltonian": data["core_hamiltonian"][0], "overlap": data["overlap"][0], "eri": data["eri"][0],
            "electrons": 10}
    rewrite = {"flip": -args["overlap"], "small": args["overlap"][:6, :6], "vector": args["core_hamiltonian"][0],
               "units": eq.ureg.Quantity(args["core_hamiltonian"], "m"),
               "swap": args["eri"] + 0.01 * np.add.outer(np.add.outer(np.arange(7.0), np.arange(7.0)), np.ones((7, 7)))}
    args.update({k: rewrite.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()})
    assert any(message in p for p in _problems(problem="molecule", **args)), _problems(problem="molecule", **args)


@pytest.mark.parametrize("rewrite,message", [
    (lambda g: g + 0.01 * np.add.outer(np.add.outer(np.arange(7.0), np.arange(7.0)), np.ones((7, 7))),
     "eri: expected chemists' notation with (ij|kl) = (kl|ij)"),
    (lambda g: np.transpose(g, (0, 2, 1, 3)), "eri: expected chemists' notation with (ij|kl) = (ji|kl)"),
    (lambda g: g, None),
])
def test_large_eri_symmetry_is_checked_on_a_sample(rewrite, message, monkeypatch):
    """Above FULL_ERI_CHECK elements the notation is checked at 2^20 sampled (i, j, k, l): a tensor
    in physicists' notation (<ik|jl> order) or with a broken symmetry is still refused."""
    from eqflow.systems.scf import problems as scf_problems

    monkeypatch.setattr(scf_problems, "FULL_ERI_CHECK", 0)
    data = scf.load_molecule("h2o_sto-3g")
    args = {"core_hamiltonian": data["core_hamiltonian"][0], "overlap": data["overlap"][0],
            "eri": rewrite(data["eri"][0]), "electrons": 10}
    if message is None:
        assert eq.create("scf", problem="molecule", **args).sizes["orbital_i"] == 7
    else:
        assert any(message in p for p in _problems(problem="molecule", **args))


@pytest.mark.parametrize("kwargs,message", [
    ({"problem": "hubbard", "lattice": "triangle"}, "lattice: expected 'ring' or 'square', got 'triangle'"),
    ({"problem": "hubbard", "sites": 4, "electrons_up": 5},
     "electrons_up: expected an integer in [0, 4] (the number of sites), got 5"),
    ({"problem": "hubbard", "hopping": [1.0, 2.0]}, "hopping: expected one positive energy t (not a sweep)"),
    ({"problem": "hubbard", "interaction": -1.0}, "interaction: expected values >= 0 hartree, got -1.0 hartree"),
    ({"problem": "hubbard", "size": 4}, "size: not argument(s) of problem='hubbard'"),
    ({"problem": "nonlinear", "occupied": 11}, "occupied: expected an integer in [1, size=10], got 11"),
    ({"problem": "nonlinear", "rotation": -1}, "rotation: expected a finite number >= 0, got -1"),
    ({"problem": "molecule"}, "core_hamiltonian: required for problem='molecule' without molecule=<name>, got nothing"),
    ({"problem": "molecule", "molecule": "h2o_sto-3g", "geometry": 3.0}, "geometry: expected bond lengths among"),
    ({"problem": "molecule", "molecule": "h2o_sto-3g", "guess": np.zeros((3, 3))},
     "guess: expected a finite density of shape"),
    ({"problem": "nonlinear", "guess": "minao"}, "guess: 'minao' needs a molecule file"),
    ({"problem": "quantum"},
     "problem: expected one of ['hubbard', 'molecule', 'nonlinear', 'rotation'], got 'quantum'"),
])
def test_model_input_errors(kwargs, message):
    assert any(message in p for p in _problems(**kwargs)), _problems(**kwargs)


def test_unknown_molecule_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"molecule: expected one of \['h2_6-31gss'"):
        eq.create("scf", problem="molecule", molecule="benzene")


def test_dataset_carries_units_and_quantifies():
    ds = eq.create("scf", problem="molecule", molecule="h2_sto-3g", members=2, rotation=0.1)
    assert ds.fock.attrs["units"] == "4.3597447222071e-18 J" and ds.density.attrs["units"] == "1"
    assert ds.core_hamiltonian.attrs["units"] == "4.3597447222071e-18 J" and ds.geometry.attrs["units"] == "angstrom"
    quantified = ds.pint.quantify()
    assert str(quantified.eri.data.units) == "hartree"
    assert ds.eri.dims == ("geometry", "orbital_i", "orbital_j", "orbital_k", "orbital_l")
