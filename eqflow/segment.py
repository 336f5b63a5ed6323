"""The hot loop: advance one ensemble chunk through one segment of steps, as one dask task.

Raw arrays only; records are buffered on the backend and written to the store once per
segment, together with the chunk's checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry, stop, store
from .backends import Backend, namespace, set_torch_threads
from .random import CellStreams
from .store import CHECKPOINT, RecordPlan


@dataclass(frozen=True)
class ChunkTask:
    """Everything one task needs: plain arrays and names, so it pickles to any worker."""

    kind: str
    operator: str
    state: dict
    parameters: dict
    constants: dict
    sizes: dict
    member_labels: np.ndarray
    parameter_index: np.ndarray
    seed: int
    start: int
    stop: int
    record_start: bool
    plan: RecordPlan
    store: str
    region: tuple
    slot: int
    backend: Backend
    stops: dict
    rules: tuple = ()
    torch_threads: int | None = None


def advance_chunk(task: ChunkTask) -> dict:
    """Run steps ``start -> stop`` on one chunk, write its records and checkpoint.

    Returns ``{"state": {var: array}, "stops": {outcome array}}`` for the chunk. Members that
    stop (a rule is met, or the state turns NaN/inf) are frozen; the task ends when all have.
    """
    system = registry.get(task.kind)
    op = system.operator(task.operator)
    backend = task.backend
    set_torch_threads(backend, task.torch_threads)
    given = {**task.parameters, **task.constants}
    inputs = {k: backend.asarray(v) for k, v in given.items()}
    state = {k: backend.asarray(v) for k, v in task.state.items()}
    book = {k: v.copy() for k, v in task.stops.items()}
    if op.prepare is not None:
        prepared = registry.call_with(op.prepare, {**given, "sizes": task.sizes})
        inputs.update({k: backend.asarray(v) for k, v in prepared.items()})
    first = task.start if task.record_start else task.start + 1
    recorder = _Recorder(system, task, backend, first, state, inputs)
    if task.record_start:
        recorder.record(task.start, state)
    if (book["stop_reason"] == stop.RUNNING).any():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # divergence is data, not a warning
            _loop(task, op, backend, state, inputs, book, recorder)
    out = {k: backend.to_numpy(v) for k, v in state.items()}
    checkpoint = [(f"{CHECKPOINT}/{var}", (task.slot, *task.region), values) for var, values in out.items()]
    store.write(task.store, recorder.regions(book) + checkpoint)
    return {"state": out, "stops": book}


def _loop(task, op, backend, state, inputs, book, recorder) -> None:
    """The hot loop: draw, update, freeze stopped members, check stop rules, record."""
    streams = None
    if op.uniforms is not None:
        streams = CellStreams(task.seed, task.member_labels, task.parameter_index, op.uniforms(task.sizes), step=task.start)
    update = registry.bind(op.update, {**state, **inputs, "uniforms": None} if streams else {**state, **inputs})
    watched = [k for k, v in state.items() if _dtype(v).kind in "fc"]
    running = book["stop_reason"] == stop.RUNNING
    for step in range(task.start, task.stop):
        if streams is not None:
            inputs["uniforms"] = backend.asarray(streams.next())
        new = update(state, inputs)
        if not running.all():
            new = {k: _freeze(v, state[k], running, backend) for k, v in new.items()}
        state.update(new)
        if task.rules or watched:
            running = _check_stops(task, state, inputs, book, recorder, watched, step + 1, backend)
        recorder.record(step + 1, state)
        if not running.any():
            return


def _freeze(new, old, running: np.ndarray, backend: Backend):
    """``new`` where the member is running, ``old`` (frozen) where it has stopped."""
    keep = backend.asarray(running.reshape(running.shape + (1,) * (new.ndim - running.ndim)))
    return namespace(new).where(keep, new, old)


def _check_stops(task, state, inputs, book, recorder, watched, step, backend) -> np.ndarray:
    for rule in task.rules:
        value = backend.to_numpy(recorder.observe(rule.var, state))
        stop.mark(book, rule.reached(value), stop.CONVERGED, step, step)
    for var in watched:
        xp = namespace(state[var])
        axes = tuple(range(len(book["stop_reason"].shape), state[var].ndim))
        finite = backend.to_numpy(xp.all(xp.isfinite(state[var]), axis=axes) if axes else xp.isfinite(state[var]))
        stop.mark(book, ~finite, stop.DIVERGED, step)
    return book["stop_reason"] == stop.RUNNING


class _Recorder:
    """Backend buffers for one segment's records of one chunk."""

    def __init__(self, system, task: ChunkTask, backend: Backend, first: int, state: dict, inputs: dict):
        self.system, self.task, self.backend, self.inputs = system, task, backend, inputs
        self.every, self.bound, self.last_step = task.plan.every, {}, None
        self.offset = {v: task.plan.index(v, first) for v in self.every}
        self.first_index = {v: -(-first // k) for v, k in self.every.items()}  # step // k of the first record
        counts = {v: task.plan.index(v, task.stop + 1) - self.offset[v] for v in self.every}
        self.buffers = {}
        for var, n in counts.items():
            sample = state[var] if var in state else self.observe(var, state)
            self.buffers[var] = backend.empty((n, *sample.shape), _dtype(sample))

    def observe(self, var, state):
        if var not in self.bound:
            self.bound[var] = registry.bind(self.system.observables[var], {**state, **self.inputs})
        return self.bound[var](state, self.inputs)

    def record(self, step: int, state: dict) -> None:
        self.last_step = step
        for var, k in self.every.items():
            if step % k == 0:
                value = state[var] if var in state else self.observe(var, state)
                self.buffers[var][step // k - self.first_index[var]] = value

    def regions(self, book: dict) -> list:
        """The store regions of the records made: (array name, index, NumPy values).

        Float records of a member after the step it stopped at are NaN: it has no data there.
        """
        out = []
        for var, buffer in self.buffers.items():
            k = self.every[var]
            n = max(0, self.last_step // k - self.first_index[var] + 1) if self.last_step is not None else 0
            if n == 0:
                continue
            values = self.backend.to_numpy(buffer[:n])
            if values.dtype.kind == "f":
                steps = (self.first_index[var] + np.arange(n)) * k
                stopped = book["stopped_at"]
                late = (stopped >= 0) & (stopped < steps.reshape((n,) + (1,) * stopped.ndim))
                values = np.where(late.reshape(late.shape + (1,) * (values.ndim - late.ndim)), np.nan, values)
            out.append((var, (slice(self.offset[var], self.offset[var] + n), *self.task.region), values))
        return out


def _dtype(array) -> np.dtype:
    return array.dtype if isinstance(array, np.ndarray) else np.dtype(str(array.dtype).removeprefix("torch."))
