"""Exact results for the 2D Ising model: Onsager's energy and T_c, Yang's magnetization, enumeration."""
from __future__ import annotations

import math

import numpy as np

from ...cf import written_units
from .observables import energy, magnetization
from .operators import neighbour_sum


def critical_temperature(coupling=1.0):
    """Onsager's T_c = 2 J / ln(1 + sqrt 2), in kelvin for J in k_B K."""
    return 2.0 * coupling / math.log1p(math.sqrt(2.0))


def _elliptic_k(k):
    """Complete elliptic integral of the first kind K(k) (modulus k) by the arithmetic-geometric mean."""
    a, b = np.ones_like(k), np.sqrt(1.0 - k * k)
    for _ in range(40):
        a, b = (a + b) / 2.0, np.sqrt(a * b)
    return np.pi / (2.0 * a)


def onsager_energy(temperature, coupling=1.0):
    """Exact energy per spin of the infinite lattice at h = 0 (Onsager 1944), unit of J.

    u = -J coth(2K) [1 + (2/pi) (2 tanh^2(2K) - 1) K(k)], K = J/T, k = 2 sinh(2K) / cosh^2(2K).
    """
    beta_j = coupling / np.asarray(temperature, dtype=np.float64)
    k = np.minimum(2.0 * np.sinh(2 * beta_j) / np.cosh(2 * beta_j) ** 2, 1.0 - 1e-16)
    bracket = 1.0 + (2.0 / np.pi) * (2.0 * np.tanh(2 * beta_j) ** 2 - 1.0) * _elliptic_k(k)
    return -coupling / np.tanh(2 * beta_j) * bracket


def spontaneous_magnetization(temperature, coupling=1.0):
    """Yang's spontaneous magnetization per spin (1 - sinh(2J/T)^-4)^(1/8) below T_c, else 0."""
    beta_j = coupling / np.asarray(temperature, dtype=np.float64)
    inner = 1.0 - np.sinh(2 * beta_j) ** -4.0
    return np.where(inner > 0, np.abs(inner) ** 0.125, 0.0)


def all_states(ny, nx):
    """Every configuration of an ny x nx lattice: int8 array (2^(ny nx), ny, nx)."""
    if ny * nx > 24:
        raise ValueError(f"size: exact enumeration needs ny * nx <= 24, got {ny} x {nx}")
    codes = np.arange(2 ** (ny * nx), dtype=np.int64)[:, None]
    bits = (codes >> np.arange(ny * nx)) & 1
    return (2 * bits - 1).astype(np.int8).reshape(-1, ny, nx)


def exact_averages(size, temperature, coupling=1.0, field=0.0):
    """Exact canonical averages by enumeration of all 2^(L^2) states (L^2 <= 24).

    Returns a dict of float64 arrays over ``temperature``: ``energy`` <E>/N, ``energy_std``
    (standard deviation of E/N), ``abs_magnetization`` <|M|>/N and ``abs_magnetization_std``.
    """
    ny, nx = (size, size) if np.ndim(size) == 0 else tuple(size)
    states = all_states(ny, nx)
    e = energy(spin=states, coupling=coupling, field=field)
    m = np.abs(magnetization(spin=states))
    t = np.atleast_1d(np.asarray(temperature, dtype=np.float64))[:, None]
    weights = np.exp(-(e - e.min()) * ny * nx / t)
    weights /= weights.sum(axis=1, keepdims=True)
    mean = lambda x: (weights * x).sum(axis=1)  # noqa: E731
    return {
        "energy": mean(e),
        "energy_std": np.sqrt(mean(e * e) - mean(e) ** 2),
        "abs_magnetization": mean(m),
        "abs_magnetization_std": np.sqrt(np.maximum(mean(m * m) - mean(m) ** 2, 0.0)),
    }


def zero_field_states(ny, nx):
    """Configurations in which every spin has zero neighbour sum (frozen under min(1, e^-dE)
    checkerboard Metropolis)."""
    states = all_states(ny, nx)
    return states[np.all(neighbour_sum(states) == 0, axis=(-2, -1))]


def kaufman(size, temperature, coupling=1.0) -> dict:
    """Exact finite-lattice thermodynamics at h = 0 on the periodic ny x nx torus (Kaufman 1949).

    Z = 1/2 (2 sinh 2K)^(N/2) [Z1 + Z2 + Z3 + Z4], K = J / (k_B T), N = ny nx, with
    Z1,2 = prod_{r<nx} 2 cosh|sinh(ny g_{2r+1} / 2)`` and Z3,4 = prod_{r<nx} 2 cosh|sinh(ny g_{2r} / 2)``,
    cosh g_l = cosh 2K coth 2K - cos(pi l / nx) for l > 0 and g_0 = 2K + ln tanh K (negative above
    T_c, which makes Z4 negative there). Each product is evaluated as exp(sum ny g / 2) times
    factors near 1 (no cancellation at T_c), and ln Z is differentiated exactly by torch's
    autograd (float64): u = -J d ln Z / dK / N, c = K^2 d^2 ln Z / dK^2 / N.

    Returns float64 arrays over ``temperature``: ``log_partition`` ln Z, ``energy`` per spin (unit
    of J) and ``specific_heat`` per spin (k_B). Valid while ny K stays below ~300 (float64 range).
    B. Kaufman, Phys. Rev. 76, 1232 (1949); A. E. Ferdinand & M. E. Fisher, Phys. Rev. 185, 832 (1969).
    """
    import torch

    ny, nx = (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
    if min(ny, nx) < 2:
        raise ValueError(f"size: Kaufman's formula needs both sides >= 2, got {ny} x {nx}")
    temperature = np.atleast_1d(np.asarray(temperature, dtype=np.float64))
    if not (temperature > 0).all() or not np.isfinite(temperature).all():
        raise ValueError(f"temperature: expected finite values > 0, got {temperature.tolist()}")
    k = torch.tensor(coupling / temperature, dtype=torch.float64, requires_grad=True)
    log_z = _kaufman_log_z(k, ny, nx)
    (first,) = torch.autograd.grad(log_z.sum(), k, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), k)
    n = ny * nx
    kk = k.detach().numpy()
    return {"log_partition": log_z.detach().numpy(), "energy": -coupling * first.detach().numpy() / n,
            "specific_heat": kk ** 2 * second.numpy() / n}


