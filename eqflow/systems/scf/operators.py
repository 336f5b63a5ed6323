"""SCF operators: one iteration each, pure functions over raw arrays (NumPy or torch).

Every operator owns ``previous_energy`` (the energy before its last update, for the
``energy_change`` observable); DIIS also owns its history (``diis_fock``, ``diis_error``,
``diis_count``; the option ``history`` sets its length). They start from the ``init_*``
functions and are checkpointed with the state, but are not part of the physical system.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from . import solvers as kernels


def problem_arrays(*, problem, core_hamiltonian, occupied, overlap=None, eri=None, nuclear_repulsion=None,
                   hartree_kernel=None, interaction=None, alpha=None):
    """Turn constants and parameters into the arrays every operator and observable uses.

    ``problem`` is the system's family attribute; ``create`` has checked that its constants and
    parameters are all there. Returns ``occupation`` f (..., spin, n) (1 for the lowest ``occupied`` orbitals),
    ``metric`` S and ``orthogonalizer`` X = S^-1/2 (Loewdin; identity without overlap), ``degeneracy`` g,
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
    if problem == "molecule":
        lead = eri.shape[:-4]
        exchange = np.swapaxes(eri, -3, -2)  # (ik|jl) stored at [i, j, k, l]
        return {**out, "degeneracy": np.asarray(2.0 / spins), "energy_scale": np.asarray(1.0 / spins),
                "coulomb": eri.reshape(*lead, n * n, n * n), "exchange": exchange.reshape(*lead, n * n, n * n)}
    if problem == "nonlinear":
        return {**out, "degeneracy": np.asarray(1.0), "energy_scale": np.asarray(0.25),
                "local_coulomb": alpha[..., None, None] * hartree_kernel}
    onsite = interaction[..., None, None] * np.eye(n)
    return {**out, "degeneracy": np.asarray(1.0), "energy_scale": np.asarray(0.5), "local_coulomb": onsite,
            "local_exchange": onsite}


def _fock_inputs(arrays, core_hamiltonian):
    keys = ("degeneracy", "coulomb", "exchange", "local_coulomb", "local_exchange")
    return {"core_hamiltonian": core_hamiltonian, **{k: arrays[k] for k in keys if k in arrays}}


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

    What is implemented (see :func:`eqflow.systems.scf.solvers.oja_step`): in the orthonormal
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


# ---- operator-owned state at the first step of a run


def init_previous_energy(*, density, fock, core_hamiltonian, energy_scale, energy_shift):
    """previous_energy = E(D) of the starting density: energy_change is 0 at the first record."""
    e = kernels.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                       energy_shift=energy_shift)
    return {"previous_energy": np.broadcast_to(e, density.shape[:-3]).astype(np.float64)}


def init_diis(*, density, fock, history, core_hamiltonian, energy_scale, energy_shift):
    """An empty DIIS history of ``history`` slots, and previous_energy."""
    ensemble = density.shape[:-3]
    zeros = np.zeros((*ensemble, history, *density.shape[-3:]))
    return {"diis_fock": zeros, "diis_error": zeros.copy(), "diis_count": np.zeros(ensemble, dtype=np.int64),
            **init_previous_energy(density=density, fock=fock, core_hamiltonian=core_hamiltonian,
                                   energy_scale=energy_scale, energy_shift=energy_shift)}
