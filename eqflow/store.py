"""Zarr history stores: preallocated layout, region writes, an atomic "steps done" marker.

Layout of a store (Zarr v3, readable with plain ``xr.open_zarr``):
- one array per recorded variable, dims ``(step_dim, member, *sweeps[, sites])``, where the
  finest record interval uses ``step`` and another interval k uses ``step_k``;
- coordinates of the system (units in attributes) and of every step dimension;
- ``_checkpoint/<name>``: two slots ``(2, member, *sweeps, *own dims)`` of the full state,
  the operator-owned state (e.g. DIIS history) and the stop rules' state;
- root attributes: ``eqflow_format`` (the layout version), provenance and the marker
  ``eqflow_steps_done`` / ``eqflow_checkpoint_slot``,
  rewritten last after each segment (one atomic file write), so a killed run leaves a store
  that is consistent up to its last complete segment.

Every function takes a :class:`eqflow.location.Location` (or a path, URL or Store it accepts).
"""
from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import math
import os
import shutil
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import xarray as xr
import zarr
import zarr.api.asynchronous
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec
from zarr.core.dtype import get_data_type_from_native_dtype
from zarr.core.group import ConsolidatedMetadata, GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync as zarr_sync

from . import lease, outcomes
from .errors import StoreError
from .location import Location, as_location

STEPS_DONE, SLOT, STATUS, STORE_ATTR = "eqflow_steps_done", "eqflow_checkpoint_slot", "eqflow_status", "eqflow_store"
FORMAT_ATTR, FORMAT = "eqflow_format", 2  # 2: outcomes with 'cycled', operator-owned state, point-keyed streams
CHECKPOINT = "_checkpoint"
LOCATION_KEY = "eqflow_location"  # in Dataset.encoding of an opened history


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


def create_layout(loc, system: xr.Dataset, plan: RecordPlan, ensemble: list[str], chunks: dict,
                  records_per_chunk: dict, records: dict, checkpoint: dict, attrs: dict, replace: bool = False,
                  extra: dict | None = None, step_coordinates: dict | None = None) -> None:
    """Write the metadata, coordinates and an empty checkpoint of a new store, all arrays at once.

    ``records``: {var: (dims after the ensemble dims, sizes of those dims, dtype, attrs)} of
    every recorded variable; ``checkpoint``: {name: (dims after the ensemble dims, sizes,
    dtype, attrs)} of everything a resume needs. The arrays follow xarray's Zarr v3
    conventions (``dimension_names``, ``units`` and ``coordinates`` attributes), so
    ``xr.open_zarr`` reads the store as a Dataset.

    Atomic on a local disk: the layout is written into a hidden sibling and renamed into place,
    so a crash leaves either nothing (or, with ``replace``, the old store) or a complete,
    resumable new store. ``replace`` swaps an existing eqflow store out in one rename (Linux
    renameat2 RENAME_EXCHANGE; elsewhere two renames) and then deletes it.

    Object stores cannot rename: the root is first marked ``eqflow_status = "creating"`` (one
    atomic object write, so an old store stops reading as complete before anything of it is
    removed), then cleared and laid out, and the root attributes are written last. A crash in
    between leaves a store that ``eq.open`` refuses by name and that the next run replaces.
    """
    arrays = {}  # name -> (dims, shape, chunks, dtype, fill, attrs, values or None)
    scalar_coords = " ".join(str(k) for k, c in system.coords.items() if k not in system.dims)
    for name, coord in system.coords.items():
        arrays[str(name)] = (coord.dims, coord.shape, _coordinate_chunks(coord.shape, coord.dtype.itemsize),
                             coord.dtype, 0, dict(coord.attrs), coord.values)
    lead = tuple(system.sizes[d] for d in ensemble)
    block = tuple(chunks.get(d, system.sizes[d]) for d in ensemble)
    for var in plan.every:
        steps = plan.steps(var)
        arrays[plan.dim(var)] = ((plan.dim(var),), steps.shape, steps.shape, steps.dtype, 0,
                                 {"units": "1", "long_name": "steps done"}, steps)
        own, sizes, dtype, var_attrs = records[var]
        dtype = np.dtype(dtype)
        along = " ".join((step_coordinates or {}).get(plan.dim(var), []))
        var_attrs = {**var_attrs, "record_every": plan.every[var], "coordinates": f"{scalar_coords} {along}".strip()}
        arrays[var] = ((plan.dim(var), *ensemble, *own), (len(steps), *lead, *sizes),
                       (records_per_chunk[var], *block, *sizes), dtype, np.nan if dtype.kind == "f" else 0,
                       var_attrs, None)
    for name, (own, sizes, dtype, var_attrs) in checkpoint.items():
        arrays[f"{CHECKPOINT}/{name}"] = (("slot", *ensemble, *own), (2, *lead, *sizes), (1, *block, *sizes),
                                          np.dtype(dtype), 0, dict(var_attrs), None)
    for name, (dtype, attrs_) in outcomes.ARRAYS.items():
        attrs_ = {**attrs_, "coordinates": scalar_coords}
        arrays[name] = (tuple(ensemble), lead, lead, dtype, 0, attrs_, None)
        arrays[f"{CHECKPOINT}/{name}"] = (("slot", *ensemble), (2, *lead), (1, *lead), dtype, 0, attrs_, None)
    arrays.update(extra or {})
    root = {**attrs, FORMAT_ATTR: FORMAT, STEPS_DONE: None, SLOT: 0, STATUS: "starting"}
    loc = as_location(loc)
    if not loc.is_local:
        try:
            _create(loc, root, arrays, replace=replace)
        except OSError as exc:  # a full disk or a lost connection: the store reads as never finished
            raise StoreError(f"store {loc.name!r}: laying it out failed ({exc}); it is marked as never finished: "
                             f"fix the cause and run again with overwrite=True") from None
        return
    building = _sibling(loc.target, "new")
    try:
        if sum(spec[-1].nbytes for spec in arrays.values() if spec[-1] is not None) <= IN_MEMORY_LAYOUT:
            _write_folder(_in_memory(root, arrays), building)
        else:  # large constants (a molecule's integrals): straight to disk, chunk by chunk
            _create(Location(building), root, arrays, replace=False, hidden=True)
    except OSError as exc:  # a full disk: the half-made layout goes, whatever was at the path stays
        shutil.rmtree(building, ignore_errors=True)
        raise StoreError(f"store {loc.name!r}: laying out the new store failed ({exc}); nothing at its path was "
                         f"changed: fix the cause (e.g. free disk space) and run again") from None
    _move_into_place(building, loc.target, replace)


