"""Open histories and chain runs: ``eq.open``, ``eq.final_state`` and ``eq.final_values``."""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from . import dataset, registry, store
from .errors import StoreError
from .location import as_location
from .store import HistoryStore


def open(path, storage_options: dict | None = None) -> xr.Dataset:  # noqa: A001  (the public name is eq.open)
    """Open a history store lazily; only records of completed segments are included.

    ``path``: a local path, an fsspec URL (with ``storage_options``) or a zarr Store
    (:mod:`eqflow.location`). ``xr.open_zarr(path, storage_options=...)`` reads the same
    store; it also shows not-yet-written records (NaN) of an interrupted run, which this
    function leaves out.
    """
    return HistoryStore(path, storage_options).open()


def final_state(history, storage_options: dict | None = None) -> xr.Dataset:
    """The system at the last completed step of a history: a valid system Dataset.

    ``history``: a Dataset from ``eq.run``/``eq.open`` (its store is found again, in memory
    too), or a store location as :func:`open` takes it. Read from the store's checkpoint, so
    it is exact even when the state was not recorded at that step. Its ``eqflow_step``
    continues the step count (and the random streams); ``eqflow_parent`` names the store it
    came from (its last path component: no local directories).
    """
    if isinstance(history, xr.Dataset):
        path = store.location_of(history)
        if path is None:
            raise StoreError("history: expected a Dataset from eq.open/eq.run (attribute 'eqflow_store') or a "
                             "store location, got a Dataset without it")
    else:
        path = as_location(history, storage_options)
    history_store = HistoryStore(path)
    attrs = history_store.eqflow_attrs()
    kind = attrs.get(dataset.KIND_ATTR)
    variables = list(registry.get(kind).schema.variables)
    # the checkpoint slot, the coordinates and constants, and every array's metadata are checked
    # against the store's commit record first: a chained run never starts from other data
    state, done = history_store.checkpoint(variables)
    if done is None:
        raise StoreError(f"store {path.name!r}: the run stopped before its first record; "
                         "there is no state to continue from")
    try:
        coords = xr.open_zarr(path.zarr(), consolidated=True).coords
        keep = {k: c.variable.load() for k, c in coords.items()
                if not any(store.is_step_dim(d) for d in (k, *c.dims))}
    except Exception as exc:  # a damaged coordinate chunk: named, not raw
        raise StoreError(f"store {path.name!r}: unreadable ({type(exc).__name__}: {exc}); eq.verify names the "
                         f"damaged arrays; rerun with overwrite=True") from None
    ds = xr.Dataset(state, coords=keep)
    ds.attrs = {dataset.KIND_ATTR: kind, dataset.SEED_ATTR: attrs["eqflow_seed"], dataset.STEP_ATTR: int(done),
                **json.loads(attrs.get("eqflow_attributes", "{}")), "eqflow_parent": path.short_name,
                "eqflow_parent_run": attrs.get("eqflow_run", "")}
    return dataset.validate(ds)


def final_values(history: xr.Dataset, variables=None) -> xr.Dataset:
    """Each member's last recorded value at or before the step it stopped at.

    A stopped member's later records are NaN; this picks, per member and parameter point,
    the record at ``stopped_at`` (or the last one before it, for a coarser record interval),
    and the last record for members still running. Returns one variable per recorded
    quantity without its step dimension, plus ``step`` of the value picked (``<var>_step``).

    >>> import eqflow as eq, tempfile, os
    >>> ds = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    >>> hist = eq.run(ds, "metropolis", steps=3, store=os.path.join(tempfile.mkdtemp(), "h.zarr"), progress=False)
    >>> int(eq.final_values(hist).energy_step.max())
    3
    """
    if "stopped_at" not in history:
        raise StoreError("history: expected a history from eq.open/eq.run (with 'stopped_at'), "
                         "got a Dataset without it")
    stopped = history["stopped_at"]
    last = int(history.attrs.get(store.STEPS_DONE, -1))
    at = stopped.where(stopped >= 0, last)
    names = variables or [v for v, da in history.data_vars.items() if da.ndim and store.is_step_dim(da.dims[0])]
    out = {}
    for name in [names] if isinstance(names, str) else names:
        da = history[name]
        dim = da.dims[0]
        steps = history[dim].values
        index = np.searchsorted(steps, at.values, side="right") - 1
        pick = xr.DataArray(np.maximum(index, 0), dims=at.dims)
        value = da.isel({dim: pick})
        if (index < 0).any():  # no record at or before the stop (a coarse interval): no value
            value = value.where(xr.DataArray(index >= 0, dims=at.dims))
        out[name] = value.drop_vars(dim, errors="ignore")
        out[f"{name}_step"] = xr.DataArray(np.where(index >= 0, steps[np.maximum(index, 0)], -1), dims=at.dims,
                                           coords=at.coords, attrs={"units": "1", "long_name": f"step of {name}"})
    return xr.Dataset(out, attrs={store.STORE_ATTR: history.attrs.get(store.STORE_ATTR, "")})


def to_inference_data(history: xr.Dataset, var, *, member_dim: str = "member"):
    """A history's records as an ArviZ ``InferenceData``: chains are the members, draws the steps.

    ``var``: a record along ``step`` (or a list of them), placed in the ``posterior`` group
    with dims ``(chain, draw, *other dims)``; the other ensemble dims (the swept parameters,
    e.g. ``temperature``) and the record's own dims stay named dims with their coordinates, so
    ``az.rhat``, ``az.ess`` and ``az.plot_trace`` work per parameter point. ``draw`` is labelled
    by the step numbers and ``chain`` by the member labels. Records after a member stopped are
    NaN (as in the history). Needs ArviZ (``pip install arviz``), imported here only.
    """
    import arviz as az

    names = [var] if isinstance(var, str) else list(var)
    recorded = [v for v in history.data_vars if history[v].dims[:1] == ("step",)]
    for name in names:
        if name not in recorded or member_dim not in history[name].dims:
            raise ValueError(f"var: expected a variable recorded along 'step' with a {member_dim!r} dim, got "
                             f"{name!r}; recorded: {recorded}")
    posterior = {}
    for name in names:
        da = history[name]
        other = [d for d in da.dims if d not in ("step", member_dim)]
        da = da.transpose(member_dim, "step", *other).rename({member_dim: "chain", "step": "draw"})
        posterior[name] = da.drop_vars([c for c in da.coords if c not in da.dims and c not in ("chain", "draw")
                                        and not set(da[c].dims) <= set(other)]).load()
    dataset = xr.Dataset(posterior, attrs={k: v for k, v in history.attrs.items() if isinstance(v, (str, int, float))})
    return az.InferenceData(posterior=dataset)
