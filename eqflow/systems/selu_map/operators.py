"""Operators of the selu_map system: the closed-form moment map and a sampled SELU network.

- ``map``: (mu, nu) <- g(mu, nu) (:func:`.moments.selu_moments`). The operator carries the
  image g(mu, nu) of the current state as owned state (``image_mu``, ``image_nu``): a step
  moves the state to the image and evaluates g once, at the new state. The ``residual``
  observable reads that image, so a run costs one evaluation of g per step (and one in
  ``init``) whether the residual is recorded, checked by a converged stop rule, or both.
- ``network``: one layer of a deep fully connected SELU network per step, all members at once,
  with the map's prediction carried beside it (``map_mu``, ``map_nu``).

Paper: Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks",
NeurIPS 2017, arXiv:1706.02515.
"""
from __future__ import annotations

import numpy as np

from ...backends import namespace
from ...errors import SchemaError
from .moments import selu, selu_moments

KIND = "selu_map"


def check_state(mu, nu) -> None:
    """A SchemaError naming mu and nu unless every mu is finite and every nu finite and > 0 (NumPy)."""
    mu, nu = np.asarray(mu), np.asarray(nu)
    problems = []
    if not np.all(np.isfinite(mu)):
        problems.append(f"mu: expected finite means, got {int(np.sum(~np.isfinite(mu)))} non-finite value(s) "
                        f"such as {mu[~np.isfinite(mu)][:3].tolist()}")
    bad = ~(np.isfinite(nu) & (nu > 0))
    if np.any(bad):
        problems.append(f"nu: expected finite variances > 0, got {int(np.sum(bad))} other value(s) such as "
                        f"{nu[bad][:3].tolist()}")
    if problems:
        raise SchemaError(problems, kind=KIND)


def init_map(*, mu, nu, omega, tau):
    """The image g(mu, nu) of the start state (float64 arrays holding values computed in mu's dtype).

    Checks the state first: a NaN, or nu <= 0, is a SchemaError before anything is written.
    """
    check_state(mu, nu)
    dtype = np.asarray(mu).dtype
    image_mu, image_nu = selu_moments(mu, nu, np.asarray(omega, dtype=dtype), np.asarray(tau, dtype=dtype))
    return {"image_mu": np.asarray(image_mu, dtype=np.float64), "image_nu": np.asarray(image_nu, dtype=np.float64)}


def map_step(*, mu, nu, image_mu, image_nu, omega, tau):
    """One step of the moment map: (mu, nu) <- g(mu, nu), the image carried from the last step.

    mu, nu : (*E) float64 or float32, the state (nu a variance); image_mu, image_nu : (*E)
    float64, g of the state; omega, tau : (*E) in the state's dtype. Returns the new state
    (dtype kept) and its image g(new state), evaluated once here (Eq. 4-5 of the paper).
    """
    xp = namespace(mu)
    mu, nu = xp.astype(image_mu, mu.dtype), xp.astype(image_nu, nu.dtype)
    image_mu, image_nu = selu_moments(mu, nu, omega, tau)
    return {"mu": mu, "nu": nu, "image_mu": xp.astype(image_mu, xp.float64),
            "image_nu": xp.astype(image_nu, xp.float64)}


def prepare_network(*, omega, tau, sizes):
    """Check that the network can be built (NumPy, once per run, before anything is written).

    Needs ``sample`` >= 2 and ``unit`` >= 2 (create(samples=..., units=...)) and, for a row of
    n real weights with sum omega and sum of squares tau, tau > omega^2 / n (Cauchy-Schwarz).
    """
    problems = [f"{dim}: the operator 'network' needs a network of size >= 2, got {sizes.get(dim, 0)}; create the "
                f"system with {dim}s=... >= 2" for dim in ("sample", "unit") if sizes.get(dim, 0) < 2]
    n = sizes.get("unit", 0)
    if n >= 2:
        omega, tau = np.asarray(omega, dtype=np.float64), np.asarray(tau, dtype=np.float64)
        omega, tau = np.broadcast_arrays(omega, tau)
        bad = ~(tau > omega * omega / n)
        if np.any(bad):
            problems.append(f"tau: expected tau > omega^2 / unit for rows of {n} weights with sum omega, got "
                            f"(omega, tau) = {sorted(set(zip(omega[bad].tolist(), tau[bad].tolist())))[:3]}")
    if problems:
        raise SchemaError(problems, kind=KIND)
    return {}


def init_network(*, mu, nu):
    """The map's prediction starts at the state: map_mu = mu, map_nu = nu (float64)."""
    check_state(mu, nu)
    return {"map_mu": np.asarray(mu, dtype=np.float64).copy(), "map_nu": np.asarray(nu, dtype=np.float64).copy()}


def layer_weights(xi, omega, tau):
    """Rows with sum exactly omega and sum of squares exactly tau: w = omega/n + c (xi - mean(xi)).

    xi : (*E, unit, unit) standard normals; omega, tau : (*E). c = sqrt((tau - omega^2/n) /
    ||xi - mean(xi)||^2) per row, so each unit sees the (omega, tau) of the paper, not only
    in expectation.
    """
    xp = namespace(xi)
    n = xi.shape[-1]
    centred = xi - xp.mean(xi, axis=-1, keepdims=True)
    spread = (tau - omega * omega / n)[..., None, None]
    scale = xp.sqrt(spread / xp.sum(centred * centred, axis=-1, keepdims=True))
    return (omega / n)[..., None, None] + scale * centred


def network(*, x, map_mu, map_nu, omega, tau, weights):
    """One layer: x <- selu(x W^T); (mu, nu) <- mean and variance of x; the prediction <- g(prediction).

    x : (*E, sample, unit) in the state's float dtype; weights : (*E, unit, unit) standard normals
    (the declared draw); map_mu, map_nu : (*E) float64. mu, nu are the mean and the variance
    (divisor sample * unit) over samples and units. The prediction is evaluated in float64.
    """
    xp = namespace(x)
    w = layer_weights(weights, omega, tau)
    x = selu(xp.matmul(x, xp.matrix_transpose(w)))
    mu = xp.mean(x, axis=(-2, -1))
    nu = xp.mean((x - mu[..., None, None]) ** 2, axis=(-2, -1))
    map_mu, map_nu = selu_moments(map_mu, map_nu, xp.astype(omega, xp.float64), xp.astype(tau, xp.float64))
    return {"x": x, "mu": mu, "nu": nu, "map_mu": map_mu, "map_nu": map_nu}
