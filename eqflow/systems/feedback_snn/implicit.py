"""Implicit differentiation at the equilibrium (IDE) of a feedback spiking network.

At the fixed point a* = f(a*, theta), f(a) = clamp((W a + F x + b) / V_th, 0, 1), the implicit function
theorem gives da*/dtheta = (I - J)^-1 df/dtheta with J = df/da = D W / V_th, D = diag(0 < z / V_th < 1),
z = W a* + F x + b. For a loss L(a*), the gradient needs one adjoint vector per sample,

    g = J^T g + dL/da*    (the adjoint fixed point; a contraction with factor ||W||_2 / V_th),

and then, with h = D g / V_th (row vectors, summed over the samples of the batch):

    dL/dW = h^T a*,   dL/dF = h^T x,   dL/db = sum h.

Xiao, Meng, Zhang, Wang & Lin, "Training Feedback Spiking Neural Networks by Implicit
Differentiation on the Equilibrium State", NeurIPS 2021. The forward pass is the spiking simulation
(no graph); a* is taken as the average rates a[T]. Memory does not grow with T.

The adjoint is solved per ensemble cell, all cells at once, by

- ``"damped"`` (the default): g <- (1 - beta) g + beta (J^T g + v), or
- ``"broyden"``: Broyden's good method (limited memory, inverse-Jacobian updates by Sherman-Morrison,
  unit step), on the residual r(g) = J^T g + v - g of each cell's (sample x neuron) vector.

Broyden needs about as many iterations as the damped iteration (within 1-5 up to ||W||_2 / V_th =
0.99; fewer beyond 1, which only ``allow_expansive`` reaches) at several times the cost of each
(its memory of up to 30 vector pairs): 1.2-40x slower at n = 32-512, so ``damped`` is the
default (benchmarks/bench_feedback_snn_adjoint.py; the figures are in the benchmark results).

A cell stops (and is frozen) once ||r||_inf <= tol ||v||_inf (tol at least 8 ulp of the dtype); its
iteration count and relative residual are returned, and a cell that does not converge within
``max_iter`` is reported, not raised.
Array API (NumPy or torch): the gradient is analytic, no autograd.
"""
from __future__ import annotations

from ...backends import namespace
from ...ops.learning import cross_entropy_and_gradient
from .dynamics import drive, fixed_point_map

SOLVERS = ("broyden", "damped")
TINY = 1e-300


def _cell_max(x, lead):
    """max |x| over every axis after the first ``lead`` (ensemble) axes."""
    xp = namespace(x)
    return xp.max(xp.abs(x), axis=tuple(range(lead, x.ndim))) if x.ndim > lead else xp.abs(x)


def _cell_dot(a, b, lead):
    xp = namespace(a)
    return xp.sum(a * b, axis=tuple(range(lead, a.ndim)))


def _expand(x, like):
    """Per-cell (*E) values broadcast against ``like`` (*E, ...)."""
    return x.reshape(tuple(x.shape) + (1,) * (like.ndim - x.ndim))


