"""Implicit differentiation through the mean-field fixed point of a monotone DBM.

At q* = softmax(W q* + b) on the free variables (the clamped ones are constants), a loss L(q*) has

    dL/dz = u = D (I - W D)^-1 dL/dq*,   D = blockdiag(diag(q_i) - q_i q_i^T)  (free variables only),

z = W q + b, and then dL/db = u, dL/dW = u q*^T (summed over the batch). With the factor
D = R R^T, R = diag(sqrt q) (I - sqrt q sqrt q^T) per block, the push-through identity gives

    u = R w,   (I - R^T W R) w = R^T dL/dq*,

a symmetric system with I - R^T W R >= m I when I - W >= m I (||R|| <= 1): conjugate gradients
converge, at a rate set by (1 + ||W||) / m. The paper's code (``deq_model.py``) instead iterates the
adjoint of the splitting map with Anderson through autograd; both give the same gradient.

Through W = -s H(A), H = A^T A - blockdiag(A^T A), and s = min(1, (1 - m) / rho), rho = max_i
lambda_max(A_i^T A_i): dL/dA = -s A (G^ + G^T) - (dL/ds) (s / rho) 2 A_i* v v^T on the block i* that
attains rho (v its top eigenvector), G = dL/dW, G^ = G with its diagonal blocks zeroed, dL/ds =
-sum(G * H). Array API (NumPy or torch), no autograd.
"""
from __future__ import annotations

from ...backends import namespace
from . import model

CG_FLOOR = 1e-300


def _cell_sum(x, lead):
    xp = namespace(x)
    return xp.sum(x, axis=tuple(range(lead, x.ndim)))


def _expand(x, like):
    return x.reshape(tuple(x.shape) + (1,) * (like.ndim - x.ndim))


def factor_apply(q, free, w):
    """R w per block: sqrt(q) * (w - sqrt(q) (sqrt(q) . w)), zero on clamped variables."""
    xp = namespace(q)
    p = xp.sqrt(q)
    return free * p * (w - p * xp.sum(p * w, axis=-1, keepdims=True))


def factor_transpose(q, free, x):
    """R^T x per block: y - sqrt(q) (sqrt(q) . y), y = sqrt(q) * x, zero on clamped variables."""
    xp = namespace(q)
    p = xp.sqrt(q)
    y = free * p * x
    return y - p * xp.sum(p * y, axis=-1, keepdims=True)


def adjoint(q, free, coupling, rhs, *, tol=1e-10, max_iter=200):
    """u = D (I - W D)^-1 rhs by conjugate gradients on (I - R^T W R) w = R^T rhs, per cell.

    q, free, rhs (*E, B, n, k); W (*E, nk, nk). Returns (u, relative residual (*E) float64). A cell
    stops once ||r|| <= tol ||R^T rhs|| and is frozen (the result does not depend on other cells).
    """
    xp = namespace(q)
    lead = q.ndim - 3

    def apply(w):
        return w - factor_transpose(q, free, model.couple(factor_apply(q, free, w), coupling))

    b = factor_transpose(q, free, rhs)
    x, r = xp.zeros_like(b), b
    p, rs = r, _cell_sum(r * r, lead)
    limit = (tol ** 2) * rs
    done = rs <= limit
    for _ in range(max_iter):
        if bool(xp.all(done)):
            break
        kp = apply(p)
        curve = _cell_sum(p * kp, lead)
        a = xp.where(done, xp.zeros_like(rs), rs / xp.where(curve > CG_FLOOR, curve, xp.ones_like(curve)))
        x, r = x + _expand(a, p) * p, r - _expand(a, p) * kp
        new = _cell_sum(r * r, lead)
        beta = new / xp.where(rs > CG_FLOOR, rs, xp.ones_like(rs))
        p = xp.where(_expand(done, p), p, r + _expand(beta, p) * p)
        rs = xp.where(done, rs, new)
        done = done | (rs <= limit)
    norm = xp.sqrt(_cell_sum(b * b, lead))
    relative = xp.sqrt(rs) / xp.where(norm > 0, norm, xp.ones_like(norm))
    return factor_apply(q, free, x), xp.astype(relative, xp.float64)


def parameter_gradients(weights, margin, scaling, q, u):
    """(dL/dA (*E, r, n, k), dL/db (*E, n, k)) from u = dL/dz (*E, B, n, k) at the marginals q.

    Low rank, never forming the (n k)^2 matrix G = sum_b u_b q_b^T: with A~ = c A (the scaled
    columns), dL/dA~ = -(A~ (G + G^T) - A~_i (G_ii + G_ii^T) per block), A~ (G + G^T) = (A~ U^T) Q +
    (A~ Q^T) U over the batch; then dL/dA = c dL/dA~ + the path through c (:func:`_scale_term`).
    """
    xp = namespace(weights)
    c = model.column_scale(weights, margin, scaling)
    scaled = weights * c[..., None, :, None]
    a_t = model.factor_of(scaled).transposed
    n, k = weights.shape[-2:]
    qf = xp.reshape(q, (*q.shape[:-2], n * k))
    uf = xp.reshape(u, (*u.shape[:-2], n * k))
    full = (uf @ a_t).mT @ qf + (qf @ a_t).mT @ uf  # A~ (G + G^T), (*E, r, nk)
    g_blocks = xp.sum(u[..., :, None] * q[..., None, :], axis=-4)  # G_ii (*E, n, k, k)
    own = scaled[..., :, :, :, None] * (g_blocks + g_blocks.mT)[..., None, :, :, :]  # (*E, r, n, k, k)
    grad_scaled = xp.sum(own, axis=-2) - xp.reshape(full, weights.shape)
    grad_c = xp.sum(grad_scaled * weights, axis=(-3, -1))  # dL/dc_i (*E, n)
    grad_a = grad_scaled * c[..., None, :, None] + _scale_term(weights, margin, scaling, c, grad_c)
    return grad_a, xp.sum(u, axis=-3)


def _scale_term(weights, margin, scaling, c, grad_c):
    """(dL/dc) dc/dA, nonzero only where a factor c < 1 is active: d rho_i / dA_i = 2 A_i v_i v_i^T."""
    xp = namespace(weights)
    values, vectors = xp.linalg.eigh(model.block_gram(weights))  # (*E, n, k), (*E, n, k, k)
    rho = values[..., -1]
    v = vectors[..., -1]  # top eigenvector of each block (*E, n, k)
    safe = xp.where(rho > 0, rho, xp.ones_like(rho))
    if scaling == "none":
        return xp.zeros_like(weights)
    if scaling == "variable":  # c_i = sqrt((1 - m) / rho_i): dc_i / drho_i = -c_i / (2 rho_i)
        factor = xp.where((c < 1) & (rho > 0), -grad_c * c / (2 * safe), xp.zeros_like(rho))
    else:  # c = sqrt(s), s = (1 - m) / rho_max: dL/drho_max = sum_i dL/dc_i (-c / (2 rho_max)) on the top block
        top = xp.max(rho, axis=-1, keepdims=True)
        pick = xp.astype(rho == top, weights.dtype)
        pick = pick / xp.sum(pick, axis=-1, keepdims=True)  # ties share (a subgradient)
        total = xp.sum(grad_c, axis=-1, keepdims=True) * (-c / (2 * safe))
        factor = xp.where((c < 1) & (rho > 0), total * pick, xp.zeros_like(rho))
    av = xp.sum(weights * v[..., None, :, :], axis=-1)  # A_i v_i (*E, r, n)
    return 2 * factor[..., None, :, None] * av[..., None] * v[..., None, :, :]
