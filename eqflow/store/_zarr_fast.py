"""The quarantined fast path: the only module of eqflow that uses zarr's private API (``zarr.core``).

What it makes faster, each tested byte for byte against zarr's own result (tests/test_store.py,
which runs the store tests with the fast path on and off):

- :func:`in_memory_layout`: a new store's every document made with zarr's own metadata classes
  and consolidated by hand (zarr reads back what it just wrote);
- :func:`chunk_writes` / :func:`read_whole`: small regions encoded and decoded here with the
  store's codecs (zstd level 0, crc32c), not through zarr's per-codec thread hops and event loop:
  a chunk a region covers whole from its values, one it covers in part read, updated and encoded
  again (zarr's own read-modify-write, done here: a segment's records straddle two record chunks);
- :func:`gather`: many zarr coroutines run side by side in zarr's event loop.

``ENABLED`` is the switch (environment ``EQFLOW_ZARR_FAST=0`` turns it off): when off, or when
zarr's internals moved (an import here fails), every caller uses zarr's public API instead.
pyproject.toml bounds zarr to the versions this module was tested with.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import os

import google_crc32c
import numcodecs
import numpy as np

try:
    from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec
    from zarr.core.dtype import get_data_type_from_native_dtype
    from zarr.core.group import ConsolidatedMetadata, GroupMetadata
    from zarr.core.metadata.v3 import ArrayV3Metadata
    from zarr.core.sync import sync as zarr_sync
    AVAILABLE = True
except ImportError:  # zarr's internals moved: the public API serves every call
    AVAILABLE = False

ENABLED = AVAILABLE and os.environ.get("EQFLOW_ZARR_FAST", "1") != "0"

# eqflow's arrays: bytes (little-endian, C order; one-byte types name no endianness), then zstd
# level 0, then a crc32c checksum
_COMPRESS = [{"name": "zstd", "configuration": {"level": 0, "checksum": False}}, {"name": "crc32c"}]
CODECS = [[{"name": "bytes", "configuration": {"endian": "little"}}, *_COMPRESS], [{"name": "bytes"}, *_COMPRESS]]
DIRECT_BYTES = 4 * 2**20  # larger regions go through zarr, which encodes chunks on several threads
_ZSTD = numcodecs.Zstd(level=0, checksum=False)


def enabled() -> bool:
    return ENABLED


def gather(coroutines) -> list:
    """Run zarr coroutines side by side in zarr's own event loop, in one call from this thread.
    Every one finishes before the first failure is raised: nothing still writes when the caller
    cleans up."""
    async def every():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    results = zarr_sync(every())
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def in_memory_layout(root_attrs: dict, arrays: dict) -> dict:
    """{key: bytes} of a new store, made in memory: every array's metadata built with zarr's own
    metadata classes (the same documents ``create_array`` writes, tested), the consolidated root
    made from them, and only the arrays with values written through zarr. ``arrays``:
    {name: ArraySpec}."""
    import zarr
    import zarr.storage

    contents = {}
    store = zarr.storage.MemoryStore(store_dict=contents)
    metadata = {name: array_metadata(spec) for name, spec in arrays.items()}
    groups = sorted({"/".join(parts[:i]) for parts in (name.split("/") for name in arrays)
                     for i in range(1, len(parts))})
    for name in groups:
        contents[f"{name}/zarr.json"] = _document(GroupMetadata(zarr_format=3))
    for name, meta in metadata.items():
        contents[f"{name}/zarr.json"] = _document(meta)
    through_zarr = []
    for name, spec in arrays.items():
        if spec.values is not None:
            chunks = _whole_chunks(metadata[name], (Ellipsis,), spec.values)
            if chunks is None:  # strings, or large: zarr encodes them
                through_zarr.append(name)
            contents.update({f"{name}/{key}": data for key, data in chunks or []})

    async def fill(name):
        array = zarr.AsyncArray(metadata[name], zarr.storage.StorePath(store, name),
                                config={"write_empty_chunks": True})
        await array.setitem(Ellipsis, arrays[name].values)

    if through_zarr:
        gather(fill(name) for name in through_zarr)
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


def array_metadata(spec) -> ArrayV3Metadata:
    """The metadata ``create_array`` makes for an eqflow array: regular chunks, "/" keys, and
    every chunk zstd-compressed and crc32c-checksummed."""
    return ArrayV3Metadata(
        shape=spec.shape, data_type=_zarr_dtype(np.dtype(spec.dtype)),
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": spec.chunks}},
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}}, fill_value=spec.fill,
        codecs=[BytesCodec(), ZstdCodec(), Crc32cCodec()], attributes=spec.attrs,
        dimension_names=tuple(spec.dims) or None)


def direct(meta) -> bool:
    """Whether eqflow encodes and decodes this array's chunks itself: numeric, and not empty."""
    return meta is not None and meta.dtype.to_native_dtype().kind in "biufc" and 0 not in meta.shape \
        and 0 not in meta.chunks


