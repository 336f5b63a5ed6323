"""Exact and mean-field results for the dense Hopfield network H = -N sum_mu (m_mu)^P / P.

Low load (K fixed, N -> infinity), retrieval of one pattern. The free energy per neuron at
overlap m with that pattern (the other overlaps O(N^-1/2)) is, by Laplace's method on
Z = sum_sigma exp(beta N m^P / P) with the entropy of N(1 + m)/2 aligned neurons,

    f(m) = -m^P / P - T s(m),  s(m) = ln 2 - [(1 + m) ln(1 + m) + (1 - m) ln(1 - m)] / 2,

stationary where m = tanh(beta m^(P-1)) (the self-consistency equation). At a stationary point
T atanh(m) = m^(P-1) and s(m) = ln 2 cosh(beta m^(P-1)) - m atanh(m), so

    f(m) = (P - 1) m^P / P - T ln 2 cosh(beta m^(P-1)),

the form used here; the paramagnet m = 0 has f = -T ln 2. For P >= 3 the retrieval solution
appears discontinuously at the spinodal beta_sp, where the curves m and tanh(beta m^(P-1))
touch (m = tanh(beta m^(P-1)) and 1 = beta (P - 1) m^(P-2) (1 - m^2)), and becomes the global
minimum at beta_t, where f(m) = -T ln 2. P = 2 is the Curie-Weiss transition at beta = 1.

Exact for small N: :func:`enumerate_states` sums the Boltzmann weights of all 2^N states. For
one pattern (K = 1) the energy depends on the overlap alone, and :func:`one_pattern_distribution`
gives the exact law of m at any N (a binomial count times exp(beta N m^P / P)).

High load, P = 2: the zero-temperature capacity alpha_c = K/N = 0.138 (Amit, Gutfreund &
Sompolinsky, PRL 55, 1530 (1985)). Dense networks store K ~ N^(P-1) patterns (Baldi & Venkatesh,
PRL 58, 913 (1987)); the crosstalk of the field, sum_{nu != mu} xi_i^nu (m_nu)^(P-1), has
variance K (2P - 3)!! / N^(P-1), so the load alpha = K / N^(P-1) enters through (2P - 3)!! alpha
(:func:`crosstalk_variance`).
"""
from __future__ import annotations

import math

import numpy as np

AGS_CAPACITY = 0.138  # Amit, Gutfreund & Sompolinsky (1985), P = 2, T = 0
# Published low-load constants, checked against the root solves in tests/test_dense_hopfield.py
SPINODAL = {3: (1.71649389, 0.79638836), 4: (2.01699804, 0.88943676)}  # P: (beta_sp, m at beta_sp)
TRANSITION = {3: 2.01625436, 4: 2.75520550}  # P: beta_t


def free_energy(m, beta, order):
    """f(m) = (P-1) m^P / P - T ln 2cosh(beta m^(P-1)) (per neuron, at stationary m; see the module)."""
    m = np.asarray(m, dtype=np.float64)
    x = beta * m ** (order - 1)
    log_2cosh = np.abs(x) + np.log1p(np.exp(-2.0 * np.abs(x)))
    return (order - 1) * m**order / order - log_2cosh / beta


def retrieval_overlap(beta, order):
    """The largest solution m of m = tanh(beta m^(P-1)) in (0, 1], or 0.0 when only m = 0 solves it.

    Fixed-point iteration from m = 1 (the retrieval branch is the stable largest root), polished
    with a bracketed root solve (SciPy's brentq).
    """
    from scipy.optimize import brentq

    m = 1.0
    for _ in range(10_000):
        new = math.tanh(beta * m ** (order - 1))
        if abs(new - m) < 1e-15:
            break
        m = new
    if m < 1e-6:
        return 0.0
    g = lambda x: x - math.tanh(beta * x ** (order - 1))  # noqa: E731
    low = m * (1 - 1e-6)
    return brentq(g, low, 1.0, xtol=1e-15) if g(low) < 0 < g(1.0) else m


def spinodal(order):
    """(beta_sp, m_sp): where the retrieval solution appears, for P >= 3 (SciPy's fsolve).

    Solves m = tanh(beta m^(P-1)) and 1 = beta (P-1) m^(P-2) (1 - m^2) for (beta, m).
    """
    from scipy.optimize import fsolve

    if order < 3:
        raise ValueError(f"order: expected P >= 3 (P = 2 is continuous, beta_c = 1), got {order!r}")

    def equations(v):
        beta, m = v
        return [m - math.tanh(beta * m ** (order - 1)), 1.0 - beta * (order - 1) * m ** (order - 2) * (1 - m * m)]

    beta, m = fsolve(equations, [2.0, 0.85], xtol=1e-14)
    return float(beta), float(m)


def transition(order):
    """beta_t: where the retrieval state's f equals the paramagnet's -T ln 2, for P >= 3 (brentq)."""
    from scipy.optimize import brentq

    beta_sp, _ = spinodal(order)

    def gap(beta):
        return free_energy(retrieval_overlap(beta, order), beta, order) + math.log(2.0) / beta

    return float(brentq(gap, beta_sp * (1 + 1e-9), 20.0, xtol=1e-14))


def crosstalk_variance(patterns, order, neurons):
    """K (2P-3)!! / N^(P-1): variance of the crosstalk noise in the field at a stored pattern (to leading order)."""
    return patterns * math.prod(range(2 * order - 3, 0, -2)) / neurons ** (order - 1)


def energies_and_overlaps(states, patterns, order):
    """(energy per neuron (S,), overlaps (S, K)) of ±1 states (S, N) for patterns (K, N)."""
    states = np.asarray(states, dtype=np.float64)
    m = states @ np.asarray(patterns, dtype=np.float64).T / states.shape[-1]
    return -(m**order).sum(axis=-1) / order, m


def all_states(n):
    """Every ±1 state of n neurons, int8 (2^n, n)."""
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(np.int8)


def enumerate_states(patterns, order, temperature):
    """Exact Boltzmann averages over all 2^N states (N <= 20): a dict of floats and arrays.

    ``energy`` <H/N>, ``energy_sq`` <(H/N)^2>, ``overlap`` <m_mu> (K,), ``abs_overlap`` <|m_mu|> (K,),
    ``retrieval`` <max_mu |m_mu|>; T > 0.
    """
    patterns = np.asarray(patterns)
    n = patterns.shape[-1]
    if n > 20:
        raise ValueError(f"patterns: expected at most 20 neurons to enumerate, got {n}")
    e, m = energies_and_overlaps(all_states(n), patterns, order)
    w = np.exp(-(e - e.min()) * n / temperature)
    w /= w.sum()
    return {"energy": float(w @ e), "energy_sq": float(w @ e**2), "overlap": w @ m, "abs_overlap": w @ np.abs(m),
            "retrieval": float(w @ np.abs(m).max(axis=-1))}


def one_pattern_distribution(neurons, order, temperature):
    """(m values (N+1,), probabilities): the exact law of the overlap m for K = 1 at any N.

    P(m) ∝ C(N, N(1+m)/2) exp(N m^P / (P T)), in logs (lgamma) for large N.
    """
    n = neurons
    up = np.arange(n + 1)
    m = (2.0 * up - n) / n
    log_count = np.array([math.lgamma(n + 1) - math.lgamma(u + 1) - math.lgamma(n - u + 1) for u in up])
    log_w = log_count + n * m**order / (order * temperature)
    w = np.exp(log_w - log_w.max())
    return m, w / w.sum()
