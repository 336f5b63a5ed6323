"""Reporters: code called at segment boundaries of ``eq.run``, with the segment's records.

``eq.run(..., reporters=[...])``. Modelled on OpenMM's reporters (``describeNextReport`` /
``report``): a reporter is any object with

- ``report(segment)``: called on the client when a segment of steps is computed, before it is
  committed, with a :class:`Segment` (its steps, the run's records up to its end, the members'
  outcomes). What it writes with ``segment.write`` and the members it stops with
  ``segment.stop`` become part of that segment's commit, so a kill before the commit leaves
  neither and a resume repeats them.
- ``next_report(step)`` -> int or None (optional): the step (> ``step``, the run's position) at
  which it wants its next call. The run ends a segment there; the reporter is then called only
  at the steps it asked for. Without it (or when it returns None) it is called at every
  segment's end, however long the run chose its segments (``segment=``).
- ``reads`` (optional): the recorded variables it reads; a run that does not record one of
  them is refused before anything is written.
- ``begin(run)`` / ``end(run)`` (optional): called once when the run starts (or resumes: then
  ``run.position`` is the step it resumes from) and when it stops (finished or not), with a
  :class:`RunInfo`.
- ``layout(run)`` (optional): {"extra": {array name: eqflow.store.ArraySpec}, "step_coordinates":
  {step dim: [names]}}: arrays the store gets when the run creates it (an anneal's stages).

A reporter keeps no checkpointed state: one that needs the past reads it from ``run.store``,
whose records up to the resume point are final. Stop rules that run on the client (``where =
"client"``, e.g. ``eq.stop.equilibrated``) are reporters that stop members, and the progress bar
is :class:`ProgressBar`.

>>> import eqflow as eq
>>> class Means:
...     reads = ("energy",)
...     def __init__(self):
...         self.seen = []
...     def next_report(self, step):
...         return step + 5 - step % 5
...     def report(self, segment):
...         steps, energy = segment.records("energy", since=segment.last_report)
...         self.seen.append((segment.end, len(steps)))
>>> means = Means()
>>> _ = eq.run(eq.create("ising", size=4, temperature=2.0, members=2, seed=1), "metropolis", steps=10,
...            store=None, reporters=[means], progress=False)
>>> means.seen  # (step, records since the last call)
[(5, 5), (10, 5)]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import outcomes as outcome_codes


@dataclass(frozen=True)
class RunInfo:
    """What a reporter may know about the run: fixed for the run.

    system : the system Dataset the run started from; contract : its kind's :class:`eqflow.System`;
    operator : the operator's name; dims : the ensemble dims (member first); plan : the
    :class:`eqflow.store.RecordPlan` (record intervals, ``plan.first``, ``plan.last``,
    ``plan.steps(var)``); store : the :class:`eqflow.HistoryStore` it writes; position : the
    step it starts or resumes from; token : the run's writer token (unique per call).
    """

    system: object
    contract: object
    operator: str
    dims: tuple
    plan: object
    store: object
    position: int
    token: str = ""

    @property
    def kind(self) -> str:
        return self.contract.kind

    @property
    def ensemble_shape(self) -> tuple:
        return tuple(self.system.sizes[d] for d in self.dims)


class Segment:
    """One segment as a reporter sees it: steps ``start -> end`` are computed, not yet committed.

    last_report : the step of this reporter's previous call (the run's start or resume step before
    its first): ``records(var, since=segment.last_report)`` are the records it has not seen.
    outcomes : {"stop_reason", "stopped_at", "equilibrated_at"} (ensemble shape, NumPy), as they
    stand after the stop rules checked so far; read them, change them only through :meth:`stop`.
    A run whose members have all stopped finishes at the last stop (``outcomes["stopped_at"]``),
    which may be before ``end``; its records after a member's stop are NaN.
    """

    def __init__(self, run: RunInfo, start: int, end: int, found: dict, last_report: int | None = None,
                 written: dict | None = None):
        self.run, self.start, self.end, self.outcomes = run, start, end, found
        self.last_report = start if last_report is None else last_report
        self.written: dict = {} if written is None else written

    def records(self, var: str, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of the records of ``var`` up to ``end`` (NumPy, read from the store);
        ``since``: only the records after that step (e.g. ``segment.last_report``)."""
        plan = self.run.plan
        first = 0 if since is None else int(np.searchsorted(plan.steps(var), since, side="right"))
        return self.run.store.records(var, plan, self.end, first=first)

    def running(self) -> np.ndarray:
        """Boolean mask (ensemble shape) of the members still running."""
        return self.outcomes["stop_reason"] == outcome_codes.RUNNING

    def stop(self, hit, outcome: str, equilibrated_at=None) -> None:
        """Stop the running members in ``hit`` (bool, ensemble shape) at ``end`` as ``outcome``
        ("converged", "equilibrated" or "cycled"); ``equilibrated_at``: where their equilibrium
        window starts (a step, or an array of steps broadcastable to the ensemble shape)."""
        from .stop import OUTCOMES

        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {list(OUTCOMES)}, got {outcome!r}")
        hit = np.broadcast_to(np.asarray(hit, dtype=bool), self.outcomes["stop_reason"].shape)
        outcome_codes.mark(self.outcomes, hit, OUTCOMES[outcome], self.end, equilibrated_at)

    def write(self, name: str, index: tuple, values) -> None:
        """Write ``values`` at ``index`` of the store array ``name`` (one a reporter's ``layout``
        made), as part of this segment's commit."""
        from .store.chunks import merge

        merge(self.written, self.run.store.write([(name, index, np.asarray(values))]))


