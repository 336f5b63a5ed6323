"""Self-consistent field equations: H(D) C = S C e with D = C_occ C_occ^T, solved as an ensemble.

The matrix to diagonalise depends on its own eigenvectors; the solution is the fixed point
(the equilibrium) of the iteration. Three problem families, each a Fock builder H(D):

- ``problem="nonlinear"``: the model of Yang, Gao & Meza, SIAM J. Matrix Anal. Appl. 30, 1773
  (2009): H(D) = L + alpha Diag(L^-1 diag(D)), L the 1D Laplacian tridiag(-1, 2, -1), k
  occupied orbitals, energy E = tr(L D) / 2 + alpha rho^T L^-1 rho / 4 (rho = diag D), whose
  gradient is H(D) C_occ. Plain iteration converges for small alpha and fails for large.
- ``problem="hubbard"``: unrestricted Hartree-Fock of the Hubbard model on a ring or a
  periodic square lattice: H_s(D) = -t A + U Diag(n_-s), spin-up and spin-down densities.
- ``problem="molecule"``: restricted Hartree-Fock from integrals (h, S, (ij|kl) in chemists'
  notation, hartree): F(D) = h + 2 J[D] - K[D] with D the alpha density (half of P).

State: ``density``, ``fock`` (= H(density)), ``orbitals``, ``previous_energy`` and the DIIS
history, over (member, *sweeps[, history], spin, orbital, orbital_). Members are initial
guesses: the core (or a given) guess rotated by a seeded random orthogonal matrix per member.
Operators: ``fixed_point``, ``damping``, ``diis``, ``online_pca``. Observables: ``energy``,
``residual`` ||FDS - SDF||, ``energy_change``, ``convergence``, ``electrons``,
``staggered_magnetization``. ``theory``: Hubbard dimer and gap equation, PySCF references.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import xarray as xr
from array_api_compat import array_namespace

from .. import registry
from ..errors import SchemaError
from ..registry import Operator, System
from ..schema import constant_arrays, finish_system, parameter_arrays, system_coords
from . import _scf_problems as problems
from . import _scf_solvers as kernels
from . import _scf_start as start
from . import _scf_theory

KIND = "scf"
FAMILY_ARGS = {
    "nonlinear": {"size": 10, "occupied": 2, "alpha": 1.0},
    "hubbard": {"sites": 10, "hopping": 1.0, "interaction": 4.0, "electrons_up": None, "electrons_down": None,
                "lattice": "ring"},
    "molecule": {"molecule": None, "core_hamiltonian": None, "overlap": None, "eri": None, "electrons": None,
                 "nuclear_repulsion": 0.0, "geometry": None},
}
STATE_DIMS = ("spin", "orbital", "orbital_")


def create(problem="nonlinear", *, members=1, seed=0, rotation=0.0, guess="core", diis_history=8, mixing=0.5,
           learning_rate=10.0, **arguments):
    """A new ensemble of SCF problems and initial guesses as an xarray Dataset.

    Parameters
    ----------
    problem : "nonlinear", "hubbard" or "molecule".
    members : int. Initial guesses per parameter point (the ``member`` dimension).
    seed : int in [0, 2**64). Keys the random rotation of each member's guess.
    rotation : float >= 0. Size theta of the random rotations: member m starts from the
        orbitals of the guess times Q_m = (I - A)^-1 (I + A), A = theta (G - G^T) / (2 sqrt 2),
        G standard normal per member and spin (the same Q_m at every parameter point). 0: every
        member starts from the unrotated guess (spin symmetry then stays unbroken).
    guess : "core" (diagonalise h), "minao" (molecule files: PySCF's atomic-density guess) or
        an array of densities in the convention of ``density``: (n, n), (spin, n, n) or
        (geometry, spin, n, n); the first orbitals are those of H(guess).
    diis_history : int >= 1. DIIS slots (the ``history`` dimension).
    mixing, learning_rate : float or 1-D sweep. Step sizes of ``damping`` and ``online_pca``.
    **arguments : the problem's own, with defaults:
        nonlinear: size=10 grid points, occupied=2 orbitals, alpha=1.0 (float or 1-D sweep);
        hubbard: sites=10 (ring: N; square: L or (L_y, L_x)), hopping=1.0 (t, hartree or a
        quantity), interaction=4.0 (U, float, quantity or 1-D sweep), electrons_up,
        electrons_down (default: half filling), lattice="ring" | "square";
        molecule: either molecule="h2o_sto-3g" (a file in data/; ``geometry`` then picks bond
        lengths) or core_hamiltonian, overlap (n, n) or (G, n, n), eri (n, n, n, n) or
        (G, n, n, n, n) in chemists' notation (arrays in hartree, or quantities), electrons
        (even), nuclear_repulsion (scalar or (G,)), geometry (G labels, e.g. bond lengths).

    Examples
    --------
    >>> ds = create("hubbard", sites=6, interaction=[2.0, 4.0], members=3, seed=1, rotation=0.3)
    >>> dict(ds.density.sizes)
    {'member': 3, 'interaction': 2, 'spin': 2, 'orbital': 6, 'orbital_': 6}
    """
    bad = []
    if problem not in FAMILY_ARGS:
        raise SchemaError(f"problem: expected one of {sorted(FAMILY_ARGS)}, got {problem!r}", kind=KIND)
    unknown = sorted(set(arguments) - set(FAMILY_ARGS[problem]))
    if unknown:
        bad.append(f"{', '.join(unknown)}: not argument(s) of problem={problem!r}; "
                   f"expected some of {sorted(FAMILY_ARGS[problem])}")
    args = {**FAMILY_ARGS[problem], **arguments}
    built, data = problems.build(problem, args)
    bad += built.errors
    if not (isinstance(rotation, (int, float, np.integer, np.floating)) and not isinstance(rotation, bool)
            and math.isfinite(rotation) and rotation >= 0):
        bad.append(f"rotation: expected a finite number >= 0, got {rotation!r}")
    if not problems._is_int(diis_history) or diis_history < 1:
        bad.append(f"diis_history: expected a positive integer, got {diis_history!r}")
    if bad:
        raise SchemaError(bad, kind=KIND)
    parameters = {k: v for k, v in {**built.parameters, "mixing": mixing, "learning_rate": learning_rate}.items()
                  if v is not None}
    sizes = {"spin": built.spins, "orbital": built.orbitals, "orbital_": built.orbitals, "history": diis_history}
    if "eri" in built.constants:
        sizes.update(orbital__=built.orbitals, orbital___=built.orbitals)
    coords, dims, shape = system_coords(KIND, members=members, parameters=parameters, site_sizes=sizes,
                                        constants=built.constants)
    density = start.guess_density(guess, data, built.spins, built.orbitals, dims, shape)
    state = _initial_state(coords, dims, density, float(rotation), seed, diis_history)
    ds = finish_system(KIND, coords, state, seed=seed)
    for name, spec in registry.get(KIND).schema["variables"].items():
        if "units" in spec:
            ds[name].attrs["units"] = spec["units"]
    return ds


def _initial_state(coords, dims, guess_density, theta, seed, history):
    skeleton = xr.Dataset(coords=coords)
    inputs = {**parameter_arrays(skeleton, KIND), **constant_arrays(skeleton, KIND)}
    arrays = registry.call_with(problem_arrays, inputs)
    fock_inputs = _fock_inputs(arrays, inputs["core_hamiltonian"])
    spins, n = inputs["occupied"].shape[-1], inputs["core_hamiltonian"].shape[-1]
    shape = tuple(skeleton.sizes[d] for d in dims)
    if guess_density is None:
        guess_fock = np.broadcast_to(inputs["core_hamiltonian"][..., None, :, :], (*shape, spins, n, n))
    else:
        guess_fock = kernels.fock_matrix(guess_density, **fock_inputs)
    _, orbitals = kernels.aufbau(guess_fock, arrays["orthogonalizer"], arrays["occupation"])
    q = start.rotations(seed, shape[0], spins, n, theta)
    orbitals = orbitals @ q.reshape((shape[0],) + (1,) * (len(shape) - 1) + (spins, n, n))
    density = kernels.density_from(orbitals, arrays["occupation"])
    fock = kernels.fock_matrix(density, **fock_inputs)
    e0 = kernels.energy(density, fock, core_hamiltonian=inputs["core_hamiltonian"], energy_scale=arrays["energy_scale"],
                        energy_shift=arrays["energy_shift"])
    matrix, hist = (*dims, *STATE_DIMS), (*dims, "history", *STATE_DIMS)
    zeros = np.zeros((*shape, history, spins, n, n))
    return {"density": (matrix, density), "fock": (matrix, fock), "orbitals": (matrix, orbitals),
            "previous_energy": (dims, np.broadcast_to(e0, shape).copy()), "diis_fock": (hist, zeros),
            "diis_error": (hist, zeros.copy()), "diis_count": (dims, np.zeros(shape, dtype=np.int64))}


# ---- prepare: the problem as arrays (NumPy, once per segment)


def problem_arrays(*, core_hamiltonian, occupied, overlap=None, eri=None, nuclear_repulsion=None, hartree_kernel=None,
                   interaction=None, alpha=None):
    """Turn constants and parameters into the arrays every operator and observable uses.

    Returns ``occupation`` f (..., spin, n) (1 for the lowest ``occupied`` orbitals), ``metric``
    S and ``orthogonalizer`` X = S^-1/2 (Loewdin; identity without overlap), ``degeneracy`` g,
    ``energy_scale`` c and ``energy_shift`` E_0 of E = c sum_s tr[(h + F_s) D_s] + E_0, and the
    two-electron part: ``coulomb``/``exchange`` (ij|kl) supermatrices (n^2, n^2) for molecules,
    or ``local_coulomb``/``local_exchange`` kernels (n, n): U I for Hubbard, alpha L^-1 for the
    nonlinear problem.
    """
    n, spins = core_hamiltonian.shape[-1], occupied.shape[-1]
    occupation = (np.arange(n) < occupied[..., None]).astype(np.float64)
    if overlap is None:
        metric = orthogonalizer = np.eye(n) * np.ones((*core_hamiltonian.shape[:-2], 1, 1))
    else:
        w, u = np.linalg.eigh(overlap)
        metric, orthogonalizer = overlap, (u / np.sqrt(w)[..., None, :]) @ np.swapaxes(u, -1, -2)
    out = {"occupation": occupation, "metric": metric, "orthogonalizer": orthogonalizer,
           "energy_shift": np.zeros(()) if nuclear_repulsion is None else nuclear_repulsion}
    if eri is not None:
        lead = eri.shape[:-4]
        exchange = np.swapaxes(eri, -3, -2)  # (ik|jl) stored at [i, j, k, l]
        return {**out, "degeneracy": np.asarray(2.0 / spins), "energy_scale": np.asarray(1.0 / spins),
                "coulomb": eri.reshape(*lead, n * n, n * n), "exchange": exchange.reshape(*lead, n * n, n * n)}
    if hartree_kernel is not None:
        if alpha is None:
            raise SchemaError("alpha: the nonlinear problem needs the parameter alpha, got none", kind=KIND)
        return {**out, "degeneracy": np.asarray(1.0), "energy_scale": np.asarray(0.25),
                "local_coulomb": alpha[..., None, None] * hartree_kernel}
    if interaction is None:
        raise SchemaError("interaction: expected eri (molecule), hartree_kernel (nonlinear) or interaction "
                          "(hubbard) in the system, got none of them", kind=KIND)
    onsite = interaction[..., None, None] * np.eye(n)
    return {**out, "degeneracy": np.asarray(1.0), "energy_scale": np.asarray(0.5), "local_coulomb": onsite,
            "local_exchange": onsite}


def _fock_inputs(arrays, core_hamiltonian):
    keys = ("degeneracy", "coulomb", "exchange", "local_coulomb", "local_exchange")
    return {"core_hamiltonian": core_hamiltonian, **{k: arrays[k] for k in keys if k in arrays}}


# ---- operators: one SCF iteration each, pure functions over raw arrays


def _iterate(density, orbitals, previous_energy, *, core_hamiltonian, degeneracy, coulomb, exchange, local_coulomb,
             local_exchange):
    """The new state's common part; every operator ends with this one Fock build of the new density."""
    fock = kernels.fock_matrix(density, core_hamiltonian=core_hamiltonian, degeneracy=degeneracy, coulomb=coulomb,
                               exchange=exchange, local_coulomb=local_coulomb, local_exchange=local_exchange)
    return {"density": density, "orbitals": orbitals, "fock": fock, "previous_energy": previous_energy}


def fixed_point(*, density, fock, core_hamiltonian, orthogonalizer, occupation, degeneracy, energy_scale, energy_shift,
                coulomb=None, exchange=None, local_coulomb=None, local_exchange=None):
    """Roothaan's iteration D <- aufbau(F(D)): solve F C = S C e, occupy the lowest orbitals.

    Roothaan, Rev. Mod. Phys. 23, 69 (1951). All arrays (..., spin, n, n) float64.
    """
    before = kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    new, orbitals = kernels.aufbau(fock, orthogonalizer, occupation)
    return _iterate(new, orbitals, before, core_hamiltonian=core_hamiltonian, degeneracy=degeneracy, coulomb=coulomb,
                    exchange=exchange, local_coulomb=local_coulomb, local_exchange=local_exchange)


def damping(*, density, fock, mixing, core_hamiltonian, orthogonalizer, occupation, degeneracy, energy_scale,
            energy_shift, coulomb=None, exchange=None, local_coulomb=None, local_exchange=None):
    """Linear mixing D <- (1 - beta) D + beta aufbau(F(D)), beta = ``mixing`` (per ensemble cell).

    Shares the fixed points of :func:`fixed_point`; beta = 1 is that iteration. The density
    is idempotent only at convergence. ``orbitals`` are those of the diagonalised F(D).
    """
    before = kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    target, orbitals = kernels.aufbau(fock, orthogonalizer, occupation)
    beta = mixing[..., None, None, None]
    return _iterate((1.0 - beta) * density + beta * target, orbitals, before, core_hamiltonian=core_hamiltonian,
                    degeneracy=degeneracy, coulomb=coulomb, exchange=exchange, local_coulomb=local_coulomb,
                    local_exchange=local_exchange)


def diis(*, density, fock, diis_fock, diis_error, diis_count, core_hamiltonian, metric, orthogonalizer, occupation,
         degeneracy, energy_scale, energy_shift, coulomb=None, exchange=None, local_coulomb=None, local_exchange=None):
    """Pulay's DIIS: push (F, e = F D S - S D F), extrapolate F~ = sum_i c_i F_i, D <- aufbau(F~).

    c minimises ||sum_i c_i e_i|| with sum_i c_i = 1 over the valid history (``diis_count``
    newest slots of ``history``). Pulay, Chem. Phys. Lett. 73, 393 (1980); J. Comput. Chem. 3,
    556 (1982). With one entry it is the fixed-point iteration.
    """
    xp = array_namespace(density)
    before = kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    focks = kernels.diis_push(diis_fock, fock)
    errors = kernels.diis_push(diis_error, kernels.commutator(density, fock, metric))
    count = xp.minimum(diis_count + 1, xp.full_like(diis_count, diis_fock.shape[-4]))
    new, orbitals = kernels.aufbau(kernels.diis_extrapolate(focks, errors, count), orthogonalizer, occupation)
    out = _iterate(new, orbitals, before, core_hamiltonian=core_hamiltonian, degeneracy=degeneracy, coulomb=coulomb,
                   exchange=exchange, local_coulomb=local_coulomb, local_exchange=local_exchange)
    return {**out, "diis_fock": focks, "diis_error": errors, "diis_count": count}


def online_pca(*, density, fock, orbitals, learning_rate, core_hamiltonian, metric, orthogonalizer, occupation,
               degeneracy, energy_scale, energy_shift, coulomb=None, exchange=None, local_coulomb=None,
               local_exchange=None):
    """Online PCA (Oja subspace) step on the occupied orbitals: V <- orth(V + eta A V).

    What is implemented (see :func:`eqflow.systems._scf_solvers.oja_step`): in the orthonormal
    basis V = S^1/2 C, F' = S^-1/2 F(D) S^-1/2, A = (sigma I - F') / (sigma - lambda_min) with
    sigma, lambda_min the Gershgorin bounds of F' (A is positive semi-definite, spectrum in
    [0, 1], and its top-k subspace is the occupied one), eta = ``learning_rate``, orth = QR.
    This is the Oja-type tracking of the top principal subspace of a non-stationary "covariance"
    sigma I - H(D) proposed by Li, Chen, Tutunov, Bou Ammar, Wang & Wang, "Online PCA in
    Converging Self-consistent Field Equations", NeurIPS 36 (2023); the numerical adaptations of
    that paper (beyond this update) are not reproduced here. Oja, J. Math. Biol. 15, 267 (1982).
    """
    before = kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    new, orbitals = kernels.oja_step(orbitals, fock, orthogonalizer=orthogonalizer, metric=metric,
                                     occupation=occupation, learning_rate=learning_rate)
    return _iterate(new, orbitals, before, core_hamiltonian=core_hamiltonian, degeneracy=degeneracy, coulomb=coulomb,
                    exchange=exchange, local_coulomb=local_coulomb, local_exchange=local_exchange)


# ---- observables


def energy(*, density, fock, core_hamiltonian, energy_scale, energy_shift):
    """Total energy E(D) = c sum_s tr[(h + F_s) D_s] + E_0 in hartree (molecules: with nuclear repulsion)."""
    return kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                          energy_shift=energy_shift)


