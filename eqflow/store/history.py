"""``HistoryStore``: one history store, from its layout to its last commit, and every read of it.

The runner, ``eq.write_samples``, ``eq.open``, ``eq.final_state`` and ``eq.verify`` all go
through this object. Each read checks what it relies on against the commit record
(:mod:`eqflow.store.manifest`): the sealed root, the arrays' metadata and the chunks it uses.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import xarray as xr

from .. import lease, outcomes
from ..errors import StoreError
from ..location import Location, as_location
from . import _zarr_fast as fast
from . import chunks as chunk_io
from . import layout, manifest
from . import root as root_document
from .atomic import flush, leftover_siblings
from .root import (
    CHECKPOINT,
    COMMIT,
    LOCATION_KEY,
    SLOT,
    STATUS,
    STEPS_DONE,
    STORE_ATTR,
    check_format,
    has_integrity_record,
    read_attrs,
)


class NoIntegrityRecord(UserWarning):
    """A Zarr store with eqflow's attributes but without its commit record (copied with plain
    xarray, or written by an eqflow before store format 3): opened as an ordinary dataset."""


class HistoryStore:
    """A history store at a location (local path, fsspec URL, zarr Store; :mod:`eqflow.location`).

    >>> import eqflow as eq, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.zarr")
    >>> hist = eq.run(eq.create("ising", size=4, temperature=2.0, members=2, seed=1), "metropolis", steps=4,
    ...               store=path, segment=2, progress=False)
    >>> store = eq.HistoryStore(path)
    >>> store.attrs()["eqflow_steps_done"], store.record().commits  # the layout, then two segments
    (4, 2)
    >>> store.verify() == path
    True
    """

    def __init__(self, location, storage_options: dict | None = None):
        self.loc: Location = as_location(location, storage_options)
        self._commit = None  # (number, SHA-256) of the last commit this object wrote or read

    @property
    def name(self) -> str:
        return self.loc.name

    def __repr__(self):
        return f"HistoryStore({self.name!r})"

    # -- writing ----------------------------------------------------------------------------

    def create(self, arrays: dict, attrs: dict, replace: bool = False) -> None:
        """Lay out every array (``{path: ArraySpec}``, :func:`eqflow.store.layout.plan_arrays`) and commit 0."""
        self._commit = (0, layout.create(self.loc, arrays, attrs, replace=replace))

    def write(self, regions: list) -> dict:
        """Write ``(array, index, values)`` regions; return {array: {chunk key: crc32c}} for :meth:`commit`."""
        return chunk_io.write(self.loc, regions)

    def commit(self, written: dict, *, steps_done: int, slot: int, token: str | None = None,
               metadata: dict | None = None, **attrs) -> None:
        """Record what a segment wrote (its manifest, fsynced), then the marker: the root's steps
        done, checkpoint slot and commit pointer, sealed, in one atomic write (the last write)."""
        self.require_present()
        n, previous = self._last_commit()
        sha = manifest.write_commit(self.loc, n + 1, previous, steps_done, slot, written.get("chunks", {}), metadata,
                                    written.get("pieces"), deferred=True)
        if self.loc.is_local:  # every chunk this segment wrote, and its manifest, on disk before the marker
            files = [self.loc.target.joinpath(*f"{name}/{key}".split("/"))
                     for name, keys in written.get("chunks", {}).items() for key in keys]
            files.append(self.loc.target.joinpath(manifest.MANIFESTS, str(n + 1), "zarr.json"))
            flush(self.loc.target, files, {f.parent for f in files})
        root_document.mark(self.loc, token=token, **attrs,
                           **{STEPS_DONE: steps_done, SLOT: slot, COMMIT: {"n": n + 1, "sha256": sha}})
        self._commit = (n + 1, sha)

    def require_present(self) -> None:
        """A StoreError if a local store was deleted (or moved) while a run writes it."""
        if self.loc.is_local and not (self.loc.target / "zarr.json").exists():
            raise StoreError(f"store {self.name!r}: no longer exists (deleted or moved while this run wrote it); "
                             f"nothing of it is left at its path, so this run stops: start it again")

    def mark(self, token: str | None = None, **attrs) -> None:
        """Update root attributes (sealed) without a commit: the writer's lease, the kernel used."""
        root_document.mark(self.loc, token=token, **attrs)

    def _last_commit(self) -> tuple[int, str]:
        if self._commit is None:
            pointer = self.attrs().get(COMMIT) or {}
            self._commit = (pointer.get("n", 0), pointer.get("sha256"))
        return self._commit

    def trim(self, plan, last: int, token: str | None = None) -> None:
        """Cut every step dimension to the records at or before ``last`` (a run that ended early,
        after its last commit), as a commit of its own: the cut arrays' metadata is recorded first
        (a kill in between leaves a store whose cut arrays match that record), then the arrays are
        resized and the root's consolidated entries updated, then the marker."""
        import zarr

        group = zarr.open_group(self.loc.zarr(), mode="r+")
        cut = {}
        for var in plan.every:
            n = int((plan.steps(var) <= last).sum())
            for name in (var, plan.dim(var)):
                if group[name].shape[0] != n:
                    document = json.loads(self.loc.read_object(f"{name}/zarr.json"))
                    cut[name] = (n, {**document, "shape": [n, *document["shape"][1:]]})
        if not cut:
            return
        attrs = self.attrs()
        n_commit, previous = self._last_commit()
        sha = manifest.write_commit(self.loc, n_commit + 1, previous, attrs.get(STEPS_DONE), attrs.get(SLOT, 0), {},
                                    {name: manifest.metadata_digest(doc) for name, (_, doc) in cut.items()})
        for name, (n, _) in cut.items():
            array = group[name]
            array.resize((n, *array.shape[1:]))
        root = json.loads(self.loc.read_object("zarr.json"))  # the consolidated entries, updated in place
        root["consolidated_metadata"]["metadata"].update(
            {name: json.loads(self.loc.read_object(f"{name}/zarr.json")) for name in cut})
        self.loc.write_object("zarr.json", json.dumps(root, allow_nan=True).encode())
        root_document.mark(self.loc, token=token, **{COMMIT: {"n": n_commit + 1, "sha256": sha}})
        self._commit = (n_commit + 1, sha)

    # -- reading ----------------------------------------------------------------------------

    def attrs(self) -> dict:
        return read_attrs(self.loc)

    def eqflow_attrs(self) -> dict:
        """The root attributes of an eqflow history, else a StoreError saying what is there."""
        attrs = self.attrs()
        if "eqflow_kind" not in attrs:
            raise StoreError(f"store {self.name!r}: expected an eqflow history (attribute 'eqflow_kind'), "
                             "got a Zarr store without it")
        if "eqflow_operator" not in attrs and "eqflow_seed" in attrs:  # a system Dataset's attributes only
            raise StoreError(f"store {self.name!r}: a {attrs['eqflow_kind']!r} system (a Dataset saved with to_zarr: "
                             f"its state, parameters and seed), not a history; run it from a run file's [system] "
                             f"file = {self.loc.short_name!r}, or eq.run(xr.open_zarr(...), ...); `eqflow validate` "
                             f"checks it")
        return attrs

    def record(self) -> manifest.Record:
        """The verified chain of commits (a StoreError if the root or a manifest was changed)."""
        attrs = self.eqflow_attrs()
        check_format(self.loc, attrs)
        return manifest.load(self.loc, attrs)

    def check(self, select=None, trailers: bool = True, full: bool = False) -> tuple[dict, manifest.Record]:
        """Check the sealed root, every array's metadata and the selected chunks against the
        commit record; raise one StoreError naming every problem. Returns (root attributes, record)."""
        attrs, record, problems = self.problems(select, trailers, full)
        manifest.raise_problems(self.loc, problems, attrs.get(STEPS_DONE))
        return attrs, record

    def problems(self, select=None, trailers: bool = True, full: bool = False) -> tuple[dict, manifest.Record,
                                                                                       list[str]]:
        """(root attributes, record, every problem found) of :meth:`check`; a changed root or a
        broken chain of commits raises at once (nothing below it can be trusted)."""
        attrs = self.eqflow_attrs()
        check_format(self.loc, attrs)
        record = manifest.load(self.loc, attrs)
        problems, documents = manifest.check_metadata(self.loc, record)
        problems += manifest.check_chunks(self.loc, record, documents, select=select, trailers=trailers,
                                          where=_StepsHeld(self.loc, documents), full=full and self.loc.is_local)
        return attrs, record, problems

    def checkpoint(self, variables, everything: bool = False) -> tuple[dict[str, xr.Variable], int | None]:
        """The named checkpointed arrays at the marker's step as xarray Variables, and that step.
        Their chunks, the layout's coordinates and every array's metadata are checked first
        (``everything``: every recorded chunk too, as a resume that will extend the store does)."""
        import zarr

        if everything:
            attrs, _ = self.check(trailers=self.loc.is_local, full=True)
        else:
            attrs, _ = self.check(select=self._checkpoint_and_layout(self.attrs()), full=True)
        slot, done = attrs.get(SLOT, 0), attrs.get(STEPS_DONE)
        group = zarr.open_group(self.loc.zarr(), mode="r")
        state = {}
        for v in variables:
            array = group[f"{CHECKPOINT}/{v}"]
            state[v] = xr.Variable(array.metadata.dimension_names[1:], self._slot(array, slot, done),
                                   dict(array.attrs))
        return state, done

    def outcomes(self) -> dict:
        """The per-member outcomes in the marker's checkpoint slot (chunks checked by the caller)."""
        import zarr

        group = zarr.open_group(self.loc.zarr(), mode="r")
        slot, done = group.attrs.get(SLOT, 0), group.attrs.get(STEPS_DONE)
        return {k: self._slot(group[f"{CHECKPOINT}/{k}"], slot, done) for k in outcomes.ARRAYS}

    def _slot(self, array, slot: int, done) -> np.ndarray:
        try:
            return array[slot]
        except Exception as exc:  # a checksum or decompression failure names the damage, not the codec
            raise StoreError(f"store {self.name!r}: checkpoint {array.path!r} slot {slot} (step {done}): corrupted "
                             f"({type(exc).__name__}: {exc}); rerun with overwrite=True") from None

    @staticmethod
    def _checkpoint_and_layout(attrs: dict):
        """select(array, chunk key, (steps before, after) of its commit) for final_state and resume:
        the marker's checkpoint slot, and the chunks written with the layout (coordinates, constants)."""
        slot = str(attrs.get(SLOT, 0))

        def select(name, key, when):
            if name.startswith(CHECKPOINT + "/"):
                return key.split("/")[1] == slot
            return when[1] is None

        return select

    def records(self, var: str, plan, last: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values of ``var`` recorded up to step ``last`` (NumPy, straight from the store),
        from record row ``first`` on (a caller that keeps the earlier rows reads only the new ones)."""
        import zarr

        steps = plan.steps(var)
        steps = steps[steps <= last]
        return steps[first:], zarr.open_array(store=self.loc.zarr(), path=var, mode="r")[first: len(steps)]

    def open(self, check: bool = True, found: dict | None = None) -> xr.Dataset:
        """The history as a lazy Dataset holding the records of every completed commit.

        ``check``: compare the store with its commit record first (sealed root, metadata, every
        recorded chunk present and, on a local disk, holding the bytes its commit wrote); off only
        for the store a run has just written, which passes its outcomes as ``found``."""
        attrs = self.eqflow_attrs()
        if not self._has_record(attrs):
            return self._open_unrecorded(attrs)
        if check:
            self.check(trailers=self.loc.is_local, full=True)
        else:
            check_format(self.loc, attrs)
        done = attrs.get(STEPS_DONE)
        try:
            ds = _trim_to_done(_open_zarr(self.loc), done)
        except StoreError:
            raise
        except Exception as exc:  # a damaged coordinate chunk (checksum, decompression): named, not raw
            raise StoreError(f"store {self.name!r}: unreadable ({type(exc).__name__}: {exc}); eq.verify names the "
                             f"damaged arrays; rerun with overwrite=True") from None
        if done is not None and "stop_reason" in ds:
            found = self.outcomes() if found is None else found
            ds = ds.assign(stop_reason=(ds.stop_reason.dims, outcomes.names(found["stop_reason"]),
                                        {"long_name": "why the member stopped"}),
                           **{name: (ds[name].dims, found[name], ds[name].attrs)
                              for name in ("stopped_at", "equilibrated_at")})
        ds.attrs[STORE_ATTR] = self.name
        ds.encoding[LOCATION_KEY] = self.loc  # eq.final_state(hist) reaches the same store, options and all
        return ds

    def _has_record(self, attrs: dict) -> bool:
        """Whether the store carries eqflow's commit record; False for a plain copy (no checkpoint,
        no manifests) or an older format. A damaged record is not this: it raises later, by name."""
        if has_integrity_record(attrs) and attrs.get("eqflow_format") == layout.FORMAT:
            if self.loc.read_object(f"{CHECKPOINT}/zarr.json") is not None \
                    or self.loc.read_object("_eqflow/zarr.json") is not None:
                return True
            return False
        return attrs.get(STATUS) == "creating"  # a layout never finished: check_format names it

    def _open_unrecorded(self, attrs: dict) -> xr.Dataset:
        why = (f"written in eqflow store format {attrs.get('eqflow_format', 1)}" if attrs.get("eqflow_format")
               != layout.FORMAT else "copied without eqflow's checkpoint and commit record (e.g. with "
               "xr.open_zarr(...).to_zarr(...))")
        warnings.warn(f"store {self.name!r}: {why}: it carries no eqflow integrity record, so it is opened as an "
                      f"ordinary dataset: damage cannot be detected, records of an unfinished segment may show as "
                      f"NaN, and it cannot be resumed or chained", NoIntegrityRecord, stacklevel=3)
        ds = xr.open_zarr(self.loc.zarr(), consolidated=None)
        ds.attrs[STORE_ATTR] = self.name
        return ds

    def verify(self) -> str:
        """:func:`eqflow.verify` of this store: every check against the commit record, every chunk decoded."""
        from .verify import verify

        return verify(self.loc)

    def leftovers(self) -> list[str]:
        """Hidden siblings that killed runs left beside this (local) store; the next run removes them."""
        return [p.name for p in leftover_siblings(self.loc.target)] if self.loc.is_local else []

    def check_replaceable(self) -> dict:
        """Raise a StoreError unless the location holds an eqflow store (overwrite deletes nothing
        else) that no live run writes. Returns its root attributes."""
        loc = self.loc
        try:
            attrs = read_attrs(loc)
        except Exception:  # anything zarr cannot open as a group is not ours to delete ...
            attrs = _damaged_eqflow_root(loc)  # ... unless only its root metadata is damaged
        if not isinstance(attrs, dict) or "eqflow_kind" not in attrs:
            what = ("a file" if loc.is_local and loc.target.is_file() else
                    "a directory that is not an eqflow store" if loc.is_local else
                    "a location that is not an eqflow store")
            raise StoreError(f"store {loc.name!r}: overwrite=True replaces only an eqflow store, got {what}; "
                             f"choose another store or remove it yourself")
        lease.refuse_if_held(loc.name, attrs, "overwrite")
        return attrs


class _StepsHeld:
    """where(array, chunk key) -> "steps a-b" for a record chunk (its rows along the step dim)."""

    def __init__(self, loc: Location, documents: dict):
        self.loc, self.documents, self.steps = loc, documents, {}

    def __call__(self, name: str, key: str) -> str | None:
        document = self.documents.get(name) or {}
        dims = document.get("dimension_names") or []
        parts = key.split("/")[1:]
        if name.startswith(CHECKPOINT + "/") and parts:
            return f"checkpoint slot {parts[0]}"
        if not dims or not is_step_dim(dims[0]) or name == dims[0] or not parts:
            return None
        if dims[0] not in self.steps:
            import zarr

            try:
                self.steps[dims[0]] = zarr.open_array(store=self.loc.zarr(), path=dims[0], mode="r")[:]
            except Exception:  # a damaged step coordinate: reported for itself
                self.steps[dims[0]] = None
        steps = self.steps[dims[0]]
        rows = document["chunk_grid"]["configuration"]["chunk_shape"][0]
        held = None if steps is None else steps[int(parts[0]) * rows:(int(parts[0]) + 1) * rows]
        return f"steps {int(held[0])}-{int(held[-1])}" if held is not None and len(held) else None


def _trim_to_done(ds: xr.Dataset, done) -> xr.Dataset:
    kept = {d: ds[d].values <= (-1 if done is None else done) for d in ds.dims if is_step_dim(d)}
    if not all(k.all() for k in kept.values()):  # steps laid out but not yet done (or cut by an early stop)
        ds = ds.isel(kept)
    small = [k for k, c in ds.coords.items() if k not in ds.dims and c.ndim == 1 and is_step_dim(c.dims[0])]
    if small:  # per-step labels (an anneal's stage): in memory
        ds = ds.assign_coords({k: ds[k].load() for k in small})
    return ds


def _open_zarr(loc: Location) -> xr.Dataset:
    """``xr.open_zarr(store, consolidated=True)``; on a local store (fast path on), the dimension
    coordinates are read from their chunk files and the Dataset made from them, not read one by
    one through zarr as xarray does (a third of the time it took to open a small store). A
    coordinate xarray would decode (a fill value, scale, time units, another dtype) is loaded by
    xarray. Tested equal to ``xr.open_zarr``'s Dataset."""
    if not loc.is_local or not fast.enabled():
        return xr.open_zarr(loc.zarr(), consolidated=True)
    ds = xr.open_zarr(loc.zarr(), consolidated=True, create_default_indexes=False)
    known = chunk_io.consolidated(loc)
    variables = dict(ds.variables)
    for name in [d for d in ds.dims if d in variables]:
        variable = variables[name]
        values = None
        if _undecoded(variable):
            values = fast.read_whole(lambda key: loc.read_object(f"{name}/{key}"), known.get(name))
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


def _damaged_eqflow_root(loc: Location) -> dict | None:
    """An eqflow store whose root metadata is unreadable still has its checkpoint group with the
    eqflow outcome arrays: such a store may be replaced (attributes returned: what is known)."""
    import zarr

    try:
        group = zarr.open_group(loc.zarr(), path=CHECKPOINT, mode="r")
        names = set(group.array_keys())
    except Exception:
        return None
    return {"eqflow_kind": "unknown (damaged root metadata)"} if set(outcomes.ARRAYS) <= names else None


def location_of(history) -> Location | None:
    """The store a history came from: its Location (same process), else the path or URL it names."""
    loc = history.encoding.get(LOCATION_KEY)
    if loc is None and history.attrs.get(STORE_ATTR):
        loc = as_location(history.attrs[STORE_ATTR])
    return loc


def is_step_dim(dim: str) -> bool:
    """``step`` (the finest record interval) or ``step_k`` (another interval k, an integer): a
    parameter or dim named ``step_size`` is not one."""
    return dim == "step" or (dim.startswith("step_") and dim[5:].isdigit())
