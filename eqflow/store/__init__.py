"""Zarr history stores, layered without cycles:

``atomic`` (local files: aside-fsync-rename, hidden siblings) <- ``root`` (the sealed root
document and marker) <- ``_zarr_fast`` (the one module using zarr's private API, behind a
switch) <- ``chunks`` (region writes that report each chunk's checksum) <- ``manifest`` (what
each commit wrote, chained to the root) <- ``layout`` (a new store and its commit 0) <-
``history`` (:class:`HistoryStore`: the object every caller uses).
"""
from . import _zarr_fast
from .atomic import settle
from .chunks import write
from .history import HistoryStore, NoIntegrityRecord, is_step_dim, location_of
from .layout import ArraySpec, RecordPlan, VariableSpec, plan_arrays
from .root import (
                   CHECKPOINT,
                   COMMIT,
                   DIGEST,
                   FORMAT,
                   FORMAT_ATTR,
                   LOCATION_KEY,
                   SLOT,
                   STATUS,
                   STEPS_DONE,
                   STORE_ATTR,
                   check_format,
                   mark,
                   read_attrs,
)

__all__ = ["ArraySpec", "CHECKPOINT", "COMMIT", "DIGEST", "FORMAT", "FORMAT_ATTR", "HistoryStore", "LOCATION_KEY",
           "NoIntegrityRecord", "RecordPlan", "SLOT", "STATUS", "STEPS_DONE", "STORE_ATTR", "VariableSpec",
           "_zarr_fast", "check_format", "is_step_dim", "location_of", "mark", "plan_arrays", "read_attrs",
           "settle", "write"]