def residual(*, density, fock, metric):
    """Commutator residual ||F D S - S D F||_F (hartree), in quadrature over spins; 0 at self-consistency."""
    return kernels.residual(density, fock, metric)


def energy_change(*, density, fock, previous_energy, core_hamiltonian, energy_scale, energy_shift):
    """|E(D) - E(D_previous)| in hartree (0 at creation, where there is no previous iterate)."""
    xp = array_namespace(density)
    return xp.abs(energy(density=density, fock=fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                         energy_shift=energy_shift) - previous_energy)


def convergence(*, density, fock, previous_energy, core_hamiltonian, metric, energy_scale, energy_shift):
    """max(residual, energy_change) in hartree: below a tolerance when both criteria hold."""
    xp = array_namespace(density)
    change = energy_change(density=density, fock=fock, previous_energy=previous_energy,
                           core_hamiltonian=core_hamiltonian, energy_scale=energy_scale, energy_shift=energy_shift)
    return xp.maximum(kernels.residual(density, fock, metric), change)


def electrons(*, density, metric, degeneracy):
    """Electron count g sum_s tr(D_s S) (g = 2 for RHF); equals the filling for an idempotent D."""
    xp = array_namespace(density)
    return degeneracy * xp.sum(density * metric[..., None, :, :], axis=(-3, -2, -1))


