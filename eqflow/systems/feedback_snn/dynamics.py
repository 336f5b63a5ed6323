"""The discrete IF/LIF dynamics of a feedback spiking network, and its fixed-point map.

One time step for every ensemble cell, sample and neuron (Xiao et al., NeurIPS 2021, eq. 1):

    u[t+1] = lambda u[t] + W s[t] + F x + b,    s[t+1] = H(u[t+1] - V_th),    u[t+1] <- u[t+1] - V_th s[t+1],

with H(0) = 1 (a neuron at threshold fires), u[0] = 0, s[0] = 0; lambda = 1 is integrate-and-fire
(IF), lambda < 1 leaky (LIF). The average rate a[T] = (1/T) sum_{t=1..T} s[t] converges (IF, ||W||_2 <
V_th) to the fixed point of

    f(a) = clamp((W a + F x + b) / V_th, 0, 1),

see :mod:`.theory`.

Conventions of other libraries. With lambda = 1 the neuron is spike-for-spike spikingjelly's
``IFNode(v_threshold=V_th, v_reset=None)`` driven by X[t] = W s[t-1] + F x + b: charge
H[t] = V[t-1] + X[t], fire S[t] = Heaviside(H[t] - V_th) with Heaviside(0) = 1 (fire when
v >= V_th), then the soft reset V[t] = H[t] - V_th S[t] (reset by subtraction; spikingjelly's
default ``v_reset=0.0`` is a hard reset to 0, which this is not); tested against a loop
written from those equations (tests/test_conventions.py). snntorch's ``Leaky`` with
``reset_mechanism="subtract"`` fires on the same condition but subtracts the threshold one
step later (its reset term is computed from the previous step's membrane), so a spike's
reset lands one step late and its spike trains differ from these.

Arrays are NumPy or torch (array API, ``eqflow.backends.namespace``); shapes
are (*E, ...) with E the ensemble cells: W (*E, n, n), F (*E, n, m), b (*E, n), inputs (S, m) shared
by every cell or (*E, S, m) per cell, threshold, leak, time steps (*E). Row vectors: a (*E, S, n),
W a is ``a @ W.mT``.
"""
from __future__ import annotations

from ...backends import namespace


def drive(input_weights, bias, inputs):
    """Constant input current c = F x + b per sample: (*E, S, n)."""
    return inputs @ input_weights.mT + bias[..., None, :]


def step(potential, spikes, feedback, current, threshold, leak):
    """One time step: (u, s) at t -> (u, s) at t + 1; threshold and leak (*E) broadcast over (S, n)."""
    xp = namespace(potential)
    v_th, lam = threshold[..., None, None], leak[..., None, None]
    u = lam * potential + spikes @ feedback.mT + current
    fired = xp.astype(u >= v_th, u.dtype)
    return u - v_th * fired, fired


def simulate(feedback, input_weights, bias, inputs, *, threshold, leak, time_steps):
    """Average rates a[T] (*E, S, n) after T steps from rest, each cell at its own T (a float (*E) array).

    Runs max(T) steps without storing the history (memory O(S n), not O(T S n)); a cell with a
    smaller T takes its counts at its own T. Also returns (u[T], s[T]) of the longest run.
    """
    xp = namespace(feedback)
    current = drive(input_weights, bias, inputs)
    u = xp.zeros_like(current)
    s = xp.zeros_like(current)
    count = xp.zeros_like(current)
    t_cell = time_steps[..., None, None]
    t_max = int(round(float(xp.max(time_steps))))
    uniform = bool(xp.all(time_steps == time_steps.reshape(-1)[0])) if time_steps.ndim else True
    rates = None if uniform else xp.zeros_like(current)
    for t in range(1, t_max + 1):
        u, s = step(u, s, feedback, current, threshold, leak)
        count = count + s
        if not uniform:
            rates = xp.where(t_cell == t, count / t, rates)
    return (count / t_max if uniform else rates), u, s


def fixed_point_map(rates, feedback, current, threshold):
    """f(a) = clamp((a W^T + c) / V_th, 0, 1) and the pre-activation z / V_th, both (*E, S, n)."""
    xp = namespace(rates)
    scaled = (rates @ feedback.mT + current) / threshold[..., None, None]
    return xp.clip(scaled, 0.0, 1.0), scaled


def residual(rates, feedback, current, threshold):
    """||a - f(a)||_inf over samples and neurons, per cell (*E)."""
    xp = namespace(rates)
    mapped, _ = fixed_point_map(rates, feedback, current, threshold)
    return xp.max(xp.abs(rates - mapped), axis=(-2, -1))


def spectral_norm(matrix):
    """||W||_2, the largest singular value, per cell (*E)."""
    xp = namespace(matrix)
    if xp.__name__ == "numpy":
        return xp.linalg.matrix_norm(matrix, ord=2)
    import torch

    return torch.linalg.matrix_norm(matrix, ord=2)
