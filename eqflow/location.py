"""Where a history store lives: a local directory, an fsspec URL, or a zarr v3 Store object.

``store=`` of :func:`eqflow.run` (and ``eq.open``, ``eq.final_state``, ``eq.verify``, the CLI)
accepts

- a local path (``str`` or ``pathlib.Path``), made absolute at once, so dask workers in another
  working directory and a later ``os.chdir`` still find it;
- an fsspec URL (``s3://bucket/run.zarr``, ``gs://...``, ``memory://...``, ``file://...``) with
  ``storage_options`` (credentials, ``endpoint_url``: never written into the store);
- a zarr v3 ``Store`` object (e.g. ``zarr.storage.MemoryStore()``);
- ``None``: a new in-memory store for notebooks, **not persisted** (kept alive by the history
  that :func:`eqflow.run` returns, so ``eq.final_state(hist)`` still works).

Only public zarr and fsspec APIs are used. Local stores get atomic creation and replacement by
rename; object stores, which cannot rename, write the root metadata last (see :mod:`eqflow.store`).
"""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import zarr
import zarr.storage

from .errors import StoreError

_SCHEMES_LOCAL = ("file://",)


class Location:
    """One store location, resolved once; picklable when it is a path or a URL (dask workers)."""

    def __init__(self, target, storage_options: dict | None = None):
        if storage_options is not None and not isinstance(storage_options, dict):
            raise TypeError(f"storage_options: expected a dict (e.g. {{'anon': True}}), got "
                            f"{type(storage_options).__name__} {storage_options!r}")
        self.storage_options = dict(storage_options or {})
        self._zarr = None
        self._contents = None  # the mapping behind a MemoryStore made here (store=None; see read_object)
        if target is None:
            self._contents = {}
            target = zarr.storage.MemoryStore(store_dict=self._contents)
        if isinstance(target, zarr.storage.FsspecStore) and not storage_options:
            # taken as its URL: the Store object's async filesystem is bound to the event loop that
            # made it, which dask workers and later calls do not share
            target, self.storage_options = _fsspec_url(target)
        if isinstance(target, str) and target.startswith(_SCHEMES_LOCAL):
            target = target[len("file://"):]
        if isinstance(target, os.PathLike) or (isinstance(target, str) and "://" not in target):
            if not str(target):
                raise TypeError("store: expected a local path, an fsspec URL, a zarr Store or None, got ''")
            # a symbolic link to a store is followed once, here: an overwrite then replaces the
            # store it points to (the link stays), never the link itself
            target = Path(target).absolute()
            self.kind, self.target = "local", target.resolve() if target.is_symlink() else target
        elif isinstance(target, str):
            self.kind, self.target = "url", target.rstrip("/")
        elif isinstance(target, zarr.abc.store.Store):
            self.kind, self.target = "object", target
        else:
            raise TypeError(f"store: expected a local path (str or pathlib.Path), an fsspec URL such as "
                            f"'s3://bucket/run.zarr', a zarr Store object or None (in memory), got "
                            f"{type(target).__name__} {target!r}")
        if self.storage_options and self.kind != "url":
            raise TypeError(f"storage_options: only used with an fsspec URL store, got a {self.kind} store "
                            f"{self.name!r}")

    def __getstate__(self):
        return {"kind": self.kind, "target": self.target, "storage_options": self.storage_options, "_zarr": None,
                "_contents": None}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        return f"Location({self.name!r})"

    def __str__(self):
        return self.name

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def in_memory(self) -> bool:
        """Held in this process only (a MemoryStore): not reachable from other processes or machines."""
        return self.kind == "object" and isinstance(self.target, zarr.storage.MemoryStore)

    @property
    def contents(self) -> dict | None:
        """The mapping behind a MemoryStore this Location made (``store=None``), else None: eqflow
        reads and writes its raw objects there directly (see :meth:`read_object`)."""
        return self._contents

    @property
    def name(self) -> str:
        """The path or URL (credentials live in storage_options, never here); a Store object's type."""
        if self.kind == "object":
            return f"<{type(self.target).__name__} {id(self.target):#x}>"
        return str(self.target)

    @property
    def short_name(self) -> str:
        """The last path component, without a URL's query string or fragment (a signed URL's
        token): what a shared store or a report may say about its parent; "memory" for a store
        held in memory (an address means nothing outside this process)."""
        if self.in_memory:
            return "memory"
        if self.kind == "object":
            return type(self.target).__name__
        return short_name(self.name)

    def zarr(self):
        """What zarr's APIs take: a path string, or one Store object reused for every call."""
        if self.kind == "local":
            return str(self.target)
        if self._zarr is None:
            if self.kind == "url":
                try:
                    self._zarr = zarr.storage.FsspecStore.from_url(self.target, storage_options=self.storage_options)
                except (ImportError, ValueError, TypeError) as exc:
                    raise StoreError(f"store {self.name!r}: cannot reach it ({type(exc).__name__}: {exc}); an s3:// "
                                     f"URL needs s3fs (pip install eqflow-ensembles[s3]), gs:// gcsfs") from None
            else:
                self._zarr = self.target
        return self._zarr

    def filesystem(self):
        """(fsspec filesystem, root path) of a URL store, in fsspec's synchronous mode."""
        import fsspec

        return fsspec.core.url_to_fs(self.target, **self.storage_options)

    def exists(self) -> bool:
        """Whether anything is at the location (a file, a folder, any key under the prefix)."""
        if self.kind == "local":
            return self.target.exists()
        if self.kind == "url":
            fs, root = self.filesystem()
            return bool(fs.exists(root))
        return bool(run_async(_first_key(self.target)))

    # raw objects (commit manifests, chunk checksums): files, fsspec objects or Store keys, all
    # through public APIs

    def read_object(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None if there is no such object. In a MemoryStore made
        here, read from its mapping in this thread (the store's own calls go through an event loop:
        a thread hop each, dozens per segment)."""
        if self._contents is not None:
            value = self._contents.get(key)
            return None if value is None else value.to_bytes()
        if self.kind == "local":
            try:
                return (self.target / key).read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        if self.kind == "url":
            fs, root = self.filesystem()
            try:
                return fs.cat_file(f"{root}/{key}")
            except FileNotFoundError:
                return None
        return run_async(_get(self.target, key))

    def write_object(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` in one object write (local: aside, fsync, rename)."""
        if self._contents is not None:
            from zarr.buffer import default_buffer_prototype

            self._contents[key] = default_buffer_prototype().buffer.from_bytes(data)
            return
        if self.kind == "local":
            from .store.atomic import atomic_write

            atomic_write(self.target / key, data)
        elif self.kind == "url":
            fs, root = self.filesystem()
            fs.pipe_file(f"{root}/{key}", data)
        else:
            run_async(_set(self.target, key, data))

    def object_tail(self, key: str, size: int = 4) -> bytes | None:
        """The last ``size`` bytes of the object under ``key`` (a chunk's crc32c), or None if missing."""
        if self.kind == "local":
            try:
                with open(self.target / key, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - size))
                    return f.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        if self.kind == "url":  # a ranged read: the last bytes only
            fs, root = self.filesystem()
            try:
                return fs.cat_file(f"{root}/{key}", start=-size)
            except FileNotFoundError:
                return None
        data = self.read_object(key)
        return None if data is None else data[-size:]

    def list_keys(self, prefix: str = "") -> set | None:
        """Every key under ``prefix`` (relative to the store root), or None where this store cannot list."""
        prefix = prefix.strip("/")
        if self.kind == "local":
            base = self.target / prefix if prefix else self.target
            out = set()
            for folder, _, files in os.walk(base):
                rel = os.path.relpath(folder, self.target).replace(os.sep, "/")
                out.update(f"{rel}/{f}" if rel != "." else f for f in files)
            return out
        if self.kind == "url":
            fs, root = self.filesystem()
            fs.invalidate_cache()
            start = len(root.rstrip("/")) + 1
            return {p[start:] for p in fs.find(f"{root}/{prefix}" if prefix else root)}
        try:
            return run_async(_keys(self.target, prefix))
        except Exception:  # a Store that cannot list, or whose client is bound to another event loop
            return None


