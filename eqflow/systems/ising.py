"""2D Ising model on an L x L periodic square lattice.

E = -J sum_<ij> s_i s_j - h sum_i s_i with spins s = +-1, nearest-neighbour coupling J and
field h (energies, canonical unit k_B K) at temperature T (kelvin). With J = 1 k_B K the
temperature is in units of J/k_B and the critical point is T_c = 2 / ln(1 + sqrt 2) = 2.269.

State: ``spin(member, *sweeps, y, x)`` int8. Operators: checkerboard ``metropolis`` and
``heat_bath`` sweeps (one step = one sweep of all L^2 spins, black then white sublattice).
Observables: ``energy`` and ``magnetization`` per spin. ``theory``: exact values.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ..backends import namespace
from ..random import INITIAL, CellStreams
from ..registry import Operator, System
from ..schema import finish_system, system_coords

KIND = "ising"


def create(size=32, temperature=2.269, *, members=1, seed=0, coupling=1.0, field=0.0, start="random"):
    """A new ensemble of Ising lattices as an xarray Dataset.

    Parameters
    ----------
    size : int or (int, int), even, >= 2. Lattice side L (or (L_y, L_x)).
    temperature : float, sequence, str or pint Quantity. T in kelvin (bare numbers), or an
        energy k_B T; a sequence becomes the ``temperature`` sweep dimension.
    members : int. Independent replicas per parameter point (the ``member`` dimension).
    seed : int in [0, 2**64). Keys every random stream of this ensemble.
    coupling, field : float, sequence, str or Quantity. J and h, energies (bare: k_B K).
    start : "random" (independent +-1 per spin, from the seed), "up" or "down".

    Examples
    --------
    >>> ds = create(8, temperature=[1.5, 3.0], members=2, seed=1)
    >>> dict(ds.spin.sizes)
    {'member': 2, 'temperature': 2, 'y': 8, 'x': 8}
    """
    ny, nx = (size, size) if np.ndim(size) == 0 else tuple(size)
    parameters = {"temperature": temperature, "coupling": coupling, "field": field}
    coords, dims, shape = system_coords(KIND, members=members, parameters=parameters, site_sizes={"y": ny, "x": nx})
    if start == "random":
        points = np.arange(math.prod(shape[1:])).reshape(shape[1:])
        draws = CellStreams(seed, np.arange(members), points, (ny, nx), step=0, domain=INITIAL).next()
        spin = np.where(draws < 0.5, 1, -1).astype(np.int8)
    elif start in ("up", "down"):
        spin = np.full((*shape, ny, nx), 1 if start == "up" else -1, dtype=np.int8)
    else:
        raise ValueError(f"start: expected 'random', 'up' or 'down', got {start!r}")
    return finish_system(KIND, coords, {"spin": ((*dims, "y", "x"), spin)}, seed=seed)


# ---- operators: pure functions over raw arrays (NumPy or torch), vectorised over leading dims


def periodic_pad(spin):
    """``spin`` with one periodic ghost row/column on each side: shape (..., L_y + 2, L_x + 2)."""
    xp = namespace(spin)
    rows = xp.concat([spin[..., -1:, :], spin, spin[..., :1, :]], axis=-2)
    return xp.concat([rows[..., -1:], rows, rows[..., :1]], axis=-1)


def neighbour_sum(spin):
    """Sum of the four nearest neighbours with periodic boundaries (same dtype as ``spin``)."""
    p = periodic_pad(spin)
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def _tables(temperature, entries):
    """Cell offsets into a flat per-cell table: shape ensemble + (1, 1), in the smallest signed
    integer type that holds every index, so that the per-site index stays narrow (int8 for up
    to 12 cells) instead of becoming an int64 array."""
    top = temperature.size * entries
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64) if top <= np.iinfo(t).max)
    return (np.arange(temperature.size, dtype=dtype) * dtype(entries)).reshape(temperature.shape + (1, 1))


def _lookup(table, index):
    """``table[index]``; torch indexes with int64 only, NumPy with any integer type."""
    if not isinstance(index, np.ndarray):
        index = namespace(index).astype(index, namespace(index).int64)
    return table[index]


def checkerboard(sizes):
    """The two sublattice masks, shape (2, L_y, L_x) bool: black ((x + y) even), then white."""
    parity = (np.arange(sizes["y"])[:, None] + np.arange(sizes["x"])[None, :]) % 2
    return np.stack([parity == 0, parity == 1])


def metropolis_acceptance(*, temperature, coupling, field, sizes, zero_move_probability=0.5):
    """Per-cell Metropolis acceptance table P(dE) for dE = 2 s (J n + h).

    Indexed by (s > 0, (n + 4) / 2), n the neighbour sum. P = 1 for dE < 0, exp(-dE / T)
    for dE > 0 and ``zero_move_probability`` (1/2) for dE = 0 (see :func:`metropolis`;
    1 gives the textbook rule and its frozen states). Computed in float64 NumPy so that
    every backend compares against the same numbers.
    """
    s = np.array([-1.0, 1.0])[:, None]
    n = np.arange(-4.0, 5.0, 2.0)[None, :]
    j, h, t = (a[..., None, None] for a in (coupling, field, temperature))
    delta = 2.0 * s * (j * n + h)
    with np.errstate(over="ignore"):
        table = np.where(delta < 0, 1.0, np.where(delta == 0, zero_move_probability, np.exp(-delta / t)))
    return {"acceptance": table.reshape(-1), "cell_offset": _tables(temperature, 10), "checkerboard": checkerboard(sizes)}


def metropolis(*, spin, uniforms, acceptance, cell_offset, checkerboard):
    """One checkerboard Metropolis sweep: flip s_i with probability P(dE_i), black then white.

    dE_i = 2 s_i (J n_i + h). Acceptance min(1, exp(-dE/T)) except that dE = 0 moves are
    accepted with probability 1/2 (symmetric, so detailed balance holds): with probability
    1, checkerboard updates never leave configurations in which every spin has zero local
    field (36 of the 2^16 states at L = 4, e.g. 2x2 blocks) and an ensemble can freeze at
    E = 0. Metropolis et al., J. Chem. Phys. 21, 1087 (1953).

    spin : int8 (..., L_y, L_x); uniforms : float64 (..., L_y, L_x) in [0, 1).
    """
    xp = namespace(spin)
    for color in (checkerboard[0], checkerboard[1]):
        index = cell_offset + (5 * spin + neighbour_sum(spin) + 9) // 2  # (s > 0) * 5 + (n + 4) / 2, in int8
        flip = (uniforms < _lookup(acceptance, index)) & color
        spin = xp.where(flip, -spin, spin)
    return {"spin": spin}


def heat_bath_probability(*, temperature, coupling, field, sizes):
    """Per-cell probability that a spin with neighbour sum n is set up: 1 / (1 + exp(-2 (J n + h) / T))."""
    n = np.arange(-4.0, 5.0, 2.0)
    j, h, t = (a[..., None] for a in (coupling, field, temperature))
    with np.errstate(over="ignore"):
        table = 1.0 / (1.0 + np.exp(-2.0 * (j * n + h) / t))
    return {"probability_up": table.reshape(-1), "cell_offset": _tables(temperature, 5), "checkerboard": checkerboard(sizes)}


def heat_bath(*, spin, uniforms, probability_up, cell_offset, checkerboard):
    """One checkerboard heat-bath sweep: s_i = +1 with probability 1 / (1 + exp(-2 (J n_i + h) / T)).

    Glauber, J. Math. Phys. 4, 294 (1963). Shapes as in :func:`metropolis`.
    """
    xp = namespace(spin)
    for color in (checkerboard[0], checkerboard[1]):
        up = uniforms < _lookup(probability_up, cell_offset + (neighbour_sum(spin) + 4) // 2)
        new = xp.where(up, xp.ones_like(spin), -xp.ones_like(spin))
        spin = xp.where(color, new, spin)
    return {"spin": spin}


def _site_uniforms(sizes):
    return (sizes["y"], sizes["x"])


# ---- observables


def energy(*, spin, coupling, field):
    """Energy per spin, (-J sum_<ij> s_i s_j - h sum_i s_i) / L^2, in the unit of J (k_B K)."""
    xp = namespace(spin)
    right = xp.concat([spin[..., 1:], spin[..., :1]], axis=-1)
    down = xp.concat([spin[..., 1:, :], spin[..., :1, :]], axis=-2)
    bonds = xp.sum(spin * (right + down), axis=(-2, -1), dtype=xp.int64)  # exact; float64 holds it exactly
    total = xp.sum(spin, axis=(-2, -1), dtype=xp.int64)
    return -(coupling * bonds + field * total) / (spin.shape[-1] * spin.shape[-2])


def magnetization(*, spin):
    """Magnetization per spin, sum_i s_i / L^2 (dimensionless)."""
    xp = namespace(spin)
    return xp.astype(xp.sum(spin, axis=(-2, -1), dtype=xp.int64), xp.float64) / (spin.shape[-1] * spin.shape[-2])


# ---- theory: exact results to test against


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
    """Configurations in which every spin has zero neighbour sum (frozen under min(1, e^-dE) checkerboard Metropolis)."""
    states = all_states(ny, nx)
    return states[np.all(neighbour_sum(states) == 0, axis=(-2, -1))]


theory = SimpleNamespace(
    critical_temperature=critical_temperature,
    onsager_energy=onsager_energy,
    spontaneous_magnetization=spontaneous_magnetization,
    exact_averages=exact_averages,
    zero_field_states=zero_field_states,
)

SYSTEM = System(
    kind=KIND,
    create=create,
    operators={
        "metropolis": Operator(metropolis, prepare=metropolis_acceptance, uniforms=_site_uniforms),
        "heat_bath": Operator(heat_bath, prepare=heat_bath_probability, uniforms=_site_uniforms),
    },
    observables={"energy": energy, "magnetization": magnetization},
    theory=theory,
    example={"size": 4, "temperature": [1.5, 3.0], "members": 3, "seed": 5},
)
