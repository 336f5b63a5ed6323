"""Observables of the selu_map system: the fixed-point residual and the second moment."""
from __future__ import annotations

from ...backends import namespace
from .moments import selu_moments


def residual(*, mu, nu, omega, tau, image_mu=None, image_nu=None):
    """max(|mu~ - mu|, |nu~ - nu|), (mu~, nu~) = g(mu, nu); (*E) in the state's float dtype.

    image_mu, image_nu : g(mu, nu) when the running operator carries it (operator ``map``):
    then g is not evaluated again. The image holds the values g gives in the state's dtype, so
    both routes give the same numbers bit for bit (a difference of two floats of the state's
    dtype is exact in float64, and rounding it back is the state dtype's own subtraction).
    """
    xp = namespace(mu)
    if image_mu is None or image_nu is None:
        image_mu, image_nu = selu_moments(mu, nu, omega, tau)
    gap = xp.maximum(xp.abs(image_mu - xp.astype(mu, image_mu.dtype)), xp.abs(image_nu - xp.astype(nu, image_nu.dtype)))
    return xp.astype(gap, mu.dtype)


def second_moment(*, mu, nu):
    """E x^2 = nu + mu^2 of the activations; (*E) in the state's float dtype."""
    return nu + mu * mu