def short_name(name: str) -> str:
    """The last path component of a path or URL, without a query string or fragment."""
    if "://" in name:
        name = name.split("?", 1)[0].split("#", 1)[0]
    return name.rstrip("/").rsplit("/", 1)[-1]


def _fsspec_url(store) -> tuple[str, dict]:
    """(URL, storage options) of a zarr FsspecStore."""
    fs = store.fs
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    options = {k: v for k, v in dict(getattr(fs, "storage_options", {}) or {}).items() if k != "asynchronous"}
    path = store.path.split("://", 1)[-1]
    if protocol in ("file", "local"):
        return path, {}
    return f"{protocol}://{path}", options


def as_location(store, storage_options: dict | None = None) -> Location:
    return store if isinstance(store, Location) else Location(store, storage_options)


_loop: tuple | None = None  # (pid, event loop) of this process's background loop thread
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, run by a daemon thread, started on first use (and again in a
    forked child, which does not inherit the thread)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="eqflow-store-io", daemon=True).start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def run_async(coro):
    """Run a coroutine of a loop-agnostic Store (memory, local) to completion from sync code, on the
    process's background loop: callable from any thread, a running event loop's (a notebook's)
    included, without a new thread and loop per call (a few ms each, dozens per run)."""
    return asyncio.run_coroutine_threadsafe(coro, _background_loop()).result()


async def _first_key(store) -> bool:
    async for _ in store.list_prefix(""):
        return True
    return False


async def _get(store, key: str) -> bytes | None:
    from zarr.buffer import default_buffer_prototype

    value = await store.get(key, prototype=default_buffer_prototype())
    return None if value is None else value.to_bytes()


async def _set(store, key: str, data: bytes) -> None:
    from zarr.buffer import default_buffer_prototype

    await store.set(key, default_buffer_prototype().buffer.from_bytes(data))


async def _keys(store, prefix: str) -> set:
    return {key async for key in store.list_prefix(f"{prefix}/" if prefix else "")}
