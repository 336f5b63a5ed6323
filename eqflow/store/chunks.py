"""Writing and reading chunks: region writes that report what they wrote.

Every write returns ``{"chunks": {array: {chunk key: crc32c}}, "pieces": {array: {chunk key:
[[box, sha256], ...]}}}``. The crc32c is the chunk's own checksum (its last four bytes, appended
by eqflow's codec chain), so the commit manifest pins exactly which bytes each chunk must hold.
A region that covers only part of a chunk (a segment's records that end inside a chunk the
next segment completes) also reports a *piece*: the box it wrote (``[[start, stop], ...]`` per
dim) and the SHA-256 of its values, so the committed part of a chunk that a later, unfinished
segment rewrote is still checked exactly, by value. On a local store every chunk file and its
folder are made durable by the commit (one ``syncfs``, :func:`eqflow.store.atomic.flush`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import StoreError
from . import _zarr_fast as fast
from .atomic import atomic_write
from .root import local_root


def consolidated(loc) -> dict:
    """{array or group path: metadata document} from a local (or eqflow-made in-memory) root's
    consolidated metadata ({} if none)."""
    return ((local_root(loc) or {}).get("consolidated_metadata") or {}).get("metadata") or {}


def chunk_indices(index, shape: tuple, chunks: tuple) -> list[tuple]:
    """The chunk indices that ``array[index]`` touches (integers, slices and one Ellipsis)."""
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    index = index + (slice(None),) * (len(shape) - len(index))
    ranges = []
    for i, n, c in zip(index, shape, chunks):
        if isinstance(i, slice):
            start, stop, _ = i.indices(n)
            ranges.append(range(start // c, -(-stop // c)) if stop > start else range(0))
        else:
            i = int(i) % n if n else 0
            ranges.append(range(i // c, i // c + 1))
    return [tuple(r[j] for r, j in zip(ranges, p)) for p in np.ndindex(*(len(r) for r in ranges))]


def chunk_key(chunk: tuple) -> str:
    """A chunk's key under its array (zarr v3 default encoding, "/" separator; a 0-d array's is "c")."""
    return "/".join(["c", *map(str, chunk)])


def crc_of(data: bytes) -> str:
    """The checksum a manifest records for a chunk: its stored crc32c trailer, as hex."""
    return bytes(data[-4:]).hex()


def write(loc, regions: list[tuple[str, tuple, np.ndarray]]) -> dict:
    """Write each ``(array name, index, values)`` region; return what was written
    ({array: {chunk key: crc32c}}).

    On a local or an in-memory store, a small region of an eqflow array is encoded here (the
    quarantined fast path): a chunk it covers whole from its values, one it covers in part read,
    updated and encoded again, each chunk file written atomically; every other region goes
    through zarr's public API, and its chunks are then read back for their checksums (and fsynced)."""
    from ..location import as_location
    from .history import HistoryStore

    loc = as_location(loc)
    HistoryStore(loc).require_present()  # never recreate the folders of a store deleted meanwhile
    written: dict = {"chunks": {}, "pieces": {}}
    touched: set = set()
    if (loc.is_local or loc.in_memory) and fast.enabled():
        regions = _write_direct(loc, regions, written, touched)
    if regions:
        _write_through_zarr(loc, regions)
        for name, index, values in regions:
            shape, chunks = _grid(loc, name)
            for chunk in chunk_indices(index, shape, chunks):
                key = f"{name}/{chunk_key(chunk)}"
                tail = loc.object_tail(key)
                if tail is not None:
                    written["chunks"].setdefault(name, {})[chunk_key(chunk)] = tail.hex()
                piece = _piece(index, values, shape, chunks, chunk)
                if piece is not None:
                    written["pieces"].setdefault(name, {}).setdefault(chunk_key(chunk), []).append(piece)
    return written


def _box(index, shape: tuple) -> list[list[int]]:
    """[[start, stop], ...] of ``array[index]`` (integers and unit-step slices)."""
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    index = index + (slice(None),) * (len(shape) - len(index))
    return [list(i.indices(n)[:2]) if isinstance(i, slice) else [int(i) % n, int(i) % n + 1]
            for i, n in zip(index, shape)]


def _piece(index, values, shape: tuple, chunks: tuple, chunk: tuple):
    """[box, sha256] of the part of ``chunk`` that ``array[index] = values`` wrote, if that is
    not the whole chunk (else None: the chunk's checksum pins it)."""
    region = _box(index, shape)
    cell = [[i * c, min((i + 1) * c, n)] for i, c, n in zip(chunk, chunks, shape)]
    inside = [[max(a, c), min(b, d)] for (a, b), (c, d) in zip(region, cell)]
    if inside == cell:
        return None
    values = np.asarray(values).reshape([b - a for a, b in region])
    part = values[tuple(slice(a - r, b - r) for (a, b), (r, _) in zip(inside, region))]
    return [inside, value_digest(part)]


