"""The SELU moment map g of Klambauer et al. (2017) in closed form, and its Jacobian, for NumPy and torch.

A unit z = sum_i w_i x_i with inputs of mean mu and variance nu is, by the central limit theorem,
z ~ N(mu omega, nu tau) with omega = sum_i w_i and tau = sum_i w_i^2 (Eq. 3 of the paper).
Its activation y = selu(z) has mean and variance

    mu~ = E selu(z),    nu~ = E selu(z)^2 - mu~^2        (Eq. 4-5: nu is a VARIANCE)

and g(mu, nu) = (mu~, nu~). With m = mu omega, s = sqrt(nu tau), r = m / s, Phi the normal CDF
and phi its density, the two Gaussian tail integrals T_c = E[e^{c z} 1{z <= 0}]
= e^{c m + c^2 s^2 / 2} Phi(-(m + c s^2) / s) (c = 1, 2) give

    mu~ = lambda (m Phi(r) + s phi(r)) + lambda alpha (T_1 - Phi(-r))
    E selu^2 = lambda^2 ((m^2 + s^2) Phi(r) + m s phi(r)) + lambda^2 alpha^2 (T_2 - 2 T_1 + Phi(-r)).

T_c is evaluated without overflow: with u = r + c s, T_c = exp(-r^2/2) erfcx(u / sqrt 2) / 2
for u >= 0 and exp(c u s - c^2 s^2 / 2) Phi(-u) for u < 0 (both exponents <= 0), so the map
stays finite for any nu tau (the textbook form e^{2 s^2} Phi(...) overflows from s^2 ~ 350).
nu~ is a difference: its relative error grows like eps mu~^2 / nu~ where the variance is
small beside the squared mean.

Paper: G. Klambauer, T. Unterthiner, A. Mayr & S. Hochreiter, "Self-Normalizing Neural
Networks", NeurIPS 2017, arXiv:1706.02515 (Eq. 3-5; Jacobian at the fixed point in Sec. 3).
"""
from __future__ import annotations

import math

import numpy as np

from ...backends import erfcx, ndtr

LAMBDA = 1.0507009873554804934  # lambda_01 of the paper
ALPHA = 1.6732632423543772848  # alpha_01 of the paper
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def _namespace(*arrays):
    """torch's array-API namespace if any argument is a tensor, else NumPy (arguments as arrays)."""
    for a in arrays:
        if not isinstance(a, (np.ndarray, np.generic, float, int)):
            from array_api_compat import array_namespace

            return array_namespace(a), arrays
    return np, tuple(np.asarray(a) for a in arrays)


def selu(z):
    """selu(z) = lambda z (z > 0), lambda alpha (e^z - 1) (z <= 0); NumPy or torch, dtype kept."""
    xp, (z,) = _namespace(z)
    return LAMBDA * xp.where(z > 0, z, ALPHA * xp.expm1(xp.clip(z, max=0.0)))


def _tail(xp, r, s, c):
    """T_c / e^0 = E[e^{c z} 1{z <= 0}] for z ~ N(r s, s^2), without overflow (module docstring)."""
    u = r + c * s
    above, below = xp.clip(u, min=0.0), xp.clip(u, max=0.0)
    scaled = 0.5 * xp.exp(-0.5 * r * r) * erfcx(above * _INV_SQRT_2)
    direct = xp.exp(c * below * s - 0.5 * c * c * s * s) * ndtr(-below)
    return xp.where(u >= 0, scaled, direct)


def _pieces(mu, nu, omega, tau):
    xp, (mu, nu, omega, tau) = _namespace(mu, nu, omega, tau)
    m, s = mu * omega, xp.sqrt(nu * tau)
    r = m / s
    return xp, dict(m=m, s=s, P=ndtr(r), Q=ndtr(-r), phi=_INV_SQRT_2PI * xp.exp(-0.5 * r * r),
                    t1=_tail(xp, r, s, 1.0), t2=_tail(xp, r, s, 2.0))


def _mean_and_square(p):
    m, s, P, Q, phi, t1, t2 = (p[k] for k in ("m", "s", "P", "Q", "phi", "t1", "t2"))
    mean = LAMBDA * (m * P + s * phi) + LAMBDA * ALPHA * (t1 - Q)
    square = LAMBDA**2 * ((m * m + s * s) * P + m * s * phi) + (LAMBDA * ALPHA) ** 2 * (t2 - 2.0 * t1 + Q)
    return mean, square


def selu_moments(mu, nu, omega, tau):
    """g(mu, nu) = (mu~, nu~): mean and variance of selu(z), z ~ N(mu omega, nu tau), in closed form.

    Parameters
    ----------
    mu, nu : arrays (any broadcastable shapes), NumPy or torch, float64 or float32: the mean and
        the variance (not the second moment) of the inputs x_i. nu > 0.
    omega, tau : arrays broadcastable with mu: sum_i w_i and sum_i w_i^2 of a unit's weights; tau > 0.

    Returns (mu~, nu~) in the promoted dtype of the arguments, on their backend. (0, 1) is the
    fixed point at omega = 0, tau = 1. Formula: module docstring (Eq. 4-5 of the paper).
    """
    _, p = _pieces(mu, nu, omega, tau)
    mean, square = _mean_and_square(p)
    return mean, square - mean * mean


def jacobian(mu, nu, omega, tau):
    """d(mu~, nu~) / d(mu, nu) in closed form: ((dmu~/dmu, dmu~/dnu), (dnu~/dmu, dnu~/dnu)).

    Returns the four entries (J11, J12, J21, J22), each shaped like the broadcast arguments.
    With v = s^2 = nu tau, d/dm E f(z) = E f'(z) and d/dv E f(z) = E f''(z) / 2 (the heat
    equation); selu' jumps by lambda (1 - alpha) at 0, which adds lambda (1 - alpha) phi(r) / s
    to E selu''. Then dmu~/dmu = omega dmu~/dm, dmu~/dnu = tau dmu~/dv, and likewise for
    nu~ = E selu^2 - mu~^2. At (0, 1), omega = 0, tau = 1 the paper's J is
    ((0, 0.0888), (0, 0.7826)), spectral norm 0.7877.
    """
    xp, p = _pieces(mu, nu, omega, tau)
    _, (mu, nu, omega, tau) = _namespace(mu, nu, omega, tau)
    m, s, P, phi, t1, t2 = (p[k] for k in ("m", "s", "P", "phi", "t1", "t2"))
    mean, _ = _mean_and_square(p)
    dmean_dm = LAMBDA * P + LAMBDA * ALPHA * t1
    dmean_dv = 0.5 * (LAMBDA * ALPHA * t1 + LAMBDA * (1.0 - ALPHA) * phi / s)
    dsquare_dm = 2.0 * LAMBDA**2 * (m * P + s * phi) + 2.0 * (LAMBDA * ALPHA) ** 2 * (t2 - t1)
    dsquare_dv = LAMBDA**2 * P + (LAMBDA * ALPHA) ** 2 * (2.0 * t2 - t1)
    dvar_dm = dsquare_dm - 2.0 * mean * dmean_dm
    dvar_dv = dsquare_dv - 2.0 * mean * dmean_dv
    return omega * dmean_dm, tau * dmean_dv, omega * dvar_dm, tau * dvar_dv
