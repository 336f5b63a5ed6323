"""A new store's layout: every array preallocated, its coordinates written, commit 0 recorded.

Layout of a store (Zarr v3, readable with plain ``xr.open_zarr``):
- one array per recorded variable, dims ``(step_dim, member, *sweeps[, sites])``, where the
  finest record interval uses ``step`` and another interval k uses ``step_k``;
- coordinates of the system (units in attributes) and of every step dimension;
- ``_checkpoint/<name>``: two slots ``(2, member, *sweeps, *own dims)`` of the full state,
  the operator-owned state (e.g. DIIS history) and the stop rules' state;
- ``_eqflow/commits/<n>``: what each commit wrote (:mod:`eqflow.store.manifest`);
- root attributes: ``eqflow_format`` (the layout version), provenance, the marker and the
  digest that seals them (:mod:`eqflow.store.root`).
Every chunk is compressed with zstd and carries a crc32c checksum; no array has a zero-length
chunk (any Zarr v3 reader, e.g. tensorstore, reads every array).
"""
from __future__ import annotations

import json
import math
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import cf, outcomes
from ..errors import StoreError
from ..location import Location, as_location
from . import _zarr_fast as fast
from . import manifest
from .atomic import flush, move_into_place, remove_leftovers, sibling
from .chunks import chunk_indices, chunk_key
from .root import CHECKPOINT, COMMIT, FORMAT, FORMAT_ATTR, SLOT, STATUS, STEPS_DONE, sealed

IN_MEMORY_LAYOUT = 64 * 2**20  # bytes of coordinates up to which a local layout is made in memory first
COORDINATE_CHUNK = 16 * 2**20  # bytes per chunk of a large coordinate (e.g. two-electron integrals)


@dataclass(frozen=True)
class ArraySpec:
    """One array of a layout: dims, shape, chunk shape, dtype, fill value, attributes, and its
    values where it is written with the layout (coordinates), else None."""

    dims: tuple
    shape: tuple
    chunks: tuple
    dtype: np.dtype
    fill: object
    attrs: dict
    values: np.ndarray | None = None

    def __post_init__(self):
        # no zero-length chunk: tensorstore and other readers refuse "chunk_shape": [0]
        object.__setattr__(self, "chunks", tuple(max(1, int(c)) for c in (self.chunks or self.shape)))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))