def value_digest(values) -> str:
    """SHA-256 of an array's values (dtype, shape and little-endian C-order bytes)."""
    values = np.asarray(values)
    data = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<") if values.dtype.kind in "biufc"
                                else values.dtype)
    digest = hashlib.sha256(f"{values.dtype.str}{values.shape}".encode())
    digest.update(data.tobytes())
    return digest.hexdigest()


def _grid(loc, name: str) -> tuple[tuple, tuple]:
    """(shape, chunk shape) of an array, from the consolidated metadata or the array's own."""
    document = (consolidated(loc).get(name) if loc.is_local else None) or _document(loc, name) or {}
    shape = tuple(document.get("shape", ()))
    chunks = tuple(document.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", shape))
    return shape, chunks


def _write_direct(loc, regions: list, written: dict, touched: set) -> list:
    """Write the regions of eqflow's numeric arrays with eqflow's codecs, chunk by chunk (the bytes
    zarr would write, tested byte for byte): on a local store each chunk file aside, then renamed
    (made durable by the commit); in memory, each chunk one store write. A chunk the region covers
    in part is read and updated here, as zarr would, and reported as a piece. Returns the regions
    left for zarr."""
    known = consolidated(loc)
    rest, files = [], {}  # {object key: bytes} of a local store's chunks, written together at the end

    def read(key):  # a chunk an earlier region of this call wrote is read as it wrote it
        return files[key] if key in files else loc.read_object(key)

    for name, index, values in regions:
        document = known.get(name) if loc.is_local or name in known else _document(loc, name)
        try:
            chunks = fast.chunk_writes(document, index, values, lambda key: read(f"{name}/{key}"))
        except ValueError as exc:  # a chunk of this array is not what was written
            raise StoreError(f"store {loc.name!r}: array {name!r}: expected its chunks as written, got one whose "
                             f"checksum does not match ({exc}); `eqflow verify` names every damaged chunk") from None
        if chunks is None:
            rest.append((name, index, values))
            continue
        shape, grid = tuple(document["shape"]), tuple(document["chunk_grid"]["configuration"]["chunk_shape"])
        for chunk, key, data in chunks:
            if loc.is_local:
                files[f"{name}/{key}"] = data
            else:
                loc.write_object(f"{name}/{key}", data)
            written["chunks"].setdefault(name, {})[key] = crc_of(data)
            piece = _piece(index, values, shape, grid, chunk)
            if piece is not None:
                written["pieces"].setdefault(name, {}).setdefault(key, []).append(piece)
    _write_files([(Path(loc.target, *key.split("/")), data) for key, data in files.items()], touched)
    return rest


FILE_THREADS = 4  # a write's chunk files are written side by side (each a few syscalls that release the GIL)
_file_pool: tuple | None = None  # (pid, pool): a forked child (a dask worker) makes its own


def _write_files(files: list, touched: set) -> None:
    """Each (path, bytes) written atomically (:func:`eqflow.store.atomic.atomic_write`), side by side
    on a small thread pool; every one finishes before the first failure (a full disk) is raised."""
    global _file_pool
    if len(files) < 2:
        for path, data in files:
            atomic_write(path, data, touched)
        return
    from concurrent.futures import ThreadPoolExecutor, wait

    if _file_pool is None or _file_pool[0] != os.getpid():
        _file_pool = (os.getpid(), ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="eqflow-chunk-files"))
    done, _ = wait([_file_pool[1].submit(atomic_write, path, data, touched) for path, data in files])
    for future in done:
        if future.exception() is not None:
            raise future.exception()


def _document(loc, name: str) -> dict | None:
    """An array's metadata document as stored (None if there is none, or it does not parse)."""
    try:
        return json.loads(loc.read_object(f"{name}/zarr.json") or b"null")
    except ValueError:
        return None


def _write_through_zarr(loc, regions: list) -> None:
    """Regions written by zarr (every chunk, even one equal to the fill value: a missing chunk
    then always means damage): side by side in zarr's loop on the fast path, else one by one."""
    import zarr
    import zarr.api.asynchronous

    target = loc.zarr()
    if isinstance(target, str):  # one LocalStore for all regions, not one per array
        target = zarr.storage.LocalStore(target)
    if not fast.enabled():
        for var, index, values in regions:
            array = zarr.open_array(store=target, path=var, mode="r+")
            array.with_config({"write_empty_chunks": True})[index] = values
        return

    async def one(var, index, values):
        array = await zarr.api.asynchronous.open_array(store=target, path=var, mode="r+")
        await array.with_config({"write_empty_chunks": True}).setitem(index, values)

    fast.gather(one(*region) for region in regions)


def merge(into: dict, written: dict) -> dict:
    """Add one write's report to another (the later crc of a chunk wins; pieces add up)."""
    for name, chunks in written.get("chunks", {}).items():
        into.setdefault("chunks", {}).setdefault(name, {}).update(chunks)
    for name, chunks in written.get("pieces", {}).items():
        for key, pieces in chunks.items():
            into.setdefault("pieces", {}).setdefault(name, {}).setdefault(key, []).extend(pieces)
    return into


def nchunks(shape: tuple, chunks: tuple) -> int:
    return math.prod(-(-s // c) for s, c in zip(shape, chunks))
