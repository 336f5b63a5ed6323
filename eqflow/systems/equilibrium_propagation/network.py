"""The layered network of equilibrium propagation: vector field, relaxation, gradient estimators, homeostasis.

Units. L layers of sizes n_1..n_L (the last is the output) are packed along one ``unit`` axis of size
D = sum n_l; ``layer (unit)`` holds each unit's layer 1..L. Pre-activations u (*E, B, D), activations
s = sigma(u) = tanh(u), inputs x (B, m) or (*E, B, m), x the layer 0. Weights per ensemble cell:
input weights W_in (D, m) (rows of layer 1 only), feed-forward W_ff (D, D) (entries from layer l - 1 to
l) and feedback W_fb (D, D) (from layer l + 1 to l), independent (no symmetry imposed), bias b (D,).
With M = W_ff + W_fb (a (D, D) matrix with zero diagonal blocks) the vector field is

    F(u) = M s + W_in x + b - u - beta h(s),    h = dl/ds on the output units, 0 elsewhere,

l(s) = |s_L - y|^2 / 2 the squared error of the output activations against the one-hot label y. The
dynamics are u <- u + dt F(u) (dt = 1 in the paper's code); beta = 0 is the free phase.

Gradients. At the free fixed point u* (F = 0), with D_s = diag(sigma'(u*)), the Jacobian of F in u is
J_u = M D_s - I, and implicit differentiation gives, per sample,

    dl/dtheta = lambda^T dG/dtheta,    (D_s M^T - I) lambda = -D_s h(s*),   G(u) = M s + W_in x + b,

(dG/dW_in = x, dG/dM_ij = s_j, dG/db = 1; :func:`implicit_cotangent`, an exact batched linear solve:
the autodiff ground truth). The nudged fixed points u_beta satisfy J_u du/dbeta = h, so
ds/dbeta = (D_s M - I)^-1 D_s h, which equals -lambda when M = M^T: equilibrium propagation
estimates lambda by -ds/dbeta from nudged phases (:func:`ep_cotangent`):

    one-sided    (s_beta - s_0) / beta                               error O(beta)
    symmetric    (s_beta - s_-beta) / (2 beta)                       error O(beta^2)
    holomorphic  Re (1/N) sum_k (s_beta_k - s_0) / beta_k,  beta_k = beta exp(2 pi i k / N)   O(beta^N)

(the holomorphic phases run complex-valued dynamics; N = 2 is the symmetric estimator). Without
symmetry the estimate -(ds/dbeta) differs from lambda; the Jacobian J = M - I of the vector field in
the activations (as ``vf_jac`` of ``models/dyn.py`` in the paper's code: F written as M s + W_in x + b - s)
measures it: :func:`jacobian_symmetry` ||J_sym||_F / (||J_sym||_F + ||J_anti||_F), and the homeostatic
loss (:func:`homeostasis`) (|J e|^2 - e^T J^2 e) / D with e ~ N(0, I), whose mean is ||J - J^T||_F^2 / (2 D).

Laborieux & Zenke, "Improving equilibrium propagation without weight symmetry through Jacobian
homeostasis", ICLR 2024 (github.com/Laborieux-Axel/generalized-holo-ep: from ``models/dyn.py`` we took
the nudge of the output pre-activation by beta dl/ds, the estimate as the vector-Jacobian product of
ds/dbeta with dF/dtheta at the free state, the conjugate-pair form of the N-point mean, and the
homeostatic loss with two Jacobian-vector products; the code here is written anew, array API).
Arrays are NumPy or torch; shapes (*E, ...) with E the ensemble cells.
"""
from __future__ import annotations

import math

from ...backends import namespace

ESTIMATORS = ("one_sided", "symmetric", "holomorphic")
TRAIN_ESTIMATORS = (*ESTIMATORS, "implicit")
GROUPS = ("input_weights", "feedforward", "feedback", "bias")


