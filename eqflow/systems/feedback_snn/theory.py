"""Exact values for feedback spiking networks (Xiao, Meng, Zhang, Wang & Lin, NeurIPS 2021).

Single neuron. An IF neuron (lambda = 1) with constant input I, threshold V, reset by subtraction,
u[0] = 0: after t steps without firing u = t I, and each spike removes V, so u[t] = t I - V N[t]
and the neuron fires at step t exactly when t I - V N[t-1] >= V. Hence, for 0 <= I <= V,

    N[T] = floor(T I / V),                                                            (exact)

0 for I < 0 (u only decreases) and T for I >= V (it fires every step): :func:`spike_count`.

Network identity (IF). Summing u[t] = u[t-1] + W s[t-1] + c - V s[t] over t = 1..T (c = F x + b,
s[0] = 0, N[T] the spike counts) gives exactly

    V N[T] = W (N[T] - s[T]) + T c - u[T],   i.e.   a[T] = (W a[T] + c) / V - e[T],
    e[T] = (u[T] + W s[T]) / (V T)                                                     (exact)

(:func:`if_rate_error`). A neuron whose potential stays bounded (it fires at an average rate in
(0, 1)) has |e| = O(1/T); a neuron whose drive is negative has a[T] -> 0 and one whose drive exceeds
V has a[T] -> 1, which is the clamp. So a[T] -> a*, the unique fixed point of

    f(a) = clamp((W a + c) / V, 0, 1)   (unique when kappa = ||W||_2 / V < 1: f is a contraction),

with max |a[T] - a*| ~ C / T. A posteriori, for any a (clamp is 1-Lipschitz),

    ||a - a*||_2 <= ||a - f(a)||_2 / (1 - kappa)                                      (rigorous)

(:func:`error_bound`). LIF (lambda < 1): the same sum gives
V a[T] = W a'[T] + c - u[T]/T - (1 - lambda) mean_t u[t-1], a bias (1 - lambda) mean(u) / V that does
not vanish with T: the error plateaus at O(1 - lambda) (:func:`lif_bias`).

:func:`fixed_point` solves a* = f(a*) exactly: fixed-point iteration (contraction kappa) to a
stable active set, then the linear system of that set, (V I - W_AA) a_A = W_AS 1 + c_A on the
interior neurons A, the saturated ones S at 1, the silent ones at 0, checked against f.
"""
from __future__ import annotations

import numpy as np


def spike_count(current, time_steps, threshold=2.0):
    """Spikes of one IF neuron with constant input I after T steps from u = 0: clip(floor(T I / V), 0, T)."""
    i, t, v = np.broadcast_arrays(np.asarray(current, dtype=np.float64), np.asarray(time_steps, dtype=np.int64),
                                  np.asarray(threshold, dtype=np.float64))
    return np.clip(np.floor(t * i / v), 0, t).astype(np.int64)


def fixed_point_map(rates, feedback, current, threshold):
    """f(a) = clamp((a W^T + c) / V, 0, 1); rates (..., n), current (..., n)."""
    return np.clip((rates @ np.asarray(feedback).T + current) / threshold, 0.0, 1.0)


def contraction(feedback, threshold=2.0):
    """kappa = ||W||_2 / V_th: the fixed point is unique and the iteration converges when kappa < 1."""
    return float(np.linalg.norm(np.asarray(feedback, dtype=np.float64), 2)) / float(threshold)


def fixed_point(feedback, input_weights, bias, inputs, threshold=2.0, *, tol=1e-15, max_iter=100_000):
    """a* (S, n) with a* = clamp((W a* + F x + b) / V, 0, 1) for every sample x (rows of ``inputs`` (S, m));
    (n,) for one input vector (m,).

    Float64. Raises ValueError when the iteration does not settle (a W with ||W||_2 >= V may have
    no unique fixed point).
    """
    w = np.asarray(feedback, dtype=np.float64)
    current = np.atleast_2d(np.asarray(inputs, dtype=np.float64)) @ np.asarray(input_weights, dtype=np.float64).T \
        + np.asarray(bias, dtype=np.float64)
    v = float(threshold)
    a = np.zeros_like(current)
    for _ in range(max_iter):
        new = fixed_point_map(a, w, current, v)
        change = np.max(np.abs(new - a))
        a = new
        if change <= tol:
            break
    else:
        raise ValueError(f"fixed_point: no convergence in {max_iter} iterations (||W||_2 / V = "
                         f"{contraction(w, v):.3g}; expected < 1)")
    star = np.stack([_polish(row, w, c, v) for row, c in zip(a, current)])
    return star[0] if np.ndim(inputs) == 1 else star


def _polish(a, w, c, v):
    """The exact solution on the active set of ``a``, if it is consistent with f; else ``a``."""
    z = (a @ w.T + c) / v
    inner, high = (z > 0) & (z < 1), z >= 1
    exact = np.where(high, 1.0, 0.0)
    if inner.any():
        rhs = w[np.ix_(inner, high)] @ np.ones(high.sum()) + c[inner]
        exact[inner] = np.linalg.solve(v * np.eye(inner.sum()) - w[np.ix_(inner, inner)], rhs)
    if np.max(np.abs(fixed_point_map(exact, w, c, v) - exact)) <= np.max(np.abs(fixed_point_map(a, w, c, v) - a)):
        return exact
    return a


def error_bound(rates, feedback, input_weights, bias, inputs, threshold=2.0):
    """Rigorous bound on ||a - a*||_2 per sample: ||a - f(a)||_2 / (1 - ||W||_2 / V) (rates (S, n))."""
    current = np.atleast_2d(inputs) @ np.asarray(input_weights).T + np.asarray(bias)
    kappa = contraction(feedback, threshold)
    if kappa >= 1:
        raise ValueError(f"error_bound: expected ||W||_2 / V < 1, got {kappa:.6g}")
    gap = np.asarray(rates) - fixed_point_map(np.asarray(rates), feedback, current, threshold)
    return np.linalg.norm(gap, axis=-1) / (1.0 - kappa)


def if_rate_error(potential, spikes, feedback, time_steps, threshold=2.0):
    """e[T] = (u[T] + W s[T]) / (V T), so that a[T] = (W a[T] + c) / V - e[T] exactly for IF (see above)."""
    return (np.asarray(potential) + np.asarray(spikes) @ np.asarray(feedback).T) / (float(threshold) * time_steps)


def lif_bias(mean_potential, leak, threshold=2.0):
    """(1 - lambda) mean_t u / V: the part of (W a + c) / V - a that LIF adds and that does not decay with T."""
    return (1.0 - np.asarray(leak)) * np.asarray(mean_potential) / float(threshold)
