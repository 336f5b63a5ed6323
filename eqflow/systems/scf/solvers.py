"""The SCF system's array functions: Fock builds, energies, residuals and the solver steps.

Raw arrays only (NumPy or torch through ``array_api_compat``), vectorised over leading
ensemble dims. Shapes: ``density``, ``fock``, ``orbitals`` are ``(*E, spin, n, n)``; prepared
problem arrays (see ``scf.problem_arrays``) are ``(*E', ...)`` with ``E'`` broadcastable to ``E``.
A NaN or inf anywhere in one ensemble cell stays in that cell: every decomposition runs on a
finite stand-in there and its result is replaced by NaN, so no member can raise for another.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_numpy_array

from ...ops.diis import _eye, _finite_cells, diis_coefficients, diis_push  # noqa: F401  (diis_push: scf.operators)

INNER_TOL = 1e-13  # an online step that moves span V' by less than this ends a cell's inner loop



def safe_eigh(a):
    """Eigenvalues (ascending) and eigenvectors of symmetric ``a`` (..., n, n); NaN where ``a`` is not finite."""
    xp = array_namespace(a)
    ok = _finite_cells(a)
    w, v = xp.linalg.eigh(xp.where(ok[..., None, None], a, _eye(xp, a.shape[-1], a)))
    return xp.where(ok[..., None], w, float("nan")), xp.where(ok[..., None, None], v, float("nan"))


def safe_qr(a):
    """Q of the reduced QR decomposition of ``a`` (..., n, k); NaN where ``a`` is not finite."""
    xp = array_namespace(a)
    ok = _finite_cells(a)
    q, _ = xp.linalg.qr(xp.where(ok[..., None, None], a, _eye(xp, a.shape[-1], a)))
    return xp.where(ok[..., None, None], q, float("nan"))


def gram_schmidt(a):
    """The Q of a = Q R with diag(R) >= 0 (..., n, k): Gram-Schmidt's orthonormal columns; NaN where not finite.

    Unlike a bare Householder Q it never flips a column's sign, so a vector carried along
    with the columns (Oja's momentum) keeps its orientation; for k = 1 it is a / |a|.
    """
    xp = array_namespace(a)
    if a.shape[-1] == 1:  # one column: a / |a| without a LAPACK call per cell
        return a / xp.sqrt(xp.sum(a * a, axis=-2, keepdims=True))
    ok = _finite_cells(a)
    q, r = xp.linalg.qr(xp.where(ok[..., None, None], a, _eye(xp, a.shape[-2], a)[..., : a.shape[-1]]))
    sign = xp.where(xp.linalg.diagonal(r) < 0, -1.0, 1.0)
    return xp.where(ok[..., None, None], q * sign[..., None, :], float("nan"))


def density_from(orbitals, occupation):
    """D = C diag(f) C^T per spin: ``orbitals`` (..., spin, n, n) columns, ``occupation`` f (..., spin, n) in {0, 1}."""
    xp = array_namespace(orbitals)
    return (orbitals * occupation[..., None, :]) @ xp.linalg.matrix_transpose(orbitals)


def fix_signs(vectors):
    """Flip each column so that its entry of largest magnitude is positive (a backend-independent choice)."""
    xp = array_namespace(vectors)
    size = xp.abs(vectors)
    top = xp.sum(xp.where(size == xp.max(size, axis=-2, keepdims=True), vectors, 0.0), axis=-2, keepdims=True)
    return xp.where(top < 0, -vectors, vectors)


def aufbau(fock, orthogonalizer, occupation):
    """Solve F C = S C e (via X = S^-1/2) and occupy the lowest orbitals: returns (D, C).

    Eigenvectors get the sign convention of :func:`fix_signs`; within a degenerate level
    the choice of vectors is the eigensolver's.
    """
    x = orthogonalizer[..., None, :, :]
    _, v = safe_eigh(x @ fock @ x)
    orbitals = x @ fix_signs(v)
    return density_from(orbitals, occupation), orbitals


def shared_matmul(a, v):
    """``a @ v`` for a matrix ``a`` (*A, N, N) shared along the leading axes where it has size 1.

    ``v`` (*B, N, k), len(A) <= len(B), A broadcastable to B. NumPy: plain broadcasting, one
    product per ensemble cell, so results are bit for bit independent of chunking. Other
    backends (torch would copy ``a`` once per cell): the axes along which ``a`` does not vary
    are folded into the columns of ``v``, one wide GEMM per distinct ``a``; the last bits may
    then depend on the chunk size (as they do between backends).
    """
    xp = array_namespace(v)
    if is_numpy_array(v):
        return a @ v
    lead = v.ndim - 2
    a = xp.reshape(a, (1,) * (lead - (a.ndim - 2)) + tuple(a.shape))
    fold = [i for i in range(lead) if a.shape[i] == 1 and v.shape[i] > 1]
    keep = [i for i in range(lead) if i not in fold]
    kept, folded = [v.shape[i] for i in keep], [v.shape[i] for i in fold]
    columns = xp.permute_dims(v, (*keep, lead, *fold, lead + 1))
    columns = xp.reshape(columns, (*kept, v.shape[-2], -1))
    product = xp.reshape(a, (*[a.shape[i] for i in keep], *a.shape[-2:])) @ columns
    product = xp.reshape(product, (*kept, a.shape[-2], *folded, v.shape[-1]))
    order = [0] * (lead + 2)
    for position, axis in enumerate((*keep, lead, *fold, lead + 1)):
        order[axis] = position
    return xp.permute_dims(product, tuple(order))


def fock_matrix(density, *, core_hamiltonian, degeneracy, coulomb=None, exchange=None, local_coulomb=None,
                local_exchange=None, cderi=None):
    """F_s(D) = h + J[g sum_s D_s] - K[D_s], with (ij|kl) supermatrices or local (diagonal) kernels.

    ``coulomb``/``exchange`` (..., n^2, n^2): J_ij = sum_kl (ij|kl) P_kl, K_ij = sum_kl (ik|jl) D_kl.
    ``local_coulomb``/``local_exchange`` (..., n, n) kernels W act on site densities only:
    F_s = h + Diag(W_J rho - W_K rho_s), rho = g sum_s diag(D_s) (Hubbard: W_J = W_K = U I;
    the nonlinear model: W_J = alpha L^-1, no exchange). ``degeneracy`` g: 2 for RHF, else 1.
    ``cderi`` B (..., P, n, n), density fitting (ij|kl) ~ sum_P B_Pij B_Pkl: J = sum_P B_P
    tr(B_P P), K_s = sum_P B_P D_s B_P, in O(n^2 N_aux) memory per cell (Whitten, J. Chem.
    Phys. 58, 4496 (1973); Vahtras, Almloef & Feyereisen, Chem. Phys. Lett. 213, 514 (1993)).
    """
    xp = array_namespace(density)
    n = density.shape[-1]
    total = degeneracy * xp.sum(density, axis=-3)
    h = core_hamiltonian[..., None, :, :]
    if cderi is not None:
        b = cderi[..., None, :, :, :]  # (..., 1, P, n, n) against (..., spin, 1, n, n)
        fit = xp.sum(cderi * total[..., None, :, :], axis=(-2, -1))  # (..., P)
        j = xp.sum(fit[..., :, None, None] * cderi, axis=-3)
        k = xp.sum(b @ density[..., :, None, :, :] @ b, axis=-3)
        return h + j[..., None, :, :] - k
    if coulomb is not None:
        j = xp.reshape(shared_matmul(coulomb, xp.reshape(total, (*total.shape[:-2], n * n, 1))), total.shape)
        k = shared_matmul(exchange[..., None, :, :], xp.reshape(density, (*density.shape[:-2], n * n, 1)))
        return h + j[..., None, :, :] - xp.reshape(k, density.shape)
    rho = xp.linalg.diagonal(total)[..., None, :, None]
    potential = shared_matmul(local_coulomb[..., None, :, :], rho)[..., 0]
    if local_exchange is not None:
        potential = potential - shared_matmul(local_exchange[..., None, :, :],
                                              xp.linalg.diagonal(density)[..., None])[..., 0]
    return h + potential[..., None] * _eye(xp, n, density)


@dataclass(frozen=True)
class FockBuilder:
    """F(D): everything a problem's Fock build needs, prepared once per run and process, as one value.

    Arrays as :func:`fock_matrix` takes them. ``packed_eri``: a molecule's (ij|kl) in PySCF's
    8-fold packing, padded by :func:`padded_eri`, contracted with every density of the ensemble at once by
    PySCF's ``dot_eri_dm`` (one pass over the integrals for all members); a torch run gets the
    (n^2, n^2) supermatrices instead (:meth:`on_backend`).
    """

    core_hamiltonian: Any
    degeneracy: Any
    coulomb: Any = None
    exchange: Any = None
    local_coulomb: Any = None
    local_exchange: Any = None
    cderi: Any = None
    packed_eri: Any = None
    fitted: Any = None  # B[P, i, j] of a recipe: the density-fitted J and K as two large products per member

    def __call__(self, density):
        if self.packed_eri is not None:
            return _packed_fock(density, self.core_hamiltonian, self.degeneracy, self.packed_eri)
        if self.fitted is not None and is_numpy_array(density):
            return _fitted_fock(density, self.core_hamiltonian, self.degeneracy, self.fitted)
        cderi = self.fitted if self.fitted is not None else self.cderi
        return fock_matrix(density, **{f.name: getattr(self, f.name) for f in fields(self)
                                       if f.name not in ("packed_eri", "fitted", "cderi")}, cderi=cderi)

    def on_backend(self, convert) -> "FockBuilder":
        """A copy with ``convert`` (NumPy array -> backend array) applied to each array."""
        probe = convert(np.zeros(1))
        if self.packed_eri is not None and not isinstance(probe, np.ndarray):  # PySCF contracts NumPy arrays only
            if "_supermatrices" not in self.__dict__:  # unpacked once per prepared value, not once per task
                n = self.core_hamiltonian.shape[-1]
                eri = unpack_packed_eri(self.packed_eri, -(-n // 4) * 4)[:n, :n, :n, :n]
                object.__setattr__(self, "_supermatrices", supermatrices(np.ascontiguousarray(eri)))
            coulomb, exchange = self.__dict__["_supermatrices"]
            return replace(self, packed_eri=None, coulomb=convert(coulomb), exchange=convert(exchange),
                           core_hamiltonian=convert(self.core_hamiltonian), degeneracy=convert(self.degeneracy))
        if self.fitted is not None and not isinstance(probe, np.ndarray):  # torch: the broadcast form
            return replace(self, fitted=None, cderi=convert(self.fitted),
                           core_hamiltonian=convert(self.core_hamiltonian), degeneracy=convert(self.degeneracy))
        return replace(self, **{f.name: convert(getattr(self, f.name)) for f in fields(self)
                                if getattr(self, f.name) is not None and f.name != "packed_eri"})


def supermatrices(eri):
    """The Coulomb (ij|kl) and exchange (ik|jl) supermatrices (..., n^2, n^2) of (..., n, n, n, n) integrals."""
    n, lead = eri.shape[-1], eri.shape[:-4]
    exchange = np.swapaxes(eri, -3, -2)  # (ik|jl) stored at [i, j, k, l]
    return eri.reshape(*lead, n * n, n * n), exchange.reshape(*lead, n * n, n * n)


def unpack_packed_eri(packed, n: int):
    """(n, n, n, n) from PySCF's 8-fold packing."""
    from pyscf import ao2mo

    return ao2mo.restore(1, np.asarray(packed), n)


def _packed_fock(density, core_hamiltonian, degeneracy, packed_eri):
    """F = h + g J[sum_s D_s] - K[D_s] for every density of the ensemble in one pass over the 8-fold
    packed (ij|kl) (PySCF's ``dot_eri_dm``, as its own RHF does): 1/8 of the memory traffic of the
    (n^2, n^2) supermatrices, and one pass for all members instead of one per member.

    A member's last bits must not depend on the chunking. PySCF's kernels sum in an order that
    depends on the thread count and on the 16-byte alignment of each density in the stack, so
    they run on one OpenMP thread (the run parallelises over chunks instead) with the orbitals
    padded by zero rows and columns to a multiple of 4: every density and every packed density
    then starts 16-byte aligned wherever it sits in the stack. Zero orbitals add exact zeros; the
    8-fold packed index of a pair does not depend on n, so the padded integrals are the given ones
    followed by zeros (:func:`padded_eri`, as ``packed_eri`` holds them). NaN densities are
    contracted as zeros and their Fock matrix made NaN."""
    from pyscf.lib import with_omp_threads
    from pyscf.scf.hf import dot_eri_dm

    n = density.shape[-1]
    m = -(-n // 4) * 4
    cells = np.reshape(density, (-1, n, n))
    ok = np.isfinite(cells).all(axis=(-2, -1))
    padded = np.zeros((len(cells), m, m))
    padded[:, :n, :n] = np.where(ok[:, None, None], cells, 0.0)
    with with_omp_threads(1):
        vj, vk = dot_eri_dm(packed_eri, padded, hermi=1)
    vj = np.reshape(np.reshape(vj, (-1, m, m))[:, :n, :n], density.shape)
    vk = np.reshape(np.reshape(vk, (-1, m, m))[:, :n, :n], density.shape)
    fock = core_hamiltonian[..., None, :, :] + degeneracy * np.sum(vj, axis=-3, keepdims=True) - vk
    return np.where(np.reshape(ok, density.shape[:-2])[..., None, None], fock, np.nan)


RANK_TOL = 1e-13  # relative: eigenvalues of a density below this share of its largest are left out of K


def _fitted_fock(density, core_hamiltonian, degeneracy, b):
    """F_s = h + J[g sum_s D_s] - K[D_s] with (ij|kl) ~ sum_P B_Pij B_Pkl, per member as large products.

    J = B^T (B vec(P)) (two matrix-vector products over (P, n^2)); K through D = V diag(w) V^T (its
    eigenpairs with |w| > ``RANK_TOL`` max|w|, r of them: the occupied orbitals of an idempotent D):
    Y = [B_P V] side by side, K = sum_P Y_P diag(w) Y_P^T as one (n, P r) @ (P r, n) product, 2 P n^2 r
    multiply-adds against 2 P n^3 for sum_P B_P D B_P (the broadcast form, :func:`fock_matrix`). One
    member at a time, so that its last bits do not depend on the chunking; NaN stays in its member."""
    n, p = density.shape[-1], b.shape[0]
    flat, tall = np.reshape(b, (p, n * n)), np.reshape(b, (p * n, n))
    total = degeneracy * np.sum(density, axis=-3)
    cells, totals = np.reshape(density, (-1, density.shape[-3], n, n)), np.reshape(total, (-1, n * n))
    out = np.empty(cells.shape)
    for c in range(len(cells)):
        j = np.reshape((flat @ totals[c]) @ flat, (n, n))
        for s in range(cells.shape[1]):
            d = cells[c, s]
            if not np.isfinite(d).all():
                out[c, s] = np.nan
                continue
            w, v = np.linalg.eigh(d)
            keep = np.abs(w) > RANK_TOL * max(np.abs(w).max(initial=0.0), np.finfo(float).tiny)
            w, v = w[keep], v[:, keep]
            y = np.reshape(tall @ v, (p, n, -1)).transpose(1, 0, 2)  # y[i, P, r] = (B_P V)_ir
            y = np.reshape(np.ascontiguousarray(y), (n, -1))
            out[c, s] = j - (y * np.tile(w, p)) @ y.T
    return core_hamiltonian[..., None, :, :] + np.reshape(out, density.shape)


def padded_eri(packed, n: int):
    """The 8-fold packed (ij|kl) of n orbitals as that of m >= n orbitals, m a multiple of 4, the extra
    ones zero: the given integrals followed by zeros (the packed index of a pair does not depend on n)."""
    m = -(-n // 4) * 4
    pairs = m * (m + 1) // 2
    out = np.zeros(pairs * (pairs + 1) // 2)
    out[: packed.size] = packed
    return out


def energy(density, fock, *, core_hamiltonian, energy_scale, energy_shift):
    """E = c sum_s tr[(h + F_s) D_s] + E_0 (c = g/2 for Hartree-Fock, 1/4 for the nonlinear model)."""
    xp = array_namespace(density)
    return energy_scale * xp.sum((core_hamiltonian[..., None, :, :] + fock) * density, axis=(-3, -2, -1)) + energy_shift


def commutator(density, fock, metric):
    """The SCF error F D S - S D F per spin (..., spin, n, n); zero at self-consistency."""
    xp = array_namespace(density)
    fds = fock @ density @ metric[..., None, :, :]
    return fds - xp.linalg.matrix_transpose(fds)


def residual(density, fock, metric):
    """Commutator residual ||F D S - S D F||_F, summed in quadrature over spins (...)."""
    xp = array_namespace(density)
    return xp.sqrt(xp.sum(commutator(density, fock, metric) ** 2, axis=(-3, -2, -1)))


def diis_extrapolate(focks, errors, count):
    """sum_i c_i F_i with Pulay's coefficients (see :func:`diis_coefficients`)."""
    xp = array_namespace(focks)
    c = diis_coefficients(errors, count)[..., None, :]
    flat = xp.reshape(focks, (*focks.shape[:-3], -1))
    return xp.reshape(c @ flat, (*focks.shape[:-4], *focks.shape[-3:]))


def gershgorin_bounds(matrix):
    """Lower and upper bounds of the spectrum of symmetric ``matrix`` (..., n, n) from Gershgorin discs."""
    xp = array_namespace(matrix)
    d = xp.linalg.diagonal(matrix)
    radius = xp.sum(xp.abs(matrix), axis=-1) - xp.abs(d)
    return xp.min(d - radius, axis=-1), xp.max(d + radius, axis=-1)


def oja_matrix(sigma):
    """The "covariance" of online SCF: A = (sigma_up I - F') / (sigma_up - lambda_low), and its width.

    ``sigma`` F' (..., spin, n, n) in the orthonormal basis. The shift by the upper Gershgorin
    bound sigma_up makes A positive semi-definite and the sign flip puts the lowest (occupied)
    subspace of F' on top (Li et al., NeurIPS 2023, section 3.5, adaptations 1 and 3); dividing
    by the Gershgorin width w = sigma_up - lambda_low (hartree) puts the spectrum in [0, 1], so
    that the learning rate is dimensionless. Returns (A, w) with w of shape (..., spin).
    """
    xp = array_namespace(sigma)
    low, high = gershgorin_bounds(sigma)
    width = xp.where(high - low > 0, high - low, 1.0)
    a = (high[..., None, None] * _eye(xp, sigma.shape[-1], sigma) - sigma) / width[..., None, None]
    return a, width


def inner_steps(sigma, previous, width, limit):
    """I = ceil(1 / Delta_2) online steps, Delta_2 = ||F'_t - F'_t-1||_F / w summed over spins in quadrature.

    ``sigma``, ``previous`` (..., spin, n, n) the extrapolated Fock matrices of this and the
    last outer step in the orthonormal basis, ``width`` (..., spin) the Gershgorin width of
    :func:`oja_matrix`: Delta_2 is the change of the matrix A that Oja's rule follows.
    Returns (I as float64 without the cap, I clipped to [1, ``limit``] as int64); a
    non-finite cell gets I = 1 (its NaN then propagates through the update).
    """
    xp = array_namespace(sigma)
    change = (sigma - previous) / width[..., None, None]
    delta = xp.sqrt(xp.sum(change * change, axis=(-3, -2, -1)))
    wanted = xp.where(delta > 0, xp.ceil(1.0 / xp.where(delta > 0, delta, 1.0)), float("inf"))
    wanted = xp.where(xp.isnan(delta), 1.0, wanted)
    count = xp.clip(wanted, 1.0, float(limit))
    return wanted, xp.astype(count, xp.int64)


def oja_momentum_steps(v, velocity, a, *, learning_rate, momentum, count, columns):
    """``count`` sample-free Oja steps with heavy-ball momentum on a fixed A, per ensemble cell.

    M <- beta M + eta A V, V <- orth(V + M) (Oja, J. Math. Biol. 15, 267 (1982), with the
    covariance A given instead of sampled, and the momentum of Li et al., NeurIPS 2023,
    supplement section 4). ``v`` (..., spin, n, n) orthonormal columns, ``velocity`` M alike,
    ``a`` from :func:`oja_matrix`, ``learning_rate`` eta (...), ``momentum`` beta (scalar),
    ``count`` (...) int64. orth is :func:`gram_schmidt`. Only the first ``columns`` k columns
    (the occupied ones; the k-column rule) are iterated; the others are then completed to an
    orthonormal basis (their velocity is 0). A cell stops after its own ``count`` steps, or
    earlier once a step moves span V by less than ``INNER_TOL`` (||(I - V V^T) V_new||_F,
    summed over spins): on a fixed A the rest of the steps would not change the subspace. The
    loop runs to the largest count, and the result of a cell does not depend on the others.
    Returns (V, M, steps taken per cell).
    """
    xp = array_namespace(v)
    eta = learning_rate[..., None, None, None]
    total = int(xp.max(count)) if all(count.shape) else 0
    vk, mk = v[..., :columns], velocity[..., :columns]
    taken = xp.zeros_like(count)
    for j in range(total):
        active = count > taken
        if j % 8 == 0 and not bool(xp.any(active)):
            break
        step = momentum * mk + eta * (a @ vk)
        new = gram_schmidt(vk + step)
        moved = new - vk @ (xp.linalg.matrix_transpose(vk) @ new)  # (I - V V^T) V_new: the subspace's move
        still = xp.sqrt(xp.sum(moved * moved, axis=(-3, -2, -1))) < INNER_TOL
        keep = active[..., None, None, None]
        vk, mk = xp.where(keep, new, vk), xp.where(keep, step, mk)
        taken = xp.where(active, taken + 1, taken)
        count = xp.where(active & still, taken, count)  # settled: later steps would not move span V
    others = xp.broadcast_to(v[..., columns:], (*vk.shape[:-1], v.shape[-1] - columns))
    rest = safe_qr(xp.concat([vk, others], axis=-1))[..., columns:]
    return xp.concat([vk, rest], axis=-1), xp.concat([mk, xp.zeros_like(rest)], axis=-1), taken
