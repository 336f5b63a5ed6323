"""A self-contained HTML report of a history store: summary table, trace figures, provenance."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import xarray as xr

from .cf import canonical_units
from .location import as_location
from .results import open as open_history
from .store import STORE_ATTR
from .summary import MEMBER_Z_THRESHOLD, RHAT_THRESHOLD, Z_THRESHOLD, members_off, summarize


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(store, output: str | Path, storage_options: dict | None = None) -> Path:
    """Write ``output`` (HTML, images embedded) for the history in ``store``; return its path.

    The page names the store by its last path component only: a shared report shows no local
    directories (nor a URL's bucket path or credentials)."""
    from .plot import trace

    hist = open_history(store, storage_options)
    name = as_location(store, storage_options).short_name
    records = traced_records(hist)
    summary = xr.merge([_relabelled(summarize(sub, [v]), v, label) for label, sub, v in records], compat="override")
    scalars = [label for label, _, _ in records]
    units = {label: sub[v].attrs.get("units", "") for label, sub, v in records}
    table = estimates_table(hist, summary, scalars, units=units)
    figures = "\n".join(
        f'<figure><img alt="trace of {html.escape(label)}" src="data:image/png;base64,{_png(trace(sub, v))}">'
        f"<figcaption>{html.escape(label)}</figcaption></figure>" for label, sub, v in records)
    extra = _theory_tables(hist)
    provenance = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_text(v))}</td></tr>"
                           for k, v in sorted(hist.attrs.items()) if k != STORE_ATTR)
    outcomes = (hist.stop_reason.to_series().value_counts().to_frame("members").to_html()
                if "stop_reason" in hist else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>eqflow report: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse;font-size:0.85em}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>eqflow report</h1><p>Store <code>{html.escape(name)}</code>: {html.escape(hist.attrs["eqflow_kind"])},
