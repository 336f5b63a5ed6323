"""SCF operators: one iteration each, pure functions over raw arrays (NumPy or torch).

Every operator owns ``previous_energy`` (the energy before its last update, for the
``energy_change`` observable); DIIS also owns its history (``diis_fock``, ``diis_error``,
``diis_count``; the option ``history`` sets its length). They start from the ``init_*``
functions and are checkpointed with the state, but are not part of the physical system.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace

from . import solvers
from .integrals import recipe_integrals
from .problems import rotation_matrix
from .solvers import FockBuilder


def problem_arrays(*, problem, core_hamiltonian, occupied, overlap=None, eri=None, nuclear_repulsion=None,
                   hartree_kernel=None, interaction=None, alpha=None, angle=None, cderi=None, integrals=""):
    """Turn constants and parameters into the arrays every operator and observable uses.

    ``problem`` is the system's family attribute; ``create`` has checked that its constants and
    parameters are all there. Returns ``occupation`` f (..., spin, n) (1 for the lowest ``occupied`` orbitals),
    ``metric`` S and ``orthogonalizer`` X = S^-1/2 (Loewdin; identity without overlap), ``degeneracy`` g,
    ``energy_scale`` c and ``energy_shift`` E_0 of E = c sum_s tr[(h + F_s) D_s] + E_0, and
    ``fock_builder`` (:class:`~.solvers.FockBuilder`), the two-electron part as one value:
    ``coulomb``/``exchange`` (ij|kl) supermatrices (n^2, n^2) for molecules given as arrays, the
    8-fold packed (ij|kl) or B[P, i, j] rebuilt from ``integrals`` (the recipe a molecule made from
    a PySCF Mole records instead of its integrals, :mod:`.integrals`), or
    ``local_coulomb``/``local_exchange`` kernels (n, n): U I for Hubbard, alpha L^-1 for the
    nonlinear problem; for the rotation problem ``coulomb`` = 0 and ``exchange`` = A (x) A, so
    that F(D) = -A D A^T, with E = tr(F D) / 2 = -(v^T A v)^2 / 2 (a record, not a variational energy).
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
        g = np.asarray(2.0 / spins)
        out.update(degeneracy=g, energy_scale=np.asarray(1.0 / spins))
        if integrals:
            two = recipe_integrals(integrals)
            fock = (FockBuilder(core_hamiltonian, g, fitted=two["cderi"]) if "cderi" in two
                    else FockBuilder(core_hamiltonian, g, packed_eri=solvers.padded_eri(two["packed_eri"], n)))
        elif cderi is not None:
            fock = FockBuilder(core_hamiltonian, g, cderi=cderi)
        else:
            coulomb, exchange = solvers.supermatrices(eri)
            fock = FockBuilder(core_hamiltonian, g, coulomb=coulomb, exchange=exchange)
        return {**out, "fock_builder": fock}
    if problem == "rotation":
        a = rotation_matrix(np.asarray(angle, dtype=np.float64))
        exchange = np.einsum("...ik,...jl->...ijkl", a, a).reshape(*a.shape[:-2], n * n, n * n)
        g = np.asarray(1.0)
        return {**out, "degeneracy": g, "energy_scale": np.asarray(0.5),
                "fock_builder": FockBuilder(core_hamiltonian, g, coulomb=np.zeros_like(exchange), exchange=exchange)}
    if problem == "nonlinear":
        g = np.asarray(1.0)
        return {**out, "degeneracy": g, "energy_scale": np.asarray(0.25),
                "fock_builder": FockBuilder(core_hamiltonian, g, local_coulomb=alpha[..., None, None] * hartree_kernel)}
    onsite = interaction[..., None, None] * np.eye(n)
    g = np.asarray(1.0)
    return {**out, "degeneracy": g, "energy_scale": np.asarray(0.5),
            "fock_builder": FockBuilder(core_hamiltonian, g, local_coulomb=onsite, local_exchange=onsite)}


