"""Exact values for the selu_map system: fixed points, Jacobians, and the map by quadrature.

- :func:`fixed_point`: (mu*, nu*) with g(mu*, nu*) = (mu*, nu*) at given (omega, tau), by a
  root solve (scipy.optimize.root, hybrid Powell) started at (0, 1); at omega = 0, tau = 1 it
  is (0, 1) exactly (Sec. 3 of the paper).
- :func:`jacobian_matrix` and :func:`spectral_norm`: the closed-form Jacobian of g as 2 x 2
  matrices and its largest singular value; the paper gives 0.7877 at (0, 1) (omega = 0,
  tau = 1), so g is a contraction there (Banach).
- :func:`quadrature_moments`: E selu(z) and Var selu(z) by adaptive quadrature
  (scipy.integrate.quad on each side of 0), the slow reference the closed form is tested against.

Paper: Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks",
NeurIPS 2017, arXiv:1706.02515.
"""
from __future__ import annotations

import math

import numpy as np

from .moments import ALPHA, LAMBDA, jacobian, selu, selu_moments

PAPER_SPECTRAL_NORM = 0.7877  # largest singular value of J at (0, 1), omega = 0, tau = 1, as the paper prints it
PAPER_JACOBIAN = ((0.0, 0.0888), (0.0, 0.7826))  # J(0, 1) at omega = 0, tau = 1, to the paper's digits


def jacobian_matrix(mu, nu, omega, tau) -> np.ndarray:
    """J = d(mu~, nu~)/d(mu, nu) as float64 arrays of shape (*broadcast shape, 2, 2) (closed form)."""
    j11, j12, j21, j22 = (np.asarray(a, dtype=np.float64) for a in jacobian(*np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (mu, nu, omega, tau)))))
    return np.stack([np.stack([j11, j12], axis=-1), np.stack([j21, j22], axis=-1)], axis=-2)


def spectral_norm(mu, nu, omega, tau) -> np.ndarray:
    """Largest singular value of J(mu, nu) at (omega, tau); < 1 where g contracts in the Euclidean norm."""
    return np.linalg.norm(jacobian_matrix(mu, nu, omega, tau), ord=2, axis=(-2, -1))


def fixed_point(omega: float, tau: float, guess=(0.0, 1.0), tol: float = 1e-14) -> tuple[float, float]:
    """(mu*, nu*) with g(mu*, nu*) = (mu*, nu*) at scalar (omega, tau); a ValueError if the solve fails.

    Newton-type root solve (scipy.optimize.root, method "hybr") of g(x) - x with the closed-form
    Jacobian, from ``guess`` (default the fixed point (0, 1) of omega = 0, tau = 1); where that
    fails (a fixed point far from the guess, e.g. (2.20, 14.9) at omega = 0.6, tau = 1.5), from
    the point that iterating g from ``guess`` reaches.
    """
    from scipy.optimize import root

    def f(x):
        with np.errstate(invalid="ignore", over="ignore"):  # a trial step to nu < 0 gives NaN: rejected
            m, v = selu_moments(x[0], x[1], omega, tau)
        return [float(m) - x[0], float(v) - x[1]]

    def fprime(x):
        return jacobian_matrix(x[0], x[1], omega, tau) - np.eye(2)

    if not (np.isfinite(omega) and np.isfinite(tau) and tau > 0):
        raise ValueError(f"omega, tau: expected finite numbers with tau > 0, got omega={omega!r}, tau={tau!r}")
    def solved(solution):  # hybr may report slow progress at a point that already solves g(x) = x to rounding
        return np.all(np.isfinite(solution.x)) and solution.x[1] > 0 and (solution.success or np.max(
            np.abs(f(solution.x))) <= 1e-13 * (1 + np.max(np.abs(solution.x))))

    solution = root(f, np.asarray(guess, dtype=np.float64), jac=fprime, method="hybr", tol=tol)
    if not solved(solution):  # far from the guess: let the map itself bring the start close, then polish
        solution = root(f, _iterate(guess, omega, tau), jac=fprime, method="hybr", tol=tol)
    if not solved(solution):
        raise ValueError(f"fixed_point: no fixed point found from {tuple(guess)} at omega={omega}, tau={tau} "
                         f"({solution.message}); try another guess")
    return float(solution.x[0]), float(solution.x[1])


def _iterate(start, omega, tau, steps=20_000, tol=1e-10) -> np.ndarray:
    """g applied to ``start`` until the residual is below ``tol`` (or ``steps`` times): a start for the root solve."""
    x = np.asarray(start, dtype=np.float64)
    for _ in range(steps):
        with np.errstate(invalid="ignore", over="ignore"):
            y = np.asarray(selu_moments(x[0], x[1], omega, tau), dtype=np.float64)
        if not np.all(np.isfinite(y)) or np.max(np.abs(y - x)) < tol:
            return y
        x = y
    return x


def quadrature_moments(mu: float, nu: float, omega: float, tau: float) -> tuple[float, float]:
    """(E selu(z), Var selu(z)) for z ~ N(mu omega, nu tau) by scipy.integrate.quad (the reference).

    The Gaussian is integrated in the standard variable t, z = m + s t, over (-inf, -m/s) and
    (-m/s, inf) (selu has a kink at z = 0), with relative tolerance 1e-13.
    """
    from scipy import integrate

    m, s = mu * omega, math.sqrt(nu * tau)
    kink = -m / s

    def moment(k):
        def f(t):
            return float(selu(m + s * t)) ** k * math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
        return sum(integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-13, limit=200)[0]
                   for a, b in ((-np.inf, kink), (kink, np.inf)))

    mean = moment(1)
    return mean, moment(2) - mean * mean


__all__ = ["ALPHA", "LAMBDA", "PAPER_JACOBIAN", "PAPER_SPECTRAL_NORM", "fixed_point", "jacobian_matrix",
           "quadrature_moments", "selu_moments", "spectral_norm"]
