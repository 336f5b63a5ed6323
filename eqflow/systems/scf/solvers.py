"""Array kernels of the SCF system: Fock builds, energies, residuals and the four solver steps.

Raw arrays only (NumPy or torch through ``array_api_compat``), vectorised over leading
ensemble dims. Shapes: ``density``, ``fock``, ``orbitals`` are ``(*E, spin, n, n)``; prepared
problem arrays (see ``scf.problem_arrays``) are ``(*E', ...)`` with ``E'`` broadcastable to ``E``.
A NaN or inf anywhere in one ensemble cell stays in that cell: every decomposition runs on a
finite stand-in there and its result is replaced by NaN, so no member can raise for another.
"""
from __future__ import annotations

from array_api_compat import array_namespace, device, is_numpy_array

DIIS_RIDGE = 1e-12  # relative ridge on the normalised DIIS matrix: keeps it invertible when errors repeat


def _eye(xp, n, like):
    return xp.eye(n, dtype=like.dtype, device=device(like))


def _finite_cells(a, axes=(-2, -1)):
    xp = array_namespace(a)
    return xp.all(xp.isfinite(a), axis=axes)


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
                local_exchange=None):
    """F_s(D) = h + J[g sum_s D_s] - K[D_s], with (ij|kl) supermatrices or local (diagonal) kernels.

    ``coulomb``/``exchange`` (..., n^2, n^2): J_ij = sum_kl (ij|kl) P_kl, K_ij = sum_kl (ik|jl) D_kl.
    ``local_coulomb``/``local_exchange`` (..., n, n) kernels W act on site densities only:
    F_s = h + Diag(W_J rho - W_K rho_s), rho = g sum_s diag(D_s) (Hubbard: W_J = W_K = U I;
    the nonlinear model: W_J = alpha L^-1, no exchange). ``degeneracy`` g: 2 for RHF, else 1.
    """
    xp = array_namespace(density)
    n = density.shape[-1]
    total = degeneracy * xp.sum(density, axis=-3)
    h = core_hamiltonian[..., None, :, :]
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


def diis_push(history, new):
    """Drop the oldest entry of ``history`` (..., m, spin, n, n) and append ``new`` (..., spin, n, n)."""
    xp = array_namespace(history)
    return xp.concat([history[..., 1:, :, :, :], new[..., None, :, :, :]], axis=-4)


def diis_coefficients(errors, count):
    """Pulay's c minimising ||sum_i c_i e_i|| subject to sum_i c_i = 1, over the newest ``count`` entries.

    ``errors`` (..., m, spin, n, n), newest last; ``count`` (...) integer. Entries older than
    ``count`` get c = 0. The matrix B_ij = <e_i, e_j> is normalised by its largest valid
    diagonal and given a relative ridge of 1e-12 so repeated errors do not make it singular.
    """
    xp = array_namespace(errors)
    m = errors.shape[-4]
    flat = xp.reshape(errors, (*errors.shape[:-4], m, -1))
    b = flat @ xp.linalg.matrix_transpose(flat)
    valid = xp.arange(m, device=device(errors)) >= (m - count[..., None])
    pair = valid[..., :, None] & valid[..., None, :]
    eye = _eye(xp, m, b)
    scale = xp.max(xp.where(valid, xp.linalg.diagonal(b), 0.0), axis=-1)[..., None, None]
    scale = xp.where(scale > 0, scale, 1.0)
    b = xp.where(pair, b / scale + DIIS_RIDGE * eye, eye)
    ones = xp.astype(valid, b.dtype)[..., :, None]
    top = xp.concat([b, -ones], axis=-1)
    bottom = xp.concat([-xp.linalg.matrix_transpose(ones), xp.zeros_like(ones[..., :1, :])], axis=-1)
    system = xp.concat([top, bottom], axis=-2)
    rhs = xp.concat([xp.zeros_like(ones), -xp.ones_like(ones[..., :1, :])], axis=-2)
    ok = _finite_cells(system)
    eye_aug = _eye(xp, m + 1, system)
    solution = xp.linalg.solve(xp.where(ok[..., None, None], system, eye_aug), rhs)
    return xp.where(ok[..., None], solution[..., :m, 0], float("nan"))


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


def oja_step(orbitals, fock, *, orthogonalizer, metric, occupation, learning_rate):
    """One online-PCA (Oja subspace) step in the orthonormal basis: V <- orth(V + eta A V).

    A = (sigma I - F') / (sigma - lambda_min), F' = X F X, with sigma and lambda_min the upper
    and lower Gershgorin bounds of F', so that A is positive semi-definite with spectrum in
    [0, 1] and its top subspace is the lowest (occupied) subspace of F'. ``orth`` is the Q of
    a QR decomposition, so the first k columns evolve exactly as a k-column Oja update
    whatever the later columns do. Returns (D, C) with C = X V.
    """
    xp = array_namespace(orbitals)
    x = orthogonalizer[..., None, :, :]
    v = x @ metric[..., None, :, :] @ orbitals  # V = S^1/2 C, orthonormal columns
    f = x @ fock @ x
    low, high = gershgorin_bounds(f)
    width = xp.where(high - low > 0, high - low, 1.0)[..., None, None]
    step = (high[..., None, None] * v - f @ v) / width
    eta = learning_rate[..., None, None, None]
    orbitals = x @ safe_qr(v + eta * step)
    return density_from(orbitals, occupation), orbitals