def adjoint_solve(rhs, feedback, active, threshold, *, solver="damped", tol=1e-8, max_iter=100, damping=1.0,
                  memory=30):
    """Solve g = (g * D / V_th) @ W + v for every cell.

    rhs v (*E, S, n) = dL/da*; feedback W (*E, n, n); active D (*E, S, n) in {0, 1}; threshold (*E).
    Returns (g, iterations (*E) int64, relative residual ||r||_inf / ||v||_inf (*E) float64,
    converged (*E) bool). Non-finite iterates count as not converged.
    """
    xp = namespace(rhs)
    if solver not in SOLVERS:
        raise ValueError(f"solver: expected one of {list(SOLVERS)}, got {solver!r}")
    lead = rhs.ndim - 2
    d_over_v = active / threshold[..., None, None]

    def residual(g):
        return (g * d_over_v) @ feedback + rhs - g

    norm_v = _cell_max(rhs, lead)
    tol = max(tol, 8 * float(xp.finfo(rhs.dtype).eps))  # float32 cannot reach 1e-8: 8 ulp at most
    limit = tol * xp.where(norm_v > 0, norm_v, xp.ones_like(norm_v))
    g = rhs
    r = residual(g)
    err = _cell_max(r, lead)
    done = err <= limit
    iterations = xp.zeros_like(norm_v, dtype=xp.int64)
    us, vs = [], []
    for _ in range(max_iter):
        if bool(xp.all(done)):
            break
        if solver == "damped":
            dx = damping * r
        else:
            dx = r - sum((u * _expand(_cell_dot(v, r, lead), r) for u, v in zip(us, vs)), xp.zeros_like(r))
        dx = xp.where(_expand(done, dx), xp.zeros_like(dx), dx)
        g_new = g + dx
        r_new = residual(g_new)
        if solver == "broyden":
            _broyden_update(us, vs, dx, r_new - r, lead, memory)
        g, r = g_new, r_new
        err = xp.where(done, err, _cell_max(r, lead))
        iterations = iterations + xp.astype(~done, xp.int64)
        done = done | (err <= limit)
    finite = xp.isfinite(err)
    relative = err / xp.where(norm_v > 0, norm_v, xp.ones_like(norm_v))
    return g, iterations, xp.astype(relative, xp.float64), done & finite


def _broyden_update(us, vs, s, y, lead, memory):
    """Good Broyden on H ~ (dr/dg)^-1 = -I + sum u_i v_i^T: H <- H + (s - H y)(s^T H) / (s^T H y)."""
    xp = namespace(s)
    hy = -y + sum((u * _expand(_cell_dot(v, y, lead), y) for u, v in zip(us, vs)), xp.zeros_like(y))
    sh = -s + sum((v * _expand(_cell_dot(s, u, lead), s) for u, v in zip(us, vs)), xp.zeros_like(s))
    den = _cell_dot(s, hy, lead)
    ok = xp.abs(den) > TINY
    safe = xp.where(ok, den, xp.ones_like(den))
    u_new = xp.where(_expand(ok, s), (s - hy) / _expand(safe, s), xp.zeros_like(s))
    us.append(u_new)
    vs.append(sh)
    if len(us) > memory:
        us.pop(0)
        vs.pop(0)


def implicit_gradients(*, feedback, input_weights, bias, readout, readout_bias, inputs, onehot, rates, threshold,
                       solver="damped", tol=1e-8, max_iter=100, damping=1.0):
    """Gradients of the mean cross-entropy of readout(a*) at a* = ``rates`` by IDE.

    inputs (*E, B, m), onehot (*E, B, C), rates (*E, B, n). Returns ({"feedback": dW, "input_weights":
    dF, "bias": db, "readout": dR, "readout_bias": dr}, loss (*E), info) with info the adjoint's
    ``iterations``, ``residual`` (relative), ``converged`` and the forward ``equilibrium_residual``.
    """
    xp = namespace(rates)
    current = drive(input_weights, bias, inputs)
    mapped, scaled = fixed_point_map(rates, feedback, current, threshold)
    active = xp.astype((scaled > 0) & (scaled < 1), rates.dtype)
    scores = rates @ readout.mT + readout_bias[..., None, :]
    loss, d_scores = cross_entropy_and_gradient(scores, onehot)
    g, iterations, relative, converged = adjoint_solve(d_scores @ readout, feedback, active, threshold,
                                                       solver=solver, tol=tol, max_iter=max_iter, damping=damping)
    h = g * active / threshold[..., None, None]
    grads = {"feedback": h.mT @ rates, "input_weights": h.mT @ inputs, "bias": xp.sum(h, axis=-2),
             "readout": d_scores.mT @ rates, "readout_bias": xp.sum(d_scores, axis=-2)}
    lead = rates.ndim - 2
    info = {"iterations": iterations, "residual": relative, "converged": converged,
            "equilibrium_residual": xp.astype(_cell_max(rates - mapped, lead), xp.float64)}
    return grads, loss, info