def _iterate(density, orbitals, previous_energy, fock_builder):
    """The new state's common part; every operator ends with this one Fock build of the new density."""
    fock = fock_builder(density)
    return {"density": density, "orbitals": orbitals, "fock": fock, "previous_energy": previous_energy}


def fixed_point(*, density, fock, core_hamiltonian, orthogonalizer, occupation, energy_scale, energy_shift,
                fock_builder):
    """Roothaan's iteration D <- aufbau(F(D)): solve F C = S C e, occupy the lowest orbitals.

    Roothaan, Rev. Mod. Phys. 23, 69 (1951). All arrays (..., spin, n, n) float64.
    """
    before = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    new, orbitals = solvers.aufbau(fock, orthogonalizer, occupation)
    return _iterate(new, orbitals, before, fock_builder)


def damping(*, density, fock, mixing, core_hamiltonian, orthogonalizer, occupation, energy_scale, energy_shift,
            fock_builder):
    """Linear mixing D <- (1 - beta) D + beta aufbau(F(D)), beta = ``mixing`` (per ensemble cell).

    Shares the fixed points of :func:`fixed_point`; beta = 1 is that iteration. The density
    is idempotent only at convergence. ``orbitals`` are those of the diagonalised F(D).
    """
    before = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    target, orbitals = solvers.aufbau(fock, orthogonalizer, occupation)
    beta = mixing[..., None, None, None]
    return _iterate((1.0 - beta) * density + beta * target, orbitals, before, fock_builder)


def diis(*, density, fock, diis_fock, diis_error, diis_count, core_hamiltonian, metric, orthogonalizer, occupation,
         energy_scale, energy_shift, fock_builder):
    """Pulay's DIIS: push (F, e = F D S - S D F), extrapolate F~ = sum_i c_i F_i, D <- aufbau(F~).

    c minimises ||sum_i c_i e_i|| with sum_i c_i = 1 over the valid history (``diis_count``
    newest slots of ``history``). Pulay, Chem. Phys. Lett. 73, 393 (1980); J. Comput. Chem. 3,
    556 (1982). With one entry it is the fixed-point iteration.
    """
    xp = array_namespace(density)
    before = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    focks = solvers.diis_push(diis_fock, fock)
    errors = solvers.diis_push(diis_error, solvers.commutator(density, fock, metric))
    count = xp.minimum(diis_count + 1, xp.full_like(diis_count, diis_fock.shape[-4]))
    new, orbitals = solvers.aufbau(solvers.diis_extrapolate(focks, errors, count), orthogonalizer, occupation)
    out = _iterate(new, orbitals, before, fock_builder)
    return {**out, "diis_fock": focks, "diis_error": errors, "diis_count": count}


ONLINE, REGULAR = 0, 1  # the ``mode`` diagnostic of adaptive_online


def _diis_sigma(density, fock, diis_fock, diis_error, diis_count, metric):
    """Push (F, FDS - SDF) on the DIIS history and return (focks, errors, count, Sigma = sum_i c_i F_i)."""
    xp = array_namespace(density)
    focks = solvers.diis_push(diis_fock, fock)
    errors = solvers.diis_push(diis_error, solvers.commutator(density, fock, metric))
    count = xp.minimum(diis_count + 1, xp.full_like(diis_count, diis_fock.shape[-4]))
    return focks, errors, count, solvers.diis_extrapolate(focks, errors, count)


def _columns(occupation):
    """k: the largest number of occupied orbitals of any spin channel (Oja iterates these columns only)."""
    xp = array_namespace(occupation)
    return max(int(xp.max(xp.sum(occupation, axis=-1))), 1) if all(occupation.shape) else 1


