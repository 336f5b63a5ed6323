"""How close Ising samples are to equilibrium: exact Boltzmann comparison on small lattices,
the two-point correlation function, and side-by-side tables against a reference history.

Works on any Ising history (a Monte Carlo run or a generator's samples, :mod:`.ising_flow`).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ..systems.ising import theory
from ..systems.ising.observables import energy as energy_per_spin
from ..systems.ising.thermodynamics import thermodynamics


def _points(history: xr.Dataset, start):
    """The spin records of the window, as (records x members, y, x) int8 per parameter point."""
    if "spin" not in history:
        raise ValueError(f"history: expected 'spin' recorded, got records {sorted(history.data_vars)}")
    from ..summary import stages

    staged = stages(history)
    if staged is not None:  # never pool records taken at different parameter values
        raise ValueError(f"history: its {staged[0]} changes along step (stages {staged[2].tolist()}); expected one "
                         f"value: pass one stage, e.g. history.isel(step=history.step_stage.values == k)")
    spin = history["spin"]
    dim = spin.dims[0]
    steps = history[dim].values
    if start is None:
        start = steps[0] if history.attrs.get("eqflow_samples") == "independent" else steps[len(steps) // 2]
    spin = spin.sel({dim: steps[steps >= start]})
    sweeps = [d for d in spin.dims if d not in (dim, "member", "y", "x")]
    stacked = spin.stack(point=sweeps) if sweeps else spin.expand_dims(point=[0])
    return stacked, dim, sweeps


def boltzmann(history: xr.Dataset, start=None, seed: int = 0) -> xr.Dataset:
    """Sampled vs exact Boltzmann distribution over all 2^(L_y L_x) states (L_y L_x <= 24), per point.

    ``kl``: KL(q || p) in nats of the empirical distribution q of the n sampled states against
    the exact p ~ exp(-E/T); it is biased upward at finite n (about (occupied states - 1) / 2n
    when n is large), so ``kl_exact_samples`` gives the same estimator for n exact draws from p
    (numpy generator seeded by ``seed``) as the floor to compare with. ``kl_energy``: KL of the
    sampled energy histogram against the exact one (low-variance). Also ``energy``,
    ``abs_magnetization`` and their exact values. Needs h, J and T scalar per point.
    """
    stacked, dim, sweeps = _points(history, start)
    ny, nx = history.sizes["y"], history.sizes["x"]
    states = theory.all_states(ny, nx)  # raises for L_y L_x > 24
    weights = 1 << np.arange(ny * nx, dtype=np.int64)
    rows = {k: [] for k in ("kl", "kl_exact_samples", "kl_energy", "energy", "energy_exact", "abs_magnetization",
                            "abs_magnetization_exact", "samples")}
    rng = np.random.default_rng(seed)
    for i in range(stacked.sizes["point"]):
        one = stacked.isel(point=i)
        t, j, h = (float(one[k].values) if k in one.coords else float(history[k].values)
                   for k in ("temperature", "coupling", "field"))
        e_states = energy_per_spin(spin=states, coupling=j, field=h)
        m_states = np.abs(states.mean(axis=(1, 2), dtype=np.float64))
        log_w = -ny * nx * e_states / t
        p = np.exp(log_w - log_w.max())
        p /= p.sum()
        s = one.transpose(dim, "member", "y", "x").values.reshape(-1, ny, nx)
        codes = ((s.reshape(len(s), -1) > 0).astype(np.int64) * weights).sum(axis=1)
        rows["kl"].append(_kl(np.bincount(codes, minlength=len(p)) / len(s), p))
        exact = rng.choice(len(p), size=len(s), p=p)
        rows["kl_exact_samples"].append(_kl(np.bincount(exact, minlength=len(p)) / len(s), p))
        levels, where = np.unique(np.round(e_states * ny * nx).astype(np.int64), return_inverse=True)
        p_e = np.bincount(where, weights=p, minlength=len(levels))
        q_e = np.bincount(where[codes], minlength=len(levels)) / len(s)
        rows["kl_energy"].append(_kl(q_e, p_e))
        rows["energy"].append(float(e_states[codes].mean()))
        rows["energy_exact"].append(float(p @ e_states))
        rows["abs_magnetization"].append(float(m_states[codes].mean()))
        rows["abs_magnetization_exact"].append(float(p @ m_states))
        rows["samples"].append(len(s))
    attrs = {"kl": ("1", "KL(sampled || exact Boltzmann) over all states, nats"),
             "kl_exact_samples": ("1", "the same estimator for as many exact Boltzmann draws, nats"),
             "kl_energy": ("1", "KL(sampled || exact) of the energy histogram, nats"),
             "energy": ("k_B * K", "sampled energy per spin"), "energy_exact": ("k_B * K", "exact energy per spin"),
             "abs_magnetization": ("1", "sampled |m|"), "abs_magnetization_exact": ("1", "exact <|m|>"),
             "samples": ("1", "samples per point")}
    return _unstack(rows, stacked, sweeps, attrs)


def _kl(q: np.ndarray, p: np.ndarray) -> float:
    seen = q > 0
    return float(np.sum(q[seen] * np.log(q[seen] / p[seen])))


def _unstack(rows: dict, stacked, sweeps, attrs: dict) -> xr.Dataset:
    out = {}
    for name, values in rows.items():
        da = xr.DataArray(np.asarray(values), dims=["point"], coords={"point": stacked.point},
                          attrs=dict(zip(("units", "long_name"), attrs[name])))
        out[name] = da.unstack("point") if sweeps else da.isel(point=0, drop=True)
    return xr.Dataset(out)


def correlation(history: xr.Dataset, start=None) -> xr.Dataset:
    """Two-point function G(r) = <s_i s_{i+r}> at distance r = 0 .. L_x/2 along the lattice axes.

    Averaged over sites, both axes (where L_y = L_x; else along x only), the window's records
    (default: as :func:`thermodynamics`) and the members; ``correlation_sem`` is the standard
    error of the members' means (independent chains), so it covers autocorrelation in time.
    """
    stacked, dim, sweeps = _points(history, start)
    ny, nx = history.sizes["y"], history.sizes["x"]
    distances = np.arange(nx // 2 + 1)
    rows = {"correlation": [], "correlation_sem": []}
    for i in range(stacked.sizes["point"]):
        s = stacked.isel(point=i).transpose("member", dim, "y", "x").values.astype(np.float64)
        per_member = []
        for r in distances:
            g = (s * np.roll(s, -r, axis=-1)).mean(axis=(1, 2, 3))
            if ny == nx:
                g = 0.5 * (g + (s * np.roll(s, -r, axis=-2)).mean(axis=(1, 2, 3)))
            per_member.append(g)
        per_member = np.array(per_member)  # (r, member)
        rows["correlation"].append(per_member.mean(axis=1))
        rows["correlation_sem"].append(per_member.std(axis=1, ddof=1) / np.sqrt(per_member.shape[1])
                                       if per_member.shape[1] > 1 else np.full(len(distances), np.nan))
    out = {}
    for name, values in rows.items():
        da = xr.DataArray(np.array(values), dims=["point", "r"], coords={"point": stacked.point, "r": distances},
                          attrs={"units": "1", "long_name": "two-point function <s_i s_(i+r)>" +
                                 (" (standard error)" if name.endswith("sem") else "")})
        out[name] = da.unstack("point") if sweeps else da.isel(point=0, drop=True)
    return xr.Dataset(out)


QUANTITIES = ("energy", "abs_magnetization", "specific_heat", "susceptibility", "binder")


def compare(samples: xr.Dataset, reference: xr.Dataset, start=None, reference_start=None) -> xr.Dataset:
    """``samples`` beside ``reference`` (e.g. a long Monte Carlo run) at the same temperatures.

    For each of energy, |m|, C, chi, the Binder cumulant and G(r) at r = L/4 and L/2: the two
    estimates with their standard errors (jackknife over members, :func:`thermodynamics`;
    member spread for G) and ``<q>_z`` = (sample - reference) / sqrt(sem^2 + sem_ref^2).
    """
    a, b = thermodynamics(samples, start), thermodynamics(reference, reference_start)
    ga, gb = correlation(samples, start), correlation(reference, reference_start)
    nx = samples.sizes["x"]
    out = {}
    pairs = [(q, a[q], a[f"{q}_sem"], b[q], b[f"{q}_sem"]) for q in QUANTITIES]
    for r in sorted({nx // 4, nx // 2}):
        pairs.append((f"correlation_r{r}", ga.correlation.sel(r=r, drop=True), ga.correlation_sem.sel(r=r, drop=True),
                      gb.correlation.sel(r=r, drop=True), gb.correlation_sem.sel(r=r, drop=True)))
    for name, x, dx, y, dy in pairs:
        x, y = xr.align(x, y, join="exact")
        out[name], out[f"{name}_sem"] = x, dx
        out[f"{name}_reference"], out[f"{name}_reference_sem"] = y, dy
        out[f"{name}_z"] = (x - y) / np.sqrt(dx ** 2 + dy ** 2)
    return xr.Dataset(out)
