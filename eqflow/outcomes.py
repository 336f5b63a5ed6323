"""Per-member outcomes of a run: the one list of outcome names, shared by stop rules and stores.

Every member of an ensemble ends with an outcome (``stop_reason``), the step it stopped at
(``stopped_at``) and the first step of its equilibrium window (``equilibrated_at``). On disk
``stop_reason`` is an int8 with CF flag attributes; :func:`eqflow.open` shows the names.

>>> NAMES[CYCLED]
'cycled'
"""
from __future__ import annotations

import numpy as np

NAMES = ("running", "converged", "equilibrated", "diverged", "max_steps", "cycled")
RUNNING, CONVERGED, EQUILIBRATED, DIVERGED, MAX_STEPS, CYCLED = range(len(NAMES))
NOT_YET = -1  # stopped_at / equilibrated_at of a member that has not stopped / equilibrated

ARRAYS = {  # name -> (dtype, attributes on disk)
    "stop_reason": (np.int8, {"flag_values": list(range(len(NAMES))), "flag_meanings": " ".join(NAMES),
                              "long_name": "why the member stopped"}),
    "stopped_at": (np.int64, {"long_name": "step at which the member stopped (-1: running)", "units": "1"}),
    "equilibrated_at": (np.int64, {"long_name": "first step of the equilibrium window (-1: none)", "units": "1"}),
}


def new(shape) -> dict[str, np.ndarray]:
    """Outcome arrays of a fresh ensemble of ``shape``: every member running."""
    return {"stop_reason": np.full(shape, RUNNING, np.int8), "stopped_at": np.full(shape, NOT_YET, np.int64),
            "equilibrated_at": np.full(shape, NOT_YET, np.int64)}


def mark(outcomes: dict, hit: np.ndarray, reason: int, step: int, equilibrated_at=None) -> None:
    """Record that the running members in ``hit`` stopped at ``step`` for ``reason``."""
    hit = hit & (outcomes["stop_reason"] == RUNNING)
    outcomes["stop_reason"][hit] = reason
    outcomes["stopped_at"][hit] = step
    if equilibrated_at is not None:
        outcomes["equilibrated_at"][hit] = np.broadcast_to(equilibrated_at, hit.shape)[hit]


def finish(outcomes: dict, step: int) -> None:
    """Members still running when the run reaches its last step stop there as ``max_steps``."""
    mark(outcomes, np.ones(outcomes["stop_reason"].shape, bool), MAX_STEPS, step)


def names(codes: np.ndarray) -> np.ndarray:
    """The outcome names of integer codes (an array of str)."""
    return np.asarray(NAMES)[codes]
