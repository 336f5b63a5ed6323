"""Exact and reference values for the monotone DBM.

- :func:`margin_of`: lambda_min(I - W), the monotonicity actually achieved (>= m by construction).
- :func:`root_fixed_point`: the fixed point q = softmax(W q + b) by SciPy's root finder on the
  logits (an independent solver, no splitting and no prox).
- :func:`cycle_coupling`: weights for which plain synchronous mean field (``scaling='none'``) ends
  in a cycle of period 2, while the monotone scaling of the same A has a unique fixed point.
"""
from __future__ import annotations

import numpy as np

from . import model


def margin_of(weights, margin=0.1, scaling="monotone"):
    """lambda_min(I - W) per cell (*E) for weights A (*E, r, n, k) (NumPy)."""
    w = model.coupling(np.asarray(weights, dtype=np.float64), np.asarray(margin, dtype=np.float64), scaling)
    return np.linalg.eigvalsh(np.eye(w.shape[-1]) - w)[..., 0]


def root_fixed_point(weights, bias, evidence, margin=0.1, scaling="monotone", tol=1e-13):
    """q* (S, n, k) of one cell by ``scipy.optimize.root`` (hybr) on the logits z = W q + b.

    weights A (r, n, k), bias (n, k), evidence (S, n) int (-1 free). Solves z - W clamp(softmax(z))
    - b = 0 for every sample's free variables; raises if SciPy reports no convergence.
    """
    from scipy.optimize import root

    a = np.asarray(weights, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    w = model.coupling(a, np.float64(margin), scaling)
    r, n, k = a.shape
    out = []
    for ev in np.atleast_2d(np.asarray(evidence)):
        onehot, free = model.evidence_arrays(ev, k, b)

        def gap(z, onehot=onehot, free=free):
            q = model.clamp(model.softmax(z.reshape(n, k)), onehot, free)
            return z - (q.reshape(-1) @ w + b.reshape(-1))

        sol = root(gap, b.reshape(-1).copy(), method="hybr", tol=tol)
        if not sol.success:
            raise RuntimeError(f"root_fixed_point: SciPy's root did not converge ({sol.message})")
        out.append(model.clamp(model.softmax(sol.x.reshape(n, k)), onehot, free))
    return np.stack(out)


def cycle_coupling(strength=3.0, variables=2, states=2):
    """A (1, n, k) for which synchronous mean field without scaling cycles with period 2.

    A = strength * (+1, -1, 0, ...) on every variable, so W = -strength^2 (e1 - e2)(e1 - e2)^T between
    every pair of variables: an antiferromagnetic coupling of the states 1 and 2. For n = 2, with
    d_i = q_i1 - q_i2, synchronous mean field is d_1 <- tanh(-strength^2 d_2), d_2 <- tanh(-strength^2
    d_1): from d_1 d_2 > 0 both variables flip together and flip back, a stable cycle of period 2 for
    strength^2 > 1. The monotone scaling divides W by rho / (1 - m) = 2 strength^2 / (1 - m), after
    which |d'| <= (1 - m) |d| / 2 and the same iteration converges to d = 0.
    """
    a = np.zeros((1, variables, states))
    a[0, :, 0], a[0, :, 1] = strength, -strength
    return a
