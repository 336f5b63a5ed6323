"""Self-consistent field equations: H(D) C = S C e with D = C_occ C_occ^T, solved as an ensemble.

The matrix to diagonalise depends on its own eigenvectors; the solution is the fixed point
(the equilibrium) of the iteration. Four problem families, each a Fock builder H(D):

- ``problem="nonlinear"``: the model of Yang, Gao & Meza, SIAM J. Matrix Anal. Appl. 30, 1773
  (2009): H(D) = L + alpha Diag(L^-1 diag(D)), L the 1D Laplacian tridiag(-1, 2, -1), k
  occupied orbitals, energy E = tr(L D) / 2 + alpha rho^T L^-1 rho / 4 (rho = diag D), whose
  gradient is H(D) C_occ. Plain iteration converges for small alpha and fails for large.
- ``problem="hubbard"``: unrestricted Hartree-Fock of the Hubbard model on a ring or a
  periodic square lattice: H_s(D) = -t A + U Diag(n_-s), spin-up and spin-down densities.
- ``problem="molecule"``: restricted Hartree-Fock from integrals (h, S, (ij|kl) in chemists'
  notation, hartree): F(D) = h + 2 J[D] - K[D] with D the alpha density (half of P).
- ``problem="rotation"``: the case study of Li et al., NeurIPS 36 (2023), section 3.4:
  F(v) = -(A v)(A v)^T in R^3, A the rotation by ``angle`` about z, k = 1; solutions +-e_z.

State: ``density``, ``fock`` (= H(density)) and ``orbitals`` over (member, *sweeps, spin,
orbital_i, orbital_j); the family is the attribute ``problem``. The operators own
``previous_energy`` and the DIIS history (see :mod:`.operators`). Members are initial
guesses: the core, minao, Neel (or a given) guess rotated by a seeded random orthogonal
matrix per member.
Operators: ``fixed_point``, ``damping``, ``diis``, ``online_pca``. Observables: ``energy``,
``residual`` ||FDS - SDF||, ``energy_change``, ``convergence``, ``electrons``,
``staggered_magnetization``. ``theory``: Hubbard dimer and gap equation, PySCF references.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from ...dataset import constant_arrays, finish_system, parameter_arrays, system_coords
from ...errors import SchemaError
from ...system import Operator, System, prepared
from . import integrals, observables, operators, problems, solvers, start, theory
from .observables import convergence, electrons, energy, energy_change, residual, staggered_magnetization
from .operators import adaptive_online, damping, diis, fixed_point, online_pca, problem_arrays

KIND = "scf"
FAMILY_ARGS = {
    "nonlinear": {"size": 10, "occupied": 2, "alpha": 1.0},
    "hubbard": {"sites": 10, "hopping": 1.0, "interaction": 4.0, "electrons_up": None, "electrons_down": None,
                "lattice": "ring"},
    "molecule": {"molecule": None, "core_hamiltonian": None, "overlap": None, "eri": None, "electrons": None,
                 "nuclear_repulsion": 0.0, "geometry": None, "mol": None, "basis": None, "density_fit": False,
                 "auxbasis": None, "cholesky_tol": None},
    "rotation": {"angle": 3 * math.pi / 4},
}


def create(problem="nonlinear", *, members=1, seed=0, rotation=0.0, guess=None, mixing=0.5, learning_rate=10.0,
           **arguments):
    """A new ensemble of SCF problems and initial guesses as an xarray Dataset.

    Parameters
    ----------
    problem : "nonlinear", "hubbard", "molecule" or "rotation".
    members : int. Initial guesses per parameter point (the ``member`` dimension).
    seed : int in [0, 2**64). Keys the random rotation of each member's guess.
    rotation : float >= 0. Size theta of the random rotations: member m starts from the
        orbitals of the guess times Q_m = (I - A)^-1 (I + A), A = theta (G - G^T) / (2 sqrt 2),
        G standard normal per member and spin (the same Q_m at every parameter point). 0: every
        member starts from the unrotated guess, so ``members > 1`` gives identical runs (a
        UserWarning says so) and a symmetric guess keeps its symmetry: a Hubbard UHF run from
        the core guess stays paramagnetic; use ``guess="neel"`` or a rotation to break it.
    guess : None (the family's default: "random" for rotation, else "core"), "core" (diagonalise h),
        "random" (Haar-random orthonormal orbitals V from the seed, C = S^-1/2 V; for the
        rotation problem v_0 uniform on the unit sphere), "minao" (molecule files: PySCF's atomic-density guess),
        "neel" (Hubbard: up spins on one sublattice, down on the other) or an array of
        densities in the convention of ``density``: (n, n), (spin, n, n) or (geometry, spin,
        n, n); the first orbitals are those of H(guess).
    mixing, learning_rate : float or 1-D sweep. Step sizes of ``damping`` and ``online_pca``.
    **arguments : the problem's own, with defaults:
        nonlinear: size=10 grid points, occupied=2 orbitals, alpha=1.0 (float or 1-D sweep);
        hubbard: sites=10 (ring: N; square: L or (L_y, L_x)), hopping=1.0 (t, hartree or a
        quantity), interaction=4.0 (U, float, quantity or 1-D sweep), electrons_up,
        electrons_down (default: half filling), lattice="ring" | "square";
        molecule: either molecule="h2o_sto-3g" (a file in data/; ``geometry`` then picks bond
        lengths) or core_hamiltonian, overlap (n, n) or (G, n, n), eri (n, n, n, n) or
        (G, n, n, n, n) in chemists' notation (arrays in hartree, or quantities), electrons
        (even), nuclear_repulsion (scalar or (G,)), geometry (G labels, e.g. bond lengths);
        or mol=<pyscf.gto.Mole> (PySCF, ``pip install eqflow-ensembles[chem]``) with optional basis=<name>,
        density_fit=True (J and K from PySCF's 3-index factor B[P, i, j], O(n^2 N_aux) memory
        instead of the O(n^4) (ij|kl)) and auxbasis=<name>: the system then holds the recipe of
        its integrals (attribute ``integrals``, :mod:`.integrals`), which each process rebuilds
        once, not the integrals; density_fit="cholesky" (or True
        without mol): B from the pivoted Cholesky decomposition of the exact (ij|kl), every
        integral within cholesky_tol (hartree, default 1e-10; one geometry), no PySCF needed;
        rotation: angle=3 pi / 4 (radians, float, quantity or 1-D sweep).

    Examples
    --------
    >>> ds = create("hubbard", sites=6, interaction=[2.0, 4.0], members=3, seed=1, rotation=0.3)
    >>> dict(ds.density.sizes)
    {'member': 3, 'interaction': 2, 'spin': 2, 'orbital_i': 6, 'orbital_j': 6}
    >>> ds.attrs["problem"]
    'hubbard'

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
    if bad:
        raise SchemaError(bad, kind=KIND)
    parameters = {k: v for k, v in {**built.parameters, "mixing": mixing, "learning_rate": learning_rate}.items()
                  if v is not None}
    sizes = {"spin": built.spins, "orbital_i": built.orbitals, "orbital_j": built.orbitals}
    if "eri" in built.constants:
        sizes.update(orbital_k=built.orbitals, orbital_l=built.orbitals)
    if "cderi" in built.constants:
        sizes.update(aux=built.constants["cderi"][1].shape[0])
    schema = SYSTEM.schema
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes=sizes,
                                        constants=built.constants, seed=seed)
    guess = ("random" if problem == "rotation" else "core") if guess is None else guess
    density = start.guess_density(guess, data, built.spins, built.orbitals, dims, shape, built.constants)
    if members > 1 and rotation == 0 and not (isinstance(guess, str) and guess == "random"):
        warnings.warn(f"members: {members} members with rotation=0 start from the same guess and give identical "
                      f"runs; pass rotation > 0 for an ensemble of distinct starts", UserWarning, stacklevel=2)
    attributes = {"problem": problem, **built.attributes}
    state = _initial_state(schema, attributes, coords, dims, density, float(rotation), seed,
                           random_start=isinstance(guess, str) and guess == "random")
    return finish_system(schema, coords, state, seed=seed, attributes=attributes)


def _initial_state(schema, attributes, coords, dims, guess_density, theta, seed, random_start=False):
    skeleton = xr.Dataset(coords=coords)
    inputs = {**parameter_arrays(skeleton, schema), **constant_arrays(skeleton, schema), "integrals": "",
              **attributes}
    arrays = prepared(KIND, SYSTEM.operators["diis"], inputs)  # the same inputs as a run's: it reuses these
    build_fock = arrays["fock_builder"]
    spins, n = inputs["occupied"].shape[-1], inputs["core_hamiltonian"].shape[-1]
    shape = tuple(skeleton.sizes[d] for d in dims)
    if guess_density is None:
        guess_fock = np.broadcast_to(inputs["core_hamiltonian"][..., None, :, :], (*shape, spins, n, n))
    else:
        guess_fock = build_fock(guess_density)
    _, orbitals = solvers.aufbau(guess_fock, arrays["orthogonalizer"], arrays["occupation"])
    if random_start:
        v = start.random_orbitals(seed, shape[0], spins, n).reshape((shape[0],) + (1,) * (len(shape) - 1)
                                                                    + (spins, n, n))
        orbitals = np.broadcast_to(arrays["orthogonalizer"][..., None, :, :] @ v, orbitals.shape)
    q = start.rotations(seed, shape[0], spins, n, theta)
    orbitals = orbitals @ q.reshape((shape[0],) + (1,) * (len(shape) - 1) + (spins, n, n))
    density = solvers.density_from(orbitals, arrays["occupation"])
    fock = build_fock(density)
    matrix = (*dims, *start.MATRIX_DIMS)
    return {"density": (matrix, density), "fock": (matrix, fock), "orbitals": (matrix, orbitals)}


load_molecule, available_molecules = problems.load_molecule, problems.available_molecules

_OWNS_ENERGY = operators.init_previous_energy
SYSTEM = System(
    kind=KIND,
    create=create,
    operators={
        "fixed_point": Operator(fixed_point, prepare=problem_arrays, init=_OWNS_ENERGY),
        "damping": Operator(damping, prepare=problem_arrays, init=_OWNS_ENERGY),
        "diis": Operator(diis, prepare=problem_arrays, init=operators.init_diis),
        "online_pca": Operator(online_pca, prepare=problem_arrays, init=operators.init_online),
        "adaptive_online": Operator(adaptive_online, prepare=problem_arrays, init=operators.init_adaptive),
    },
    observables={"energy": energy, "residual": residual, "energy_change": energy_change, "convergence": convergence,
                 "electrons": electrons, "staggered_magnetization": staggered_magnetization},
    theory=theory,
    example={"problem": "hubbard", "sites": 6, "interaction": [2.0, 4.0], "members": 3, "seed": 5, "rotation": 0.3},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["SYSTEM", "available_molecules", "create", "integrals", "load_molecule", "observables", "operators",
           "problems", "solvers", "start", "theory"]
