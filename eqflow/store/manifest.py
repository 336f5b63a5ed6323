"""Commit manifests: what each commit of a store wrote, chained to the sealed root.

Commit 0 is the layout; commit n (n >= 1) is the n-th segment. Each is a small Zarr group
``_eqflow/commits/<n>`` whose attribute ``eqflow_manifest`` records

- ``chunks``: {array: {chunk key: crc32c}} of every chunk the commit wrote (the chunk's own
  stored checksum, so the exact bytes are pinned: a stale, rolled-back or moved chunk differs);
- ``metadata``: {array: SHA-256 of its metadata document} for the arrays the commit laid out or
  resized (commit 0: every array);
- ``steps_done``, ``slot`` and ``previous`` (the SHA-256 of commit n - 1's document).

The manifest is written (and fsynced) before the marker; the root's ``eqflow_commit`` names the
last one's number and SHA-256, and the root is sealed by its digest (:mod:`eqflow.store.root`).
So everything a reader relies on is pinned from the root down: :func:`load` walks the chain,
and :func:`check_metadata` / :func:`check_chunks` compare the store with it. Plain Zarr readers
see the manifests as empty groups with attributes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import google_crc32c

from ..errors import StoreError
from .chunks import consolidated, crc_of
from .root import COMMIT

MANIFESTS = "_eqflow/commits"
GROUP = b'{"zarr_format":3,"node_type":"group","attributes":{}}'


def group_objects() -> dict:
    """{key: bytes} of the groups that hold the manifests (written with the layout)."""
    return {"_eqflow/zarr.json": GROUP, f"{MANIFESTS}/zarr.json": GROUP}


def metadata_digest(document) -> str:
    """SHA-256 of an array's metadata document as canonical JSON (key order and spacing ignored)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_commit(loc, n: int, previous: str | None, steps_done, slot: int, chunks: dict,
                 metadata: dict | None = None, pieces: dict | None = None, deferred: bool = False) -> str:
    """Write commit ``n``'s manifest (one object; local: fsynced, or with ``deferred`` left to the
    caller's :func:`eqflow.store.atomic.flush` with the segment's chunks); return its SHA-256."""
    body = {"commit": n, "previous": previous, "steps_done": steps_done, "slot": slot,
            "metadata": metadata or {}, "chunks": chunks, "pieces": pieces or {}}
    data = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"eqflow_manifest": body}},
                      sort_keys=True, separators=(",", ":")).encode()
    if deferred and getattr(loc, "is_local", False):
        from .atomic import atomic_write

        atomic_write(loc.target.joinpath(MANIFESTS, str(n), "zarr.json"), data, touched=set())
    else:
        loc.write_object(f"{MANIFESTS}/{n}/zarr.json", data)
    return hashlib.sha256(data).hexdigest()


def layout_record(contents: dict, arrays) -> tuple[dict, dict]:
    """(chunks, metadata) of commit 0 from a layout made in memory ({key: bytes})."""
    chunks, metadata = {}, {}
    for name in arrays:
        metadata[name] = metadata_digest(json.loads(contents[f"{name}/zarr.json"]))
        prefix = f"{name}/c"
        for key, data in contents.items():
            if key == prefix or key.startswith(prefix + "/"):
                chunks.setdefault(name, {})[key[len(name) + 1:]] = crc_of(data)
    return chunks, metadata


@dataclass
class Record:
    """What the chain of commits says the store holds (the latest write of each chunk wins)."""

    commits: int
    chunks: dict = field(default_factory=dict)  # {array: {chunk key: crc32c}}
    pieces: dict = field(default_factory=dict)  # {array: {chunk key: [[box, sha256], ...]}} of partial writes
    pending: dict = field(default_factory=dict)  # {array: metadata SHA-256} of a trim the marker did not reach
    complete: bool = False  # the run finished: nothing was written after the last commit
    metadata: dict = field(default_factory=dict)  # {array: metadata SHA-256}
    steps: dict = field(default_factory=dict)  # {array: {chunk key: (steps before, steps after) of its commit}}
    slot: int = 0