def staggered_magnetization(*, density, sublattice=None):
    """|sum_i sign_i (n_i,up - n_i,down)| / N for two spin channels on a lattice, else 0."""
    xp = array_namespace(density)
    if density.shape[-3] != 2 or sublattice is None:
        return xp.zeros_like(density[..., 0, 0, 0])
    site = xp.linalg.diagonal(density)
    return xp.abs(xp.sum(sublattice * (site[..., 0, :] - site[..., 1, :]), axis=-1)) / density.shape[-1]


theory = SimpleNamespace(
    hubbard_dimer=_scf_theory.hubbard_dimer,
    hubbard_antiferromagnet=_scf_theory.hubbard_antiferromagnet,
    band_energies=_scf_theory.band_energies,
    molecule_reference=_scf_theory.molecule_reference,
    laplacian=problems.laplacian,
    load_molecule=problems.load_molecule,
    available_molecules=problems.available_molecules,
)
load_molecule, available_molecules = problems.load_molecule, problems.available_molecules

SYSTEM = System(
    kind=KIND,
    create=create,
    operators={name: Operator(update, prepare=problem_arrays)
               for name, update in (("fixed_point", fixed_point), ("damping", damping), ("diis", diis),
                                    ("online_pca", online_pca))},
    observables={"energy": energy, "residual": residual, "energy_change": energy_change, "convergence": convergence,
                 "electrons": electrons, "staggered_magnetization": staggered_magnetization},
    theory=theory,
    example={"problem": "hubbard", "sites": 6, "interaction": [2.0, 4.0], "members": 3, "seed": 5, "rotation": 0.3},
)