class ProgressBar:
    """The progress bar of ``eq.run(progress=...)`` as a reporter: it moves at every segment's end
    (and, for tasks in this process, within a segment); ``enabled`` None: when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, chunks: int | None = None):
        self.enabled, self.chunks, self.bar = enabled, chunks, None

    def begin(self, run: RunInfo) -> None:
        from .provenance import Progress

        chunks = self.chunks or 1
        self.bar = Progress(run.position, run.plan.last, self.enabled, f"{run.kind} {run.operator}",
                            key=run.token, chunks=chunks)

    def report(self, segment: Segment) -> None:
        self.bar.update(segment.end)

    def end(self, run: RunInfo) -> None:
        if self.bar is not None:
            self.bar.close()


def check_reporters(reporters, recorded, problems: list) -> list:
    """``reporters`` as a list; each problem (not a reporter, reads what is not recorded) joins ``problems``."""
    if reporters is None:
        return []
    if not isinstance(reporters, (list, tuple)):
        problems.append(f"reporters: expected a list of reporters (objects with report(segment)), got "
                        f"{type(reporters).__name__} {reporters!r}")
        return []
    out = []
    for i, reporter in enumerate(reporters):
        if not callable(getattr(reporter, "report", None)):
            problems.append(f"reporters[{i}]: expected an object with a method report(segment), got {reporter!r}")
            continue
        for var in getattr(reporter, "reads", ()) or ():
            if var not in recorded:
                problems.append(f"reporters[{i}] reads {var!r}: expected a recorded variable among "
                                f"{sorted(recorded)}; add it to record=")
        out.append(reporter)
    return out


def next_step(reporter, position: int) -> int | None:
    """The step a reporter asks to be called at next (None: at every segment's end)."""
    ask = getattr(reporter, "next_report", None)
    step = ask(position) if callable(ask) else None
    if step is not None and (not isinstance(step, (int, np.integer)) or step <= position):
        raise ValueError(f"{type(reporter).__name__}.next_report({position}): expected a step > {position} or "
                         f"None, got {step!r}")
    return None if step is None else int(step)


def call(reporter, method: str, *args) -> None:
    fn = getattr(reporter, method, None)
    if callable(fn):
        fn(*args)


def chunk_count(system, dims, chunks: dict) -> int:
    return math.prod(-(-system.sizes[d] // chunks[d]) for d in dims)
