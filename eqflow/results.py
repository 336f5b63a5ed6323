"""Open histories and chain runs: ``eq.open`` and ``eq.final_state``."""
from __future__ import annotations

from pathlib import Path

import xarray as xr

from . import registry, schema, store
from .errors import StoreError


def open(path: str | Path) -> xr.Dataset:  # noqa: A001  (the public name is eq.open)
    """Open a history store lazily; only records of completed segments are included.

    ``xr.open_zarr(path)`` reads the same store; it also shows not-yet-written records
    (NaN) of an interrupted run, which this function leaves out.
    """
    return store.open_history(path)


def final_state(history: xr.Dataset | str | Path) -> xr.Dataset:
    """The system at the last completed step of a history: a valid system Dataset.

    Read from the store's checkpoint, so it is exact even when the state was not recorded
    at that step. Its ``eqflow_step`` continues the step count (and the random streams);
    ``eqflow_parent`` names the store it came from.
    """
    path = history if isinstance(history, (str, Path)) else history.attrs.get(store.STORE_ATTR)
    if path is None:
        raise StoreError(
            "history: expected a Dataset from eq.open/eq.run (attribute 'eqflow_store') or a store path, got a Dataset without it"
        )
    attrs = store.read_attrs(path)
    kind = attrs.get(schema.KIND_ATTR)
    if kind is None:
        raise StoreError(f"store {str(path)!r}: expected an eqflow history (attribute 'eqflow_kind'), got a Zarr store without it")
    variables = list(registry.get(kind).schema["variables"])
    state, done = store.read_checkpoint(path, variables)
    if done is None:
        raise StoreError(f"store {str(path)!r}: the run stopped before its first record; there is no state to continue from")
    coords = xr.open_zarr(str(path), consolidated=True).coords
    keep = {k: c.variable.load() for k, c in coords.items() if not any(store.is_step_dim(d) for d in (k, *c.dims))}
    ds = xr.Dataset(state, coords=keep)
    ds.attrs = {schema.KIND_ATTR: kind, schema.SEED_ATTR: attrs["eqflow_seed"], schema.STEP_ATTR: int(done),
                "eqflow_parent": str(path)}
    return schema.validate(ds)
