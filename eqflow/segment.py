"""The hot loop: advance one ensemble chunk through one segment of steps, as one dask task.

Raw arrays only; records are buffered on the backend and written to the store once per
segment, together with the chunk's checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from . import outcomes, provenance, random, registry, store
from . import stop as stop_rules
from .backends import Backend, dtype_of, namespace, numba_threads, set_torch_threads
from .errors import StoreError
from .inputs import working_dtype
from .store import CHECKPOINT, RecordPlan
from .store.layout import record_fill
from .system import bind, prepared


@dataclass(frozen=True)
class ChunkTask:
    """Everything one task needs: plain arrays and names, so it pickles to any worker."""

    kind: str
    operator: str
    state: dict
    inputs: dict
    sizes: dict
    member_labels: np.ndarray
    point_ids: np.ndarray
    seed: int
    start: int
    stop: int
    record_start: bool
    plan: RecordPlan
    store: object  # an eqflow.location.Location
    region: tuple
    slot: int
    backend: Backend
    outcomes: dict
    rules: tuple = ()
    torch_threads: int | None = None
    progress_key: str = ""  # the run's token: where an in-process task reports its steps
    kernel: str = "reference"  # "reference" (the operator's update) or the name of one of its kernels
    alone: bool = True  # the segment's only task on a local scheduler: a kernel may use every core
    prepare_key: str | None = None  # the client's eqflow.system.prepare_key of these inputs (None: hash them here)


def task_inputs(inputs: dict, sizes: dict, backend_name: str) -> dict:
    """A chunk task's inputs as ``prepare``, ``init`` and the operator receive them (the run's client
    builds the same, for its chunk-by-chunk work and each task's prepare key)."""
    return {**inputs, "sizes": sizes, "backend": backend_name}


def advance_chunk(task: ChunkTask) -> dict:
    """Run steps ``start -> stop`` on one chunk, write its records and checkpoint.

    Returns ``{"state": {name: array}, "outcomes": {outcome array}, "written": {array: {chunk key:
    crc32c}}}`` for the chunk (what the segment's commit records). Members
    that stop (a rule is met, or the state turns NaN/inf) are frozen; the task ends when all have.
    """
    system = registry.get(task.kind)
    op, spec = system.operator(task.operator), system.schema.operators[task.operator]
    backend = task.backend
    set_torch_threads(backend, task.torch_threads)
    working = working_dtype({k: task.state[k] for k in system.schema.variables})
    given = task_inputs(task.inputs, task.sizes, backend.name)
    given.update(prepared(task.kind, op, given, key=task.prepare_key))  # once per distinct inputs in this process
    inputs = {k: _to_backend(v, backend, working) for k, v in given.items()}
    inputs["step"] = task.start
    state = {k: backend.asarray(v) for k, v in task.state.items()}
    found = {k: v.copy() for k, v in task.outcomes.items()}
    recorder = _Recorder(system, spec, task, backend, state, inputs)
    if task.record_start:
        recorder.record(task.start, state, {})
    if (found["stop_reason"] == outcomes.RUNNING).any():
        kernel = op.kernels[task.kernel] if task.kernel != "reference" else None
        # divergence is data, not a warning
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), numba_threads(kernel, task.alone):
            _loop(task, op, spec, backend, state, inputs, found, recorder, working)
    recorder.pad_to_end(state)
    out = {k: backend.to_numpy(v) for k, v in state.items()}
    checkpoint = [(f"{CHECKPOINT}/{name}", (task.slot, *task.region), values) for name, values in out.items()]
    try:
        written = store.write(task.store, recorder.regions(found) + checkpoint)
    except OSError as exc:  # a full disk, a lost mount: named, and the store stays consistent
        raise StoreError(f"store {str(task.store)!r}: writing steps {task.start}-{task.stop} failed ({exc}); the store "
                         f"is consistent up to its last complete segment: fix the cause and resume=True") from None
    return {"state": out, "outcomes": found, "written": written}


def _to_backend(value, backend: Backend, working: str):
    """NumPy inputs on the backend, floats cast to the state's float dtype; a prepared composite
    through its ``on_backend``; other values as they are."""
    if hasattr(value, "on_backend"):
        return value.on_backend(lambda array: _to_backend(array, backend, working))
    if isinstance(value, (np.ndarray, np.generic)):
        value = np.asarray(value)
        if value.dtype.kind == "f" and value.dtype != working:
            value = value.astype(working)
        return backend.asarray(value)
    return value


def _draws(op, working: str) -> list:
    """(slot, argument name, draw) of each declared draw; float draws in the state's float dtype."""
    out = []
    for slot, (name, draw) in enumerate(op.draws.items()):
        if draw.kind in ("uniform", "normal"):
            draw = dataclasses.replace(draw, dtype=working)
        out.append((slot, name, draw))
    return out