def masks(layer, inputs):
    """Allowed entries {group: bool array} of W_in (D, m), W_ff (D, D), W_fb (D, D), b (D,) from ``layer`` (D,)."""
    xp = namespace(layer)
    layer = layer.reshape(-1)
    post, pre = layer[:, None], layer[None, :]
    first = xp.broadcast_to(layer[:, None] == 1, (layer.shape[0], inputs))
    return {"input_weights": first, "feedforward": post == pre + 1, "feedback": post + 1 == pre,
            "bias": xp.ones_like(layer, dtype=xp.bool)}


def output_mask(layer):
    """True on the output units (the last layer), (D,)."""
    xp = namespace(layer)
    layer = layer.reshape(-1)
    return layer == xp.max(layer)


def drive(input_weights, bias, inputs):
    """c = W_in x + b per sample: (*E, B, D)."""
    return inputs @ input_weights.mT + bias[..., None, :]


def targets(onehot, out):
    """The one-hot labels (*E, B, C) placed on the output units: (*E, B, D), zeros elsewhere."""
    xp = namespace(onehot)
    d = out.shape[0]
    index = xp.nonzero(out)[0]
    place = xp.astype(xp.arange(d, dtype=index.dtype)[None, :] == index[:, None], onehot.dtype)  # (C, D)
    return onehot @ place


def vector_field(u, matrix, current, *, beta=None, target=None, out=None):
    """F(u) = M tanh(u) + c - u - beta (tanh(u) - y) on the output units; u (*E, [P,] B, D)."""
    xp = namespace(u)
    s = xp.tanh(u)
    f = s @ matrix.mT + current - u
    if beta is not None:
        f = f - beta * xp.where(out, s - target, xp.zeros_like(s))
    return f


def relax(u, matrix, current, *, steps, dt, beta=None, target=None, out=None):
    """u after ``steps`` (*E) iterations of u <- u + dt F(u), each cell at its own count; dt (*E).

    ``matrix`` (*E, D, D) and ``current`` (*E, B, D); with a phase axis u (*E, P, B, D) pass them with
    a unit axis at P (``matrix[..., None, :, :]``) and beta (*E, P, 1, 1).
    """
    xp = namespace(u)
    lead = steps.ndim
    t_cell = steps.reshape(tuple(steps.shape) + (1,) * (u.ndim - lead))
    dt = dt.reshape(tuple(dt.shape) + (1,) * (u.ndim - lead))
    t_max = int(round(float(xp.max(steps)))) if steps.ndim else int(round(float(steps)))
    uniform = bool(xp.all(steps == steps.reshape(-1)[0])) if steps.ndim else True
    done = u
    for t in range(1, t_max + 1):
        u = u + dt * vector_field(u, matrix, current, beta=beta, target=target, out=out)
        if not uniform:
            done = xp.where(t_cell == t, u, done)
    return u if uniform else done


def phases(beta, points, estimator):
    """(beta_k (*E, P), weights w_k (*E, P)) of the nudged phases; the estimate is Re sum_k w_k (s_k - s_0) / beta_k.

    one_sided: [beta], [1]; symmetric: [beta, -beta], [1/2, 1/2]; holomorphic: beta exp(2 pi i k / N),
    1/N for k < N (cells with a smaller N than the largest get zero-weight padding phases).
    """
    xp = namespace(beta)
    if estimator == "one_sided":
        return beta[..., None], xp.ones_like(beta)[..., None]
    if estimator == "symmetric":
        return xp.stack([beta, -beta], axis=-1), xp.full_like(xp.stack([beta, beta], axis=-1), 0.5)
    n_max = int(round(float(xp.max(points))))
    k = xp.astype(xp.arange(n_max, dtype=xp.int64), beta.dtype)
    n = points[..., None]
    used = k < n
    angle = 2 * math.pi * xp.where(used, k, xp.zeros_like(k)) / n
    complex_dtype = xp.complex128 if beta.dtype == xp.float64 else xp.complex64
    rotation = xp.astype(xp.cos(angle), complex_dtype) + 1j * xp.astype(xp.sin(angle), complex_dtype)
    betas = xp.astype(beta[..., None], complex_dtype) * rotation
    return betas, xp.where(used, 1.0 / n, xp.zeros_like(n * k))