def _create(loc: Location, root_attrs: dict, arrays: dict, replace: bool, hidden: bool = False) -> None:
    """Lay out every array (concurrently, in zarr's event loop) and consolidate; the root's final
    attributes last, unless the layout is ``hidden`` (made aside and renamed into place whole)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        if replace:  # an object store: the old one stops reading as complete in one write
            zarr.open_group(loc.zarr(), mode="r+").update_attributes({STATUS: "creating"})
        group = zarr_sync(zarr.api.asynchronous.open_group(
            loc.zarr(), mode="w" if replace or not loc.is_local else "w-", zarr_format=3,
            attributes=root_attrs if hidden else {**root_attrs, STATUS: "creating"}))

        async def one(name, spec):
            dims, shape, chunks, dtype, fill, attrs, values = spec
            # every chunk is written and checksummed: a missing or damaged one is detectable (eq.verify)
            array = await group.create_array(
                name, shape=shape, chunks=chunks or shape, dtype=dtype, fill_value=fill, overwrite=True,
                dimension_names=dims, attributes=attrs, compressors=[ZstdCodec(), Crc32cCodec()],
                config={"write_empty_chunks": True})
            if values is not None:
                await array.setitem(Ellipsis, values)

        _gather(one(name, spec) for name, spec in arrays.items())
        zarr.consolidate_metadata(loc.zarr())
        if not hidden:
            zarr.open_group(loc.zarr(), mode="r+").update_attributes({STATUS: root_attrs[STATUS]})


IN_MEMORY_LAYOUT = 64 * 2**20  # bytes of coordinates up to which a local layout is made in memory first
COORDINATE_CHUNK = 16 * 2**20  # bytes per chunk of a large coordinate (e.g. two-electron integrals)


def _coordinate_chunks(shape: tuple, itemsize: int) -> tuple | None:
    """Chunks of a coordinate: whole up to COORDINATE_CHUNK bytes, else split along its first dims."""
    chunks = list(shape)
    for axis in range(len(chunks)):
        rest = itemsize * math.prod(chunks[axis + 1:])
        if rest * chunks[axis] <= COORDINATE_CHUNK:
            break
        chunks[axis] = max(1, COORDINATE_CHUNK // rest)
    return tuple(chunks) or None


def _in_memory(root_attrs: dict, arrays: dict) -> dict:
    """{key: bytes} of the layout, made in memory: every array's metadata built with zarr's own
    metadata classes (the same documents ``create_array`` writes, tested), the consolidated root
    made from them, and only the arrays with values written through zarr. About half the time of
    creating each array through zarr and consolidating (zarr reads back what it just wrote)."""
    contents = {}
    store = zarr.storage.MemoryStore(store_dict=contents)
    metadata = {name: _array_metadata(*spec[:6]) for name, spec in arrays.items()}
    groups = sorted({"/".join(parts[:i]) for parts in (name.split("/") for name in arrays)
                     for i in range(1, len(parts))})
    for name in groups:
        contents[f"{name}/zarr.json"] = _document(GroupMetadata(zarr_format=3))
    for name, meta in metadata.items():
        contents[f"{name}/zarr.json"] = _document(meta)
    through_zarr = []
    for name, spec in arrays.items():
        if spec[-1] is not None:
            chunks = _whole_chunks(metadata[name], (Ellipsis,), spec[-1])
            if chunks is None:  # strings, or large: zarr encodes them
                through_zarr.append(name)
            contents.update({f"{name}/{key}": data for key, data in chunks or []})

    async def fill(name):
        array = zarr.AsyncArray(metadata[name], zarr.storage.StorePath(store, name),
                                config={"write_empty_chunks": True})
        await array.setitem(Ellipsis, arrays[name][-1])

    if through_zarr:
        _gather(fill(name) for name in through_zarr)
    # as zarr.consolidate_metadata lays it out: the groups first (each with its own empty
    # consolidated metadata), then every array, by depth and name
    nodes = {**{name: GroupMetadata(zarr_format=3, consolidated_metadata=ConsolidatedMetadata(metadata={}))
                for name in groups}, **metadata}
    ordered = dict(sorted(nodes.items(), key=lambda item: (item[0].count("/"), item[0])))
    contents["zarr.json"] = _document(GroupMetadata(attributes=root_attrs, zarr_format=3,
                                                    consolidated_metadata=ConsolidatedMetadata(ordered)))
    return {key: value if isinstance(value, bytes) else value.to_bytes() for key, value in contents.items()}


def _document(meta) -> bytes:
    """A node's ``zarr.json`` as zarr writes it, without the indentation (which sends json to
    its pure-Python encoder: most of the time of making a layout)."""
    return json.dumps(meta.to_dict(), allow_nan=True).encode()


@functools.lru_cache(maxsize=64)
def _zarr_dtype(dtype: np.dtype):
    """zarr's data type of a NumPy dtype (zarr matches it against every registered type: cached)."""
    return get_data_type_from_native_dtype(dtype)