@dataclass(frozen=True)
class RecordPlan:
    """Which variable is recorded every how many steps, over the run's steps [first, last]."""

    every: dict[str, int]
    first: int
    last: int

    def dim(self, var: str) -> str:
        k = self.every[var]
        return "step" if k == min(self.every.values()) else f"step_{k}"

    def steps(self, var: str) -> np.ndarray:
        k = self.every[var]
        return np.arange(-(-self.first // k) * k, self.last + 1, k, dtype=np.int64)

    def index(self, var: str, step: int) -> int:
        """Position along the step dim of the first record at or after ``step``."""
        k = self.every[var]
        return -(-step // k) - -(-self.first // k)

    def period(self) -> int:
        return math.lcm(*self.every.values())


@dataclass(frozen=True)
class VariableSpec:
    """A recorded or checkpointed variable: dims after the ensemble dims, their sizes, dtype, attributes."""

    dims: tuple
    sizes: tuple
    dtype: object
    attrs: dict


def plan_arrays(system, plan: RecordPlan, ensemble: list[str], chunks: dict, records_per_chunk: dict,
                records: dict, checkpoint: dict, extra: dict | None = None,
                step_coordinates: dict | None = None) -> dict[str, ArraySpec]:
    """{array path: ArraySpec} of a history store. ``records`` and ``checkpoint``:
    {name: VariableSpec (or the 4-tuple of its fields)}."""
    arrays = {}
    scalar_coords = " ".join(str(k) for k, c in system.coords.items() if k not in system.dims)
    for name, coord in system.coords.items():
        arrays[str(name)] = ArraySpec(coord.dims, coord.shape, coordinate_chunks(coord.shape, coord.dtype.itemsize),
                                      coord.dtype, 0, dict(coord.attrs), coord.values)
    lead = tuple(system.sizes[d] for d in ensemble)
    block = tuple(chunks.get(d, system.sizes[d]) for d in ensemble)
    for var in plan.every:
        steps = plan.steps(var)
        arrays[plan.dim(var)] = ArraySpec((plan.dim(var),), steps.shape, steps.shape, steps.dtype, 0,
                                          {"units": "1", "long_name": "steps done"}, steps)
        spec = _variable(records[var])
        dtype = np.dtype(spec.dtype)
        along = " ".join((step_coordinates or {}).get(plan.dim(var), []))
        attrs = {**spec.attrs, "record_every": plan.every[var], "coordinates": f"{scalar_coords} {along}".strip()}
        fill = record_fill(dtype)
        if dtype.kind in "iu":  # declared, so that xarray masks a stopped member's integer records as NaN
            attrs["_FillValue"] = int(fill)
        arrays[var] = ArraySpec((plan.dim(var), *ensemble, *spec.dims), (len(steps), *lead, *spec.sizes),
                                (records_per_chunk[var], *block, *spec.sizes), dtype,
                                0 if fill is None else fill, attrs)
    for name, fields in checkpoint.items():
        spec = _variable(fields)
        arrays[f"{CHECKPOINT}/{name}"] = ArraySpec(("slot", *ensemble, *spec.dims), (2, *lead, *spec.sizes),
                                                   (1, *block, *spec.sizes), spec.dtype, 0, dict(spec.attrs))
    for name, (dtype, attrs_) in outcomes.ARRAYS.items():
        attrs_ = {**attrs_, "coordinates": scalar_coords}
        arrays[name] = ArraySpec(tuple(ensemble), lead, lead, dtype, 0, attrs_)
        arrays[f"{CHECKPOINT}/{name}"] = ArraySpec(("slot", *ensemble), (2, *lead), (1, *lead), dtype, 0, attrs_)
    arrays.update(extra or {})
    return {name: replace(spec, attrs=cf.complete(name.rsplit("/", 1)[-1], spec.attrs))
            for name, spec in arrays.items()}


def record_fill(dtype) -> object:
    """The value of a record where a member has no data (after it stopped, or where an operator
    reports no diagnostic): NaN for floats, the most negative integer for signed integers (the
    largest for unsigned ones), declared as the record's ``_FillValue``; None for booleans (no
    value is free: a stopped member's boolean records keep its last value)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "i":
        return np.iinfo(dtype).min
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    return None


def _variable(spec) -> VariableSpec:
    return spec if isinstance(spec, VariableSpec) else VariableSpec(*spec)


def coordinate_chunks(shape: tuple, itemsize: int) -> tuple:
    """Chunks of a coordinate: whole up to COORDINATE_CHUNK bytes, else split along its first dims."""
    chunks = [max(1, n) for n in shape]
    for axis in range(len(chunks)):
        rest = itemsize * math.prod(chunks[axis + 1:])
        if rest * chunks[axis] <= COORDINATE_CHUNK:
            break
        chunks[axis] = max(1, COORDINATE_CHUNK // rest)
    return tuple(chunks)


def create(loc, arrays: dict[str, ArraySpec], attrs: dict, replace: bool = False) -> str:
    """Lay out a new store (replacing an eqflow store with ``replace``) and record commit 0;
    return the SHA-256 of commit 0's manifest.

    Atomic on a local disk: the layout is written into a hidden sibling (fsynced) and renamed
    into place, so a crash leaves either nothing (or, with ``replace``, the old store) or a
    complete, resumable new store. ``replace`` swaps an existing eqflow store out in one rename
    (Linux renameat2 RENAME_EXCHANGE; elsewhere two renames) and then deletes it. Siblings that
    killed runs left beside the store are removed first.

    Object stores cannot rename: the root is first marked ``eqflow_status = "creating"`` (one
    atomic object write, so an old store stops reading as complete before anything of it is
    removed), then cleared and laid out, and the root attributes are written last. A kill in
    between leaves a store that ``eq.open`` refuses by name and that the next run replaces;
    the old store's records are gone from that moment (an object store has no rename).
    """
    root = {"Conventions": cf.CONVENTIONS, **attrs, FORMAT_ATTR: FORMAT, STEPS_DONE: None, SLOT: 0, STATUS: "starting"}
    loc = as_location(loc)
    if not loc.is_local:
        try:
            return _create(loc, root, arrays, replace=replace)
        except OSError as exc:  # a full disk or a lost connection: the store reads as never finished
            raise StoreError(f"store {loc.name!r}: laying it out failed ({exc}); it is marked as never finished "
                             f"and holds no records{' (the store it replaced is gone)' if replace else ''}: fix "
                             f"the cause and run again with overwrite=True") from None
    remove_leftovers(loc.target)
    building = sibling(loc.target, "new")
    try:
        small = sum(spec.values.nbytes for spec in arrays.values() if spec.values is not None) <= IN_MEMORY_LAYOUT
        if small and fast.enabled():
            sha = write_folder(in_memory(root, arrays), building)
        else:  # large constants (a molecule's integrals): straight to disk, chunk by chunk
            sha = _create(Location(building), root, arrays, replace=False, hidden=True)
    except OSError as exc:  # a full disk: the half-made layout goes, whatever was at the path stays
        shutil.rmtree(building, ignore_errors=True)
        raise StoreError(f"store {loc.name!r}: laying out the new store failed ({exc}); nothing at its path was "
                         f"changed: fix the cause (e.g. free disk space) and run again") from None
    move_into_place(building, loc.target, replace)
    return sha


def in_memory(root_attrs: dict, arrays: dict) -> tuple[dict, str]:
    """({key: bytes} of the whole layout with commit 0 and the sealed root, commit 0's SHA-256)."""
    contents = fast.in_memory_layout(root_attrs, arrays)
    chunks, metadata = manifest.layout_record(contents, arrays)
    memory = _Collect()
    sha = manifest.write_commit(memory, 0, None, None, 0, chunks, metadata)
    contents.update(memory.objects)
    contents.update(manifest.group_objects())
    root = json.loads(contents["zarr.json"])
    root["attributes"] = sealed({**root_attrs, COMMIT: {"n": 0, "sha256": sha}})
    contents["zarr.json"] = json.dumps(root, allow_nan=True).encode()
    return contents, sha


class _Collect:
    """A stand-in location that keeps written objects in a dict (a layout made in memory)."""

    def __init__(self):
        self.objects = {}

    def write_object(self, key: str, data: bytes) -> None:
        self.objects[key] = data


def write_folder(made: tuple[dict, str], folder) -> str:
    """The layout's objects as files under a new ``folder`` (as zarr's LocalStore lays them out),
    fsynced; returns commit 0's SHA-256."""
    contents, sha = made
    files = []
    for key in sorted(contents):
        target = Path(folder).joinpath(*key.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.write(contents[key])
        files.append(target)
    flush(Path(folder), files, sorted({f.parent for f in files}, key=lambda p: -len(p.parts)) + [Path(folder)])
    return sha


def _create(loc: Location, root_attrs: dict, arrays: dict, replace: bool, hidden: bool = False) -> str:
    """Lay out every array through zarr and consolidate, then record commit 0 and write the
    root's final, sealed attributes last (``hidden``: a layout made aside, renamed into place whole)."""
    import zarr
    import zarr.api.asynchronous
    from zarr.codecs import Crc32cCodec, ZstdCodec

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        if replace:  # an object store: the old one stops reading as complete in one write
            zarr.open_group(loc.zarr(), mode="r+").update_attributes({STATUS: "creating"})
        mode = "w" if replace or not loc.is_local else "w-"
        creating = {**root_attrs, STATUS: "creating"}

        def options(name, spec):
            # every chunk is written and checksummed: a missing or damaged one is detectable (eq.verify)
            return dict(name=name, shape=spec.shape, chunks=spec.chunks, dtype=spec.dtype, fill_value=spec.fill,
                        overwrite=True, dimension_names=spec.dims, attributes=spec.attrs,
                        compressors=[ZstdCodec(), Crc32cCodec()], config={"write_empty_chunks": True})

        if fast.enabled():
            group = fast.gather([zarr.api.asynchronous.open_group(loc.zarr(), mode=mode, zarr_format=3,
                                                                  attributes=creating)])[0]

            async def one(name, spec):
                array = await group.create_array(**options(name, spec))
                if spec.values is not None:
                    await array.setitem(Ellipsis, spec.values)

            fast.gather(one(name, spec) for name, spec in arrays.items())
        else:  # zarr's public, synchronous API, one array after another
            group = zarr.open_group(loc.zarr(), mode=mode, zarr_format=3, attributes=creating)
            for name, spec in arrays.items():
                array = group.create_array(**options(name, spec))
                if spec.values is not None:
                    array[...] = spec.values
        zarr.consolidate_metadata(loc.zarr())
    if loc.is_local:  # zarr's own writes: on disk before commit 0 and the root's final attributes
        flush(loc.target, [p for p in loc.target.rglob("*") if p.is_file()],
              [p for p in loc.target.rglob("*") if p.is_dir()] + [loc.target])
    chunks, metadata = _read_back(loc, arrays)
    for key, data in manifest.group_objects().items():
        loc.write_object(key, data)
    sha = manifest.write_commit(loc, 0, None, None, 0, chunks, metadata)
    zarr.open_group(loc.zarr(), mode="r+").update_attributes(sealed({**root_attrs, COMMIT: {"n": 0, "sha256": sha}}))
    return sha


def _read_back(loc: Location, arrays: dict) -> tuple[dict, dict]:
    """(chunks, metadata) of commit 0, read back from a layout zarr wrote."""
    chunks, metadata = {}, {}
    for name, spec in arrays.items():
        metadata[name] = manifest.metadata_digest(json.loads(loc.read_object(f"{name}/zarr.json")))
        if spec.values is None:
            continue
        for chunk in chunk_indices(Ellipsis, spec.shape, spec.chunks):
            tail = loc.object_tail(f"{name}/{chunk_key(chunk)}")
            if tail is not None:
                chunks.setdefault(name, {})[chunk_key(chunk)] = tail.hex()
    return chunks, metadata
