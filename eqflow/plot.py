"""Plots of histories (matplotlib): ``eq.plot.trace``."""
from __future__ import annotations

import numpy as np
import xarray as xr

from .summary import summarize


def trace(hist: xr.Dataset, var: str, *, members: int = 8, member_dim: str = "member"):
    """Traces of ``var`` per parameter point: a few members, their mean, the equilibration step
    (dashed line) and the equilibrium estimate +- 2 standard errors (shaded, over the window).

    Returns a matplotlib Figure with one panel per parameter point.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    da = hist[var]
    summary = summarize(hist, [var], member_dim=member_dim)
    sweeps = [d for d in da.dims if d not in ("step", member_dim)]
    points = list(np.ndindex(*(da.sizes[d] for d in sweeps))) or [()]
    fig, axes = plt.subplots(len(points), 1, figsize=(7, 2.2 * len(points) + 0.6), sharex=True, squeeze=False)
    units = da.attrs.get("units", "")
    for ax, point in zip(axes[:, 0], points):
        where = dict(zip(sweeps, point))
        x = da.isel(where)
        s = summary.isel(where)
        steps = x.step.values
        ax.plot(steps, x.isel({member_dim: slice(0, members)}).transpose("step", member_dim).values, lw=0.5, alpha=0.5)
        ax.plot(steps, x.mean(member_dim).values, color="black", lw=1.2, label="member mean")
        start, mean, sem = int(s[f"{var}_equilibrated_at"]), float(s[var]), float(s[f"{var}_sem"])
        ax.axvline(start, color="tab:red", ls="--", lw=1, label=f"equilibrated at step {start}")
        window = steps >= start
        ax.fill_between(steps[window], mean - 2 * sem, mean + 2 * sem, color="tab:red", alpha=0.3,
                        label=f"equilibrium {mean:.5g} ± {2 * sem:.2g} (2 SE)")
        label = ", ".join(f"{d} = {float(hist[d][i]):g} {hist[d].attrs.get('units', '')}" for d, i in where.items())
        ax.set_title(label or var, fontsize=9)
        ax.set_ylabel(f"{var} [{units}]" if units else var)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return fig