def eqflow_metadata(document):
    """An array's metadata document as zarr parses it, if it has eqflow's codecs and chunk keys."""
    if not ENABLED or not isinstance(document, dict) or document.get("node_type") != "array" \
            or document.get("codecs") not in CODECS \
            or document.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}} \
            or not isinstance(document.get("data_type"), str):
        return None
    return _parsed(json.dumps(document, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _parsed(document: str):
    """zarr's metadata of a document (as sorted JSON: parsing costs more than every other step of
    a small write), or None."""
    try:
        return ArrayV3Metadata.from_dict(json.loads(document))
    except Exception:  # anything zarr would parse differently: zarr writes it
        return None


def _whole_chunks(meta, index, values) -> list | None:
    found = _chunk_writes(meta, index, values, None)
    return None if found is None else [(key, data) for _, key, data in found]


def chunk_writes(document, index, values, read_chunk) -> list | None:
    """[(chunk index, chunk key, encoded bytes)] of ``array[index] = values`` for an array with this
    metadata document, for numeric values of its dtype (up to DIRECT_BYTES), else None (zarr writes
    it). A chunk the region covers in part is ``read_chunk(key)`` (bytes, or None where there is none
    yet: the fill value), its checksum checked (a ValueError naming the key if it does not match),
    updated and encoded: the bytes zarr's read-modify-write stores (tested byte for byte)."""
    return _chunk_writes(eqflow_metadata(document), index, values, read_chunk)


def _chunk_writes(meta, index, values, read_chunk) -> list | None:
    """As :func:`chunk_writes`; ``read_chunk`` None: None unless every chunk is covered whole."""
    if not direct(meta):
        return None
    values = np.asarray(values)
    if values.dtype != meta.dtype.to_native_dtype() or values.nbytes > DIRECT_BYTES:
        return None
    selected = _region(index, meta.shape)
    if selected is None:
        return None
    region, dropped = selected
    shape = tuple(r.stop - r.start for r in region)
    if any(r.stop <= r.start for r in region) or values.size != math.prod(shape):
        return None
    # an integer index drops its dim from the values; otherwise the shapes must agree
    if values.shape not in (shape, tuple(n for n, d in zip(shape, dropped) if not d)):
        return None
    values, out = values.reshape(shape), []
    span = [range(r.start // c, -(-r.stop // c)) for r, c in zip(region, meta.chunks)]
    for chunk in itertools.product(*span):
        cell = [(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk, meta.chunks, meta.shape)]
        inside = [(max(r.start, a), min(r.stop, b)) for r, (a, b) in zip(region, cell)]
        part = values[tuple(slice(a - r.start, b - r.start) for r, (a, b) in zip(region, inside))]
        key = "/".join(["c", *map(str, chunk)])
        if inside == cell:
            block = part
            if block.shape != meta.chunks:  # an edge chunk: stored whole, padded with the fill value
                block = np.full(meta.chunks, meta.fill_value, dtype=part.dtype)
                block[tuple(slice(0, n) for n in part.shape)] = part
        elif read_chunk is None:
            return None
        else:
            data = read_chunk(key)
            block = np.full(meta.chunks, meta.fill_value, dtype=part.dtype) if data is None \
                else decode(data, meta, key).copy()
            block[tuple(slice(a - c, b - c) for (a, b), (c, _) in zip(inside, cell))] = part
        out.append((chunk, key, encode(block)))
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


def encode(block: np.ndarray) -> bytes:
    """One chunk as eqflow's codecs encode it: little-endian C-order bytes, zstd, crc32c appended."""
    packed = _ZSTD.encode(np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")))
    return bytes(packed) + google_crc32c.value(bytes(packed)).to_bytes(4, "little")


def read_whole(read_chunk, document) -> np.ndarray | None:
    """A small numeric array read chunk by chunk with ``read_chunk(key) -> bytes | None`` (eqflow's
    codecs; each checksum checked), or None where zarr must read it. A missing chunk reads as the
    fill value, as in zarr."""
    meta = eqflow_metadata(document)
    if not direct(meta) or not meta.shape:
        return None
    dtype = meta.dtype.to_native_dtype()
    if math.prod(meta.shape) * dtype.itemsize > DIRECT_BYTES:
        return None
    out = np.empty(meta.shape, dtype)
    for chunk in np.ndindex(*(-(-n // c) for n, c in zip(meta.shape, meta.chunks))):
        data = read_chunk("/".join(["c", *map(str, chunk)]))
        block = np.full(meta.chunks, meta.fill_value, dtype) if data is None else decode(data, meta, chunk)
        where = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(chunk, meta.chunks, meta.shape))
        out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
    return out


def decode(data: bytes, meta, chunk) -> np.ndarray:
    """One stored chunk's values (read-only), its crc32c checked: a ValueError names ``chunk`` if
    the bytes are not what was written."""
    if len(data) < 4 or google_crc32c.value(data[:-4]).to_bytes(4, "little") != data[-4:]:
        raise ValueError(f"Stored and computed checksum do not match (chunk {chunk})")
    dtype = meta.dtype.to_native_dtype()
    return np.frombuffer(_ZSTD.decode(data[:-4]), dtype=dtype.newbyteorder("<")).reshape(meta.chunks)
