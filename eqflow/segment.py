"""The hot loop: advance one ensemble chunk through one segment of steps, as one dask task.

Raw arrays only; records are buffered on the backend and written to the store once per
segment, together with the chunk's checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import registry, store
from .backends import Backend, set_torch_threads
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
    torch_threads: int | None = None


def advance_chunk(task: ChunkTask) -> dict:
    """Run steps ``start -> stop`` on one chunk, write its records and checkpoint, return the state."""
    system = registry.get(task.kind)
    op = system.operator(task.operator)
    backend = task.backend
    set_torch_threads(backend, task.torch_threads)
    given = {**task.parameters, **task.constants}
    inputs = {k: backend.asarray(v) for k, v in given.items()}
    if op.prepare is not None:
        prepared = registry.call_with(op.prepare, {**given, "sizes": task.sizes})
        inputs.update({k: backend.asarray(v) for k, v in prepared.items()})
    state = {k: backend.asarray(v) for k, v in task.state.items()}
    streams = None
    if op.uniforms is not None:
        shape = op.uniforms(task.sizes)
        streams = CellStreams(task.seed, task.member_labels, task.parameter_index, shape, step=task.start)
    first = task.start if task.record_start else task.start + 1
    recorder = _Recorder(system, task, backend, first, state, inputs)
    if task.record_start:
        recorder.record(task.start, state)
    update = registry.bind(op.update, {**state, **inputs, "uniforms": None} if streams else {**state, **inputs})
    for step in range(task.start, task.stop):
        if streams is not None:
            inputs["uniforms"] = backend.asarray(streams.next())
        state.update(update(state, inputs))
        recorder.record(step + 1, state)
    out = {k: backend.to_numpy(v) for k, v in state.items()}
    checkpoint = [(f"{CHECKPOINT}/{var}", (task.slot, *task.region), values) for var, values in out.items()]
    store.write(task.store, recorder.regions() + checkpoint)
    return out


class _Recorder:
    """Backend buffers for one segment's records of one chunk."""

    def __init__(self, system, task: ChunkTask, backend: Backend, first: int, state: dict, inputs: dict):
        self.system, self.task, self.backend, self.inputs = system, task, backend, inputs
        self.every, self.bound = task.plan.every, {}
        self.offset = {v: task.plan.index(v, first) for v in self.every}
        self.first_index = {v: -(-first // k) for v, k in self.every.items()}  # step // k of the first record
        counts = {v: task.plan.index(v, task.stop + 1) - self.offset[v] for v in self.every}
        self.buffers = {}
        for var, n in counts.items():
            sample = state[var] if var in state else self._observe(var, state)
            self.buffers[var] = backend.empty((n, *sample.shape), _dtype(sample))

    def _observe(self, var, state):
        if var not in self.bound:
            self.bound[var] = registry.bind(self.system.observables[var], {**state, **self.inputs})
        return self.bound[var](state, self.inputs)

    def record(self, step: int, state: dict) -> None:
        for var, k in self.every.items():
            if step % k == 0:
                value = state[var] if var in state else self._observe(var, state)
                self.buffers[var][step // k - self.first_index[var]] = value

    def regions(self) -> list:
        """The store regions of this segment's records: (array name, index, NumPy values)."""
        return [(var, (slice(self.offset[var], self.offset[var] + len(buffer)), *self.task.region), self.backend.to_numpy(buffer))
                for var, buffer in self.buffers.items() if len(buffer)]


def _dtype(array) -> np.dtype:
    return array.dtype if isinstance(array, np.ndarray) else np.dtype(str(array.dtype).removeprefix("torch."))