def _online_common(density, fock, orbitals, previous_sigma, diis_fock, diis_error, diis_count, metric,
                   orthogonalizer):
    """The shared start of an online outer step: Sigma_t by DIIS, F' = X Sigma X, A, Delta_2 and V' = S^1/2 C."""
    x = orthogonalizer[..., None, :, :]
    focks, errors, count, sigma = _diis_sigma(density, fock, diis_fock, diis_error, diis_count, metric)
    sigma_o, previous_o = x @ sigma @ x, x @ previous_sigma @ x
    a, width = solvers.oja_matrix(sigma_o)
    v = x @ metric[..., None, :, :] @ orbitals
    history = {"diis_fock": focks, "diis_error": errors, "diis_count": count, "previous_sigma": sigma}
    return sigma_o, previous_o, a, width, v, x, history


def online_pca(*, density, fock, orbitals, previous_sigma, velocity, diis_fock, diis_error, diis_count, learning_rate,
               core_hamiltonian, metric, orthogonalizer, occupation, energy_scale, energy_shift, fock_builder,
               momentum=0.5, max_inner=10000):
    """Online SCF (Li, Chen, Tutunov, Bou Ammar, Wang & Wang, NeurIPS 36 (2023)): Oja's rule on -F.

    One outer step: Sigma_t = DIIS(F_t-m..F_t) (the extrapolated Fock matrix, ``history``
    slots; ``history=1``: Sigma_t = F(D_t)), F' = X Sigma_t X (X = S^-1/2), the Oja matrix
    A = (sigma_up I - F') / w of :func:`eqflow.systems.scf.solvers.oja_matrix` (shift, negate,
    orthogonalize: the paper's section 3.5), then I = min(ceil(1 / Delta_2), ``max_inner``)
    steps M <- beta M + eta A V', V' <- orth(V' + M) on the fixed A (fewer once a step no longer
    moves span V'), Delta_2 = ||F'_t -
    F'_t-1||_F / w (Sigma_-1 = h, the paper's Algorithm 1, line 2). eta = ``learning_rate``,
    beta = ``momentum``. Choices where the paper is silent: the Gershgorin shift and scale
    (no eigendecomposition needed), Delta_2 in the units of A, QR for the k > 1 subspace
    (Oja's subspace rule: only span V' matters), and the momentum M kept across outer steps.
    ``max_inner=1, history=1, momentum=0``: the sample-free Oja step of the paper's section
    3.3 (one step per Fock build). Diagnostic ``inner_steps``: the steps taken.
    """
    before = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    sigma_o, previous_o, a, width, v, x, history = _online_common(
        density, fock, orbitals, previous_sigma, diis_fock, diis_error, diis_count, metric, orthogonalizer)
    _, count = solvers.inner_steps(sigma_o, previous_o, width, max_inner)
    v, velocity, count = solvers.oja_momentum_steps(v, velocity, a, learning_rate=learning_rate, momentum=momentum,
                                                    count=count, columns=_columns(occupation))
    orbitals = x @ v
    out = _iterate(solvers.density_from(orbitals, occupation), orbitals, before, fock_builder)
    return {**out, **history, "velocity": velocity, "inner_steps": count}


