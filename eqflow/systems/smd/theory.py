"""Equilibrium of spherical motion dynamics (Wan, Zhu, Zhang & Sun, NeurIPS 2021, arXiv:2006.08419).

Setting. A scale-invariant weight w (L(kw) = L(w) for k > 0) has a gradient orthogonal to it,
<g, w> = 0, of size ||g|| = ||grad L(w^)|| / ||w||. SGD with momentum alpha, learning rate eta and
weight decay lambda, PyTorch's convention:

    v_{t+1} = alpha v_t + g_t + lambda w_t,    w_{t+1} = w_t - eta v_{t+1}.

For the noise model, L_t(w) = -<w^, x_t>, x_t ~ N(0, sigma^2 I_d) fresh every step, so
g_t = -P_t x_t / ||w_t|| with P_t = I - w^ w^T, and ||P_t x_t||^2 = sigma^2 chi^2_{d-1}:

    E ||g_t||^2 = L / ||w_t||^2,    L = (d - 1) sigma^2,                          (exact)

independent of the past, and E <g_t, anything before x_t> = 0. Write n = ||w||^2, N = E n.

SGD (alpha = 0). Since g_t is orthogonal to w_t,

    n_{t+1} = (1 - eta lambda)^2 n_t + eta^2 ||g_t||^2,                          (exact)

and with ||g_t||^2 replaced by its mean L / n_t the deterministic recursion
n' = a n + eta^2 L / n (a = (1 - eta lambda)^2) has the fixed point

    n*^2 = eta^2 L / (1 - a) = eta L / (lambda (2 - eta lambda)),                 (exact for the recursion)

and, at the fixed point, cos Delta* = <w, w'> / (||w|| ||w'||) = (1 - eta lambda) n* / n* =
1 - eta lambda. A deviation n = n* (1 + e) maps to n' = n* (1 + (2a - 1) e + O(e^2)), so the
deviation contracts by r = 2 (1 - eta lambda)^2 - 1 = 1 - 4 eta lambda + 2 (eta lambda)^2 per step.
The chi^2 noise adds relative fluctuations of n of variance
(1 - a) / (2 (d - 1) (1 - eta lambda)^2) ~ eta lambda / (d - 1) (linearised recursion driven by
Var chi^2_{d-1} / (d - 1)^2 = 2 / (d - 1)), which shift E n by a relative O(eta lambda / d) and the
mean angle E Delta by the relative -1/(4 (d - 1)) of E sqrt(chi^2_k) = sqrt(k) (1 - 1/(4k) + ...).

Momentum (any alpha < 1). Exact stationarity relations (E n_{t+1} = E n_t, and the recursions
of A = E <w_t, v_{t+1}> and B = E ||v_{t+1}||^2):

    n_{t+1} = n_t - 2 eta <w_t, v_{t+1}> + eta^2 ||v_{t+1}||^2          =>  2 A = eta B,
    <w_t, v_{t+1}> = alpha <w_{t-1} - eta v_t, v_t> + lambda n_t        =>  A = alpha (A - eta B) + lambda N,
    ||v_{t+1}||^2 = ||alpha v_t + lambda w_t||^2 + ||g_t||^2 + 2 <alpha v_t + lambda w_t, g_t>
                                                                        =>  B (1 - alpha^2) = L m + lambda^2 N
                                                                              + 2 alpha lambda (A - eta B),

with m = E[1 / n] (the cross term has zero mean: x_t is drawn after v_t and w_t). Hence
eta B = 2 lambda N / (1 + alpha) exactly, and, with m = 1/N (relative error Var n / N^2 = O(eta lambda / d)),

    N^2 = eta L / (lambda (1 - alpha) (2 - eta lambda / (1 + alpha)))             (second moments)
        = eta L / (2 lambda (1 - alpha)) (1 + O(eta lambda))                       (first order).

For alpha = 0 it is the SGD fixed point. The step is ||w' - w||^2 = eta^2 ||v||^2, whose mean
eta^2 B = 2 eta lambda N / (1 + alpha); since ||w' - w||^2 = n + n' - 2 sqrt(n n') cos Delta and the
radial change sqrt(n') - sqrt(n) has zero mean and a variance O((eta lambda)^2 N / d) at
equilibrium (shrinking by weight decay balances the growth from the tangential step),

    E (1 - cos Delta) = eta lambda / (1 + alpha) (1 + O(eta lambda / d)),
    Delta* = arccos(1 - eta lambda / (1 + alpha))
           = sqrt(2 eta lambda / (1 + alpha)) (1 + eta lambda / (12 (1 + alpha)) + O((eta lambda)^2)).

Mean square, not mean. eta B = 2 lambda N / (1 + alpha) used only norm stationarity and <g, w> = 0,
not the gradient's statistics: for any scale-invariant layer (the network's hidden layers too),
E||w_{t+1} - w_t||^2 / E||w||^2 = 2 eta lambda / (1 + alpha) exactly at equilibrium, so Delta* is the
root mean square angle. The plain mean is lower, E Delta = Delta* / sqrt(1 + cv^2) with cv the
coefficient of variation of the per-step angle: 1/sqrt(2 (d - 1)) for the noise model (the bias
above), about 0.6 for a 32-image minibatch of digits at alpha = 0 (a 14 % lower mean), less with
momentum, which averages gradients over ~1 / (1 - alpha) steps.

Learning-rate step eta -> eta / f at equilibrium: v and w are continuous, so the next angles
are Delta* / f; then n relaxes (rate 4 eta lambda / f per step for alpha = 0) to its new
equilibrium n* / sqrt(f) and Delta to Delta*(eta / f) ~ Delta* / sqrt(f).
"""
from __future__ import annotations