operator {html.escape(hist.attrs["eqflow_operator"])}, {hist.attrs["eqflow_steps_done"]} steps done.</p>
<h2>Equilibrium estimates</h2>{table.to_html(classes="summary", escape=True)}
<p>Mean ± standard error over each member's equilibrium window (τ-based; where the rank-normalized split
R-hat &gt; {RHAT_THRESHOLD} (Vehtari et al. 2021) the members did not mix, the row says "not mixed" and the error
is the spread between members); bulk and tail ESS. "exact": the kind's theory at that point, where it has one,
and z = (estimate − exact) / error, marked "DISAGREES" where |z| &gt; {Z_THRESHOLD:g}. "members off": members
whose own mean is more than {MEMBER_Z_THRESHOLD:g} standard errors from the others' (stuck, metastable).
A history whose parameter changes along step (an anneal) has one row per stage.</p>
{extra}
<h2>Outcomes</h2>{outcomes}
<h2>Traces</h2>{figures}
<h2>Provenance</h2><table class="provenance">{provenance}</table></body></html>"""
    output = Path(output)
    output.write_text(page, encoding="utf-8")
    return output


def traced_records(hist, limit: int = 16) -> list:
    """[(label, history, var)]: every record along ``step``, once if it is scalar per member, else
    once per label of its own dims (``angular_update[layer=0]``: ``history`` is then indexed
    there), or, past ``limit`` labels, its mean over them (``firing_rate (mean over sample,
    neuron)``)."""
    ensemble = set(hist.stop_reason.dims) if "stop_reason" in hist else set()
    out = []
    for v in hist.data_vars:
        da = hist[v]
        if da.dims[:1] != ("step",) or da.dtype.kind not in "fiub":
            continue
        own = [d for d in da.dims[1:] if d not in ensemble] if ensemble else []
        if not own:
            out.append((str(v), hist, str(v)))
            continue
        labels = list(np.ndindex(*(hist.sizes[d] for d in own)))
        if len(labels) > limit:
            mean = da.mean(own).assign_attrs(da.attrs)
            out.append((f"{v} (mean over {', '.join(own)})", hist.assign({v: mean}), str(v)))
            continue
        for index in labels:
            where = dict(zip(own, index))
            text = ", ".join(f"{d}={_coordinate_label(hist, d, i)}" for d, i in where.items())
            out.append((f"{v}[{text}]", hist.isel(where), str(v)))
    return out


def _coordinate_label(hist, dim: str, i: int) -> str:
    return str(hist[dim].values[i]) if dim in hist.coords else str(i)


def _relabelled(summary, var: str, label: str):
    """``summary`` of ``var`` with its outputs named after ``label`` (``v_sem`` -> ``label_sem``)."""
    names = {k: label + str(k)[len(var):] for k in summary.data_vars if str(k).startswith(var)}
    keep = [c for c in summary.coords if c not in summary.dims]
    return summary.drop_vars(keep).rename(names)


def _theory_tables(hist) -> str:
    """The kind's own estimates beside its exact values (``theory.report(history)``: e.g. the Ising
    specific heat, susceptibility and Binder cumulant with Kaufman's exact energy and specific
    heat), as HTML; "" where the kind has none."""
    from . import registry

    kind = hist.attrs.get("eqflow_kind")
    theory = getattr(registry.get(kind), "theory", None) if kind in registry.available() else None
    found = theory.report(hist) if hasattr(theory, "report") else None
    if found is None:
        return ""
    title, ds = found
    names = [v for v in ds.data_vars if not str(v).endswith(("_sem", "_exact"))]
    points = [d for d in ds[names[0]].dims] if names else []
    stacked = ds.stack(point=points) if points else ds.expand_dims(point=[0])
    rows = []
    for i in range(stacked.sizes["point"]):
        at = stacked.isel(point=i)
        row = {d: _number(at[d].item()) for d in points}
        for v in names:
            units = canonical_units(ds[v].attrs.get("units", ""))
            row[f"{v} [{units}]" if units not in ("", "1") else v] = (
                f"{_number(float(at[v]))} ± {float(at[f'{v}_sem']):.2g}" if f"{v}_sem" in at else _number(float(at[v])))
            if f"{v}_exact" in at:
                row[f"{v} exact"] = _number(float(at[f"{v}_exact"]))
        rows.append(row)
    import pandas as pd

    return f"<h2>{html.escape(title)}</h2>{pd.DataFrame(rows).to_html(escape=True)}"


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def estimates_table(hist, summary, scalars, units: dict | None = None):
    """One row per parameter point (per stage of an anneal): "mean ± sem" with units, R-hat (flagged
    "not mixed" above ``RHAT_THRESHOLD`` = 1.01), bulk/tail ESS, the members off the others (member
    z above ``MEMBER_Z_THRESHOLD`` = 4), records in the window, and the exact value with z, flagged
    "DISAGREES" where |z| > ``Z_THRESHOLD`` = 3, where the kind's theory gives one (``v_exact`` of
    :func:`eqflow.summarize`)."""
    import pandas as pd

    points = list(summary[scalars[0]].dims) if scalars else []
    stacked = summary.stack(point=points) if points else summary.expand_dims(point=[0])
    rows = []
    for i in range(stacked.sizes["point"]):
        at = stacked.isel(point=i)
        row = {d: _number(at[d].item()) + f" {summary[d].attrs.get('units', '')}".rstrip() for d in points}
        for v in scalars:
            unit = canonical_units((units or {}).get(v, hist[v].attrs.get("units", "") if v in hist else ""))
            row[f"{v} [{unit}]"] = f"{_number(float(at[v]))} {error_text(at, v, hist.sizes.get('member', 1))}"
            if f"{v}_exact" in at:
                z = float(at[f"{v}_z"])
                row[f"{v} exact"] = _number(float(at[f"{v}_exact"]))
                row[f"{v} z"] = f"{z:+.1f}" + (" DISAGREES" if bool(at[f"{v}_disagrees"]) else "")
            rhat = float(at[f"{v}_rhat"])
            row[f"{v} R-hat"] = f"{rhat:.3f}" + (" not mixed" if bool(at[f"{v}_unmixed"]) else "")
            row[f"{v} ESS bulk/tail"] = f"{float(at[f'{v}_ess_bulk']):.0f}/{float(at[f'{v}_ess_tail']):.0f}"
            row[f"{v} members off"] = members_off(at[f"{v}_stuck"])
        row["window"] = int(at[f"{scalars[0]}_window"]) if scalars else 0
        rows.append(row)
    return pd.DataFrame(rows)


def error_text(at, var: str, members: int) -> str:
    """"± sem", or where there is no standard error, why: too few records in the window, one
    member whose records do not vary (a deterministic run such as SCF), records that do not vary."""
    sem = float(at[f"{var}_sem"])
    if np.isfinite(sem):
        return f"± {sem:.2g}"
    window = int(at[f"{var}_window"]) if f"{var}_window" in at else 0
    if window < 4:
        return f"(no error bar: {window} record(s) in the equilibrium window, 4 needed)"
    if members < 2:
        return "(no error bar: one member, whose records do not vary: deterministic)"
    return "(no error bar: the records do not vary in the window: deterministic)"


def _number(x) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)
