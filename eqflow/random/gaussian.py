"""Standard normals by Box-Muller, with a log, sqrt and sincos made of IEEE-exact operations.

Vendor libms (and torch's MKL sqrt on CPUs) differ in the last bit between backends; these
functions use only +, -, *, /, floor, abs, frexp and power-of-two scaling, in the same order
on every backend, so the normals are the same bit for bit on NumPy and torch (CPU or CUDA).
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext


def box_muller(ops, ua, ub):
    """Two standard normals from two uniforms in [0, 1): (r cos t, r sin t), r = sqrt(-2 log(1 - ua)), t = 2 pi ub.

    1 - ua is exact and lies in (0, 1], so the log never sees 0. Updates ua and ub in place.
    """
    ua *= -1.0
    ua += 1.0  # 1 - ua, exact
    r = exact_log(ops, ua)
    r *= -2.0
    r = exact_sqrt(ops, r)
    c, s = sincos_2pi(ops, ub)
    c *= r
    s *= r
    return c, s


def _horner(x, coeffs):
    """sum_k coeffs[k] x**k by Horner's rule, always in the same order of operations."""
    p = x * coeffs[-1]
    p += coeffs[-2]
    for c in reversed(coeffs[:-2]):
        p *= x
        p += c
    return p


def exact_sqrt(ops, x):
    """Square root of non-negative finite float64 x with +, -, *, / and frexp only (within 1 ulp).

    torch.sqrt is not correctly rounded on every backend (on CPUs with MKL, large tensors go
    through its vector math library), so the normal transform uses its own: x = m 2**(2h) with
    m in [1/2, 2) (frexp, then doubling m when the exponent is odd), four Newton steps
    y <- y + (m/y - y) / 2 from y = (1 + m)/2 (relative error 6e-2 -> 2e-3 -> 1e-6 -> 1e-12 ->
    1e-24), then y 2**h (exact, built from the bits); sqrt(0) = 0.
    """
    m, e = ops.frexp(x)
    odd = e & 1
    m *= 1.0 + ops.float64(odd)  # m in [1/2, 2)
    y = m + 1.0
    y *= 0.5
    for _ in range(4):
        step = m / y
        step -= y
        step *= 0.5
        y += step  # y + (m/y - y)/2: the correction is small, so y rounds once
    y *= ops.pow2((e - odd) >> 1)
    y *= ops.float64(x > 0.0)  # sqrt(0) = 0 (frexp(0) = (0, 0) would give y = 2**-4)
    return y


def exact_log(ops, x):
    """Natural log of positive finite float64 x with +, -, *, / and frexp only (within 2 ulp).

    x = m 2**e with m in [sqrt(1/2), sqrt(2)) (frexp, then doubling m where m < sqrt(1/2)), and
    log x = e ln2 + log m, log m = 2 atanh(s) = 2 (s + s**3/3 + s**5/5 + ...), s = (m - 1)/(m + 1).
    |s| <= 3 - 2 sqrt(2) < 0.172, so ten terms reach 2**-53. ln2 is split in a hi part with
    32 significant bits (so e ln2_hi is exact) and a lo part.
    """
    m, e = ops.frexp(x)  # x = m 2**e, m in [1/2, 1)
    low = ops.float64(m < SQRT_HALF)  # 1.0 or 0.0
    m *= 1.0 + low  # doubled where low: exact
    e = ops.float64(e)
    e -= low
    s = m + 1.0
    m -= 1.0  # exact (Sterbenz)
    s = m / s
    t = s * s
    p = _horner(t, LOG_SERIES)
    p *= t
    p *= s
    p += 2.0 * s  # log m = 2s + s t P(t)
    log_x = e * LN2_LO
    log_x += p
    e *= LN2_HI
    log_x += e  # e ln2_hi + (e ln2_lo + log m)
    return log_x


def sincos_2pi(ops, u):
    """(cos 2 pi u, sin 2 pi u) for u in [0, 1) a multiple of 2**-53, with exact quadrant reduction.

    u' = u - 1 where u >= 7/8 (exact), 4u' = q + f with q = floor(4u' + 1/2) in {0, 1, 2, 3} and
    f = 4u' - q in [-1/2, 1/2], all exact, so 2 pi u = q pi/2 + y with y = pi f / 2 in [-pi/4, pi/4].
    sin y = f S(f**2) and cos y = C(f**2) are Taylor polynomials in f with the powers of pi/2
    folded in. The quarter turns rotate them: with cq = cos(q pi/2) = |q - 2| - 1 and
    sq = sin(q pi/2) = 1 - |q - 1| (each 0 or +-1), cos 2 pi u = cq cos y - sq sin y and
    sin 2 pi u = sq cos y + cq sin y, where one product of each pair is exactly zero.
    """
    t = ops.float64(u >= 0.875)
    t *= -4.0
    t += 4.0 * u  # 4u', exact
    q = t + 0.5
    ops.floor(q, out=q)
    t -= q  # f
    f2 = t * t
    sin_y = _horner(f2, SIN_SERIES)
    sin_y *= t
    cos_y = _horner(f2, COS_SERIES)
    cq = q - 2.0
    ops.abs(cq, out=cq)
    cq -= 1.0  # |q - 2| - 1
    q -= 1.0
    ops.abs(q, out=q)
    q *= -1.0
    q += 1.0  # sq = 1 - |q - 1|
    cos = cos_y * cq
    cos -= sin_y * q
    cos_y *= q
    sin_y *= cq
    sin = cos_y
    sin += sin_y
    return cos, sin


def _series_constants():
    """ln 2 split in hi/lo, and the Taylor coefficients in f of sin(pi f/2) and cos(pi f/2), from 40-digit decimals."""
    with localcontext() as ctx:
        ctx.prec = 40
        pi = Decimal("3.141592653589793238462643383279502884197")
        ln2 = Decimal(2).ln()
        ln2_hi = math.ldexp(math.floor(math.ldexp(float(ln2), 32)), -32)  # 32 significant bits
        ln2_lo = float(ln2 - Decimal(ln2_hi))
        half_pi = pi / 2
        sin_series = tuple(float((-1) ** k * half_pi ** (2 * k + 1) / math.factorial(2 * k + 1)) for k in range(8))
        cos_series = tuple(float((-1) ** k * half_pi ** (2 * k) / math.factorial(2 * k)) for k in range(9))
    return ln2_hi, ln2_lo, sin_series, cos_series


LN2_HI, LN2_LO, SIN_SERIES, COS_SERIES = _series_constants()
LOG_SERIES = tuple(2.0 / (2 * k + 3) for k in range(9))  # 2/3, 2/5, ..., 2/19: log m = 2s + s t P(t)
SQRT_HALF = math.sqrt(0.5)