def _loop(task, op, spec, backend, state, inputs, found, recorder, working) -> None:
    """The hot loop: draw, update, freeze stopped members, check stop rules, record."""
    draws = _draws(op, working)
    keys = backend.asarray(random.cell_keys(task.seed, task.member_labels, task.point_ids)) if draws else None
    kernel = op.kernels[task.kernel] if task.kernel != "reference" else None
    if kernel is not None and kernel.inline_draws:  # the kernel makes the draws itself, from the keys
        inputs["keys"], inputs["slots"] = keys, {name: slot for slot, name, _ in draws}
        draws = []
    update = bind(kernel.update if kernel is not None else op.update,
                  {**state, **inputs, **{name: None for _, name, _ in draws}})
    owned = [*system_variables(task), *registry.get(task.kind).schema.operators[task.operator].state]
    watched = [k for k in owned if dtype_of(state[k]).kind in "fc"]  # NaN/inf here: the member diverged
    running = found["stop_reason"] == outcomes.RUNNING
    everyone = bool(running.all())  # no member stopped: nothing to freeze
    frozen = (np.zeros(0, bool), {})  # (the running mask, {ndim: its backend mask}) of the last freeze
    checks = bool(task.rules or watched)  # without rules or float state, no member can stop
    diagnostics = tuple(spec.diagnostics)
    bar = provenance.live_progress(task.progress_key)
    reported, next_report = task.start, time.monotonic() + provenance.REPORT_SECONDS
    sizes = draw_sizes(task.sizes, spec, inputs)
    for step in range(task.start, task.stop):
        if bar is not None and time.monotonic() > next_report:  # within a long segment
            bar.within(step - reported)
            reported, next_report = step, time.monotonic() + provenance.REPORT_SECONDS
        inputs["step"] = step
        for slot, name, draw in draws:
            inputs[name] = random.generate(draw, keys, step=step, slot=slot, sizes=sizes)
        new = update(state, inputs)
        diag = {k: new.pop(k) for k in diagnostics if k in new}
        if step == task.start:
            _check_update_keys(task, new, state)
        if not everyone:
            if frozen[0] is not running and not np.array_equal(frozen[0], running):  # made once per change
                frozen = (running, {})
            new = {k: _freeze(v, state[k], running, backend, frozen[1]) for k, v in new.items()}
        state.update(new)
        inputs["step"] = step + 1
        if checks:
            running = _check_stops(task, state, diag, found, recorder, watched, step + 1, backend)
            everyone = bool(running.all())
        recorder.record(step + 1, state, diag)
        if not everyone and not running.any():
            return


def draw_sizes(sizes: dict, spec, inputs: dict) -> dict:
    """The sizes a draw's shape may name: the site dims, and the operator's integer options
    (e.g. ``integers("node", "picks_per_step")``: as many picks per step as the option says)."""
    options = {k: inputs[k] for k in spec.options if k in inputs and k not in sizes}
    return {**sizes, **{k: int(v) for k, v in options.items() if isinstance(v, (int, np.integer))
                        and not isinstance(v, bool)}}


def system_variables(task: ChunkTask) -> list[str]:
    return list(registry.get(task.kind).schema.variables)


def _check_update_keys(task, new: dict, state: dict) -> None:
    extra = sorted(set(new) - set(state))
    if extra:
        raise TypeError(f"{task.kind}.{task.operator}: update returned {extra}, which are neither state, owned state "
                        f"nor declared diagnostics")


def _freeze(new, old, running: np.ndarray, backend: Backend, masks: dict):
    """``new`` where the member is running, ``old`` (frozen) where it has stopped; ``masks`` keeps
    the backend mask for each ndim (the caller empties it when ``running`` changes)."""
    keep = masks.get(new.ndim)
    if keep is None:
        keep = masks[new.ndim] = backend.asarray(running.reshape(running.shape + (1,) * (new.ndim - running.ndim)))
    return namespace(new).where(keep, new, old)


def _check_stops(task, state, diag, found, recorder, watched, step, backend) -> np.ndarray:
    """The task's stop rules (:mod:`eqflow.stop`), in order, then divergence; each observable a rule
    reads is evaluated once for the step and shared with the records."""
    for rule in task.rules:
        hit, changed = rule.check(recorder.value(rule.var, state, diag, step), state)
        if changed:
            taken = set(changed) & set(recorder.protected)
            if taken:
                raise ValueError(f"stop rule {rule!r}: check() returned {sorted(taken)}, which are the system's or "
                                 f"the operator's state; a rule returns only its own arrays")
            state.update(changed)
        equilibrated_at = step if stop_rules.window_start(rule) else None
        outcomes.mark(found, backend.to_numpy(hit), stop_rules.OUTCOMES[rule.outcome], step, equilibrated_at)
    for var in watched:
        xp = namespace(state[var])
        if bool(xp.isfinite(xp.sum(state[var]))):  # one reduction: no NaN/inf (an overflowing sum checks each member)
            continue
        axes = tuple(range(found["stop_reason"].ndim, state[var].ndim))
        finite = backend.to_numpy(xp.all(xp.isfinite(state[var]), axis=axes) if axes else xp.isfinite(state[var]))
        outcomes.mark(found, ~finite, outcomes.DIVERGED, step)
    return found["stop_reason"] == outcomes.RUNNING


