"""Plots of histories (matplotlib): ``eq.plot.trace``."""
from __future__ import annotations

import numpy as np
import xarray as xr

from .cf import canonical_units
from .summary import stages, summarize


def trace(hist: xr.Dataset, var: str, *, members: int = 8, member_dim: str = "member"):
    """Traces of ``var`` per parameter point: a few members, their mean, the equilibration step
    (dashed line), the equilibrium estimate +- 2 standard errors (shaded, over the window) and,
    where the kind's theory gives one (``theory.reference``), the exact value (dotted line).

    Returns a matplotlib Figure with one panel per parameter point. A history whose parameter
    changes along ``step`` (an anneal) gets one band per stage, over that stage's window.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    da = hist[var]
    summary = summarize(hist, [var], member_dim=member_dim)
    sweeps = [d for d in da.dims if d not in ("step", member_dim)]
    points = list(np.ndindex(*(da.sizes[d] for d in sweeps))) or [()]
    fig, axes = plt.subplots(len(points), 1, figsize=(7, 2.2 * len(points) + 0.6), sharex=True, squeeze=False)
    units = canonical_units(da.attrs.get("units", ""))  # k_B * K, not its UDUNITS spelling
    for ax, point in zip(axes[:, 0], points):
        where = dict(zip(sweeps, point))
        x = da.isel(where)
        s = summary.isel(where)
        steps = x.step.values
        ax.plot(steps, x.isel({member_dim: slice(0, members)}).transpose("step", member_dim).values, lw=0.5, alpha=0.5)
        ax.plot(steps, x.mean(member_dim).values, color="black", lw=1.2, label="member mean")
        _bands(ax, s, var, steps, stages(hist))
        label = ", ".join(f"{d} = {float(hist[d][i]):g} {hist[d].attrs.get('units', '')}" for d, i in where.items())
        ax.set_title(label or var, fontsize=9)
        ax.set_ylabel(f"{var} [{units}]" if units else var)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return fig


def _bands(ax, s, var: str, steps, staged) -> None:
    """The equilibration step and the estimate +- 2 SE over its window, once or per stage."""
    name, stage, _ = staged if staged is not None else (None, np.zeros(len(steps), int), None)
    per_stage = [s.isel({s[var].dims[0]: k}) for k in range(s[var].size)] if staged is not None else [s]
    for k, one in enumerate(per_stage):
        start, mean, sem = int(one[f"{var}_equilibrated_at"]), float(one[var]), float(one[f"{var}_sem"])
        label = f" ({name} {float(one[name]):g})" if staged is not None else ""
        ax.axvline(start, color="tab:red", ls="--", lw=1, label=f"equilibrated at step {start}" if k == 0 else None)
        window = (steps >= start) & (stage == k)
        ax.fill_between(steps[window], mean - 2 * sem, mean + 2 * sem, color="tab:red", alpha=0.3,
                        label=f"equilibrium {mean:.5g} ± {2 * sem:.2g} (2 SE){label}" if k < 3 else None)
        exact = float(one[f"{var}_exact"]) if f"{var}_exact" in one else np.nan
        if np.isfinite(exact):  # the kind's theory (theory.reference): Kaufman's energy, the SMD angle, ...
            span = steps[stage == k]
            ax.hlines(exact, span.min(), span.max(), color="tab:green", ls=":", lw=1.5,
                      label=f"theory {exact:.5g}{label}" if k < 3 else None)
