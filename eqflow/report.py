"""A self-contained HTML report of a history store: summary table, trace figures, provenance."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

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
    summary = summarize(hist)
    scalars = [v for v in hist.data_vars if hist[v].dims[:1] == ("step",) and v in summary]
    table = estimates_table(hist, summary, scalars)
    figures = "\n".join(
        f'<figure><img alt="trace of {html.escape(v)}" src="data:image/png;base64,{_png(trace(hist, v))}">'
        f"<figcaption>{html.escape(v)}</figcaption></figure>" for v in scalars)
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
<h2>Outcomes</h2>{outcomes}
<h2>Traces</h2>{figures}
<h2>Provenance</h2><table class="provenance">{provenance}</table></body></html>"""
    output = Path(output)
    output.write_text(page, encoding="utf-8")
    return output


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def estimates_table(hist, summary, scalars):
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
            units = hist[v].attrs.get("units", "")
            row[f"{v} [{units}]"] = f"{_number(float(at[v]))} ± {float(at[f'{v}_sem']):.2g}"
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


def _number(x) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)
