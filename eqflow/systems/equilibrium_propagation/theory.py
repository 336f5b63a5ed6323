"""Exact values for equilibrium propagation (Laborieux & Zenke, ICLR 2024), NumPy float64, one network.

Fixed points. :func:`fixed_point` solves F(u) = M tanh(u) + c - u - beta (tanh(u) - y) [output units] = 0
per sample by Newton's method (to rounding), for real or complex beta, independently of the relaxation.

Gradient estimators. With s(beta) = tanh(u_beta), analytic in beta near 0 (implicit function theorem,
J_u invertible), s(beta) = s_0 + a_1 beta + a_2 beta^2 + ..., so

    one-sided   (s(beta) - s_0) / beta = a_1 + a_2 beta + ...                          error O(beta)
    symmetric   (s(beta) - s(-beta)) / (2 beta) = a_1 + a_3 beta^2 + ...               error O(beta^2)
    N points    (1/N) sum_k s(beta w^k) / (beta w^k) = a_1 + a_{N+1} beta^N + ...      error O(beta^N)

(w = exp(2 pi i / N): the mean of w^{k j} over k vanishes unless N divides j), :func:`error_order`.
The limit a_1 = ds/dbeta = (D_s M - I)^-1 D_s h (:func:`ep_limit`) equals -lambda, the implicit
gradient's cotangent, when M = M^T: then every estimator's error against the exact gradient falls
as beta, beta^2 and beta^N. :func:`loss` at the exact fixed point gives finite-difference gradients.

Homeostasis. For e ~ N(0, I_D) and A = J^T J - J J (J = M - I), the loss e^T A e / D has mean
tr(A) / D = (||J||_F^2 - tr(J^2)) / D = ||J - J^T||_F^2 / (2 D) and variance 2 tr(A_s^2) / D^2, A_s
the symmetric part of A (:func:`homeostatic_mean`, :func:`homeostatic_std`).
"""
from __future__ import annotations

import numpy as np


def error_order(estimator, points=2):
    """The power of beta of the leading error: 1 (one_sided), 2 (symmetric), N (holomorphic)."""
    return {"one_sided": 1, "symmetric": 2, "holomorphic": int(points)}[estimator]


def fixed_point(matrix, current, *, beta=0.0, target=None, out=None, tol=1e-14, max_iter=100):
    """u (S, D) with F(u) = 0 for every sample (rows of ``current``), by Newton's method from u = c.

    matrix M (D, D), current c (S, D); with beta != 0 also target y (S, D) and out (D,) bool. Raises
    RuntimeError when Newton does not reach ``tol`` (||F||_inf).
    """
    m = np.asarray(matrix)
    c = np.asarray(current)
    dtype = np.result_type(m, c, np.asarray(beta))
    u = c.astype(dtype)
    nudge = np.zeros(m.shape[0]) if out is None else np.asarray(out, dtype=np.float64)
    y = np.zeros_like(c) if target is None else np.asarray(target)
    eye = np.eye(m.shape[0])
    for _ in range(max_iter):
        s = np.tanh(u)
        f = s @ m.T + c - u - beta * nudge * (s - y)
        if np.max(np.abs(f)) <= tol:
            return u
        slope = 1 - s * s
        jac = m[None] * slope[:, None, :] - eye - beta * (nudge * slope)[:, :, None] * eye
        u = u - np.linalg.solve(jac, f[..., None])[..., 0]
    raise RuntimeError(f"fixed_point: Newton did not converge to {tol} in {max_iter} iterations")


def ep_limit(matrix, u_free, target, out):
    """ds/dbeta at beta = 0, (S, D): (D_s M - I)^-1 D_s h, h = (s - y) on the output units."""
    s = np.tanh(u_free)
    slope = 1 - s * s
    h = np.where(out, s - target, 0.0)
    system = slope[:, :, None] * np.asarray(matrix)[None] - np.eye(s.shape[-1])
    return np.linalg.solve(system, (slope * h)[..., None])[..., 0]


def loss(input_weights, feedforward, feedback, bias, inputs, target, out):
    """Mean |tanh(u*_L) - y|^2 / 2 over the samples at the exact free fixed point."""
    u = fixed_point(feedforward + feedback, inputs @ input_weights.T + bias)
    e = np.where(out, np.tanh(u) - target, 0.0)
    return float(np.sum(e * e) / (2 * u.shape[0]))


def homeostatic_mean(matrix):
    """E[loss] = ||J - J^T||_F^2 / (2 D), J = M - I."""
    m = np.asarray(matrix, dtype=np.float64)
    return float(np.sum((m - m.T) ** 2) / (2 * m.shape[0]))


def homeostatic_std(matrix):
    """Standard deviation of the loss of one probe e ~ N(0, I): sqrt(2 tr(A_s^2)) / D, A = J^T J - J^2."""
    j = np.asarray(matrix, dtype=np.float64) - np.eye(np.shape(matrix)[0])
    a = j.T @ j - j @ j
    a_sym = (a + a.T) / 2
    return float(np.sqrt(2 * np.trace(a_sym @ a_sym)) / j.shape[0])


def symmetry_of(matrix):
    """||J_sym||_F / (||J_sym||_F + ||J_anti||_F) for J = M - I, directly from the two parts."""
    j = np.asarray(matrix, dtype=np.float64) - np.eye(np.shape(matrix)[0])
    sym, anti = np.linalg.norm((j + j.T) / 2), np.linalg.norm((j - j.T) / 2)
    return float(sym / (sym + anti))


def convergence_rate(matrix, u_star, dt=1.0):
    """Asymptotic factor per step of u <- u + dt F(u) near u*: the largest spectral radius over the samples
    of I + dt (M D_s - I), D_s = diag(1 - tanh(u*)^2) (the relaxation converges locally when it is < 1)."""
    slope = 1 - np.tanh(u_star) ** 2
    step = np.eye(slope.shape[-1]) + dt * (np.asarray(matrix)[None] * slope[:, None, :] - np.eye(slope.shape[-1]))
    return float(np.max(np.abs(np.linalg.eigvals(step))))