def load(loc, attrs: dict) -> Record:
    """Walk the commit chain from the root's ``eqflow_commit`` down to the layout; a missing,
    damaged or substituted manifest is a StoreError naming it."""
    pointer = attrs.get(COMMIT)
    if not isinstance(pointer, dict) or not isinstance(pointer.get("n"), int):
        raise StoreError(f"store {loc.name!r}: its root names no commit manifest ({COMMIT!r} is {pointer!r}); "
                         f"the store was damaged; rerun with overwrite=True")
    bodies, expected = [], pointer.get("sha256")
    for n in range(pointer["n"], -1, -1):
        data = loc.read_object(f"{MANIFESTS}/{n}/zarr.json")
        what = f"store {loc.name!r}: commit manifest {MANIFESTS}/{n}"
        if data is None:
            raise StoreError(f"{what} is missing; which records it wrote is unknown: the store was damaged; "
                             f"rerun with overwrite=True")
        if hashlib.sha256(data).hexdigest() != expected:
            raise StoreError(f"{what} does not match the checksum its successor recorded (changed, truncated or "
                             f"restored from another run); rerun with overwrite=True")
        try:
            body = json.loads(data)["attributes"]["eqflow_manifest"]
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"{what} is unreadable; rerun with overwrite=True") from None
        bodies.append(body)
        expected = body.get("previous")
    record, before = Record(commits=pointer["n"]), None
    for body in reversed(bodies):
        after = body.get("steps_done")
        for name, chunks in body["chunks"].items():
            record.chunks.setdefault(name, {}).update(chunks)
            record.steps.setdefault(name, {}).update(dict.fromkeys(chunks, (before, after)))
        for name, chunks in body.get("pieces", {}).items():
            for key, pieces in chunks.items():
                record.pieces.setdefault(name, {}).setdefault(key, []).extend(pieces)
        record.metadata.update(body["metadata"])
        record.slot, before = body.get("slot", 0), after
    record.complete = attrs.get("eqflow_status") == "complete"
    record.pending = _pending_trim(loc, pointer)
    return record


def _pending_trim(loc, pointer: dict) -> dict:
    """The metadata of the commit after the last one, if it is a trim (an early stop cutting the
    step dims) that was recorded but whose marker a kill prevented: its arrays may already be cut."""
    data = loc.read_object(f"{MANIFESTS}/{pointer['n'] + 1}/zarr.json")
    try:
        body = json.loads(data)["attributes"]["eqflow_manifest"] if data else {}
    except (ValueError, KeyError, TypeError):
        return {}
    return body.get("metadata", {}) if body.get("previous") == pointer.get("sha256") and not body.get("chunks") \
        else {}


def root_documents(loc) -> dict:
    """{array path: metadata document} of the root's consolidated metadata."""
    if loc.is_local:
        return consolidated(loc)
    try:
        root = json.loads(loc.read_object("zarr.json") or b"{}")
    except ValueError:
        return {}
    return ((root.get("consolidated_metadata") or {}).get("metadata")) or {}


def check_metadata(loc, record: Record) -> tuple[list[str], dict]:
    """Problems with the arrays' metadata (their ``zarr.json`` and consolidated entries) against
    the record, and the verified documents {array: document}."""
    problems, documents = [], {}
    listed = root_documents(loc)
    for name, expected in sorted(record.metadata.items()):
        data = loc.read_object(f"{name}/zarr.json")
        try:
            document = json.loads(data) if data is not None else None
        except ValueError:
            document = None
        if data is None:
            problems.append(f"{name}: its metadata ({name}/zarr.json) is missing")
        elif document is None or metadata_digest(document) not in (expected, record.pending.get(name)):
            problems.append(f"{name}: its metadata ({name}/zarr.json) differs from what eqflow wrote (edited, "
                            f"truncated or replaced: shape, dtype, chunks or codecs may differ)")
        else:
            documents[name] = document
        if name not in listed:
            problems.append(f"{name}: missing from the root's consolidated metadata (xarray would not show it)")
        elif metadata_digest(listed[name]) not in (expected, record.pending.get(name)):
            problems.append(f"{name}: its entry in the root's consolidated metadata differs from what eqflow wrote")
    return problems, documents