import numpy as np

REFERENCE_VARIABLES = ("angular_update",)  # records with own dims that summaries include: :func:`reference`


def gradient_scale(*, dim, noise=1.0):
    """L = E||grad L(w^)||^2 = (d - 1) sigma^2 for the noise model (exact)."""
    return (np.asarray(dim, dtype=np.float64) - 1.0) * np.asarray(noise, dtype=np.float64) ** 2


def equilibrium_norm_squared(*, learning_rate, weight_decay, momentum=0.0, dim, noise=1.0):
    """E||w*||^2 = sqrt(eta L / (lambda (1 - alpha) (2 - eta lambda / (1 + alpha)))), L = (d - 1) sigma^2.

    alpha = 0: the exact fixed point of the deterministic norm recursion; any alpha: exact for the
    stationary second moments with E[1/||w||^2] = 1/E||w||^2 (relative error O(eta lambda / d)).
    """
    eta, lam, alpha = (np.asarray(a, dtype=np.float64) for a in (learning_rate, weight_decay, momentum))
    scale = gradient_scale(dim=dim, noise=noise)
    return np.sqrt(eta * scale / (lam * (1.0 - alpha) * (2.0 - eta * lam / (1.0 + alpha))))


def first_order_norm_squared(*, learning_rate, weight_decay, momentum=0.0, dim, noise=1.0):
    """||w*||^2 = sqrt(eta L / (2 lambda (1 - alpha))): first order in eta lambda (relative error
    eta lambda / (4 (1 + alpha)) + O((eta lambda)^2))."""
    eta, lam, alpha = (np.asarray(a, dtype=np.float64) for a in (learning_rate, weight_decay, momentum))
    return np.sqrt(eta * gradient_scale(dim=dim, noise=noise) / (2.0 * lam * (1.0 - alpha)))


def equilibrium_angular_update(*, learning_rate, weight_decay, momentum=0.0):
    """Delta* = arccos(1 - eta lambda / (1 + alpha)), radians.

    alpha = 0: exact for the deterministic recursion (cos Delta* = 1 - eta lambda); any alpha:
    E(1 - cos Delta) of the stationary second moments, up to a relative O(eta lambda / d). Independent
    of the loss: it holds for every scale-invariant layer in equilibrium.
    """
    eta, lam, alpha = (np.asarray(a, dtype=np.float64) for a in (learning_rate, weight_decay, momentum))
    return np.arccos(1.0 - eta * lam / (1.0 + alpha))


def first_order_angular_update(*, learning_rate, weight_decay, momentum=0.0):
    """Delta* = sqrt(2 eta lambda / (1 + alpha)), radians: first order in eta lambda (relative error
    eta lambda / (12 (1 + alpha)) + O((eta lambda)^2)); the paper's headline result."""
    eta, lam, alpha = (np.asarray(a, dtype=np.float64) for a in (learning_rate, weight_decay, momentum))
    return np.sqrt(2.0 * eta * lam / (1.0 + alpha))


def relaxation_factor(*, learning_rate, weight_decay):
    """r = 2 (1 - eta lambda)^2 - 1 = 1 - 4 eta lambda + 2 (eta lambda)^2: per-step contraction of
    ||w||^2 - ||w*||^2 under SGD (alpha = 0), linearised around the fixed point (exact to first
    order in the deviation)."""
    x = np.asarray(learning_rate, dtype=np.float64) * np.asarray(weight_decay, dtype=np.float64)
    return 2.0 * (1.0 - x) ** 2 - 1.0


def norm_fluctuation(*, learning_rate, weight_decay, dim):
    """Relative variance Var(||w||^2) / ||w*||^4 at equilibrium, SGD (alpha = 0), linearised:
    (1 - a) / (2 (d - 1) (1 - eta lambda)^2), a = (1 - eta lambda)^2; ~ eta lambda / (d - 1)."""
    x = np.asarray(learning_rate, dtype=np.float64) * np.asarray(weight_decay, dtype=np.float64)
    return (1.0 - (1.0 - x) ** 2) / (2.0 * (np.asarray(dim, dtype=np.float64) - 1.0) * (1.0 - x) ** 2)


