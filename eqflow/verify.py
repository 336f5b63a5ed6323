"""``eq.verify``: prove that a history store is whole before trusting or sharing it.

Every array of an eqflow store carries crc32c checksums and writes all its chunks, so damage
shows up as a missing chunk or a failed checksum. ``verify`` lists every record chunk up to the
steps done, reads every chunk (checking each checksum) and the checkpoint slot a resume would
use, and raises one StoreError naming each damaged array with its steps.
"""
from __future__ import annotations

import math

import zarr

from . import store
from .errors import StoreError
from .location import as_location


def verify(path, storage_options: dict | None = None) -> str:
    """Check every chunk of the store at ``path`` (a location as ``eq.open`` takes it); return its
    name (path or URL), or raise a StoreError listing the damage.

    >>> import eqflow as eq, tempfile, os
    >>> ds = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    >>> hist = eq.run(ds, "metropolis", steps=3, store=os.path.join(tempfile.mkdtemp(), "h.zarr"), progress=False)
    >>> os.path.basename(eq.verify(hist.attrs["eqflow_store"]))
    'h.zarr'
    """
    path = as_location(path, storage_options)
    attrs = store.read_attrs(path)
    if "eqflow_kind" not in attrs:
        raise StoreError(f"store {path.name!r}: expected an eqflow history (attribute 'eqflow_kind'), got a Zarr "
                         "store without it")
    store.check_format(path, attrs)
    done = attrs.get(store.STEPS_DONE)
    group = zarr.open_group(path.zarr(), mode="r")
    problems = []
    for name, array in group.arrays():
        if done is not None or name not in store.outcomes.ARRAYS:  # outcomes are written with the first segment
            problems += _check_array(path, name, array, group, done)
    if done is not None:
        slot = attrs.get(store.SLOT, 0)
        two_segments = done - attrs.get("eqflow_step_start", 0) > attrs.get("eqflow_segment", done)
        for name in store.checkpoint_names(path):
            array = group[name]
            # the slot a resume reads, and the previous one where it was written (a segment earlier)
            written = two_segments or path.keys_under(f"{array.path}/c/{1 - slot}")
            for which, step in [(slot, done)] + ([(1 - slot, "previous segment")] if written else []):
                try:
                    store.read_slot(path, array, which, step)
                except StoreError as exc:
                    problems.append(str(exc).split(": ", 1)[1])
    if problems:
        raise StoreError(f"store {path.name!r}: damaged ({len(problems)} problem(s), steps done {done}):\n  - "
                         + "\n  - ".join(problems))
    return path.name


def _check_array(path, name, array, group, done) -> list[str]:
    """Missing chunks (local stores) and unreadable ones, for the records written so far."""
    dims = array.metadata.dimension_names or ()
    rows = array.shape[0] if array.ndim else 0
    if dims and store.is_step_dim(dims[0]) and name != dims[0]:
        try:
            steps = group[dims[0]][:]
        except Exception:  # the step coordinate itself is damaged: reported for that array
            return []
        rows = int((steps <= (-1 if done is None else done)).sum())
    if array.ndim == 0:  # a scalar coordinate: one chunk, "c"
        if path.keys_under(f"{array.path}/c") == 0:
            return [f"{name}: its one chunk is missing"]
        try:
            array[()]
        except Exception as exc:  # checksum or decompression failure
            return [f"{name}: unreadable ({type(exc).__name__}: {exc})"]
        return []
    if rows == 0:
        return []
    chunk_rows = array.chunks[0]
    per_row = math.prod(-(-s // c) for s, c in zip(array.shape[1:], array.chunks[1:]))
    out = []
    for first in range(0, rows, chunk_rows):
        index = first // chunk_rows
        missing = store.missing_chunks(path, array, index, per_row)
        where = _where(dims, group, first, min(first + chunk_rows, rows))
        if missing:
            out.append(f"{name}: {missing} chunk(s) missing at {where}")
            continue
        try:
            array[first:min(first + chunk_rows, rows)]
        except Exception as exc:  # checksum or decompression failure
            out.append(f"{name}: unreadable at {where} ({type(exc).__name__}: {exc})")
    return out


def _where(dims, group, first, last) -> str:
    if dims and store.is_step_dim(dims[0]) and dims[0] in group:
        try:
            steps = group[dims[0]][first:last]
        except Exception:  # a damaged step coordinate: rows, not steps
            return f"rows {first}-{last - 1}"
        return f"steps {int(steps[0])}-{int(steps[-1])}" if len(steps) else f"rows {first}-{last - 1}"
    return f"rows {first}-{last - 1}"