def _array_metadata(dims, shape, chunks, dtype, fill, attrs) -> ArrayV3Metadata:
    """The metadata ``create_array`` makes for an eqflow array: regular chunks, "/" keys, and
    every chunk zstd-compressed and crc32c-checksummed."""
    return ArrayV3Metadata(
        shape=shape, data_type=_zarr_dtype(np.dtype(dtype)),
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": chunks or shape}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}}, fill_value=fill,
        codecs=[BytesCodec(), ZstdCodec(), Crc32cCodec()], attributes=attrs, dimension_names=tuple(dims) or None)


def _write_folder(contents: dict, folder: Path) -> None:
    """The layout's objects as files under a new ``folder`` (as zarr's LocalStore lays them out):
    about half the time of creating every array on disk through zarr."""
    for key in sorted(contents):
        target = folder.joinpath(*key.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents[key])


def _gather(coroutines) -> list:
    """Run zarr coroutines side by side in zarr's own event loop, in one call from this thread
    (no thread per array: zarr's per-call cost is mostly the hop into its loop). Every one
    finishes before the first failure is raised: nothing still writes when the caller cleans up."""
    async def every():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    results = zarr_sync(every())
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def consolidate(loc) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(as_location(loc).zarr())


def write(loc, regions: list[tuple[str, tuple, np.ndarray]]) -> None:
    """Write each ``(array name, index, values)`` region, concurrently (whole-object atomic chunk writes).

    On a local store, a small region of whole chunks of an eqflow array is encoded here and each
    chunk file written atomically (:func:`_write_whole_chunks`); every other region goes through zarr."""
    loc = as_location(loc)
    if loc.is_local:
        regions = _write_whole_chunks(loc, regions)
    if not regions:
        return
    target = loc.zarr()
    if isinstance(target, str):  # one LocalStore for all regions, not one per array
        target = zarr.storage.LocalStore(target)

    async def one(var, index, values):
        array = await zarr.api.asynchronous.open_array(store=target, path=var, mode="r+")
        # every chunk written, even one equal to the fill value: a missing chunk then always means damage
        await array.with_config({"write_empty_chunks": True}).setitem(index, values)

    _gather(one(*region) for region in regions)


