"""One writer at a time: a store names the run that writes it, and every marker write checks it.

The root attribute ``eqflow_writer`` holds ``{"token", "host", "pid", "heartbeat"}`` while a run
writes the store (it is cleared when the run completes). Another run, resume or overwrite of
that store is refused while the lease is alive: the writer's process still exists (same host),
or its heartbeat (renewed at every segment) is younger than ``LEASE_SECONDS`` (other hosts).
The lease of a killed run is stale and is taken over: on the same host, a writer whose process
is gone, a zombie, or another process that reuses its pid (its start time differs from the
recorded one) holds no lease. Every marker write first checks that the
store still names this run, so a run whose store was replaced or taken over fails, naming it.
This is a guard against mistakes, not a distributed lock: two runs started in the same instant
can both pass the check.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid

from .errors import StoreError
from .store.process import same_process_alive, start_time

WRITER_ATTR = "eqflow_writer"
LEASE_SECONDS = 15 * 60  # heartbeat age after which a writer on another host counts as gone


def new_token() -> str:
    return uuid.uuid4().hex


def writer(token: str) -> str:
    """This process's lease record, as the JSON string stored in the root attributes."""
    pid = os.getpid()
    return json.dumps({"token": token, "host": socket.gethostname(), "pid": pid, "started": start_time(pid),
                       "heartbeat": time.time()})


def holder(attrs: dict) -> dict | None:
    """The live writer named in a store's root attributes, or None (no writer, or a stale one)."""
    try:
        record = json.loads(attrs.get(WRITER_ATTR) or "null")
    except ValueError:
        return None
    if not isinstance(record, dict) or attrs.get("eqflow_status") == "complete":
        return None
    if record.get("host") == socket.gethostname():
        started = record.get("started")
        alive = same_process_alive(record.get("pid"), started if isinstance(started, int) else None)
        return record if alive and record.get("pid") != os.getpid() else None
    return record if time.time() - float(record.get("heartbeat", 0)) < LEASE_SECONDS else None


def refuse_if_held(path, attrs: dict, what: str) -> None:
    """Raise a StoreError if another live run writes the store at ``path``."""
    record = holder(attrs)
    if record is not None:
        age = time.time() - float(record.get("heartbeat", 0))
        raise StoreError(f"store {str(path)!r}: {what} refused, another run is writing it (pid {record.get('pid')} on "
                         f"{record.get('host')!r}, last segment {age:.0f} s ago); wait for it to finish, or stop it "
                         f"first (a killed run's lease is taken over)")


def check_owner(path, attrs: dict, token: str) -> None:
    """Raise a StoreError if the store no longer names this run as its writer."""
    try:
        record = json.loads(attrs.get(WRITER_ATTR) or "null")
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("token") != token:
        raise StoreError(f"store {str(path)!r}: was replaced or taken over by another run while this one was writing "
                         f"it; this run stops without writing further (its records so far may be gone)")
