"""Equilibrium estimates from a history: ``eq.summarize``.

Summaries never mislabel: a history whose parameter changes along ``step`` (an anneal's stages,
``<parameter>_schedule``; a kind's own step schedule, from ``theory.stages(history)``) is
summarised per stage, each labelled with its value, never pooled (:func:`stages`).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from . import diagnostics
from .results import final_values

RHAT_THRESHOLD = 1.01  # rank-normalized split R-hat above it: not mixed (Vehtari et al., Bayesian Anal. 16, 667, 2021)
Z_THRESHOLD = 3.0  # |estimate - theory| / sem above it: the estimate disagrees with the kind's exact value
MEMBER_Z_THRESHOLD = 4.0  # a member whose own mean is this many standard errors from the others' is named


def stages(hist: xr.Dataset):
    """Where a parameter changes along ``step``: (parameter, stage of each record, value per stage), or None.

    An anneal (:func:`eqflow.anneal`) carries ``step_stage`` and ``<parameter>_schedule`` along
    ``step``; a kind may declare its own step schedule through ``theory.stages(history)``
    returning the same triple (e.g. smd's learning-rate step), or None.
    """
    from . import registry

    if "step_stage" in hist.coords and hist["step_stage"].dims == ("step",):
        name = next((str(c)[: -len("_schedule")] for c in hist.coords
                     if str(c).endswith("_schedule") and hist[c].dims == ("step",)), "stage")
        stage = hist["step_stage"].values.astype(np.int64)
        values = (hist[f"{name}_stage"].values if f"{name}_stage" in hist.coords else
                  np.array([hist[f"{name}_schedule"].values[stage == k][0] for k in np.unique(stage)]))
        return name, stage, np.asarray(values, dtype=np.float64)
    theory = getattr(registry.get(hist.attrs["eqflow_kind"]), "theory", None) if "eqflow_kind" in hist.attrs else None
    return theory.stages(hist) if hasattr(theory, "stages") else None


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

    Also ``v_ess_bulk`` and ``v_ess_tail`` (Vehtari et al. 2021, as ArviZ), per member
    ``v_member_z`` (the member's mean minus the other members', in standard errors, see
    :func:`_member_z`) and ``v_stuck`` (|member z| > ``MEMBER_Z_THRESHOLD`` = 4: a stuck or
    metastable member, named so that it can be dropped or rerun), and where the kind's theory
    gives an exact value (``theory.reference(history)``): ``v_exact``, ``v_z`` = (v - exact) /
    v_sem and ``v_disagrees`` (|z| > ``Z_THRESHOLD`` = 3).

    Honest error bars: a point whose rank-normalized split R-hat exceeds ``rhat_threshold``
    (default ``RHAT_THRESHOLD`` = 1.01, Vehtari, Gelman, Simpson, Carpenter & Buerkner, Bayesian
    Analysis 16, 667, 2021) is flagged (``v_unmixed`` True: its members sample different regions,
    e.g. the signed magnetization below T_c), and its ``v_sem`` is then the spread between the
    members' means, std(member means) / sqrt(members), not the within-member estimate, which would
    be far too small there.

    By default ``variables`` are the scalar records (one value per member and point) and the
    records with their own dims (e.g. smd's per-layer ``angular_update``) that the kind's theory
    lists in ``REFERENCE_VARIABLES``, the records it has exact values for; each cell of the own
    dims is then summarised as a point.

    A history whose parameter changes along ``step`` (an anneal; see :func:`stages`) is summarised
    per stage: every output gains a dim ``stage`` with the coordinate ``<parameter>`` (each stage's
    value) and each stage's window starts at its ``stage_equilibrated_at``.
    """
    variables = variables or [v for v, da in hist.data_vars.items() if da.dims[:1] == ("step",) and (
        set(da.dims[1:]) <= set(hist.stop_reason.dims if "stop_reason" in hist else da.dims[1:])
        or v in getattr(_theory(hist), "REFERENCE_VARIABLES", ()))]
    staged = stages(hist)
    if staged is not None:
        return _per_stage(hist, staged, variables, member_dim, rhat_threshold)
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
    rows = {k: [] for k in _STATISTICS}
    for i in range(stacked.sizes["point"]):
        x = stacked.isel(point=i).dropna("step", how="all").transpose("step", member_dim).load()
        for key, value in _estimates(x, member_dim, rhat_threshold).items():
            rows[key].append(value)
    start = start.max(member_dim).fillna(-1).astype(np.int64)
    units = {"units": da.attrs.get("units", "1")}
    result = {}
    for key, (suffix, attrs) in _STATISTICS.items():
        attrs = units if attrs is None else {**attrs, "long_name": attrs["long_name"].format(r=rhat_threshold,
                                                                                            m=MEMBER_Z_THRESHOLD)}
        values = np.asarray(rows[key], dtype=bool if key in ("unmixed", "stuck") else float)
        dims = ["point", member_dim] if key in ("member_z", "stuck") else ["point"]
        coords = {"point": stacked.point, **({member_dim: da[member_dim]} if len(dims) > 1 and member_dim in da.coords
                                             else {})}
        arr = xr.DataArray(values, dims=dims, coords=coords, attrs=attrs)
        result[f"{var}{suffix}"] = arr.unstack("point") if sweeps else arr.isel(point=0, drop=True)
    result[f"{var}_equilibrated_at"] = start.assign_attrs(long_name="first step of the equilibrium window", units="1")
    result.update(_against_theory(hist, var, result[var], result[f"{var}_sem"]))
    if "stopped_at" in hist:
        final = final_values(hist, var)[var].mean(member_dim)
        result[f"{var}_final"] = final.assign_attrs(units=da.attrs.get("units", "1"),
                                                    long_name="value where each member stopped, mean over members")
    return result


_STATISTICS = {  # key: (suffix, attrs; None: the variable's units)
    "mean": ("", None), "sem": ("_sem", None),
    "tau": ("_tau", {"units": "1", "long_name": "integrated autocorrelation time (records)"}),
    "ess": ("_ess", {"units": "1", "long_name": "effective sample size, members x records / tau"}),
    "ess_bulk": ("_ess_bulk", {"units": "1", "long_name": "bulk ESS (rank-normalized, Vehtari et al. 2021)"}),
    "ess_tail": ("_ess_tail", {"units": "1", "long_name": "tail ESS (5% and 95% quantiles, Vehtari et al. 2021)"}),
    "rhat": ("_rhat", {"units": "1", "long_name": "rank-normalized split R-hat (Vehtari et al. 2021)"}),
    "window": ("_window", {"units": "1", "long_name": "records in the equilibrium window"}),
    "unmixed": ("_unmixed", {"long_name": "R-hat above {r}: sem from the spread between members"}),
    "member_z": ("_member_z", {"units": "1", "long_name": "each member's mean minus the others', in standard errors"}),
    "stuck": ("_stuck", {"long_name": "member mean more than {m} standard errors from the others' (stuck, "
                                      "metastable): drop or rerun it"}),
}


def _theory(hist: xr.Dataset):
    """The theory module of the history's kind, or None."""
    from . import registry

    kind = hist.attrs.get("eqflow_kind")
    return getattr(registry.get(kind), "theory", None) if kind in registry.available() else None


def _against_theory(hist: xr.Dataset, var: str, mean: xr.DataArray, sem: xr.DataArray) -> dict:
    """``v_exact``, ``v_z`` = (estimate - exact) / sem and ``v_disagrees`` (|z| > Z_THRESHOLD), where the kind's
    ``theory.reference(history)`` gives ``var`` (NaN at points without a value); {} otherwise."""
    theory = _theory(hist)
    exact = theory.reference(hist).get(var) if hasattr(theory, "reference") else None
    if exact is None:
        return {}
    exact = exact.broadcast_like(mean) if exact.dims else xr.full_like(mean, float(exact))
    z = (mean - exact) / sem
    return {f"{var}_exact": exact.assign_attrs(units=mean.attrs.get("units", "1"), long_name="the kind's exact value"),
            f"{var}_z": z.assign_attrs(units="1", long_name="(estimate - exact) / standard error"),
            f"{var}_disagrees": (abs(z) > Z_THRESHOLD).assign_attrs(
                long_name=f"|z| > {Z_THRESHOLD:g}: the estimate disagrees with the exact value")}


def _estimates(x: xr.DataArray, member_dim: str, rhat_threshold: float) -> dict:
    mean = float(x.mean()) if x.size else np.nan
    x = x.dropna("step", how="any")  # the steps where every member has data
    steps, members = x.sizes["step"], x.sizes[member_dim]
    none = np.full(members, np.nan)
    if steps < 4:
        return {"mean": mean, "sem": np.nan, "tau": np.nan, "ess": np.nan, "ess_bulk": np.nan, "ess_tail": np.nan,
                "rhat": np.nan, "window": steps, "unmixed": False, "member_z": none, "stuck": none > 0}
    tau = float(diagnostics.integrated_time(x, chain_dim=member_dim))
    ess = steps * members / max(tau, 1.0)
    rhat = float(diagnostics.rhat(x, chain_dim=member_dim)) if members >= 2 else np.nan
    sem = float(x.std(ddof=1) / np.sqrt(ess))
    unmixed = bool(rhat > rhat_threshold)
    if unmixed:  # members sample different regions: only their spread says how uncertain the mean is
        sem = max(sem, float(x.mean("step").std(ddof=1) / np.sqrt(members)))
    member_z = _member_z(x.values, max(tau, 1.0))
    return {"mean": mean, "sem": sem, "tau": tau, "ess": ess, "rhat": rhat, "window": steps, "unmixed": unmixed,
            "ess_bulk": float(diagnostics.ess(x, chain_dim=member_dim, method="bulk")),
            "ess_tail": float(diagnostics.ess(x, chain_dim=member_dim, method="tail")),
            "member_z": member_z, "stuck": np.abs(np.nan_to_num(member_z)) > MEMBER_Z_THRESHOLD}


def _member_z(x: np.ndarray, tau: float) -> np.ndarray:
    """(mean_i - mean of the other members) / sqrt(se_i^2 + se_others^2) per member, x (steps, members).

    se_i = s_i sqrt(tau / n) (s_i the member's standard deviation, tau the ensemble's integrated
    time) and se_others the same for the pooled others, who are independent of member i.
    """
    steps, members = x.shape
    if members < 2:
        return np.full(members, np.nan)
    means, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    others = (means.sum() - means) / (members - 1)
    var_others = (var.sum() - var) / (members - 1) ** 2  # variance of the others' mean, per record
    floor = np.finfo(float).eps * (np.abs(means) + 1.0)  # a constant member: no error of its own
    with np.errstate(invalid="ignore", divide="ignore"):
        return (means - others) / np.maximum(np.sqrt((var + var_others) * tau / steps), floor)


def members_off(stuck: xr.DataArray) -> str:
    """The flagged members by name, or "n of N" where more than a quarter are (no one state to be off from)."""
    named = stuck["member"].values[stuck.values] if "member" in stuck.coords else np.flatnonzero(stuck.values)
    if len(named) > max(2, stuck.size // 4):
        return f"{len(named)} of {stuck.size} (the members sit in different states)"
    return ", ".join(str(m) for m in named) or "none"


def _per_stage(hist: xr.Dataset, staged, variables, member_dim: str, rhat_threshold: float) -> xr.Dataset:
    """``summarize`` of each stage's records alone, along a dim ``stage`` labelled by the parameter's value."""
    name, stage, values = staged
    along = [c for c in hist.coords if hist[c].dims == ("step",) and c != "step"]
    parts = []
    for k, value in enumerate(values):
        part = hist.isel(step=np.flatnonzero(stage == k)).drop_vars(along)
        part = part.drop_vars([v for v in ("stopped_at", "equilibrated_at", "stop_reason") if v in part])
        if name in part.coords and part[name].ndim == 0:  # the stage's own value, for theory and labels
            part = part.assign_coords({name: ((), float(value), part[name].attrs)})
        if "stage_equilibrated_at" in hist and "stage" in hist["stage_equilibrated_at"].dims:
            part["equilibrated_at"] = hist["stage_equilibrated_at"].isel(stage=k, drop=True)
        if part.sizes["step"]:
            parts.append(summarize(part.drop_vars(["stage_equilibrated_at", "stage"], errors="ignore"), variables,
                                   member_dim, rhat_threshold).assign_coords({name: value}))
    return stacked_stages(parts, hist, name)


def stacked_stages(parts: list, hist: xr.Dataset, name: str) -> xr.Dataset:
    """Per-stage results (each with the scalar coordinate ``name``) along the dim ``name`` where the
    stages' values are distinct (so they align with a sweep of ``name``), else along ``stage``."""
    units = hist[name].attrs.get("units", "") if name in hist.coords else ""
    out = xr.concat(parts, dim="stage", coords="different", compat="equals")
    out[name].attrs.update(units=units, long_name=f"{name} of each stage")
    if len(np.unique(out[name].values)) == out.sizes["stage"]:
        out = out.swap_dims(stage=name)
    return out.assign_attrs(stages=f"summarised per stage of {name} (never pooled across stages)")
