"""Is a process still the one that took a lease? Its pid, its start time, and not a zombie.

A pid alone is not enough: the kernel reuses pids, so a killed writer's pid can later belong
to an unrelated process, and a killed but unreaped writer stays a zombie. On Linux the start
time (``/proc/<pid>/stat`` field 22, clock ticks since boot) tells the two apart; elsewhere
only the pid is checked.
"""
from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its last ")"
    return text[text.rfind(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), else None."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 overall; 20th after the name
    except (IndexError, ValueError):
        return None


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def alive(pid) -> bool:
    """Whether a process with this pid exists (any user's)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_process_alive(pid, started: int | None) -> bool:
    """Whether the process that had ``pid`` and started at ``started`` still runs (not a zombie,
    not another process that got the same pid); ``started`` None checks the pid only."""
    if not alive(pid) or is_zombie(pid):
        return False
    if started is None:
        return True
    now = start_time(pid)
    return now is None or now == started
