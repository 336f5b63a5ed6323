"""Exact results for the coulomb_gas system (trap units; weight prod |z_i - z_j|^beta exp(-(beta/2) sum |z_i|^2)).

Scaling (every beta, N). With Z(a) = int prod_{i<j} |z_i - z_j|^beta exp(-a sum |z_i|^2) d^2N z,
the substitution z = w / sqrt(a) gives Z(a) = a^-(beta N (N - 1)/4 + N) Z(1). The moment
generating function of S = sum |z_i|^2 under the weight (a = beta/2) is therefore
E exp(t S) = Z(beta/2 - t) / Z(beta/2) = (1 - 2t/beta)^-(beta N (N - 1)/4 + N):

    S ~ Gamma(shape beta N (N - 1)/4 + N, scale 2/beta),
    E S = N (N - 1)/2 + 2N/beta (the virial identity),  kappa_n(S) = (n - 1)! shape (2/beta)^n.

At beta = 2 the shape is N (N + 1)/2 and the scale 1: S is the sum of Kostlan's independent
|z|^2 ~ Gamma(k, 1), k = 1..N. For S/N, the linear statistic of f(w) = |w|^2 in the scaled
positions w = z / sqrt(N), kappa_p(S/N) = (p - 1)! (beta/4) (2/beta)^p N^(2 - p) (1 + O(1/N)):
the N^(2 - p) scaling of De Bruyne, Le Doussal, Majumdar & Schehr, arXiv:2310.16420 (2023).

Center of mass (every beta, N). sum |z_i|^2 = N |c|^2 + sum |z_i - c|^2 with c = sum z_i / N,
and the interaction depends on differences only, so c is independent of the rest with
weight exp(-(beta/2) N |c|^2): sum Re z_i = N Re c ~ Normal(0, N/beta).

Kostlan (beta = 2). The moduli squared |z_i|^2 are, as a set, independent Gamma(k, 1), k = 1..N
(Kostlan 1992), so inside(s) = #{|z_i|^2 < s} is a sum of independent Bernoulli(P(Gamma(k) < s)),
and the one-particle density is rho(z) = (1/pi) e^-|z|^2 sum_{k<N} |z|^2k / k! = Q(N, |z|^2) / pi
(Q the regularized upper incomplete gamma function), which tends to the droplet 1/pi for |z| < sqrt(N).

Two particles (every beta). With u = z_1 - z_2 and c the center of mass, E = -ln|u| + |c|^2 + |u|^2/4,
|c|^2 ~ Exp(mean 1/beta) and t = |u|^2 ~ Gamma(beta/2 + 1, scale 4/beta), so
E[E] = 1/2 + 2/beta - (psi(beta/2 + 1) + ln(4/beta)) / 2.

Ginibre. A complex Ginibre matrix G with independent entries (a + i b)/sqrt(2), a, b standard
normal (E|G_ij|^2 = 1), has eigenvalues with exactly the beta = 2 law (Ginibre 1965):
:func:`ginibre` samples them with NumPy's generator, independently of eqflow's streams.
"""
from __future__ import annotations

import math

import numpy as np

DROPLET_DENSITY = 1.0 / math.pi  # particles per unit area inside the large-N droplet |z| < sqrt(N)


def droplet_radius(n: int) -> float:
    """sqrt(N): the radius of the large-N droplet (trap lengths), where the density 1/pi ends."""
    return math.sqrt(n)


def sum_r2_law(n: int, beta: float) -> tuple[float, float]:
    """(shape, scale) of the exact Gamma law of sum |z_i|^2: (beta N (N - 1)/4 + N, 2/beta)."""
    return beta * n * (n - 1) / 4 + n, 2.0 / beta


def mean_sum_r2(n: int, beta: float) -> float:
    """E sum |z_i|^2 = N (N - 1)/2 + 2N/beta (every beta, N)."""
    return n * (n - 1) / 2 + 2 * n / beta


def sum_r2_cumulant(n: int, beta: float, order: int) -> float:
    """kappa_order(sum |z_i|^2) = (order - 1)! shape scale^order (see the module docstring)."""
    shape, scale = sum_r2_law(n, beta)
    return math.factorial(order - 1) * shape * scale**order