def _kaufman_log_z(k, ny: int, nx: int):
    """ln Z of Kaufman's formula, differentiable in ``k`` (torch float64, one value per coupling K)."""
    import torch

    k = k[:, None]
    l = torch.arange(1, 2 * nx, dtype=torch.float64)  # noqa: E741  (Kaufman's index)
    gamma = torch.arccosh(torch.cosh(2 * k) / torch.tanh(2 * k) - torch.cos(torch.pi * l / nx))
    odd, even = gamma[:, 0::2], gamma[:, 1::2]  # l = 1, 3, ..., 2nx-1 and l = 2, 4, ..., 2nx-2
    x0 = ny * (2 * k[:, 0] + torch.log(torch.tanh(k[:, 0]))) / 2  # ny g_0 / 2, < 0 above T_c
    # odd: Z1 + Z2 = e^S (U + D), U = prod (1 + a), D = prod (1 - a), a = e^(-ny g) (no cancellation)
    log_odd = (ny * odd / 2).sum(dim=1) + torch.log(_up(odd, ny) + _down(odd, ny))
    # even: Z3 + Z4 = e^S [2 cosh(x0) U + 2 sinh(x0) D] = e^S [e^x0 (U + D) + e^-x0 (U - D)], both terms >= 0,
    # with U - D = D expm1(sum log1p(a) - sum log1p(-a)) accurate when a is tiny
    up, down = _up(even, ny), _down(even, ny)
    a = torch.exp(-ny * even)
    gap = down * torch.expm1(torch.log1p(a).sum(dim=1) - torch.log1p(-a).sum(dim=1))
    log_even = (ny * even / 2).sum(dim=1) + _log_add_exp(x0 + torch.log(up + down),
                                                         -x0 + torch.log(torch.clamp_min(gap, 1e-300)))
    return (ny * nx / 2) * torch.log(2 * torch.sinh(2 * k[:, 0])) - math.log(2.0) + _log_add_exp(log_odd, log_even)


def _up(gamma, ny):
    import torch

    return torch.prod(1 + torch.exp(-ny * gamma), dim=1)


def _down(gamma, ny):
    import torch

    return torch.prod(-torch.expm1(-ny * gamma), dim=1)


def _log_add_exp(u, v):
    """ln(e^u + e^v) with a detached shift: twice differentiable where one term underflows
    (torch.logaddexp's second derivative is NaN there)."""
    import torch

    shift = torch.maximum(u, v).detach()
    return shift + torch.log(torch.exp(u - shift) + torch.exp(v - shift))


def reference(history) -> dict:
    """Exact values for a history's parameter points, for reports: the energy per spin from
    Kaufman's finite-lattice formula where h = 0 (NaN elsewhere), as a DataArray over the sweeps."""
    import xarray as xr

    size = (history.sizes["y"], history.sizes["x"])
    t, j, h = xr.broadcast(history["temperature"], history["coupling"], history["field"])
    sweeps = list(t.dims)  # the parameter points, whatever is recorded
    shape = tuple(history.sizes[d] for d in sweeps)
    values = np.full(shape, np.nan)
    for index in np.ndindex(shape):
        at = dict(zip(sweeps, index))
        tt, jj, hh = (float(a.isel(at).item()) if a.ndim else float(a) for a in (t, j, h))
        if hh == 0 and jj > 0:
            values[index] = kaufman(size, tt, coupling=jj)["energy"][0]
    coords = {d: history[d] for d in sweeps}
    return {"energy": xr.DataArray(values, dims=sweeps, coords=coords, attrs={"units": written_units("k_B * K")})}


def report(history):
    """(title, Dataset) for a history's report: the specific heat, susceptibility and Binder
    cumulant (jackknife errors over members, :func:`.thermodynamics.thermodynamics`) beside
    Kaufman's exact energy and specific heat where h = 0; None without ``energy`` and
    ``magnetization`` records on one step dim, or with fewer than 2 members."""
    from .thermodynamics import thermodynamics

    try:
        found = thermodynamics(history)
    except ValueError:
        return None
    return ("Thermodynamics over the second half (jackknife errors over members) beside Kaufman's exact values",
            found)