# eqflow's arrays: bytes (little-endian, C order; one-byte types name no endianness), then zstd
# level 0, then a crc32c checksum
_COMPRESS = [{"name": "zstd", "configuration": {"level": 0, "checksum": False}}, {"name": "crc32c"}]
CODECS = [[{"name": "bytes", "configuration": {"endian": "little"}}, *_COMPRESS], [{"name": "bytes"}, *_COMPRESS]]
DIRECT_WRITE_BYTES = 4 * 2**20  # larger regions go through zarr, which encodes chunks on several threads


def _write_whole_chunks(loc: Location, regions: list) -> list:
    """Write the regions that cover whole chunks of an array with eqflow's codecs (:data:`CODECS`),
    up to DIRECT_WRITE_BYTES each: chunk by chunk, the bytes zarr would write (tested byte for
    byte), each file written aside and renamed into place as zarr's own writes are. zarr's
    region write costs 1-2 ms (its codecs and file writes each hop onto a thread); this, tens of
    microseconds. Returns the regions left for zarr (other codecs, partial chunks, strings, the
    metadata unreadable here)."""
    known = _consolidated(loc)
    rest = []
    for name, index, values in regions:
        chunks = _whole_chunks(_eqflow_metadata(known.get(name)), index, values)
        if chunks is None:
            rest.append((name, index, values))
            continue
        for key, data in chunks:
            _atomic_write(Path(loc.target, *name.split("/"), *key.split("/")), data)
    return rest


def _consolidated(loc: Location) -> dict:
    """{array or group path: metadata document} from a local root's consolidated metadata ({} if none)."""
    return ((_local_root(loc) or {}).get("consolidated_metadata") or {}).get("metadata") or {}


def _direct(meta: ArrayV3Metadata | None) -> bool:
    """Whether eqflow encodes and decodes this array's chunks itself: numeric, and not empty
    (zarr writes what it writes for an empty one)."""
    return meta is not None and meta.dtype.to_native_dtype().kind in "biufc" and 0 not in meta.shape \
        and 0 not in meta.chunks


def _eqflow_metadata(document) -> ArrayV3Metadata | None:
    """An array's metadata document as zarr parses it, if it has eqflow's codecs and chunk keys."""
    if not isinstance(document, dict) or document.get("node_type") != "array" or document.get("codecs") not in CODECS \
            or document.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}} \
            or not isinstance(document.get("data_type"), str):
        return None
    try:
        return ArrayV3Metadata.from_dict(dict(document))
    except Exception:  # anything zarr would parse differently: zarr writes it
        return None


