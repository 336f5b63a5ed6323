"""File-system atomicity for local stores: writes aside then renamed, fsync, hidden siblings.

A chunk, a commit manifest or the root document is written into a hidden file beside its
target, flushed to disk (``fsync``) and renamed over the target, and the folder is flushed
after the rename: a kill or a power cut leaves the old object or the new one, never half of
one. A new or replacing store is laid out in a hidden sibling folder ``.NAME.eqflow-new-...``
and renamed into place; a replaced one is renamed aside (``.NAME.eqflow-old-...``) and deleted
on a thread. Siblings left by a killed run carry the writer's process id and start time in
their name, so the next run on the store removes only those whose writer is gone.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import threading
import uuid
from pathlib import Path

from . import process

DURABLE = os.environ.get("EQFLOW_FSYNC", "1") != "0"  # fsync chunk files, folders and markers


def atomic_write(path: Path, data: bytes, touched: set | None = None) -> None:
    """Write ``path`` aside and rename it into place: a reader or a kill sees the old object or
    the new. Without ``touched`` the file and its folder are fsynced here (a marker, a manifest);
    with it (chunks) the folder is added to ``touched`` and the caller makes the whole segment
    durable at once (:func:`flush`)."""
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:  # the object's first write: its folders too
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if DURABLE and touched is None:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(aside, path)
    except BaseException:  # a full disk: nothing half-written stays
        aside.unlink(missing_ok=True)
        raise
    if touched is None:
        sync_folders({path.parent})
    else:
        touched.add(path.parent)


def flush(root: Path, files=(), folders=()) -> None:
    """Make everything written under ``root`` durable: one ``syncfs`` of its file system (Linux;
    one call however many chunks a segment wrote), else an fsync of each of ``files`` and
    ``folders``. Called before a commit's manifest and marker."""
    if not DURABLE:
        return
    if _syncfs(root):
        return
    for path in files:
        try:
            sync_file(path)
        except FileNotFoundError:
            continue
    sync_folders(folders)


def _syncfs(root: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return False
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


def sync_file(path: Path) -> None:
    """fsync a file written by another library (zarr's own chunk writes)."""
    if not DURABLE:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folders(folders) -> None:
    """fsync each folder, so the renames and new names in it survive a power cut."""
    if not DURABLE:
        return
    for folder in folders:
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        except OSError:  # a file system that cannot fsync folders
            pass
        finally:
            os.close(fd)


SIBLING = ".eqflow-"  # hidden siblings are named ".<store name>.eqflow-<what>-<pid>-<start>-<random>"


def sibling(path, what: str) -> Path:
    """A hidden, unique sibling of ``path`` (same folder, so a rename is atomic), naming this process."""
    path = Path(path)
    return path.with_name(f".{path.name}{SIBLING}{what}-{os.getpid()}-{process.start_time(os.getpid()) or 0}-"
                          f"{uuid.uuid4().hex[:12]}")


def leftover_siblings(path) -> list[Path]:
    """Hidden siblings of the store at ``path`` that a killed run left (their writer is gone)."""
    path = Path(path)
    prefix = f".{path.name}{SIBLING}"
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    left = []
    for candidate in names:
        parts = candidate.name[len(prefix):].split("-")
        try:
            pid, started = int(parts[1]), int(parts[2])
        except (IndexError, ValueError):  # an older eqflow's name, without its writer: a leftover
            left.append(candidate)
            continue
        if not process.same_process_alive(pid, started or None):
            left.append(candidate)
    return left


def remove_leftovers(path) -> list[str]:
    """Delete the leftover siblings of ``path``; return their names."""
    removed = []
    for leftover in leftover_siblings(path):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        removed.append(leftover.name)
    return removed


def move_into_place(building: Path, path: Path, replace: bool) -> None:
    """Rename the finished layout ``building`` to ``path``; with ``replace``, swap the old store out."""
    from ..errors import StoreError

    if not replace:
        try:
            os.rename(building, path)  # fails if another writer created a non-empty store meanwhile
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            raise StoreError(f"store {str(path)!r}: could not be created ({exc}); another run may have created "
                             f"it meanwhile; nothing was written at its path") from None
        sync_folders({path.parent})
        return
    if not exchange(building, path):  # no atomic swap here: old aside, new in, in two renames
        old = sibling(path, "old")
        os.rename(path, old)
        os.rename(building, path)
        building = old
    sync_folders({path.parent})
    delete_aside(building)  # now the old store


_DELETING: list = []  # [(thread, [exception])] of replaced stores being deleted


def delete_aside(old: Path) -> None:
    """Delete a replaced store (already renamed aside) on a thread, so that its deletion overlaps
    the new run; :func:`settle` waits for it and raises what it raised."""
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


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 with RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0
