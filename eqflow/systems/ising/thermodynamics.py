"""Thermodynamics from an Ising history: energy, specific heat, |m|, susceptibility, Binder cumulant.

Per parameter point, from the per-step records of ``energy`` e = E/N and ``magnetization``
m = M/N over an equilibrium window, with N = L_y L_x spins:

    C / N  = N (<e^2> - <e>^2) / T^2          (k_B per spin)
    chi / N = N (<m^2> - <|m|>^2) / T         (per spin, 1/K for J in k_B K)
    U_4    = 1 - <m^4> / (3 <m^2>^2)          (Binder cumulant)

Averages pool every member's window. Standard errors are delete-one jackknife estimates over
members: each member is an independent chain, so the error bar covers autocorrelation within
a member and, when chains do not mix (signed m below T_c), the spread between members. Where
h = 0 the exact finite-lattice energy and specific heat (Kaufman, :func:`theory.kaufman`) are
given beside the estimates.

A history whose temperature (or coupling, field) changes along ``step`` (an anneal) is never
pooled: each stage is summarised alone, over its own equilibrium window, and labelled with its
value (:func:`eqflow.summary.stages`).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from ...cf import written_units
from . import theory

QUANTITIES = {  # name: (units, long name); units in their UDUNITS-2 spelling (eqflow.cf)
    "energy": (written_units("k_B * K"), "energy per spin"),
    "specific_heat": ("1", "specific heat per spin (k_B)"),
    "abs_magnetization": ("1", "absolute magnetization per spin"),
    "susceptibility": ("1 / K", "susceptibility per spin N(<m^2> - <|m|>^2)/T"),
    "binder": ("1", "Binder cumulant 1 - <m^4>/(3 <m^2>^2)"),
}


def thermodynamics(history: xr.Dataset, start: int | None = None, member_dim: str = "member") -> xr.Dataset:
    """Estimates with jackknife standard errors (``<name>_sem``), per parameter point.

    ``history``: from ``eq.run``/``eq.open`` with ``energy`` and ``magnetization`` recorded on
    the same step dim. ``start``: the first step of the equilibrium window (default: the second
    half of the records; every record of a history of independent samples, attribute
    ``eqflow_samples``, see :func:`eqflow.write_samples`). Needs at least 2 members.

    An anneal's history gives one estimate per stage, along a dim named after the scheduled
    parameter (``stage`` if values repeat), each stage from its ``stage_equilibrated_at`` (latest
    over members; the second half of the stage where none was detected) or from ``start`` if later.
    """
    from eqflow.summary import stages

    staged = stages(history)
    if staged is not None:
        return _per_stage(history, staged, start, member_dim)
    for name in ("energy", "magnetization"):
        if name not in history:
            raise ValueError(f"history: expected the record {name!r} (record={{'energy': 1, 'magnetization': 1}}), "
                             f"got records {sorted(history.data_vars)}")
    dim = history["energy"].dims[0]
    if history["magnetization"].dims[0] != dim:
        raise ValueError(f"history: expected energy and magnetization on one step dim, got {dim!r} and "
                         f"{history['magnetization'].dims[0]!r}")
    members = history.sizes.get(member_dim, 0)
    if members < 2:
        raise ValueError(f"history: expected >= 2 members for jackknife errors, got {members}")
    steps = history[dim].values
    if start is None:
        start = int(steps[0 if history.attrs.get("eqflow_samples") == "independent" else len(steps) // 2])
    start = int(start)
    window = history[["energy", "magnetization"]].sel({dim: steps[steps >= start]})
    if window.sizes[dim] < 2:
        raise ValueError(f"start: expected a window of >= 2 records, got {window.sizes[dim]} from step {start}")
    e, m = window["energy"].load(), window["magnetization"].load()
    moments = xr.Dataset({"e1": e, "e2": e * e, "a1": abs(m), "m2": m * m, "m4": m ** 4}).mean(dim)
    n = history.sizes["y"] * history.sizes["x"]
    temperature = history["temperature"]
    estimates = _derived(moments.mean(member_dim), n, temperature)
    # delete-one jackknife over members
    total = moments.sum(member_dim)
    leave_one_out = (total - moments) / (members - 1)
    replicas = _derived(leave_one_out, n, temperature)
    out = {}
    for name, (units, long_name) in QUANTITIES.items():
        spread = replicas[name] - replicas[name].mean(member_dim)
        out[name] = estimates[name].assign_attrs(units=units, long_name=long_name)
        out[f"{name}_sem"] = np.sqrt((members - 1) / members * (spread ** 2).sum(member_dim)).assign_attrs(
            units=units, long_name=f"jackknife standard error of the {long_name}")
    out.update(_exact(history, estimates["energy"]))
    ds = xr.Dataset(out)
    ds.attrs.update({"window_start": start, "records": int(window.sizes[dim]), "members": members,
                     "error": "delete-one jackknife over members"})
    return ds


def _per_stage(history: xr.Dataset, staged, start, member_dim: str) -> xr.Dataset:
    from eqflow.summary import stacked_stages

    name, stage, values = staged
    along = [c for c in history.coords if history[c].dims == ("step",) and c != "step"]
    parts = []
    for k, value in enumerate(values):
        part = history.isel(step=np.flatnonzero(stage == k)).drop_vars(along)
        if part.sizes["step"] < 2:
            continue
        steps = part["step"].values
        first = int(steps[len(steps) // 2])
        if "stage_equilibrated_at" in history and "stage" in history["stage_equilibrated_at"].dims:
            detected = int(history["stage_equilibrated_at"].isel(stage=k).max())
            first = detected if detected >= 0 else first
        first = max(first, int(start)) if start is not None else first
        part = part.drop_vars(["stage_equilibrated_at", "stage"], errors="ignore")
        part = part.assign_coords({name: ((), float(value), history[name].attrs)})
        parts.append(thermodynamics(part, first, member_dim).assign_coords({name: float(value)}))
    return stacked_stages(parts, history, name)


def _derived(mom: xr.Dataset, n: int, temperature: xr.DataArray) -> dict:
    return {
        "energy": mom["e1"],
        "specific_heat": n * (mom["e2"] - mom["e1"] ** 2) / temperature ** 2,
        "abs_magnetization": mom["a1"],
        "susceptibility": n * (mom["m2"] - mom["a1"] ** 2) / temperature,
        "binder": 1 - mom["m4"] / (3 * mom["m2"] ** 2),
    }


def _exact(history: xr.Dataset, like: xr.DataArray) -> dict:
    """Kaufman's exact energy and specific heat at each point with h = 0 (NaN elsewhere)."""
    size = (history.sizes["y"], history.sizes["x"])
    t, j, h = xr.broadcast(like, history["temperature"], history["coupling"], history["field"])[1:]
    energy, heat = np.full(like.shape, np.nan), np.full(like.shape, np.nan)
    for index in np.ndindex(like.shape):
        if h.values[index] == 0 and j.values[index] > 0:
            found = theory.kaufman(size, t.values[index], coupling=float(j.values[index]))
            energy[index], heat[index] = found["energy"][0], found["specific_heat"][0]
    return {"energy_exact": xr.DataArray(energy, dims=like.dims, coords=like.coords,
                                         attrs={"units": written_units("k_B * K"),
                                                "long_name": "exact energy per spin (Kaufman)"}),
            "specific_heat_exact": xr.DataArray(heat, dims=like.dims, coords=like.coords,
                                                attrs={"units": "1", "long_name": "exact specific heat (Kaufman)"})}