def _whole_chunks(meta: ArrayV3Metadata | None, index, values) -> list | None:
    """[(chunk key, encoded bytes)] of ``array[index] = values``, if the region is whole chunks
    of numeric values of the array's dtype (up to DIRECT_WRITE_BYTES), else None."""
    if not _direct(meta):
        return None
    values = np.asarray(values)
    if values.dtype != meta.dtype.to_native_dtype() or values.nbytes > DIRECT_WRITE_BYTES:
        return None
    selected = _region(index, meta.shape)
    if selected is None:
        return None
    region, dropped = selected
    shape = tuple(r.stop - r.start for r in region)
    if any(r.start % c or (r.stop % c and r.stop != n) or r.stop <= r.start
           for r, c, n in zip(region, meta.chunks, meta.shape)) or values.size != math.prod(shape):
        return None
    # an integer index drops its dim from the values; otherwise the shapes must agree
    if values.shape not in (shape, tuple(n for n, d in zip(shape, dropped) if not d)):
        return None
    values, out = values.reshape(shape), []
    for chunk in np.ndindex(*(-(-n // c) for n, c in zip(shape, meta.chunks))):
        block = values[tuple(slice(i * c, (i + 1) * c) for i, c in zip(chunk, meta.chunks))]
        if block.shape != meta.chunks:  # an edge chunk: stored whole, padded with the fill value
            whole = np.full(meta.chunks, meta.fill_value, dtype=block.dtype)
            whole[tuple(slice(0, n) for n in block.shape)] = block
            block = whole
        where = (r.start // c + i for r, c, i in zip(region, meta.chunks, chunk))
        out.append(("/".join(["c", *map(str, where)]), _encode(block)))
    return out


def _region(index, shape: tuple):
    """(one unit-step slice per dim, which dims an integer index selected) of ``array[index]``,
    or None for anything but integers, unit-step slices and one Ellipsis."""
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1:
        return None
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    index = index + (slice(None),) * (len(shape) - len(index))
    if len(index) != len(shape):
        return None
    region, dropped = [], []
    for i, n in zip(index, shape):
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < n:
            region.append(slice(int(i), int(i) + 1))
        elif isinstance(i, slice) and i.step in (None, 1):
            region.append(slice(*i.indices(n)[:2]))
        else:
            return None
        dropped.append(not isinstance(i, slice))
    return region, dropped


def _encode(block: np.ndarray) -> bytes:
    """One chunk as eqflow's codecs encode it: little-endian C-order bytes, zstd, crc32c appended."""
    packed = _ZSTD.encode(np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")))
    return bytes(packed) + google_crc32c.value(bytes(packed)).to_bytes(4, "little")


_ZSTD = numcodecs.Zstd(level=0, checksum=False)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` aside and rename it into place: a reader or a kill sees the old chunk or the new."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        try:
            aside.write_bytes(data)
        except FileNotFoundError:  # the chunk's first write: its folders too
            path.parent.mkdir(parents=True, exist_ok=True)
            aside.write_bytes(data)
        os.replace(aside, path)
    except BaseException:  # a full disk: nothing half-written stays
        aside.unlink(missing_ok=True)
        raise


def read_attrs(loc) -> dict:
    """The root attributes. A local v3 root is read as the one JSON file it is: zarr would also
    parse every array's consolidated metadata (a few ms a call; called several times per segment)."""
    loc = as_location(loc)
    root = _local_root(loc)
    if root is not None:
        return dict(root.get("attributes") or {})
    try:
        return dict(zarr.open_group(loc.zarr(), mode="r").attrs)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError,
            ValueError, KeyError) as exc:
        raise StoreError(f"store {loc.name!r}: expected an eqflow Zarr store, "
                         f"got one that zarr cannot open ({type(exc).__name__}: {exc})") from None


def _local_root(loc: Location) -> dict | None:
    """A local store's root ``zarr.json`` as a dict, or None (not local, missing, not a v3 group:
    zarr then reads it, or names the problem)."""
    if not loc.is_local:
        return None
    try:
        root = json.loads((Path(loc.target) / "zarr.json").read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(root, dict) and root.get("node_type") == "group" and root.get("zarr_format") == 3:
        return root
    return None


def _json_value(value):
    """NumPy scalars and arrays in attributes as the JSON values zarr writes for them."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"attribute value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def check_format(loc, attrs: dict) -> None:
    """Raise a StoreError for an eqflow store written in another layout version, or one never finished."""
    loc = as_location(loc)
    if attrs.get(STATUS) == "creating":
        raise StoreError(f"store {loc.name!r}: its layout was never finished (a run creating or replacing it was "
                         f"interrupted); run again with overwrite=True (or resume=True, which starts it anew)")
    found = attrs.get(FORMAT_ATTR, 1)
    if found != FORMAT:
        raise StoreError(f"store {loc.name!r}: written in eqflow store format {found}, this eqflow reads format "
                         f"{FORMAT}; re-run it with this version (or open it with the eqflow that wrote it, "
                         f"{attrs.get('eqflow_version', 'unknown')})")


def mark(loc, token: str | None = None, **attrs) -> None:
    """Update root attributes in one atomic write (the marker is written last).

    With ``token``, first check that the store still names this run as its writer
    (:mod:`eqflow.lease`), and renew the lease's heartbeat in the same write.
    """
    loc = as_location(loc)
    root = _local_root(loc)
    if root is None:
        group = zarr.open_group(loc.zarr(), mode="r+")
        current = dict(group.attrs)
    else:
        current = dict(root.get("attributes") or {})
    if token is not None:
        lease.check_owner(loc.name, current, token)
        if attrs.get(STATUS) != "complete":
            attrs = {**attrs, lease.WRITER_ATTR: lease.writer(token)}
    # One metadata write for all keys: Attributes.update would save once per key, and a kill
    # between those saves pairs a new step count with an old checkpoint slot.
    if root is None:
        group.update_attributes(attrs)
        return
    # a local root: its JSON rewritten with the new attributes (the consolidated metadata kept as
    # it is), then renamed over the old one: one atomic replace, as zarr's own writes are, without
    # zarr parsing every array's metadata first (a few ms per segment)
    root["attributes"] = {**current, **attrs}
    _atomic_write(Path(loc.target) / "zarr.json", json.dumps(root, default=_json_value, allow_nan=True).encode())


def read_checkpoint(loc, variables) -> tuple[dict[str, xr.Variable], int]:
    """The named checkpointed arrays at the marker's step, as xarray Variables (dims, values, attrs), and that step."""
    loc = as_location(loc)
    attrs = read_attrs(loc)
    slot, done = attrs.get(SLOT, 0), attrs.get(STEPS_DONE)
    group = zarr.open_group(loc.zarr(), mode="r")
    state = {}
    for v in variables:
        array = group[f"{CHECKPOINT}/{v}"]
        values = read_slot(loc, array, slot, done)
        state[v] = xr.Variable(array.metadata.dimension_names[1:], values, dict(array.attrs))
    return state, done


def read_slot(loc, array, slot: int, done) -> np.ndarray:
    """One checkpoint slot, every chunk present and its crc32c checksum valid, else a StoreError."""
    loc = as_location(loc)
    where = f"store {loc.name!r}: checkpoint {array.path!r} slot {slot} (step {done})"
    per_slot = math.prod(-(-s // c) if c else 0 for s, c in zip(array.shape[1:], array.chunks[1:]))  # 0-length dim
    missing = missing_chunks(loc, array, slot, per_slot)
    if missing:
        raise StoreError(f"{where}: {missing} chunk(s) missing; the store was damaged after it was written, "
                         f"so it cannot be resumed or chained (rerun with overwrite=True)")
    try:
        return array[slot]
    except Exception as exc:  # a checksum or decompression failure names the damage, not the codec
        raise StoreError(f"{where}: corrupted ({type(exc).__name__}: {exc}); rerun with overwrite=True") from None


def missing_chunks(loc, array, index: int, expected: int) -> int:
    """How many of the ``expected`` chunks whose first chunk index is ``index`` are missing
    (0 where the store cannot list its keys: there, damage shows up as a failed checksum)."""
    found = as_location(loc).keys_under(f"{array.path}/c/{index}")
    return 0 if found is None else max(0, expected - found)


def checkpoint_names(loc) -> list[str]:
    """Paths of every array in the checkpoint group (``_checkpoint/<name>``)."""
    group = zarr.open_group(as_location(loc).zarr(), mode="r")
    return [f"{CHECKPOINT}/{name}" for name in sorted(group[CHECKPOINT].array_keys())]


def write_outcomes(loc, found: dict, slot: int) -> None:
    """Write the per-member outcomes into checkpoint ``slot`` and the visible arrays (before the marker)."""
    regions = [(f"{CHECKPOINT}/{k}", (slot,), v) for k, v in found.items()]
    write(loc, regions + [(k, (Ellipsis,), v) for k, v in found.items()])


def read_outcomes(loc) -> dict:
    loc = as_location(loc)
    group = zarr.open_group(loc.zarr(), mode="r")
    slot = group.attrs.get(SLOT, 0)
    done = group.attrs.get(STEPS_DONE)
    return {k: read_slot(loc, group[f"{CHECKPOINT}/{k}"], slot, done) for k in outcomes.ARRAYS}


def read_records(loc, var: str, plan: RecordPlan, last: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``var`` recorded up to step ``last`` (NumPy, straight from the store)."""
    steps = plan.steps(var)
    steps = steps[steps <= last]
    return steps, zarr.open_array(store=as_location(loc).zarr(), path=var, mode="r")[: len(steps)]


def trim(loc, plan: RecordPlan, last: int) -> None:
    """Cut every step dimension to the records at or before ``last`` (a run that ended early)."""
    group = zarr.open_group(as_location(loc).zarr(), mode="r+")
    for var in plan.every:
        n = int((plan.steps(var) <= last).sum())
        for name in (var, plan.dim(var)):
            array = group[name]
            if array.shape[0] != n:
                array.resize((n, *array.shape[1:]))
    consolidate(loc)


def open_history(loc, storage_options: dict | None = None, check_chunks: bool = True,
                 found: dict | None = None) -> xr.Dataset:
    """Open a history store as a lazy Dataset holding the records of every completed segment.

    ``check_chunks``: list every array's chunks first (a missing one is a StoreError); off only
    for the store a run has just written, which passes its outcomes as ``found``."""
    loc = as_location(loc, storage_options)
    attrs = read_attrs(loc)
    if "eqflow_kind" not in attrs:
        raise StoreError(f"store {loc.name!r}: expected an eqflow history (attribute 'eqflow_kind'), "
                         "got a Zarr store without it")
    check_format(loc, attrs)
    done = attrs.get(STEPS_DONE)
    try:
        if done is not None and check_chunks:
            _refuse_missing_records(loc, done)
        ds = _open_zarr(loc)
        kept = {d: ds[d].values <= (-1 if done is None else done) for d in ds.dims if is_step_dim(d)}
        if not all(k.all() for k in kept.values()):  # steps laid out but not yet done (or cut by an early stop)
            ds = ds.isel(kept)
        small = [k for k, c in ds.coords.items() if k not in ds.dims and c.ndim == 1 and is_step_dim(c.dims[0])]
        if small:  # per-step labels (an anneal's stage): in memory
            ds = ds.assign_coords({k: ds[k].load() for k in small})
    except StoreError:
        raise
    except Exception as exc:  # a damaged coordinate chunk (checksum, decompression): named, not raw
        raise StoreError(f"store {loc.name!r}: unreadable ({type(exc).__name__}: {exc}); eq.verify names the "
                         f"damaged arrays; rerun with overwrite=True") from None
    if done is not None and "stop_reason" in ds:
        found = read_outcomes(loc) if found is None else found
        ds = ds.assign(stop_reason=(ds.stop_reason.dims, outcomes.names(found["stop_reason"]),
                                    {"long_name": "why the member stopped"}),
                       **{name: (ds[name].dims, found[name], ds[name].attrs)
                          for name in ("stopped_at", "equilibrated_at")})
    ds.attrs[STORE_ATTR] = loc.name
    ds.encoding[LOCATION_KEY] = loc  # eq.final_state(hist) reaches the same store, options and all
    return ds


def _open_zarr(loc: Location) -> xr.Dataset:
    """``xr.open_zarr(store, consolidated=True)``; on a local store, the dimension coordinates are
    read here from their chunk files (:func:`_read_whole`) and the Dataset made from them, not
    read one by one through zarr as xarray does (a third of the time it took to open a small store).
    A coordinate xarray would decode (a fill value, scale, time units, another dtype) is loaded
    by xarray. Tested equal to ``xr.open_zarr``'s Dataset."""
    if not loc.is_local:
        return xr.open_zarr(loc.zarr(), consolidated=True)
    ds = xr.open_zarr(loc.zarr(), consolidated=True, create_default_indexes=False)
    known = _consolidated(loc)
    variables = dict(ds.variables)
    for name in [d for d in ds.dims if d in variables]:
        variable = variables[name]
        values = _read_whole(loc, name, known.get(name)) if _undecoded(variable) else None
        variables[name] = xr.Variable(variable.dims, variable.values if values is None else values,
                                      variable.attrs, encoding=variable.encoding)
    opened = xr.Dataset({k: variables[k] for k in ds.data_vars}, coords={k: variables[k] for k in ds.coords},
                        attrs=ds.attrs)
    opened.encoding = ds.encoding
    return opened


def _undecoded(variable: xr.Variable) -> bool:
    """Whether xarray reads this variable's stored values as they are (no CF decoding applies)."""
    decoded = {"_FillValue", "missing_value", "scale_factor", "add_offset", "calendar", "_Unsigned"}
    units = str(variable.attrs.get("units", ""))
    stored = np.dtype(variable.encoding.get("dtype", variable.dtype))
    return (not decoded & (set(variable.encoding) | set(variable.attrs)) and " since " not in units
            and variable.dtype.kind in "biuf" and stored == variable.dtype)


def _read_whole(loc: Location, name: str, document) -> np.ndarray | None:
    """A small numeric array of a local store read from its chunk files (eqflow's codecs; each
    checksum checked), or None where zarr must read it. A missing chunk reads as the fill value,
    as in zarr."""
    meta = _eqflow_metadata(document)
    if not _direct(meta) or not meta.shape:
        return None
    dtype = meta.dtype.to_native_dtype()
    if math.prod(meta.shape) * dtype.itemsize > DIRECT_WRITE_BYTES:
        return None
    out = np.empty(meta.shape, dtype)
    for chunk in np.ndindex(*(-(-n // c) for n, c in zip(meta.shape, meta.chunks))):
        try:
            data = Path(loc.target, *name.split("/"), "c", *map(str, chunk)).read_bytes()
        except FileNotFoundError:
            block = np.full(meta.chunks, meta.fill_value, dtype)
        else:
            if len(data) < 4 or google_crc32c.value(data[:-4]).to_bytes(4, "little") != data[-4:]:
                raise ValueError(f"Stored and computed checksum do not match ({name!r}, chunk {chunk})")
            block = np.frombuffer(_ZSTD.decode(data[:-4]), dtype=dtype.newbyteorder("<")).reshape(meta.chunks)
        where = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk, meta.chunks, meta.shape))
        out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
    return out


def _refuse_missing_records(loc: Location, done: int) -> None:
    """A StoreError if a visible array (records, coordinates, outcomes) has fewer chunks than its
    data up to ``done`` need: one listing per array (a missing chunk would read as NaN or 0);
    ``eq.verify`` names each missing chunk with its steps and also checks every checksum."""
    group = zarr.open_group(loc.zarr(), mode="r")
    short = []
    for name, array in group.arrays():
        dims = array.metadata.dimension_names or ()
        if dims and is_step_dim(dims[0]) and name != dims[0]:
            rows = int((group[dims[0]][:] <= done).sum())
            per_row = math.prod(-(-s // c) for s, c in zip(array.shape[1:], array.chunks[1:]))
            expected = -(-rows // array.chunks[0]) * per_row
        else:  # written whole: at creation (coordinates) or with every segment (outcomes)
            expected = array.nchunks
        found = loc.keys_under(f"{array.path}/c")
        if found is not None and found < expected:
            short.append(f"{name}: {expected - found} of {expected} chunk(s)")
    if short:
        raise StoreError(f"store {loc.name!r}: chunks missing up to step {done} ({'; '.join(short)}); the "
                         f"store was damaged after it was written: eq.verify lists the steps; rerun with "
                         f"overwrite=True")


def location_of(history) -> Location | None:
    """The store a history came from: its Location (same process), else the path or URL it names."""
    loc = history.encoding.get(LOCATION_KEY)
    if loc is None and history.attrs.get(STORE_ATTR):
        loc = as_location(history.attrs[STORE_ATTR])
    return loc


def is_step_dim(dim: str) -> bool:
    """``step`` (the finest record interval) or ``step_k`` (another interval k)."""
    return dim == "step" or dim.startswith("step_")


def _sibling(path, what: str) -> Path:
    """A hidden, unique sibling of ``path`` (same directory, so a rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.eqflow-{what}-{uuid.uuid4().hex[:12]}")


def _move_into_place(building: Path, path: Path, replace: bool) -> None:
    if not replace:
        try:
            os.rename(building, path)  # fails if another writer created a non-empty store meanwhile
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            raise StoreError(f"store {str(path)!r}: could not be created ({exc}); another run may have created "
                             f"it meanwhile") from None
        return
    if not _exchange(building, path):  # no atomic swap here: old aside, new in, in two renames
        old = _sibling(path, "old")
        os.rename(path, old)
        os.rename(building, path)
        building = old
    _delete_aside(building)  # now the old store


_DELETING: list = []  # [(thread, [exception])] of replaced stores being deleted


def _delete_aside(old: Path) -> None:
    """Delete a replaced store (already renamed aside) on a thread, so that its deletion (a few
    ms even for a small store: one unlink or rmdir per chunk and folder) overlaps the new run;
    :func:`settle` waits for it and raises what it raised."""
    failed: list = []

    def delete():
        try:
            shutil.rmtree(old)
        except BaseException as exc:  # raised by settle(), in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=delete, name="eqflow-delete-replaced-store")
    thread.start()
    _DELETING.append((thread, failed))


def settle() -> None:
    """Wait until every replaced store is deleted; raise the first deletion's failure."""
    failures = []
    while _DELETING:
        thread, failed = _DELETING.pop()
        thread.join()
        failures += failed
    if failures:
        raise failures[0]


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 with RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _damaged_eqflow_root(loc: Location) -> dict | None:
    """An eqflow store whose root metadata is unreadable still has its checkpoint group with the
    eqflow outcome arrays: such a store may be replaced (attributes returned: what is known)."""
    try:
        group = zarr.open_group(loc.zarr(), path=CHECKPOINT, mode="r")
        names = set(group.array_keys())
    except Exception:
        return None
    return {"eqflow_kind": "unknown (damaged root metadata)"} if set(outcomes.ARRAYS) <= names else None


def check_replaceable(loc) -> dict:
    """Raise a StoreError unless the location holds an eqflow store (overwrite deletes nothing else).

    Returns its root attributes."""
    loc = as_location(loc)
    try:
        attrs = read_attrs(loc)
    except Exception:  # anything zarr cannot open as a group is not ours to delete ...
        attrs = _damaged_eqflow_root(loc)  # ... unless only its root metadata is damaged
    if not isinstance(attrs, dict) or "eqflow_kind" not in attrs:
        what = ("a file" if loc.is_local and loc.target.is_file() else
                "a directory that is not an eqflow store" if loc.is_local else "a location that is not an eqflow store")
        raise StoreError(f"store {loc.name!r}: overwrite=True replaces only an eqflow store, got {what}; "
                         f"choose another store or remove it yourself")
    lease.refuse_if_held(loc.name, attrs, "overwrite")
    return attrs