def angular_update_bias(*, dim):
    """Bound on the relative bias of the mean angle E Delta against Delta* from the per-step chi^2
    noise of the noise model: 1 / (4 (d - 1)) (E sqrt(chi^2_k) / sqrt(k) = 1 - 1/(4k) + O(k^-2));
    momentum averages more draws per step and makes it smaller."""
    return 1.0 / (4.0 * (np.asarray(dim, dtype=np.float64) - 1.0))


def stages(history):
    """The learning-rate step of a history, for summaries that must not pool across it.

    With the ``sgd`` option ``lr_step`` = s inside the run, the record at step t comes from the
    update that used eta_(t-1): records at steps <= s belong to stage 0 (eta), later ones to
    stage 1 (eta / lr_factor). Returns ("learning_rate_divisor", stage per record along ``step``,
    [1, lr_factor]) as :func:`eqflow.summary.stages` expects, or None without a step in the run.
    """
    import json

    options = json.loads(history.attrs.get("eqflow_options") or "{}")
    lr_step, factor = int(options.get("lr_step", -1)), float(options.get("lr_factor", 10.0))
    if "step" not in history.dims or lr_step < 0:
        return None
    stage = (history["step"].values > lr_step).astype(np.int64)
    if stage.min() == stage.max():
        return None
    return "learning_rate_divisor", stage, np.array([1.0, factor])


def mean_angular_update(*, learning_rate, weight_decay, dim, noise=1.0):
    """E Delta_t at equilibrium for the noise model with SGD (alpha = 0), radians: the mean of the
    ``angular_update`` record (Delta* above is the root mean square angle, a relative 1/(4 (d - 1))
    higher).

    One step turns w by tan Delta = eta ||g|| / ((1 - eta lambda) ||w||) with ||g|| ||w|| = sigma chi,
    chi ~ chi_{d-1} fresh every step (g is orthogonal to w), so Delta = atan(a chi) with
    a = eta sigma / ((1 - eta lambda) n): exact for a given n = ||w||^2. With n at its equilibrium
    value n* (:func:`equilibrium_norm_squared`), E Delta = E atan(a chi), integrated over the chi
    law (scipy's quadrature, ~1e-10). What is left out: the fluctuation of n around n* and the shift
    of E n, relative O(eta lambda / d) (:func:`norm_fluctuation`: 3e-4 at eta lambda = 0.002, d = 8).
    """
    import scipy.stats

    eta, lam, d, sigma = (np.asarray(a, dtype=np.float64) for a in (learning_rate, weight_decay, dim, noise))
    n_star = equilibrium_norm_squared(learning_rate=eta, weight_decay=lam, dim=d, noise=sigma)
    scale = eta * sigma / ((1.0 - eta * lam) * n_star)
    flat = [scipy.stats.chi(k - 1).expect(lambda c, a=a: np.arctan(a * c)) for a, k in
            zip(np.broadcast_to(scale, np.broadcast(scale, d).shape).ravel(),
                np.broadcast_to(d, np.broadcast(scale, d).shape).ravel())]
    return np.asarray(flat, dtype=np.float64).reshape(np.broadcast(scale, d).shape)


def reference(history) -> dict:
    """Exact values for a history's parameter points, for summaries, ``eqflow info`` and the report:
    the mean angular update of :func:`mean_angular_update` per point and layer, for the noise model
    at momentum 0 (NaN at other points: there the theory gives the root mean square angle and
    E(1 - cos Delta), not the mean angle). A history within one stage of a learning-rate step (see
    :func:`stages`) takes that stage's learning rate; one spanning both stages gets no value ({}).
    """
    import json

    import xarray as xr

    model = history.attrs.get("model") or json.loads(history.attrs.get("eqflow_attributes") or "{}").get("model")
    if model != "noise" or "step" not in history.dims:
        return {}
    options = json.loads(history.attrs.get("eqflow_options") or "{}")
    lr_step, factor = int(options.get("lr_step", -1)), float(options.get("lr_factor", 10.0))
    steps = history["step"].values
    if lr_step >= 0 and (steps <= lr_step).any() and (steps > lr_step).any():
        return {}
    divisor = factor if lr_step >= 0 and (steps > lr_step).all() else 1.0
    eta, lam, alpha, sigma, d = xr.broadcast(history["learning_rate"] / divisor, history["weight_decay"],
                                             history["momentum"], history["noise"], history["fan_in"])
    value = mean_angular_update(learning_rate=eta.values, weight_decay=lam.values, dim=d.values, noise=sigma.values)
    value = np.where(alpha.values == 0, value, np.nan)
    return {"angular_update": xr.DataArray(value, dims=eta.dims, coords={k: history[k] for k in eta.dims},
                                           attrs={"units": "rad"})}
