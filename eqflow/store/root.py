"""The root document: eqflow's attributes, the marker, and the digest that seals them.

The root ``zarr.json`` holds the provenance, the marker (``eqflow_steps_done``,
``eqflow_checkpoint_slot``, ``eqflow_status``), the writer's lease and ``eqflow_commit`` (the
number and SHA-256 of the last commit manifest, :mod:`eqflow.store.manifest`). It is rewritten
in one atomic write after each segment. ``eqflow_digest`` is the SHA-256 of every ``eqflow_*``
attribute (canonical JSON): a flipped slot, a rolled-back step count or any other edit of
eqflow's attributes is detected; attributes a user adds are not covered.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import StoreError
from ..location import Location, as_location

STEPS_DONE, SLOT, STATUS, STORE_ATTR = "eqflow_steps_done", "eqflow_checkpoint_slot", "eqflow_status", "eqflow_store"
FORMAT_ATTR, FORMAT = "eqflow_format", 3  # 3: commit manifests and a sealed root (2: outcomes, owned state)
COMMIT, DIGEST = "eqflow_commit", "eqflow_digest"
CHECKPOINT = "_checkpoint"
LOCATION_KEY = "eqflow_location"  # in Dataset.encoding of an opened history


def json_value(value):
    """NumPy scalars and arrays in attributes as the JSON values zarr writes for them."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"attribute value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def digest(attrs: dict) -> str:
    """SHA-256 of eqflow's attributes (every ``eqflow_*`` key but the digest), as canonical JSON."""
    sealed = {k: v for k, v in attrs.items() if k.startswith("eqflow_") and k != DIGEST}
    text = json.dumps(sealed, sort_keys=True, separators=(",", ":"), default=json_value, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sealed(attrs: dict) -> dict:
    """``attrs`` with their digest, round-tripped through JSON (what a reader will see)."""
    attrs = json.loads(json.dumps(attrs, default=json_value, allow_nan=True))
    return {**attrs, DIGEST: digest(attrs)}


def local_root(loc: Location) -> dict | None:
    """A local store's root ``zarr.json`` as a dict (or an in-memory store's that eqflow made, read from
    its mapping), or None (another store, missing, not a v3 group: zarr then reads it, or names the
    problem)."""
    if not loc.is_local and loc.contents is None:
        return None
    try:
        data = loc.read_object("zarr.json")
        root = json.loads(data) if data is not None else None
    except (OSError, ValueError):
        return None
    if isinstance(root, dict) and root.get("node_type") == "group" and root.get("zarr_format") == 3:
        return root
    return None


def _url_root(loc: Location) -> dict | None:
    """A URL store's root ``zarr.json`` read in one request, or None (no such object, not a v3 group);
    a StoreError naming the store when it cannot be reached at all (no network, a closed endpoint,
    no credentials), before zarr's asynchronous reads would fail with the same cause."""
    if loc.kind != "url":
        return None
    try:
        data = loc.read_object("zarr.json")
    except Exception as exc:  # any client's error: botocore, aiohttp, gcsfs, OSError
        raise StoreError(f"store {loc.name!r}: cannot be reached ({type(exc).__name__}: {exc}); check the URL and "
                         f"storage_options (credentials, endpoint_url)") from None
    try:
        root = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return root if isinstance(root, dict) and root.get("node_type") == "group" and root.get("zarr_format") == 3 \
        else None


def read_attrs(loc) -> dict:
    """The root attributes. A local v3 root is read as the one JSON file it is: zarr would also
    parse every array's consolidated metadata (a few ms a call; called several times per segment)."""
    import zarr

    loc = as_location(loc)
    root = local_root(loc) if loc.is_local or loc.contents is not None else _url_root(loc)
    if root is not None:
        return dict(root.get("attributes") or {})
    try:
        return dict(zarr.open_group(loc.zarr(), mode="r").attrs)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError,
            ValueError, KeyError) as exc:
        raise StoreError(f"store {loc.name!r}: expected an eqflow Zarr store, "
                         f"got one that zarr cannot open ({type(exc).__name__}: {exc})") from None


def has_integrity_record(attrs: dict) -> bool:
    """Whether the store seals its root and records its commits (format 3 and later)."""
    return DIGEST in attrs or COMMIT in attrs


def check_format(loc, attrs: dict, sealed_root: bool = True) -> None:
    """Raise a StoreError for an eqflow store never finished, written in another layout version,
    or (``sealed_root``) whose eqflow attributes were changed after eqflow wrote them."""
    loc = as_location(loc)
    if attrs.get(STATUS) == "creating":
        raise StoreError(f"store {loc.name!r}: its layout was never finished (a run creating or replacing it was "
                         f"interrupted); run again with overwrite=True (or resume=True, which starts it anew)")
    found = attrs.get(FORMAT_ATTR, 1)
    if found != FORMAT:
        raise StoreError(f"store {loc.name!r}: written in eqflow store format {found}, this eqflow reads format "
                         f"{FORMAT}; re-run it with this version (or open it with the eqflow that wrote it, "
                         f"{attrs.get('eqflow_version', 'unknown')}); plain xr.open_zarr still reads its arrays")
    if sealed_root and attrs.get(DIGEST) != digest(attrs):
        raise StoreError(f"store {loc.name!r}: its root attributes (steps done, checkpoint slot, commit, provenance) "
                         f"do not match their digest: they were changed or rolled back after eqflow wrote them, so "
                         f"which records and checkpoint are complete is unknown; rerun with overwrite=True")


def mark(loc, token: str | None = None, **attrs) -> None:
    """Update root attributes in one atomic write, sealed with their digest (the marker is written last).

    With ``token``, first check that the store still names this run as its writer
    (:mod:`eqflow.lease`), and renew the lease's heartbeat in the same write.
    """
    import zarr

    from .. import lease

    loc = as_location(loc)
    root = local_root(loc)
    if root is None:
        group = zarr.open_group(loc.zarr(), mode="r+")
        current = dict(group.attrs)
    else:
        current = dict(root.get("attributes") or {})
    if token is not None:
        lease.check_owner(loc.name, current, token)
        if attrs.get(STATUS) != "complete":
            attrs = {**attrs, lease.WRITER_ATTR: lease.writer(token)}
    merged = sealed({**current, **attrs})
    # One metadata write for all keys: Attributes.update would save once per key, and a kill
    # between those saves pairs a new step count with an old checkpoint slot.
    if root is None:
        group.update_attributes({k: v for k, v in merged.items() if k not in current or current[k] != v})
        return
    # a local root: its JSON rewritten with the new attributes (the consolidated metadata kept as
    # it is), then written aside, fsynced and renamed over the old one (in memory: one object write)
    root["attributes"] = merged
    loc.write_object("zarr.json", json.dumps(root, default=json_value, allow_nan=True).encode())
