"""The four SCF problem families as constants: build and check them before anything is created.

Each builder returns a :class:`Problem`: the constants of the Dataset as ``{name: (dims, value)}``,
the physical parameters, the number of spin channels and of orbitals, and a list of problems
(one readable line per bad input, naming the variable, the expected and the actual value).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...dataset import is_int
from ...units import magnitude_in

ORBITAL_DIMS = ("orbital_i", "orbital_j")
ERI_DIMS = ("orbital_i", "orbital_j", "orbital_k", "orbital_l")
DATA_ENV = "EQFLOW_SCF_DATA"
SYMMETRY_TOL = 1e-10  # relative: |A - A^T| <= tol * max|A| counts as symmetric


@dataclass
class Problem:
    constants: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    spins: int = 1
    orbitals: int = 0
    errors: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)  # e.g. ``integrals``: the recipe of a molecule's (ij|kl)


# ---- 1. the nonlinear eigenproblem of Yang, Gao & Meza


def laplacian(n: int) -> np.ndarray:
    """The 1D discrete Laplacian tridiag(-1, 2, -1), n x n (Dirichlet ends; positive definite)."""
    return 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)


MAX_ORBITALS = 2**15  # every matrix is dense n x n: 8 GiB of float64 at this size


def nonlinear(size, occupied, alpha) -> Problem:
    """H(D) = L + alpha Diag(L^-1 diag(D)), L = :func:`laplacian`, ``occupied`` orbitals."""
    p = Problem(parameters={"alpha": alpha})
    if not is_int(size) or not 2 <= size <= MAX_ORBITALS:
        p.errors.append(f"size: expected an integer number of grid points >= 2, at most {MAX_ORBITALS} (dense "
                        f"n x n matrices), got {size!r}")
        return p
    if not is_int(occupied) or not 1 <= occupied <= size:
        p.errors.append(f"occupied: expected an integer in [1, size={size}], got {occupied!r}")
        return p
    lap = laplacian(size)
    p.constants = {"core_hamiltonian": (ORBITAL_DIMS, lap), "hartree_kernel": (ORBITAL_DIMS, np.linalg.inv(lap)),
                   "occupied": (("spin",), np.array([occupied], dtype=np.float64))}
    p.spins, p.orbitals = 1, size
    return p


# ---- 2. the Hubbard model in unrestricted Hartree-Fock


def lattice_adjacency(lattice: str, sites):
    """Nearest-neighbour adjacency (0/1, each bond once) and sublattice signs of a periodic lattice.

    ``lattice="ring"``: ``sites`` N >= 2 on a ring (N = 2 is the dimer: one bond). ``"square"``:
    ``sites`` L or (L_y, L_x), periodic in both directions (a side of 2 has one bond, not two).
    The sign of site i is (-1)^i on the ring and (-1)^(x+y) on the square lattice.
    """
    shape = (sites,) if lattice == "ring" else ((sites, sites) if np.ndim(sites) == 0 else tuple(sites))
    index = np.arange(int(np.prod(shape))).reshape(shape)
    adjacency = np.zeros((index.size, index.size))
    for axis in range(len(shape)):
        neighbour = np.roll(index, -1, axis=axis)
        mask = neighbour != index
        adjacency[index[mask], neighbour[mask]] = adjacency[neighbour[mask], index[mask]] = 1.0
    sign = (-1.0) ** sum(np.indices(shape)).reshape(-1)
    return adjacency, sign


def hubbard(sites, hopping, interaction, electrons_up=None, electrons_down=None, lattice="ring") -> Problem:
    """H_s(D) = -t A + U Diag(n_-s): UHF of the Hubbard model on a ring or a square lattice.

    Electron counts default to half filling: ceil(N / 2) up and floor(N / 2) down.
    """
    p = Problem(parameters={"hopping": hopping, "interaction": interaction})
    if lattice not in ("ring", "square"):
        p.errors.append(f"lattice: expected 'ring' or 'square', got {lattice!r}")
        return p
    sides = [sites] if lattice == "ring" or np.ndim(sites) == 0 else list(sites)
    if len(sides) not in ((1,) if lattice == "ring" else (1, 2)) or not all(is_int(s) and s >= 2 for s in sides) or (
            int(np.prod([int(s) for s in sides] * (2 if lattice == "square" and len(sides) == 1 else 1)))
            > MAX_ORBITALS):
        want = "an integer >= 2" if lattice == "ring" else "an integer L >= 2 or a pair (L_y, L_x) of them"
        p.errors.append(f"sites: expected {want} for lattice={lattice!r}, at most {MAX_ORBITALS} sites in all "
                        f"(dense n x n matrices), got {sites!r}")
        return p
    adjacency, sign = lattice_adjacency(lattice, sites)
    n = len(sign)
    electrons_up = (n + 1) // 2 if electrons_up is None else electrons_up
    electrons_down = n // 2 if electrons_down is None else electrons_down
    for name, count in (("electrons_up", electrons_up), ("electrons_down", electrons_down)):
        if not is_int(count) or not 0 <= count <= n:
            p.errors.append(f"{name}: expected an integer in [0, {n}] (the number of sites), got {count!r}")
    t = magnitude_in("hopping", hopping, "hartree", p.errors)
    if t is not None and (t.ndim != 0 or not t > 0):
        p.errors.append(f"hopping: expected one positive energy t (not a sweep), got {hopping!r}")
    if p.errors:
        return p
    p.constants = {"core_hamiltonian": (ORBITAL_DIMS, -float(t) * adjacency + 0.0),
                   "sublattice": (("orbital_i",), sign),
                   "occupied": (("spin",), np.array([electrons_up, electrons_down], dtype=np.float64))}
    p.spins, p.orbitals = 2, n
    return p


# ---- 3. the rotation case study of Li et al.


def rotation_matrix(angle):
    """A(theta): the rotation by ``angle`` theta (radians, any shape) about the z-axis, (..., 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def rotation(angle) -> Problem:
    """F(v) = -(A v)(A v)^T, A the rotation by ``angle`` about z in R^3, one occupied orbital.

    The sign makes the lowest eigenvector of F(v) the top one of (A v)(A v)^T, the case
    study of Li et al., NeurIPS 36 (2023), section 3.4: the solutions are v = +-e_z and the
    fixed-point iteration v <- A v never converges from elsewhere. The Fock builder is the
    exchange term K[D] = A D A^T with no core Hamiltonian and no Coulomb term.
    """
    p = Problem(parameters={"angle": angle})
    if angle is None:
        p.errors.append("angle: expected a rotation angle in radians (float or 1-D sweep), got None")
        return p
    p.constants = {"core_hamiltonian": (ORBITAL_DIMS, np.zeros((3, 3))),
                   "occupied": (("spin",), np.array([1.0]))}
    p.spins, p.orbitals = 1, 3
    return p


# ---- 4. restricted Hartree-Fock of molecules from integrals


def unpack_eri(packed: np.ndarray, n: int) -> np.ndarray:
    """Full (..., n, n, n, n) chemists' (ij|kl) from the 8-fold packing of ``data/make_molecules.py``.

    Pair index p(i, j) = i (i + 1) / 2 + j for i >= j; the packed entry of (ij|kl) sits at
    p(max(P, Q), min(P, Q)) with P = p(i, j), Q = p(k, l).
    """
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    hi, lo = np.maximum(i, j), np.minimum(i, j)
    pair = hi * (hi + 1) // 2 + lo
    big, small = np.maximum(pair[:, :, None, None], pair), np.minimum(pair[:, :, None, None], pair)
    return packed[..., big * (big + 1) // 2 + small]


def data_dir() -> Path:
    """Folder of the molecule files: ``$EQFLOW_SCF_DATA``, else ``eqflow/data`` when packaged, else
    ``data/`` at the top of the source tree."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    packaged = Path(__file__).resolve().parents[2] / "data"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "data"


def available_molecules() -> list[str]:
    """Names of the molecule files, e.g. ``'h2o_sto-3g'``."""
    return sorted(p.stem for p in data_dir().glob("*.npz"))


def load_molecule(name: str) -> dict:
    """Integrals, references and metadata of one ``data/<name>.npz`` file, as NumPy arrays (hartree).

    Keys: ``core_hamiltonian``, ``overlap`` (G, n, n), ``eri`` (G, n, n, n, n), ``nuclear_repulsion``
    (G,), ``geometry`` (G,) bond lengths in angstrom, ``electrons`` (int), ``minao_density``
    (G, 1, n, n), ``pyscf_energy``/``pyscf_cycles`` (from PySCF's minao guess),
    ``pyscf_energy_core_guess``/``pyscf_cycles_core_guess`` and ``metadata`` (dict).
    """
    path = data_dir() / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"molecule: expected one of {available_molecules()} in {str(data_dir())!r} "
                                f"(set ${DATA_ENV} to the repository's data/ folder), got {name!r}")
    with np.load(path, allow_pickle=False) as f:
        out = {k: f[k] for k in f.files}
    n = out["core_hamiltonian"].shape[-1]
    out["eri"] = unpack_eri(out.pop("eri_packed"), n)
    out["electrons"] = int(out["electrons"])
    out["metadata"] = json.loads(str(out["metadata"]))
    return out


def _matrix(name, value, units, problems):
    a = magnitude_in(name, value, units, problems)
    if a is not None and (a.ndim not in (2, 3) or a.shape[-1] != a.shape[-2] or a.shape[-1] < 1):
        problems.append(f"{name}: expected a square matrix (n, n) or a stack (geometry, n, n), got shape {a.shape}")
        return None
    if a is not None and not np.all(np.isfinite(a)):
        problems.append(f"{name}: expected finite values, got {int(np.sum(~np.isfinite(a)))} NaN/inf")
        return None
    if a is not None:
        asym = np.max(np.abs(a - np.swapaxes(a, -1, -2)))
        if asym > SYMMETRY_TOL * max(np.max(np.abs(a)), 1.0):
            problems.append(f"{name}: expected a symmetric matrix, got max |A - A^T| = {asym:.3g}")
    return a  # kept when not symmetric, so that its shape can still be checked against the others


FULL_ERI_CHECK = 2**24  # elements up to which every (ij|kl) is checked; above, a fixed sample of them


def _check_eri(eri, n, problems):
    """Chemists' notation: (ij|kl) = (ji|kl) = (ij|lk) = (kl|ij). Every element for up to
    FULL_ERI_CHECK elements; above (n > 64, where three transposed copies take seconds and GBs),
    2^20 index quadruples drawn with a fixed seed, which still find a tensor in another
    notation or with swapped axes (such mistakes break the symmetry almost everywhere)."""
    if eri.shape[-4:] != (n, n, n, n) or eri.ndim not in (4, 5):
        problems.append(f"eri: expected shape (n, n, n, n) or (geometry, n, n, n, n) with n = {n}, got {eri.shape}")
        return False
    scale = SYMMETRY_TOL * max(np.max(np.abs(eri)), 1.0)
    sampled = eri.size > FULL_ERI_CHECK
    ijkl = tuple(np.random.default_rng(0).integers(0, n, size=(4, 2**20))) if sampled else None
    for label, perm in (("(ij|kl) = (ji|kl)", (1, 0, 2, 3)), ("(ij|kl) = (ij|lk)", (0, 1, 3, 2)),
                        ("(ij|kl) = (kl|ij)", (2, 3, 0, 1))):
        if sampled:
            gap = np.max(np.abs(eri[(..., *ijkl)] - eri[(..., *(ijkl[p] for p in perm))]))
        else:
            gap = np.max(np.abs(eri - np.transpose(eri, (*range(eri.ndim - 4), *(eri.ndim - 4 + np.array(perm))))))
        if gap > scale:
            problems.append(f"eri: expected chemists' notation with {label}, "
                            f"got a largest violation of {gap:.3g} hartree")
            return False
    return True


def _check_cderi(cderi, h, problems):
    """B (P, n, n) as float64, symmetric in (i, j), for one geometry of n orbitals."""
    b = np.asarray(cderi, dtype=np.float64)
    if h is not None and (b.ndim != 3 or b.shape[1:] != h.shape[-2:] or h.ndim != 2):
        problems.append(f"cderi: expected shape (aux, n, n) with n = {h.shape[-1]} for one geometry, got {b.shape}")
    elif h is not None and np.max(np.abs(b - np.swapaxes(b, -1, -2))) > SYMMETRY_TOL * max(np.max(np.abs(b)), 1):
        problems.append("cderi: expected B[P, i, j] = B[P, j, i]")
    return b


def cholesky_factor(eri, tol: float, problems: list) -> np.ndarray | None:
    """B[P, i, j] with (ij|kl) = sum_P B_Pij B_Pkl + R and |R| <= ``tol`` (hartree) everywhere: the
    pivoted, incomplete Cholesky decomposition of (ij|kl) as an (n^2, n^2) positive semidefinite
    matrix, stopped when the largest remaining diagonal is <= tol (LAPACK dpstrf through SciPy);
    for a PSD residual |R_ab| <= sqrt(R_aa R_bb) <= tol. Density fitting without an auxiliary basis
    (Beebe & Linderberg, Int. J. Quantum Chem. 12, 683 (1977); Koch, Sanchez de Meras & Pedersen,
    J. Chem. Phys. 118, 9481 (2003)). P runs over the pivots taken (at most n (n + 1) / 2)."""
    from scipy.linalg import lapack

    n = eri.shape[-1]
    matrix = np.ascontiguousarray(eri, dtype=np.float64).reshape(n * n, n * n)
    factor, pivots, rank, info = lapack.dpstrf(matrix, tol=float(tol), lower=1)
    if info < 0:
        problems.append(f"eri: the Cholesky decomposition failed (LAPACK dpstrf info {info})")
        return None
    rows = np.empty((n * n, rank))
    rows[pivots - 1] = np.tril(factor)[:, :rank]
    left = np.diagonal(matrix) - np.einsum("ap,ap->a", rows, rows)
    if left.max(initial=0.0) > 2 * tol or left.min(initial=0.0) < -2 * tol:
        problems.append(f"eri: expected a positive semidefinite (ij|kl) (as two-electron integrals are), got a "
                        f"Cholesky residual diagonal in [{left.min():.3g}, {left.max():.3g}] hartree at "
                        f"tolerance {tol:g}")
        return None
    b = rows.T.reshape(rank, n, n)
    return (b + np.swapaxes(b, -1, -2)) / 2  # (ij) and (ji) rows are equal; make B exactly symmetric


def _one_geometry_factor(eri, lead: tuple, tol: float, problems: list) -> np.ndarray | None:
    if lead:
        problems.append(f"density_fit: the Cholesky factor is made for one geometry, got {lead[0]} (pick one "
                        f"with geometry=<bond length>)")
        return None
    return cholesky_factor(eri, tol, problems)


def molecule(core_hamiltonian, overlap, eri, electrons, nuclear_repulsion=0.0, geometry=None, cderi=None,
             cholesky_tol=None, recipe=None) -> Problem:
    """RHF from integrals: F(D) = h + 2 J[D] - K[D], D = C_occ C_occ^T (the alpha density, P / 2).

    ``cderi`` B (P, n, n) instead of ``eri``: the density-fitted (ij|kl) ~ sum_P B_Pij B_Pkl
    (one geometry). ``cholesky_tol`` (hartree): replace ``eri`` by its pivoted Cholesky factor
    (:func:`cholesky_factor`, one geometry). ``recipe`` instead of both: the JSON recipe of
    :mod:`.integrals` (the system holds how to rebuild the integrals, not the integrals).
    """
    p = Problem(parameters={"geometry": geometry})
    h = _matrix("core_hamiltonian", core_hamiltonian, "hartree", p.errors)
    s = _matrix("overlap", overlap, "1", p.errors)
    b, g = _given_two_electron(recipe, cderi, eri, h, p.errors)
    e_nuc = magnitude_in("nuclear_repulsion", nuclear_repulsion, "hartree", p.errors)
    if h is None:
        return p
    n, lead = h.shape[-1], h.shape[:-2]
    if s is not None and s.shape != h.shape:
        p.errors.append(f"overlap: expected the shape of core_hamiltonian {h.shape}, got {s.shape}")
    elif (s is not None and not any(e.startswith("overlap:") for e in p.errors)
            and np.min(np.linalg.eigvalsh(s)) <= 1e-10):
        lowest = np.min(np.linalg.eigvalsh(s))
        p.errors.append(f"overlap: expected a positive definite matrix, got smallest eigenvalue {lowest:.3g}")
    if g is not None and _check_eri(g, n, p.errors) and g.shape[:-4] != lead:
        p.errors.append(f"eri: expected leading (geometry) shape {lead} like core_hamiltonian, got {g.shape[:-4]}")
    if cholesky_tol is not None and not any(e.startswith("eri:") for e in p.errors):
        b = cderi = _one_geometry_factor(g, lead, cholesky_tol, p.errors)
    if e_nuc is not None and e_nuc.shape not in ((), lead):
        p.errors.append(f"nuclear_repulsion: expected a scalar or shape {lead}, got shape {e_nuc.shape}")
    if not is_int(electrons) or electrons <= 0 or electrons % 2 or electrons > 2 * n:
        p.errors.append(f"electrons: expected an even integer in [2, {2 * n}] for restricted Hartree-Fock "
                        f"(n = {n} orbitals), got {electrons!r}")
    if lead and (geometry is None or np.ndim(geometry) != 1 or len(geometry) != lead[0]):
        p.errors.append(f"geometry: expected {lead[0]} labels (e.g. bond lengths in angstrom) for the leading axis "
                        f"of the integrals, got {geometry!r}")
    elif not lead and geometry is not None and np.ndim(geometry) != 0:
        p.errors.append(f"geometry: expected one label for one set of integrals, got {geometry!r}")
    if p.errors:
        return p
    dims = ("geometry",) if lead else ()
    two, p.attributes = _two_electron(recipe, cderi, b if cderi is not None else None, g, dims)
    p.constants = {"core_hamiltonian": ((*dims, *ORBITAL_DIMS), h), "overlap": ((*dims, *ORBITAL_DIMS), s),
                   **two, "occupied": (("spin",), np.array([electrons / 2])),
                   "nuclear_repulsion": (dims if e_nuc.ndim else (), e_nuc)}
    p.spins, p.orbitals = 1, n
    return p


def _given_two_electron(recipe, cderi, eri, h, problems):
    """(B, (ij|kl)) as given: none for a recipe; B and zeros of the integrals' shape (for its checks) for cderi."""
    if recipe is not None:
        return None, None
    if cderi is not None:
        return _check_cderi(cderi, h, problems), np.zeros((0,) * 4) if h is None else np.zeros((h.shape[-1],) * 4)
    return None, magnitude_in("eri", eri, "hartree", problems)


def _two_electron(recipe, cderi, b, g, dims) -> tuple[dict, dict]:
    """(the constants, the attributes) that hold a molecule's two-electron part."""
    if recipe is not None:
        return {}, {"integrals": recipe}
    if cderi is not None:
        return {"cderi": (("aux", *ORBITAL_DIMS), b)}, {}
    return {"eri": ((*dims, *ERI_DIMS), g)}, {}


def molecule_from_file(name: str, geometry=None, cholesky_tol=None) -> tuple[Problem, dict]:
    """:func:`molecule` from ``data/<name>.npz``, optionally only the bond lengths in ``geometry``."""
    data = load_molecule(name)
    keep = np.arange(len(data["geometry"]))
    if geometry is not None:
        wanted = np.atleast_1d(np.asarray(geometry, dtype=np.float64))
        missing = [g for g in wanted if not np.any(np.isclose(data["geometry"], g))]
        if missing:
            p = Problem(errors=[f"geometry: expected bond lengths among {data['geometry'].tolist()} angstrom for "
                                f"{name!r}, got {missing}"])
            return p, data
        keep = np.array([int(np.argmin(np.abs(data["geometry"] - g))) for g in wanted])
    names = ("core_hamiltonian", "overlap", "eri", "nuclear_repulsion", "geometry", "minao_density")
    arrays = {k: data[k][keep] for k in names}
    if np.ndim(geometry) == 0 and geometry is not None:
        arrays = {k: v[0] for k, v in arrays.items()}
    p = molecule(arrays["core_hamiltonian"], arrays["overlap"], arrays["eri"], data["electrons"],
                 arrays["nuclear_repulsion"], arrays["geometry"], cholesky_tol=cholesky_tol)
    return p, {**data, **arrays}


CHEM_EXTRA = "pip install eqflow-ensembles[chem]"


def molecule_from_mol(mol, basis=None, density_fit=False, auxbasis=None, cholesky_tol=None) -> Problem:
    """:func:`molecule` from a PySCF ``Mole``: h = T + V_nuc, S, E_nuc, the electron count and the
    recipe of its two-electron integrals (:mod:`.integrals`: the exact (ij|kl) or, with
    ``density_fit=True``, PySCF's density-fitting factor B[P, i, j] on ``auxbasis``, default PySCF's
    choice for the basis), which every process rebuilds once instead of every system and history
    holding them; or with ``density_fit="cholesky"`` the pivoted Cholesky factor of the exact
    (ij|kl) to ``cholesky_tol``, held as the constant ``cderi``. ``basis`` rebuilds ``mol``.
    PySCF is an optional extra (``pip install eqflow-ensembles[chem]``), imported only here.
    """
    try:
        from pyscf import gto
    except ImportError:
        return Problem(errors=[f"mol: building a molecule from a PySCF Mole needs PySCF, an optional extra: "
                               f"{CHEM_EXTRA}; got no importable pyscf"])
    if not isinstance(mol, gto.MoleBase):
        return Problem(errors=[f"mol: expected a pyscf.gto.Mole, got {type(mol).__name__}"])
    if basis is not None:
        mol = mol.copy()
        mol.basis = basis
        mol.build(dump_input=False, parse_arg=False)
    h = mol.intor("int1e_kin") + mol.intor("int1e_nuc")
    s = mol.intor("int1e_ovlp")
    if not isinstance(density_fit, str):  # exact, or (True) PySCF's auxiliary basis: held as a recipe
        from .integrals import make_recipe

        recipe, _ = make_recipe(mol, bool(density_fit), auxbasis)  # built once here, kept for this process's runs
        return molecule(h, s, None, mol.nelectron, mol.energy_nuc(), recipe=recipe)
    from pyscf import ao2mo  # the 8-fold packed integrals, unpacked: several times faster than aosym="s1"

    return molecule(h, s, ao2mo.restore(1, mol.intor("int2e", aosym="s8"), mol.nao), mol.nelectron,
                    mol.energy_nuc(), cholesky_tol=cholesky_tol if density_fit == "cholesky" else None)


CHOLESKY_TOL = 1e-10  # hartree: the default bound on every (ij|kl) of the Cholesky factor


def _cholesky_tol(fit, tol, with_mol: bool) -> tuple[float | None, str | None]:
    """The Cholesky tolerance (None: no Cholesky factor), or the error in ``density_fit`` / ``cholesky_tol``."""
    if not (isinstance(fit, (bool, np.bool_)) or (isinstance(fit, str) and fit == "cholesky")):
        return None, (f"density_fit: expected False, True (with mol: PySCF's auxiliary basis; without: Cholesky) "
                      f"or 'cholesky', got {fit!r}")
    cholesky = fit == "cholesky" or (bool(fit) and not with_mol)
    if tol is not None and not cholesky:
        return None, f"cholesky_tol: only with density_fit='cholesky', got density_fit={fit!r}"
    tol = CHOLESKY_TOL if tol is None else tol
    if not (isinstance(tol, (int, float, np.integer, np.floating)) and not isinstance(tol, bool)
            and math.isfinite(tol) and tol > 0):
        return None, f"cholesky_tol: expected a finite number > 0 (hartree), got {tol!r}"
    return (float(tol) if cholesky else None), None


def build(problem: str, args: dict) -> tuple[Problem, dict | None]:
    """The :class:`Problem` of one family from ``create``'s arguments, and the molecule file's data if any."""
    if problem == "nonlinear":
        return nonlinear(args["size"], args["occupied"], args["alpha"]), None
    if problem == "rotation":
        return rotation(args["angle"]), None
    if problem == "hubbard":
        names = ("sites", "hopping", "interaction", "electrons_up", "electrons_down", "lattice")
        return hubbard(*(args[k] for k in names)), None
    arrays = ("core_hamiltonian", "overlap", "eri", "electrons")
    fit = args["density_fit"]
    tol, error = _cholesky_tol(fit, args["cholesky_tol"], args["mol"] is not None)
    if error:
        return Problem(errors=[error]), None
    if args["mol"] is not None:
        given = [k for k in (*arrays, "molecule") if args[k] is not None]
        if given:
            return Problem(errors=[f"mol: expected either a PySCF Mole or {given}, got both"]), None
        return molecule_from_mol(args["mol"], args["basis"], fit, args["auxbasis"], tol), None
    for k in ("basis", "auxbasis"):
        if args[k] is not None:
            return Problem(errors=[f"{k}: only with mol=<PySCF Mole>, got {args[k]!r}"]), None
    if args["molecule"] is not None:
        given = [k for k in arrays if args[k] is not None]
        if given:
            return Problem(errors=[f"molecule: expected either a molecule name or integral arrays, got both "
                                   f"({args['molecule']!r} and {given})"]), None
        return molecule_from_file(args["molecule"], args["geometry"], tol)
    missing = [k for k in arrays if args[k] is None]
    if missing:
        return Problem(errors=[f"{k}: required for problem='molecule' without molecule=<name>, got nothing"
                               for k in missing]), None
    return molecule(*(args[k] for k in (*arrays, "nuclear_repulsion", "geometry")), cholesky_tol=tol), None