def _in_bounds(key: str, document: dict) -> bool:
    """Whether a chunk key lies inside the array's current grid (an early stop trims arrays)."""
    shape = document.get("shape", [])
    chunks = document.get("chunk_grid", {}).get("configuration", {}).get("chunk_shape", shape)
    parts = key.split("/")[1:]
    try:
        return all(int(i) < -(-s // c) for i, s, c in zip(parts, shape, chunks)) if parts else True
    except (ValueError, ZeroDivisionError):
        return True


FULL_CHECK_BYTES = 2**30  # a local store's chunks whose every byte is checked at open (the rest: trailers)


def check_chunks(loc, record: Record, documents: dict, select=None, trailers: bool = True,
                 where=None, full: bool = False) -> list[str]:
    """Problems with the recorded chunks: missing, or (``trailers``) holding other bytes than the
    commit wrote. ``where(array, key)`` says which steps a chunk holds (for the message);
    ``select(array, key, (steps before, after) of its commit)`` limits the check; ``documents``
    are the verified metadata; ``full`` (local stores) also checks each chunk's bytes against its
    own crc32c, up to FULL_CHECK_BYTES in all (a flipped byte is then named when the store is
    opened, not when its data are first read)."""
    problems, listed, budget = [], None, FULL_CHECK_BYTES if full else 0
    if not trailers:
        listed = loc.list_keys()
        trailers = listed is None  # a store that cannot list: read each chunk's checksum instead
    for name in sorted(record.chunks):
        document = documents.get(name)
        if document is None:
            continue  # its metadata is already reported
        missing, stale, corrupted = [], [], []
        for key, crc in record.chunks[name].items():
            when = record.steps.get(name, {}).get(key, (None, None))
            if (select is not None and not select(name, key, when)) or not _in_bounds(key, document):
                continue
            path = f"{name}/{key}"
            if not trailers:
                if path not in listed:
                    missing.append(key)
                continue
            data = loc.read_object(path) if budget > 0 else None
            budget -= len(data) if data is not None else 0
            tail = data[-4:] if data is not None else loc.object_tail(path)
            if tail is None:
                missing.append(key)
            elif tail.hex() != crc and not _rewritten_since(loc, record, name, key):
                stale.append(key)
            elif data is not None and google_crc32c.value(data[:-4]).to_bytes(4, "little") != data[-4:]:
                corrupted.append(key)
        problems += [_chunk_problem(record, name, keys, what, where) for keys, what in
                     ((missing, "missing"), (stale, "holding other bytes than eqflow wrote there (a stale, "
                                                     "rolled-back, moved or overwritten chunk)"),
                      (corrupted, "corrupted (their bytes do not match their own crc32c checksum)")) if keys]
    return problems


def _rewritten_since(loc, record: Record, name: str, key: str) -> bool:
    """Whether a chunk whose bytes differ from its commit's was legitimately rewritten by a segment
    that a kill stopped before its commit (never in a finished store): the checkpoint slot the
    marker does not name, the per-member outcomes (read from the checkpoint), or a record chunk
    the last commit wrote only part of, whose committed part still holds the values it wrote."""
    if record.complete:
        return False
    from .root import CHECKPOINT

    if name.startswith(CHECKPOINT + "/"):
        return key.split("/")[1] != str(record.slot)
    from .. import outcomes

    if name in outcomes.ARRAYS:
        return True
    pieces = record.pieces.get(name, {}).get(key)
    return bool(pieces) and _pieces_hold(loc, name, pieces)


def _pieces_hold(loc, name: str, pieces: list) -> bool:
    import zarr

    from .chunks import value_digest

    try:
        array = zarr.open_array(store=loc.zarr(), path=name, mode="r")
        return all(value_digest(array[tuple(slice(a, b) for a, b in box)]) == sha for box, sha in pieces)
    except Exception:  # unreadable: reported as it is
        return False


def _chunk_problem(record: Record, name: str, keys: list, what: str, where=None) -> str:
    keys = sorted(keys, key=lambda k: [int(p) if p.isdigit() else 0 for p in k.split("/")[1:]])
    named = []
    for key in keys[:5]:
        after = record.steps.get(name, {}).get(key, (None, None))[1]
        held = where(name, key) if where is not None else None
        when = "the layout" if after is None else f"the commit at step {after}"
        named.append(f"{key} ({held + ', ' if held else ''}written by {when})")
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return f"{name}: {len(keys)} chunk(s) {what}: {', '.join(named)}{more}"


def raise_problems(loc, problems: list[str], done=None, remedy: str = "rerun with overwrite=True") -> None:
    if problems:
        raise StoreError(f"store {loc.name!r}: damaged ({len(problems)} problem(s), steps done {done}):\n  - "
                         + "\n  - ".join(problems) + f"\n{remedy}")
