"""Exact and reference results for the SCF system: Hubbard mean field, the molecules' PySCF energies and the
convergence condition of online PCA on the rotation problem."""
from __future__ import annotations

import numpy as np

from .problems import available_molecules, laplacian, lattice_adjacency, load_molecule  # noqa: F401 (theory API)


def hubbard_dimer(hopping=1.0, interaction=4.0):
    """UHF of the half-filled two-site Hubbard model (one up, one down electron).

    For U > 2t the broken-symmetry solution has staggered magnetization m = sqrt(1 - (2t/U)^2)
    and energy E = -2 t^2 / U; for U <= 2t the restricted solution m = 0, E = -2t + U/2 is the
    UHF minimum. Energies in the unit of t and U. Returns ``{"magnetization", "energy"}``.
    """
    t, u = float(hopping), float(interaction)
    if u > 2.0 * t:
        return {"magnetization": np.sqrt(1.0 - (2.0 * t / u) ** 2), "energy": -2.0 * t * t / u}
    return {"magnetization": 0.0, "energy": -2.0 * t + u / 2.0}


def band_energies(lattice: str, sites, hopping=1.0) -> np.ndarray:
    """Single-particle energies eps_k of -t A on the periodic lattice (all N of them)."""
    adjacency, _ = lattice_adjacency(lattice, sites)
    return np.linalg.eigvalsh(-float(hopping) * adjacency)


def hubbard_antiferromagnet(lattice: str, sites, hopping=1.0, interaction=4.0, tol=1e-15):
    """Half-filled Neel UHF state of a bipartite lattice from the gap equation.

    1 = (U / 2N) sum_k 1 / sqrt(eps_k^2 + Delta^2), Delta = U m / 2, solved by bisection
    (sum over all N band energies eps_k). Energy E = N U / 4 + N Delta^2 / U - sum_k
    sqrt(eps_k^2 + Delta^2) (the paramagnetic value at Delta = 0). When (U / 2N) sum_k 1/|eps_k|
    <= 1 the only solution is m = 0. Returns ``{"gap", "magnetization", "energy"}``.
    """
    eps = band_energies(lattice, sites, hopping)
    n, u = len(eps), float(interaction)

    def excess(delta):
        with np.errstate(divide="ignore"):
            return u / (2 * n) * np.sum(1.0 / np.sqrt(eps**2 + delta**2)) - 1.0

    delta = 0.0
    if u > 0 and excess(0.0) > 0:
        low, high = 0.0, u
        while high - low > tol * max(high, 1.0):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if excess(mid) > 0 else (low, mid)
        delta = 0.5 * (low + high)
    energy = n * u / 4 + (n * delta**2 / u if u > 0 else 0.0) - np.sum(np.sqrt(eps**2 + delta**2))
    return {"gap": delta, "magnetization": 2.0 * delta / u if u > 0 else 0.0, "energy": energy}


def molecule_reference(name: str, guess: str = "minao") -> dict:
    """PySCF's converged RHF energies (hartree) and cycles stored in ``data/<name>.npz``.

    ``guess="minao"`` (PySCF's default initial guess) or ``"core"`` (its ``'1e'`` guess, the
    core Hamiltonian, the same start as eqflow's ``guess="core"``). Returns ``{"geometry",
    "energy", "cycles"}`` arrays over the file's geometries.
    """
    if guess not in ("minao", "core"):
        raise ValueError(f"guess: expected 'minao' or 'core', got {guess!r}")
    data = load_molecule(name)
    suffix = "" if guess == "minao" else "_core_guess"
    return {"geometry": data["geometry"], "energy": data["pyscf_energy" + suffix],
            "cycles": data["pyscf_cycles" + suffix]}


def rotation_oja_converges(v0, angle):
    """Whether the sample-free Oja step converges to +-e_z on the rotation problem from ``v0``.

    F(v) = -(A v)(A v)^T, A the rotation by theta about z; the online step is v' = (v + eta'
    c A v) / |.|, c = v^T A v, for any eta' > 0 (a shift sigma I of the covariance only
    rescales eta' to eta / (1 + eta sigma)). A keeps the z-component z of v and turns its
    xy-part of length rho by theta, so z' / rho' = (z / rho) (1 + eta' c) / sqrt(1 + 2 eta' c
    cos theta + eta'^2 c^2): the ratio grows iff 2 eta' c (1 - cos theta) > 0, i.e. iff
    c = cos theta rho^2 + z^2 > 0, and c grows with |z|. So the iteration converges to +-e_z
    iff tan^2 phi_0 > -cos theta (phi_0 the start's elevation above the xy-plane), for every
    learning rate, and otherwise falls into the xy-plane (at theta = pi every vector there is
    a solution as well, A v = -v). ``v0`` (..., 3), ``angle`` broadcastable; returns bool.
    """
    v0, angle = np.asarray(v0, dtype=np.float64), np.asarray(angle, dtype=np.float64)
    z2 = v0[..., 2] ** 2 / np.sum(v0 * v0, axis=-1)
    return np.cos(angle) * (1.0 - z2) + z2 > 0


def rotation_convergence_probability(angle):
    """P(converge) of the sample-free Oja step for v_0 uniform on the sphere (z_0 uniform in [-1, 1]).

    From :func:`rotation_oja_converges`: z_0^2 > -cos theta / (1 - cos theta), so P = 1 for
    theta <= pi / 2 and P = 1 - sqrt(-cos theta / (1 - cos theta)) for pi / 2 < theta <= pi
    (1 - 1/sqrt 2 = 0.293 at theta = pi). This is convergence to +-e_z: at theta = pi exactly
    every vector of the xy-plane solves the problem too (A v = -v), so there every start converges.
    """
    c = np.cos(np.asarray(angle, dtype=np.float64))
    return np.where(c >= 0, 1.0, 1.0 - np.sqrt(np.clip(-c / (1.0 - c), 0.0, None)))