class _Recorder:
    """Backend buffers for one segment's records of one chunk, and the step's observations: each
    observable is evaluated at most once per step, shared by the stop rules and the records."""

    def __init__(self, system, spec, task: ChunkTask, backend: Backend, state: dict, inputs: dict):
        self.system, self.spec, self.task, self.backend, self.inputs = system, spec, task, backend, inputs
        self.protected = (*system.schema.variables, *spec.state)  # what a stop rule may not overwrite
        first = task.start if task.record_start else task.start + 1
        self.every, self.bound, self.last_step = task.plan.every, {}, None
        self.seen, self.seen_step = {}, None  # this step's observations
        self.offset = {v: task.plan.index(v, first) for v in self.every}
        self.first_index = {v: -(-first // k) for v, k in self.every.items()}  # step // k of the first record
        self.counts = {v: task.plan.index(v, task.stop + 1) - self.offset[v] for v in self.every}
        ensemble = task.outcomes["stop_reason"].shape
        self.buffers, self.fill = {}, {}
        for var, d in spec.diagnostics.items():  # what a step that reports no such diagnostic records (or a rule reads)
            shape, dtype = (*ensemble, *(task.sizes[x] for x in d.dims)), np.dtype(d.dtype)
            self.fill[var] = backend.full(shape, record_fill(dtype), dtype)
            if var in self.counts:
                self.buffers[var] = backend.empty((self.counts[var], *shape), dtype)
        # other buffers take the shape and dtype of their first value (no observation made for it)

    def observe(self, var, state, step: int | None = None):
        """Observable ``var`` of ``state``; computed once for a given ``step``."""
        if step is not None and step == self.seen_step and var in self.seen:
            return self.seen[var]
        if var not in self.bound:
            self.bound[var] = bind(self.system.observables[var], {**state, **self.inputs})
        value = self.bound[var](state, self.inputs)
        if step is not None:
            if step != self.seen_step:
                self.seen, self.seen_step = {}, step
            self.seen[var] = value
        return value

    def value(self, var: str, state: dict, diagnostics: dict, step: int):
        """What a stop rule reads: a state array, a diagnostic of this step, or an observable."""
        if var in state:
            return state[var]
        if var in self.spec.diagnostics:
            return diagnostics.get(var, self.fill[var])
        return self.observe(var, state, step)

    def _store(self, var: str, rows, value) -> None:
        if var not in self.buffers:
            self.buffers[var] = self.backend.empty((self.counts[var], *tuple(value.shape)), dtype_of(value))
        self.buffers[var][rows] = value

    def record(self, step: int, state: dict, diagnostics: dict) -> None:
        self.last_step = step
        for var, k in self.every.items():
            if step % k:
                continue
            if var in self.fill:
                value = diagnostics.get(var, self.fill[var])
            else:
                value = state[var] if var in state else self.observe(var, state, step)
            self._store(var, step // k - self.first_index[var], value)

    def pad_to_end(self, state: dict) -> None:
        """Records up to the segment's end for a chunk whose members all stopped early: the frozen
        state's values (fill values after each member's stop, in :meth:`regions`) and fill values for diagnostics,
        so every chunk of the store is written (a missing chunk always means damage)."""
        stop = self.task.stop
        if self.last_step is not None and self.last_step >= stop:
            return
        for var, k in self.every.items():
            begin = self.first_index[var] if self.last_step is None else self.last_step // k + 1
            end = stop // k + 1
            if end <= begin:
                continue
            if var in self.fill:
                value = self.fill[var]
            else:  # the frozen state: the observations of the last step recorded, if any
                value = state[var] if var in state else self.observe(var, state, self.last_step)
            self._store(var, slice(begin - self.first_index[var], end - self.first_index[var]), value)
        self.last_step = stop

    def regions(self, found: dict) -> list:
        """The store regions of the records made: (array name, index, NumPy values).

        Records of a member after the step it stopped at are fill values (NaN for floats, the
        most negative integer for integers, declared as ``_FillValue``: xarray shows NaN); it
        has no data there. Boolean records keep its last value.
        """
        out = []
        for var, buffer in self.buffers.items():  # a variable never recorded has no buffer: nothing to write
            k = self.every[var]
            n = max(0, self.last_step // k - self.first_index[var] + 1) if self.last_step is not None else 0
            if n == 0:
                continue
            values = self.backend.to_numpy(buffer[:n])
            fill = record_fill(values.dtype)
            if fill is not None:
                steps = (self.first_index[var] + np.arange(n)) * k
                stopped = found["stopped_at"]
                late = (stopped >= 0) & (stopped < steps.reshape((n,) + (1,) * stopped.ndim))
                values = np.where(late.reshape(late.shape + (1,) * (values.ndim - late.ndim)), fill, values)
            out.append((var, (slice(self.offset[var], self.offset[var] + n), *self.task.region), values))
        return out
