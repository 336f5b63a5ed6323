"""``eq.verify``: prove that a history store is whole before trusting or sharing it.

Every commit of an eqflow store records what it wrote (:mod:`eqflow.store.manifest`): each
chunk's checksum and each array's metadata, chained up to the sealed root. ``verify`` checks the
root's digest and the chain, every array's metadata and consolidated entry, that every
recorded chunk is present and holds the bytes its commit wrote, and that every chunk decodes
(its own crc32c checksum); it raises one StoreError naming each damaged array, chunk and step.
Hidden siblings that killed runs left beside a local store are reported as a warning (the next
run on the store removes them).
"""
from __future__ import annotations

import warnings

from ..errors import StoreError
from . import manifest
from .history import HistoryStore


class LeftoverWarning(UserWarning):
    """Hidden folders that killed runs left beside a store (not part of it; the next run removes them)."""


def verify(path, storage_options: dict | None = None) -> str:
    """Check the store at ``path`` (a location as ``eq.open`` takes it) against its commit record;
    return its name (path or URL), or raise a StoreError listing the damage.

    >>> import eqflow as eq, tempfile, os
    >>> ds = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    >>> hist = eq.run(ds, "metropolis", steps=3, store=os.path.join(tempfile.mkdtemp(), "h.zarr"), progress=False)
    >>> os.path.basename(eq.verify(hist.attrs["eqflow_store"]))
    'h.zarr'
    """
    store = HistoryStore(path, storage_options)
    attrs, record, problems = store.problems(trailers=True, full=True)
    flagged = {problem.split(":", 1)[0] for problem in problems}
    problems += _decode_every_chunk(store, record, skip=flagged)
    manifest.raise_problems(store.loc, problems, attrs.get("eqflow_steps_done"))
    left = store.leftovers()
    if left:
        warnings.warn(f"store {store.name!r}: {len(left)} hidden folder(s) left beside it by killed runs "
                      f"({', '.join(left[:3])}{', ...' if len(left) > 3 else ''}); not part of the store, the next "
                      f"run on it removes them", LeftoverWarning, stacklevel=2)
    return store.name


def _decode_every_chunk(store: HistoryStore, record: manifest.Record, skip=()) -> list[str]:
    """Read every recorded chunk through zarr (each checksum and decompression checked), but
    those of the arrays in ``skip`` (already named)."""
    import zarr

    group = zarr.open_group(store.loc.zarr(), mode="r")
    problems = []
    for name, chunks in sorted(record.chunks.items()):
        if name in skip:
            continue
        array = group[name]
        if array.nbytes <= 2**28:
            try:
                array[...]
                continue
            except Exception:  # find which chunk, below
                pass
        bad = []
        for key in chunks:
            parts = [int(p) for p in key.split("/")[1:]]
            if any(i * c >= n for i, c, n in zip(parts, array.chunks, array.shape)):
                continue  # outside the array since an early stop trimmed it
            index = tuple(slice(i * c, (i + 1) * c) for i, c in zip(parts, array.chunks))
            try:
                array[index]
            except Exception as exc:  # checksum or decompression failure
                bad.append(f"{key} ({type(exc).__name__}: {exc})")
        if bad:
            problems.append(f"{name}: {len(bad)} chunk(s) unreadable: {', '.join(bad[:3])}")
    return problems


__all__ = ["verify", "LeftoverWarning", "StoreError"]
