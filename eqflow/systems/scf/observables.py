"""SCF observables: energy, residual ||FDS - SDF||, energy change, electrons, staggered magnetization."""
from __future__ import annotations

from array_api_compat import array_namespace

from . import solvers


def energy(*, density, fock, core_hamiltonian, energy_scale, energy_shift):
    """Total energy E(D) = c sum_s tr[(h + F_s) D_s] + E_0 in hartree (molecules: with nuclear repulsion)."""
    return solvers.energy(density, fock, core_hamiltonian=core_hamiltonian, energy_scale=energy_scale,
                          energy_shift=energy_shift)


def residual(*, density, fock, metric):
    """Commutator residual ||F D S - S D F||_F (hartree), in quadrature over spins; 0 at self-consistency."""
    return solvers.residual(density, fock, metric)


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
    return xp.maximum(solvers.residual(density, fock, metric), change)


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
