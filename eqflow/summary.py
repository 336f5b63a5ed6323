"""Equilibrium estimates from a history: ``eq.summarize``."""
from __future__ import annotations

import numpy as np
import xarray as xr

from . import diagnostics
from .results import final_values

RHAT_THRESHOLD = 1.05  # above it the members have not mixed (Gelman et al.; Vehtari et al. 2021 advise 1.01)


def _start_steps(hist: xr.Dataset, var: str, member_dim: str) -> xr.DataArray:
    """First step of each member's equilibrium window.

    From the run's stop rule (``equilibrated_at``: shared by a point's members for the
    equilibrated rule, each member's own step for the converged rule); without one, the start
    detected per member, then the latest among the members of each parameter point.
    """
    starts = hist["equilibrated_at"] if "equilibrated_at" in hist else None
    if starts is None or (starts < 0).all():
        series = hist[var].fillna(0.0).load()
        t0 = diagnostics.detect_equilibration(series, method="binary").t0
        detected = hist["step"].values[t0.values] + 0 * t0
        return detected.max(member_dim).broadcast_like(detected)
    return starts.where(starts >= 0)  # members that never equilibrated are left out


def summarize(hist: xr.Dataset, variables=None, member_dim: str = "member",
              rhat_threshold: float = RHAT_THRESHOLD) -> xr.Dataset:
    """Equilibrium estimates of scalar records over each member's equilibrium window.

    A member's window runs from its ``equilibrated_at`` (or, without a stop rule, the start
    detected by :func:`eqflow.diagnostics.detect_equilibration`, latest over the point's
    members) to its last record; members that a stop rule never saw equilibrate or converge
    are left out (a point with none gets NaN). Statistics pool the members of each parameter point
    (tau, R-hat and the standard error use the steps where every member has data). Returns, per
    variable ``v`` and parameter point: ``v`` (mean over window and members, units of ``v``),
    ``v_sem`` (standard error sqrt(var / ESS), ESS = members x steps / tau), ``v_tau`` (integrated
    autocorrelation time in records, averaged over members as emcee does), ``v_ess``, ``v_rhat``
    (rank-normalized split R-hat) and ``equilibrated_at`` / ``window`` (first step, number of
    records), and ``v_final``, the mean over members of each member's value where it stopped
    (:func:`eqflow.final_values`).

    Honest error bars: a point whose R-hat exceeds ``rhat_threshold`` is flagged
    (``v_unmixed`` True: its members sample different regions, e.g. the signed magnetization
    below T_c), and its ``v_sem`` is then the spread between the members' means,
    std(member means) / sqrt(members), not the within-member estimate, which would be far too
    small there.
    """
    variables = variables or [v for v, da in hist.data_vars.items() if da.dims[:1] == ("step",) and
                              set(da.dims[1:]) <= set(hist.stop_reason.dims if "stop_reason" in hist else da.dims[1:])]
    variables = [variables] if isinstance(variables, str) else list(variables)
    out = {}
    for var in variables:
        if var not in hist or hist[var].dims[:1] != ("step",):
            raise ValueError(f"summarize: expected a variable recorded along 'step', got {var!r}; available: "
                             f"{[v for v in hist.data_vars if hist[v].dims[:1] == ('step',)]}")
        out.update(_one(hist, var, member_dim, rhat_threshold))
    return xr.Dataset(out, attrs={"source": hist.attrs.get("eqflow_store", "")})


def _one(hist: xr.Dataset, var: str, member_dim: str, rhat_threshold: float) -> dict:
    da = hist[var]
    start = _start_steps(hist, var, member_dim)
    sweeps = [d for d in da.dims if d not in ("step", member_dim)]
    windowed = da.where(da.step >= start)
    stacked = windowed.stack(point=sweeps) if sweeps else windowed.expand_dims(point=[0])
    rows = {k: [] for k in ("mean", "sem", "tau", "ess", "rhat", "window", "unmixed")}
    for i in range(stacked.sizes["point"]):
        x = stacked.isel(point=i).dropna("step", how="all").transpose("step", member_dim).load()
        for key, value in _estimates(x, member_dim, rhat_threshold).items():
            rows[key].append(value)
    start = start.max(member_dim).fillna(-1).astype(np.int64)
    units = {"units": da.attrs.get("units", "1")}
    values = {
        var: (rows["mean"], units), f"{var}_sem": (rows["sem"], units), f"{var}_tau": (rows["tau"], {"units": "1"}),
        f"{var}_ess": (rows["ess"], {"units": "1"}), f"{var}_rhat": (rows["rhat"], {"units": "1"}),
        f"{var}_window": (rows["window"], {"long_name": "records in the equilibrium window", "units": "1"}),
        f"{var}_unmixed": (rows["unmixed"], {"long_name": f"R-hat above {rhat_threshold}: sem from the spread "
                                                          f"between members"}),
    }
    result = {}
    for name, (vals, attrs) in values.items():
        arr = xr.DataArray(np.asarray(vals, dtype=bool if name.endswith("_unmixed") else float), dims=["point"],
                           coords={"point": stacked.point}, attrs=attrs)
        result[name] = arr.unstack("point") if sweeps else arr.isel(point=0, drop=True)
    result[f"{var}_equilibrated_at"] = start.assign_attrs(long_name="first step of the equilibrium window", units="1")
    if "stopped_at" in hist:
        final = final_values(hist, var)[var].mean(member_dim)
        result[f"{var}_final"] = final.assign_attrs(units=da.attrs.get("units", "1"),
                                                    long_name="value where each member stopped, mean over members")
    return result


def _estimates(x: xr.DataArray, member_dim: str, rhat_threshold: float) -> dict:
    mean = float(x.mean()) if x.size else np.nan
    x = x.dropna("step", how="any")  # the steps where every member has data
    steps, members = x.sizes["step"], x.sizes[member_dim]
    if steps < 4:
        return {"mean": mean, "sem": np.nan, "tau": np.nan, "ess": np.nan, "rhat": np.nan, "window": steps,
                "unmixed": False}
    tau = float(diagnostics.integrated_time(x, chain_dim=member_dim))
    ess = steps * members / max(tau, 1.0)
    rhat = float(diagnostics.rhat(x, chain_dim=member_dim)) if members >= 2 else np.nan
    sem = float(x.std(ddof=1) / np.sqrt(ess))
    unmixed = bool(rhat > rhat_threshold)
    if unmixed:  # members sample different regions: only their spread says how uncertain the mean is
        sem = max(sem, float(x.mean("step").std(ddof=1) / np.sqrt(members)))
    return {"mean": mean, "sem": sem, "tau": tau, "ess": ess, "rhat": rhat, "window": steps, "unmixed": unmixed}