def scaled_cumulant(n: int, beta: float, order: int) -> float:
    """kappa_order(sum |z_i|^2 / N) = sum_r2_cumulant / N^order (the linear statistic of |w|^2, w = z/sqrt(N))."""
    return sum_r2_cumulant(n, beta, order) / n**order


def scaled_cumulant_limit(beta: float, order: int) -> float:
    """The large-N coefficient c_p of kappa_p(sum |z_i|^2 / N) ~ c_p N^(2 - p): (p - 1)! (beta/4) (2/beta)^p."""
    return math.factorial(order - 1) * beta / 4 * (2 / beta) ** order


def var_sum_x(n: int, beta: float) -> float:
    """Var sum Re z_i = N/beta (the center of mass is Gaussian; every beta, N)."""
    return n / beta


def kostlan_probabilities(n: int, s) -> np.ndarray:
    """P(Gamma(k, 1) < s) for k = 1..N: array (*shape of s, N) (beta = 2)."""
    from scipy.special import gammainc

    s = np.asarray(s, dtype=np.float64)
    return gammainc(np.arange(1, n + 1), s[..., None])


def inside_mean(n: int, s) -> np.ndarray:
    """E #{|z_i|^2 < s} = sum_{k=1}^N P(Gamma(k, 1) < s) at beta = 2 (Kostlan), shape of s."""
    return kostlan_probabilities(n, s).sum(-1)


def inside_variance(n: int, s) -> np.ndarray:
    """Var #{|z_i|^2 < s} = sum_k p_k (1 - p_k), p_k = P(Gamma(k, 1) < s), at beta = 2 (independent Kostlan moduli)."""
    p = kostlan_probabilities(n, s)
    return (p * (1 - p)).sum(-1)


def density(n: int, s) -> np.ndarray:
    """The beta = 2 one-particle density at |z|^2 = s: Q(N, s) / pi (particles per unit area)."""
    from scipy.special import gammaincc

    return gammaincc(n, np.asarray(s, dtype=np.float64)) / math.pi


def binned_density(n: int, edges) -> np.ndarray:
    """E of the ``density`` observable at beta = 2: E #{s_k <= |z|^2 < s_k+1} / (pi (s_k+1 - s_k)) per annulus."""
    edges = np.asarray(edges, dtype=np.float64)
    below = inside_mean(n, edges)
    return np.diff(below) / (math.pi * np.diff(edges))


def two_particle_energy(beta: float) -> float:
    """E[E] for N = 2 at any beta: 1/2 + 2/beta - (psi(beta/2 + 1) + ln(4/beta)) / 2."""
    from scipy.special import digamma

    return 0.5 + 2 / beta - 0.5 * (float(digamma(beta / 2 + 1)) + math.log(4 / beta))


def ginibre_eigenvalues(normals) -> np.ndarray:
    """Eigenvalues (complex128 (..., N)) of G = (a + i b)/sqrt(2) from ``normals`` (..., N, N, 2) = (a, b)."""
    normals = np.asarray(normals, dtype=np.float64)
    g = (normals[..., 0] + 1j * normals[..., 1]) / math.sqrt(2.0)
    return np.linalg.eigvals(g)


def ginibre(n: int, samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` independent sets of the N eigenvalues of complex Ginibre matrices (E|G_ij|^2 = 1).

    complex128 (samples, N), drawn with ``numpy.random.default_rng(seed)``: an exact sampler
    of the beta = 2 gas independent of eqflow's random streams and of its operators.

    >>> z = ginibre(3, 2, seed=0)
    >>> z.shape, z.dtype
    ((2, 3), dtype('complex128'))
    """
    rng = np.random.default_rng(seed)
    return ginibre_eigenvalues(rng.standard_normal((samples, n, n, 2)))


def as_position(z) -> np.ndarray:
    """Complex positions (..., N) as the state's float64 (..., N, 2) = (Re z, Im z)."""
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=-1).astype(np.float64)