def adaptive_online(*, density, fock, orbitals, previous_sigma, velocity, diis_fock, diis_error, diis_count,
                    last_mode, mode_steps, cutoff, learning_rate, core_hamiltonian, metric, orthogonalizer, occupation,
                    energy_scale, energy_shift, fock_builder, momentum=0.5, max_inner=10000, tabu=10,
                    cutoff_increment=10):
    """Adaptive online SCF, Algorithm 1 of Li et al. (NeurIPS 2023): online steps far out, eigensolver near.

    As :func:`online_pca`, but per member: with I = ceil(1 / Delta_2) the step is online
    (I Oja steps, capped at ``max_inner``) when (I <= T_cut and not (``last_mode`` regular and
    i < T_tabu)) or (``last_mode`` online and i < T_tabu), else regular (V' = the lowest
    eigenvectors of F', the diagonalisation of DIIS). i (``mode_steps``) counts the steps
    since the last switch; each switch raises T_cut (``cutoff``, initially the option
    ``cutoff``) by ``cutoff_increment``. Paper: T_cut = 100, increment 10, T_tabu = 10 (the
    defaults). The momentum is reset to 0 by a regular step (the paper is silent).
    Diagnostics: ``mode`` (0 online, 1 regular) and ``inner_steps`` (0 when regular).
    """
    xp = array_namespace(density)
    before = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                            energy_shift=energy_shift)
    sigma_o, previous_o, a, width, v, x, history = _online_common(
        density, fock, orbitals, previous_sigma, diis_fock, diis_error, diis_count, metric, orthogonalizer)
    wanted, count = solvers.inner_steps(sigma_o, previous_o, width, max_inner)
    in_tabu = mode_steps < tabu
    online = ((wanted <= xp.astype(cutoff, wanted.dtype)) & ~((last_mode == REGULAR) & in_tabu))
    online = online | ((last_mode == ONLINE) & in_tabu)
    count = xp.where(online, count, xp.zeros_like(count))
    v_online, velocity, count = solvers.oja_momentum_steps(v, velocity, a, learning_rate=learning_rate,
                                                           momentum=momentum, count=count,
                                                           columns=_columns(occupation))
    _, v_regular = solvers.safe_eigh(sigma_o)
    keep = online[..., None, None, None]
    orbitals = x @ xp.where(keep, v_online, solvers.fix_signs(v_regular))
    velocity = xp.where(keep, velocity, xp.zeros_like(velocity))
    mode = xp.where(online, xp.full_like(last_mode, ONLINE), xp.full_like(last_mode, REGULAR))
    same = mode == last_mode
    out = _iterate(solvers.density_from(orbitals, occupation), orbitals, before, fock_builder)
    return {**out, **history, "velocity": velocity, "last_mode": mode, "mode": mode,
            "mode_steps": xp.where(same, mode_steps + 1, xp.zeros_like(mode_steps)),
            "cutoff": xp.where(same, cutoff, cutoff + cutoff_increment), "inner_steps": count}


# ---- operator-owned state at the first step of a run


def init_previous_energy(*, density, fock, core_hamiltonian, energy_scale, energy_shift):
    """previous_energy = E(D) of the starting density: energy_change is 0 at the first record."""
    e = solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                       energy_shift=energy_shift)
    return {"previous_energy": np.broadcast_to(e, density.shape[:-3]).astype(np.float64)}


def init_diis(*, density, fock, history, core_hamiltonian, energy_scale, energy_shift):
    """An empty DIIS history of ``history`` slots, and previous_energy."""
    ensemble = density.shape[:-3]
    zeros = np.zeros((*ensemble, history, *density.shape[-3:]))
    return {"diis_fock": zeros, "diis_error": zeros.copy(), "diis_count": np.zeros(ensemble, dtype=np.int64),
            **init_previous_energy(density=density, fock=fock, core_hamiltonian=core_hamiltonian,
                                   energy_scale=energy_scale, energy_shift=energy_shift)}


def init_online(*, density, fock, history, core_hamiltonian, energy_scale, energy_shift):
    """The DIIS history, previous_sigma = h (Sigma_-1 of Algorithm 1), zero momentum, previous_energy."""
    h = np.broadcast_to(np.asarray(core_hamiltonian)[..., None, :, :], density.shape).astype(np.float64)
    return {**init_diis(density=density, fock=fock, history=history, core_hamiltonian=core_hamiltonian,
                        energy_scale=energy_scale, energy_shift=energy_shift),
            "previous_sigma": h, "velocity": np.zeros(density.shape)}


def init_adaptive(*, density, fock, history, core_hamiltonian, energy_scale, energy_shift, cutoff=100):
    """:func:`init_online` plus last_mode = online, mode_steps i = 0 and the cut-off T_cut = ``cutoff``."""
    ensemble = density.shape[:-3]
    return {**init_online(density=density, fock=fock, history=history, core_hamiltonian=core_hamiltonian,
                          energy_scale=energy_scale, energy_shift=energy_shift),
            "last_mode": np.full(ensemble, ONLINE, dtype=np.int64), "mode_steps": np.zeros(ensemble, dtype=np.int64),
            "cutoff": np.full(ensemble, cutoff, dtype=np.int64)}