def ep_cotangent(u_free, matrix, current, target, out, *, beta, points, estimator, steps, dt):
    """-ds/dbeta (*E, B, D) estimated from nudged phases started at the free fixed point ``u_free``."""
    xp = namespace(u_free)
    betas, weights = phases(beta, points, estimator)
    dtype = betas.dtype
    cast = (lambda a: xp.astype(a, dtype)) if dtype != u_free.dtype else (lambda a: a)
    u0 = cast(u_free)[..., None, :, :]
    shape = (*u0.shape[:-3], betas.shape[-1], *u0.shape[-2:])
    u = relax(xp.broadcast_to(u0, shape), cast(matrix)[..., None, :, :], cast(current)[..., None, :, :],
              steps=steps, dt=dt, beta=betas[..., None, None], target=cast(target)[..., None, :, :],
              out=out)
    ds = (xp.tanh(u) - xp.tanh(u0)) / betas[..., None, None]
    if dtype != u_free.dtype:
        ds = xp.real(ds)
    return -xp.sum(ds * weights[..., None, None], axis=-3)


def implicit_cotangent(u_free, matrix, target, out):
    """lambda (*E, B, D) solving (D_s M^T - I) lambda = -D_s h at the free fixed point (exact, batched)."""
    xp = namespace(u_free)
    s = xp.tanh(u_free)
    slope = 1 - s * s
    h = xp.where(out, s - target, xp.zeros_like(s))
    d = u_free.shape[-1]
    system = slope[..., :, None] * matrix.mT[..., None, :, :] - xp.eye(d, dtype=u_free.dtype)
    return xp.linalg.solve(system, (-slope * h)[..., None])[..., 0]


def parameter_gradients(cotangent, s, inputs, allowed):
    """{group: mean over the batch of cotangent^T dG/dtheta}, masked to the allowed entries."""
    xp = namespace(cotangent)
    batch = cotangent.shape[-2]
    raw = {"input_weights": cotangent.mT @ inputs, "feedforward": cotangent.mT @ s, "feedback": cotangent.mT @ s,
           "bias": xp.sum(cotangent, axis=-2)}
    return {k: xp.where(allowed[k], v / batch, xp.zeros_like(v)) for k, v in raw.items()}


def squared_error(s, target, out):
    """Mean over the batch of |s_L - y|^2 / 2: (*E)."""
    xp = namespace(s)
    e = xp.where(out, s - target, xp.zeros_like(s))
    return xp.sum(e * e, axis=(-2, -1)) / (2 * s.shape[-2])


def jacobian(matrix):
    """J = M - I, the Jacobian of the vector field in the activations (*E, D, D)."""
    xp = namespace(matrix)
    return matrix - xp.eye(matrix.shape[-1], dtype=matrix.dtype)


def jacobian_symmetry(matrix):
    """||J_sym||_F / (||J_sym||_F + ||J_anti||_F), J = M - I: 1 for a symmetric M (*E)."""
    xp = namespace(matrix)
    j = jacobian(matrix)
    sym = xp.sqrt(xp.sum(((j + j.mT) / 2) ** 2, axis=(-2, -1)))
    anti = xp.sqrt(xp.sum(((j - j.mT) / 2) ** 2, axis=(-2, -1)))
    return sym / (sym + anti)


def homeostasis(matrix, noise):
    """The homeostatic loss and its gradient in M for probes e (*E, K, D): (loss (*E), dloss/dM (*E, D, D)).

    loss = mean_k (|J e_k|^2 - e_k^T J^2 e_k) / D, J = M - I; E[loss] = ||J - J^T||_F^2 / (2 D) for
    e ~ N(0, I). Gradient per probe (2 J e e^T - e (J e)^T - (J^T e) e^T) / D.
    """
    xp = namespace(matrix)
    d, k = matrix.shape[-1], noise.shape[-2]
    je = noise @ matrix.mT - noise
    jje = je @ matrix.mT - je
    jte = noise @ matrix - noise
    loss = xp.sum(je * je - noise * jje, axis=(-2, -1)) / (d * k)
    grad = (2 * je.mT @ noise - noise.mT @ je - jte.mT @ noise) / (d * k)
    return loss, grad
