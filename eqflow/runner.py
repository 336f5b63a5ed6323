"""``eq.run``: advance an ensemble in segments with dask and stream its history to Zarr."""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from functools import cached_property

import dask
import numpy as np
import xarray as xr

from . import dataset, lease, outcomes, registry, reporting
from . import stop as stop_rules
from . import store as zarr_store
from .backends import Backend
from .errors import SchemaError, StoreError
from .inputs import RunInputs, check_run_inputs, record_specs
from .location import Location
from .provenance import KERNEL_ATTR, digest_mismatch, log, now, provenance, run_identity
from .segment import ChunkTask, advance_chunk, task_inputs
from .store import HistoryStore, RecordPlan, VariableSpec, plan_arrays
from .store.chunks import merge
from .system import accepted_names, call_with, prepare_key, prepared, token_of

SEGMENT_BYTES = 8 * 2**20  # records held per segment, whole ensemble: bounds the memory of a run
MAX_SEGMENT_STEPS = 10_000


def run(system: xr.Dataset, operator: str, *, steps: int, store, record: dict | None = None,
        chunks: dict | None = None, backend: str = "numpy", device: str | None = None, segment: int | None = None,
        stop=None, options: dict | None = None, resume: bool = False, overwrite: bool = False, client=None,
        progress: bool | None = None, torch_threads: int | None = None,
        storage_options: dict | None = None, kernel: str = "auto", reporters: list | None = None,
        schedule=None) -> xr.Dataset:
    """Advance ``system`` by ``steps`` updates of ``operator`` and stream the history to ``store``.

    Parameters
    ----------
    system : a valid system Dataset (``eq.create`` or ``eq.final_state``); its attribute
        ``eqflow_step`` is the step the run starts from.
    operator : name of an operator of the system's kind, e.g. "metropolis".
    steps : int > 0, the most updates any member gets (for Ising, sweeps of the lattice).
    store : where the history goes (a new store, or an existing one with ``resume``/``overwrite``):
        a local path, an fsspec URL (``s3://bucket/run.zarr``, with ``storage_options``), a
        zarr v3 Store object, or None for an in-memory store that is not persisted
        (:mod:`eqflow.location`).
    record : {variable: every k steps}: observables, state variables, the operator's owned
        state or its diagnostics. Default: every observable every step, the state at the
        start and the end.
    chunks : {ensemble dim: block size}, e.g. {"member": 16}; one dask task per block and segment.
    backend, device : "numpy", or "torch" with device "cpu" / "cuda" / ...
    segment : steps per segment (one task per chunk, one write, one checkpoint); default
        chosen to bound memory, a multiple of every record interval. Records are chunked by it,
        or by the spacing of the client-side stop rules' checks where that is shorter.
    stop : a rule or list of rules: :mod:`eqflow.stop`'s (converged, equilibrated, cycled) or any
        object of its protocol. Every member's outcome is recorded in ``stop_reason``,
        ``stopped_at``, ``equilibrated_at``.
    options : the operator's options (see the schema's ``operators.<name>.options``), e.g.
        ``{"history": 8}`` for SCF's DIIS.
    resume : continue an interrupted store to its target step; the history equals an uninterrupted run.
    overwrite : replace an existing store (only after every input has been validated).
    client : a dask.distributed Client; by default the active one, else the local scheduler.
    progress : True: a progress bar (tqdm.auto: text on a terminal, a widget in Jupyter); False: none;
        None (default): a bar where stderr is a terminal or in a notebook, else an INFO line on the
        ``eqflow`` logger about every 30 s and at the end (shown where logging is configured, as
        the ``eqflow`` command line does).
    torch_threads : torch threads per task (default 1, one per dask worker thread). A numba
        kernel's parallel loops use the cores free as the task starts (every core of a quiet
        machine; ``NUMBA_NUM_THREADS`` if the user set it) when the segment has one task on the
        local scheduler, else one thread per task; numba's threads wait passively
        (``OMP_WAIT_POLICY=PASSIVE`` unless set by the user).
    storage_options : for a URL store, passed to fsspec (credentials, ``endpoint_url``); never
        written into the store.
    kernel : "auto" (the operator's first fast variant available for this backend, else its
        reference update), "reference", or the name of a variant (e.g. "numba"); every variant
        gives the reference's history bit for bit. Recorded as the store's ``eqflow_kernel``.
    reporters : objects called at segment boundaries with the segment's records
        (:mod:`eqflow.reporting`: ``report(segment)``, optional ``next_report(step)``, ``reads``,
        ``begin``/``end``, ``layout``). Not part of the run's identity: a resume may pass others.
    schedule : inputs that change between segments, e.g. :func:`eqflow.anneal`'s
        :class:`eqflow.schedule.Schedule`: a reporter (its ``next_report`` ends the segments where
        the inputs change) with ``inputs(start, given)`` -> the chunk's inputs for the segment
        that starts at step ``start`` (``given``: {name: NumPy array} of the chunk, a copy) and
        ``text()`` -> JSON, recorded as the store's ``eqflow_schedule`` (a resume must match).

    Returns the history as :func:`eqflow.open` gives it.
    """
    dataset.validate(system)
    contract = registry.get(system.attrs[dataset.KIND_ATTR])
    checked = check_run_inputs(system, contract, operator, steps=steps, record=record, chunks=chunks, backend=backend,
                               device=device, segment=segment, options=options, torch_threads=torch_threads,
                               client=client, kernel=kernel)
    problems = checked.problems
    rules = _check_rules(stop, contract, operator, checked.record, problems)
    given_reporters = reporting.check_reporters(reporters, checked.record or {}, problems)
    if schedule is not None and not all(callable(getattr(schedule, m, None)) for m in ("inputs", "text")):
        problems.append(f"schedule: expected an object with inputs(start, given) and text() (e.g. what eq.anneal "
                        f"makes), got {schedule!r}")
    path = _location(store, storage_options, client, problems)
    flags_ok = _check_flags(resume=resume, overwrite=overwrite, progress=progress, problems=problems)
    if flags_ok and resume and overwrite:
        problems.append("resume, overwrite: expected at most one of them to be True, got both")
    if problems:
        raise SchemaError(problems, kind=contract.kind)
    resume, overwrite, steps = bool(resume), bool(overwrite), int(steps)
    store_exists, unfinished = _existing(path)
    if store_exists and not unfinished:
        if not (resume or overwrite):
            raise StoreError(f"store {path.name!r}: already exists; pass resume=True to continue it or "
                             f"overwrite=True to replace it")
    elif resume and not unfinished:
        raise StoreError(f"store {path.name!r}: resume=True needs an existing store, got a location where "
                         f"nothing exists")
    history = HistoryStore(path)
    if store_exists and (overwrite or unfinished):
        history.check_replaceable()
    resume = resume and not unfinished  # a layout that was never finished is laid out anew
    start = int(system.attrs.get(dataset.STEP_ATTR, 0))
    plan = RecordPlan(checked.record, start, start + steps)
    dims = contract.schema.ensemble_dims(system)
    # a block larger than its dim is the whole dim; a resumed run keeps the store's blocks
    blocks = {d: min(int((chunks or {}).get(d, system.sizes[d])), system.sizes[d]) for d in dims}
    if resume:
        blocks.update(json.loads(history.attrs().get("eqflow_chunks", "{}")))
    job = _Job(system, contract, operator, plan, dims, blocks, Backend(backend, device), path, history, client,
               torch_threads, rules, checked.options, lease.new_token(), kernel=checked.kernel, schedule=schedule)
    job.chunk_given(0)  # an operator that cannot serve these inputs fails before anything is written
    if resume:
        state, found, done, slot, segment = _resume_point(job)
    else:
        segment = segment or _auto_segment(system, dims, plan, job)
        rule_dims = {}
        state = job.initial_state(rule_dims)
        attrs = provenance(system, contract, operator, plan, job.chunks, job.engine, segment, rules, job.options,
                           job.kernel, schedule=schedule)
        attrs[lease.WRITER_ATTR] = lease.writer(job.token)
        layout = dict(records=record_specs(job, state), checkpoint=_checkpoint_specs(job, state, rule_dims),
                      **_reporter_layout(job, given_reporters))
        chunk_steps = _chunk_steps(job, segment)
        records_per_chunk = {v: max(1, chunk_steps // k) for v, k in plan.every.items()}
        job.history.create(plan_arrays(system, plan, dims, job.chunks, records_per_chunk, **layout), attrs,
                           replace=store_exists)
        found, done, slot = None, None, 1
    if done is None:  # nothing complete yet: start (again) from the system itself
        state = job.initial_state() if state is None else state
        found = outcomes.new(tuple(system.sizes[d] for d in dims))
    try:
        found = _advance(job, state, found, done, slot, segment, given_reporters, progress)
    finally:
        zarr_store.settle()  # a replaced store, deleted while the run went on, is gone
    # just written: no listing of every chunk, and the outcomes as this run holds them
    return job.history.open(check=False, found=found)


@dataclass(frozen=True)
class _Job:
    """What stays fixed during one call of :func:`run`."""

    system: xr.Dataset
    contract: object  # the kind's eqflow.System: schema, operators, observables
    operator: str
    plan: RecordPlan
    dims: list
    chunks: dict
    engine: Backend
    path: Location
    history: HistoryStore  # the store this run writes (one object: it carries the commit chain)
    client: object
    torch_threads: int | None
    rules: tuple
    options: dict
    token: str = ""  # this run's writer token (eqflow.lease)
    kernel: str = "reference"  # the operator variant that runs (eqflow.system.Kernel)
    schedule: object = None  # inputs that change between segments (eq.anneal's eqflow.schedule.Schedule)

    @cached_property
    def inputs(self) -> RunInputs:
        """Parameters, constants, attributes and stream ids, converted once per run (not per segment)."""
        return RunInputs.of(self.system, self.contract.schema, self.options)

    @cached_property
    def regions(self) -> list[tuple]:
        """Each ensemble chunk's region (a slice per ensemble dim), in task order."""
        return list(itertools.product(*(_blocks(self.system.sizes[d], self.chunks[d]) for d in self.dims)))

    def task_inputs(self, given: dict) -> dict:
        """A chunk's inputs as its task receives them (:func:`eqflow.segment.task_inputs`)."""
        return task_inputs(given, _site_sizes(self), self.engine.name)

    @cached_property
    def shared_tokens(self) -> dict:
        """{name: token} of the inputs ``prepare`` reads that no ensemble dim varies (the same value in
        every chunk, e.g. a molecule's integrals): hashed once per run, not once per chunk and segment."""
        op = self.contract.operators[self.operator]
        if op.prepare is None:
            return {}
        first = self.inputs.region(self.regions[0])
        required, optional = accepted_names(op.prepare)
        constants, n = self.inputs.constants, len(self.dims)
        return {k: token_of(first[k]) for k in (*required, *optional)
                if k in constants and all(size == 1 for size in np.shape(constants[k])[:n])}

    def prepare_key(self, given: dict, base: dict | None = None) -> str | None:
        """:func:`eqflow.system.prepare_key` of a chunk's task inputs, made here, on the client, so that
        the task does not hash them; ``base``: the inputs before a schedule changed some of them."""
        op = self.contract.operators[self.operator]
        if op.prepare is None:
            return None
        known = {k: t for k, t in self.shared_tokens.items() if base is None or given.get(k) is base.get(k)}
        return prepare_key(self.contract.kind, op, self.task_inputs(given), known)

    @cached_property
    def prepare_keys(self) -> list:
        """Each chunk's prepare key, for the inputs as the system gives them (no schedule)."""
        return [self.prepare_key(self.inputs.region(region)) for region in self.regions]

    def chunk_given(self, index: int) -> dict:
        """Chunk ``index``'s inputs with what ``prepare`` derives from them, made once per distinct
        inputs in this process: the chunk tasks that run here share it (the client works chunk by
        chunk, as the tasks do, so a run prepares each distinct chunk's inputs once per process)."""
        given = self.task_inputs(self.inputs.region(self.regions[index]))
        op = self.contract.operators[self.operator]
        return {**given, **prepared(self.contract.kind, op, given, key=self.prepare_keys[index])}

    def by_chunk(self, compute) -> dict:
        """``compute(chunk inputs, chunk state region)`` -> {name: array with the ensemble dims first}
        per chunk, assembled into whole-ensemble arrays."""
        out = {}
        for index, region in enumerate(self.regions):
            for name, value in compute(self.chunk_given(index), region).items():
                value = np.asarray(value)
                if name not in out:
                    shape = tuple(self.system.sizes[d] for d in self.dims) + value.shape[len(self.dims):]
                    out[name] = np.empty(shape, value.dtype)
                out[name][region] = value
        return out

    def initial_state(self, rule_dims: dict | None = None) -> dict:
        """Physical state, the operator's owned state (its ``init``, chunk by chunk) and the stop
        rules' state (their own dims by name into ``rule_dims``, when given)."""
        schema = self.contract.schema
        state = {v: self.system[v].values for v in schema.variables}
        op = self.contract.operators[self.operator]
        if op.init is not None:
            owned = self.by_chunk(lambda given, region: call_with(
                op.init, {**given, **{k: v[region] for k, v in state.items()}}))
            _check_owned(self, owned, state)
            state.update(owned)
        for rule in stop_rules.in_task(self.rules):
            if callable(getattr(rule, "initial_state", None)):
                for name, (own, value) in self.rule_state(rule, state).items():
                    state[name] = np.asarray(value)
                    if rule_dims is not None:
                        rule_dims[name] = tuple(own)
        return state

    def rule_state(self, rule, state: dict) -> dict:
        """{name: (own dims, array)} a task rule keeps, from its variable's value at the first step."""
        var = rule.var
        diagnostics = self.contract.schema.operators[self.operator].diagnostics
        value = None if var in diagnostics else state[var] if var in state else _observe_full(self, var, state)
        made = stop_rules.initial_state(rule, value if value is None else np.asarray(value), len(self.dims))
        clash = sorted(set(made) & (set(state) | set(self.contract.schema.variables)))
        if clash:
            raise ValueError(f"stop rule {rule!r}: its state {clash} has the name of a state array; name it otherwise")
        return made

    def info(self, position: int) -> reporting.RunInfo:
        return reporting.RunInfo(self.system, self.contract, self.operator, tuple(self.dims), self.plan, self.history,
                                 position, self.token)


def _check_flags(problems: list, **flags) -> bool:
    """Flags take booleans only (NumPy's too): a truthy string such as "no" must not replace a store."""
    ok = True
    for name, flag in flags.items():
        if not isinstance(flag, (bool, np.bool_)) and not (name == "progress" and flag is None):
            extra = " (or None: a bar on a terminal or in a notebook)" if name == "progress" else ""
            problems.append(f"{name}: expected True or False{extra}, got {type(flag).__name__} {flag!r}")
            ok = False
    return ok


def _check_owned(job: _Job, owned: dict, state: dict) -> None:
    declared = job.contract.schema.operators[job.operator].state
    shape = tuple(job.system.sizes[d] for d in job.dims)
    problems = [f"{job.operator}.init: returned {sorted(owned)}, the schema declares {sorted(declared)}"] \
        if set(owned) != set(declared) else []
    for name, value in owned.items():
        spec = declared.get(name)
        if spec and (np.shape(value)[: len(shape)] != shape or np.ndim(value) != len(shape) + len(spec.dims)
                     or np.asarray(value).dtype != np.dtype(spec.dtype)):
            problems.append(f"{job.operator}.init: {name} expected shape {shape} + {len(spec.dims)} own dims "
                            f"{spec.dims} and dtype {spec.dtype}, got shape {np.shape(value)} dtype "
                            f"{np.asarray(value).dtype}")
    if problems:
        raise TypeError("; ".join(problems))


def _observe_full(job: _Job, var: str, state: dict):
    observe = job.contract.observables[var]
    return job.by_chunk(lambda given, region: {var: call_with(
        observe, {**given, **{k: v[region] for k, v in state.items()}, "step": job.plan.first})})[var]


def _site_sizes(job: _Job) -> dict:
    """{dim: size} of the dims that are not ensemble dims, as prepare and init receive them."""
    return {d: job.system.sizes[d] for d in job.system.dims if d not in job.dims}


def _checkpoint_specs(job: _Job, state: dict, rule_dims: dict) -> dict:
    """{name: VariableSpec} of everything the checkpoint holds."""
    schema, n = job.contract.schema, len(job.dims)
    owned = schema.operators[job.operator].state
    specs = {}
    for name, value in state.items():
        value = np.asarray(value)
        if name in schema.variables:
            own = tuple(job.system[name].dims[n:])
            attrs = dict(job.system[name].attrs)
        elif name in owned:
            own, attrs = owned[name].dims, {"units": owned[name].units} if owned[name].units else {}
        else:  # a stop rule's state
            own, attrs = rule_dims[name], {}
        specs[name] = VariableSpec(own, value.shape[n:], value.dtype, attrs)
    return specs


def _advance(job: _Job, state, found, done, slot, segment, reporters: list, progress) -> dict:
    """The segment loop: run, call the reporters (client-side stop rules first), checkpoint, then
    mark (last). Returns the outcomes as the store now holds them."""
    plan = job.plan
    position = plan.first if done is None else done
    run = job.info(position)
    called = [rule.reporter(run) for rule in job.rules if getattr(rule, "where", "task") == "client"]
    called += ([job.schedule] if job.schedule is not None else []) + list(reporters)
    called.append(reporting.ProgressBar(progress, reporting.chunk_count(job.system, job.dims, job.chunks)))
    for reporter in called:
        reporting.call(reporter, "begin", run)
    reported = [position] * len(called)  # the step of each reporter's last call
    log.info("%s %s: steps %d -> %d into %s (%s; chunks %s)", job.contract.kind, job.operator, position, plan.last,
             job.path.short_name, "resumed" if done is not None else "new", job.chunks)
    try:
        while done is None or done < plan.last:
            asked = [reporting.next_step(r, position) for r in called]
            end = min([position + segment - position % segment, plan.last] + [a for a in asked if a is not None])
            slot = 1 - slot
            job.history.require_present()
            lease.check_owner(job.path, job.history.attrs(), job.token)  # nobody took the store over
            state, found, written = _run_segment(job, state, found, position, end, done is None, slot)
            extra = {}
            for i, (reporter, step) in enumerate(zip(called, asked)):
                if step is None or step == end:  # before the marker: a resume writes the same values again
                    reporting.call(reporter, "report", reporting.Segment(run, position, end, found, reported[i], extra))
                    reported[i] = end
            merge(written, extra)
            running = found["stop_reason"] == outcomes.RUNNING
            finished = end == plan.last or not running.any()
            if finished:
                end = end if running.any() else int(found["stopped_at"].max())  # the last member's stop
                outcomes.finish(found, end)
            merge(written, _write_outcomes(job, found, slot, end))
            marker = {zarr_store.STATUS: "running"}
            if finished:
                marker.update({zarr_store.STATUS: "complete", "eqflow_finished": now(), lease.WRITER_ATTR: ""})
            job.history.commit(written, steps_done=end, slot=slot, token=job.token, **marker)
            if finished and end < plan.last:
                job.history.trim(plan, end)
            _log_outcomes(found, end, finished)
            done = position = end
            if finished:
                break
    finally:
        for reporter in called:
            reporting.call(reporter, "end", run)
    return found


def _reporter_layout(job: _Job, reporters: list) -> dict:
    """The arrays that the schedule and the reporters add to a new store, and their step coordinates."""
    extra, along = {}, {}
    run = job.info(job.plan.first)
    for reporter in ([job.schedule] if job.schedule is not None else []) + list(reporters):
        made = reporter.layout(run) if callable(getattr(reporter, "layout", None)) else {}
        extra.update(made.get("extra", {}))
        for dim, names in made.get("step_coordinates", {}).items():
            along.setdefault(dim, []).extend(names)
    return {"extra": extra, "step_coordinates": along} if extra or along else {}


def _write_outcomes(job: _Job, found: dict, slot: int, end: int) -> dict:
    """The per-member outcomes into checkpoint ``slot`` and the visible arrays (before the marker)."""
    regions = [(f"{zarr_store.CHECKPOINT}/{k}", (slot,), v) for k, v in found.items()]
    try:
        return job.history.write(regions + [(k, (Ellipsis,), v) for k, v in found.items()])
    except OSError as exc:
        raise StoreError(f"store {job.path.name!r}: writing the outcomes at step {end} failed ({exc}); the store "
                         f"is consistent up to its last complete segment: fix the cause and resume=True") from None


def _log_outcomes(found: dict, step: int, finished: bool) -> None:
    names, counts = np.unique(outcomes.names(found["stop_reason"]), return_counts=True)
    summary = ", ".join(f"{n} {c}" for n, c in zip(names, counts))
    if finished:
        log.info("finished at step %d: %s", step, summary)
    elif len(names) > 1 or names[0] != "running":
        log.info("step %d: %s", step, summary)


def _auto_segment(system, dims, plan: RecordPlan, job: _Job) -> int:
    members = math.prod(system.sizes[d] for d in dims)
    per_step = sum((system[v].nbytes if v in system else 8 * members) / k for v, k in plan.every.items())
    period = plan.period()
    limit = min(plan.last - plan.first, MAX_SEGMENT_STEPS, max(1, int(SEGMENT_BYTES / max(per_step, 1))))
    return max(period, limit - limit % period) if period <= plan.last - plan.first else plan.last - plan.first


def _chunk_steps(job: _Job, segment: int) -> int:
    """Steps per record chunk: the segment's, or less where client-side stop rules check more often.

    Such a rule ends a segment at each check it asks for; with chunks as long as a default segment
    every check's segment would rewrite part of a larger record chunk (read, update and encode it
    again, at every check). Chunked by the spacing of the rules' first check, a check's segment
    writes about one chunk, and a longer segment (between sparse checks) whole ones."""
    plan, run = job.plan, job.info(job.plan.first)
    asked = [reporting.next_step(rule.reporter(run), plan.first) for rule in job.rules
             if getattr(rule, "where", "task") == "client"]
    spacing = min([a - plan.first for a in asked if a is not None], default=segment)
    period = plan.period()
    return max(period, spacing - spacing % period) if spacing < segment else segment


def _blocks(size: int, block: int) -> list[slice]:
    return [slice(i, min(i + block, size)) for i in range(0, size, block)]


def _run_segment(job: _Job, state, found, start, stop, record_start, slot):
    """One segment: one task per ensemble chunk, computed with dask; returns the full new state and outcomes."""
    system, dims, inputs = job.system, job.dims, job.inputs
    labels, sizes, regions = system[dims[0]].values, _site_sizes(job), job.regions
    in_task = stop_rules.in_task(job.rules)
    tasks = []
    for index, region in enumerate(regions):
        given, key = inputs.region(region), job.prepare_keys[index]
        if job.schedule is not None:  # e.g. this stage's value of an anneal's parameter
            base, given = given, job.schedule.inputs(start, given)
            key = job.prepare_key(given, base)
        task = ChunkTask(
            kind=job.contract.kind, operator=job.operator, state={k: v[region] for k, v in state.items()},
            inputs=given, sizes=sizes, member_labels=labels[region[0]],
            point_ids=inputs.point_ids[region[1:]], seed=int(system.attrs[dataset.SEED_ATTR]), start=start, stop=stop,
            record_start=record_start, plan=job.plan, store=job.path, region=region, slot=slot,
            backend=job.engine, outcomes={k: v[region] for k, v in found.items()}, rules=in_task,
            torch_threads=job.torch_threads, progress_key=job.token, kernel=job.kernel, prepare_key=key,
            alone=len(regions) == 1 and _local_scheduler(job.client))
        # the dashboard and the logs say which run, steps and chunk a task is
        name = f"eqflow-{job.contract.kind}-{job.operator}-steps-{start}-{stop}-chunk-{index}-{job.token}"
        # the task as one opaque literal: dask would otherwise walk every field and array of it
        # looking for dask collections (about 0.3 ms a task)
        given_task = dask.delayed(task, name=f"{name}-input", traverse=False)
        tasks.append(dask.delayed(advance_chunk, pure=False)(given_task, dask_key_name=name))
    results = dask.compute(*tasks, scheduler=job.client.get if job.client is not None else None)
    new_state = {k: np.empty_like(v) for k, v in state.items()}
    new_found = {k: np.empty_like(v) for k, v in found.items()}
    written = {}
    for region, result in zip(regions, results):
        for k, v in result["state"].items():
            new_state[k][region] = v
        for k, v in result["outcomes"].items():
            new_found[k][region] = v
        merge(written, result["written"])
    return new_state, new_found, written


def _local_scheduler(client) -> bool:
    """Whether tasks run on this process's threads (no client given, none active: dask's threaded or
    synchronous scheduler), where a lone task may use every core."""
    import dask.local
    import dask.threaded

    return client is None and dask.base.get_scheduler() in (None, dask.threaded.get, dask.local.get_sync)


def _resume_point(job: _Job):
    path, plan, system = job.path, job.plan, job.system
    attrs = job.history.attrs()
    if "eqflow_kind" in attrs:
        zarr_store.check_format(path, attrs)
    expected = run_identity(system, job.contract, job.operator, plan, job.rules, job.options, job.schedule)
    wrong = [f"{k}: the store has {attrs.get(k)!r}, this call asks for {v!r}"
             for k, v in expected.items() if attrs.get(k) != v]
    differ = digest_mismatch(attrs.get("eqflow_system_digest"), system)
    if differ:
        wrong.append(f"system: differs from the one this store was started with in {differ} (parameters, sweep "
                     f"coordinates, member labels, constants or the initial state)")
    if wrong:
        raise StoreError(f"store {path.name!r}: cannot resume a different run:\n  - " + "\n  - ".join(wrong))
    lease.refuse_if_held(path.name, attrs, "resume")
    kernels = attrs.get(KERNEL_ATTR, "reference").split(", ")  # variants agree bit for bit: any may resume
    used = ", ".join(kernels + [job.kernel] if job.kernel != kernels[-1] else kernels)
    names = [n for n in _checkpoint_names(job) if n not in outcomes.ARRAYS]
    # the whole store is checked against its commit record before this run takes it: the
    # checkpoint slot it continues from, and every record it will extend
    state, done = job.history.checkpoint(names, everything=True)
    found = job.history.outcomes() if done is not None else None
    job.history.mark(**{lease.WRITER_ATTR: lease.writer(job.token), KERNEL_ATTR: used})  # this run writes it now
    segment = int(attrs["eqflow_segment"])
    if done is None:
        return None, None, None, 1, segment
    return {k: v.values for k, v in state.items()}, found, done, attrs.get(zarr_store.SLOT, 0), segment


def _checkpoint_names(job: _Job) -> list[str]:
    """The arrays of the store's checkpoint group."""
    import zarr

    group = zarr.open_group(job.path.zarr(), path=zarr_store.CHECKPOINT, mode="r")
    return sorted(group.array_keys())


def _location(store, storage_options, client, problems: list) -> Location | None:
    """The store's Location (a local path made absolute at once); its problems join the others."""
    try:
        loc = Location(store, storage_options)
    except TypeError as exc:
        problems.append(str(exc))
        return None
    memory_url = loc.kind == "url" and str(loc.target).startswith("memory://")
    if (loc.in_memory or memory_url) and not _local_scheduler(client):
        what = "an in-memory store" if loc.in_memory else "a memory:// store (fsspec's memory, of this process)"
        problems.append(f"store: {what} ({loc.name}) lives in this process only, so a dask.distributed "
                        f"client's workers cannot write it; give a local path or an fsspec URL")
    if loc.kind == "url":
        try:
            loc.filesystem()
        except (ImportError, ValueError) as exc:
            problems.append(f"store: cannot use {loc.name!r} ({type(exc).__name__}: {exc}); an s3:// URL needs "
                            f"s3fs (pip install 'eqflow-ensembles[s3]'), gs:// needs gcsfs")
    return loc


def _existing(loc: Location) -> tuple[bool, bool]:
    """(something exists at the location, it is an eqflow layout that was never finished and nobody writes)."""
    try:
        exists = loc.exists()
    except Exception as exc:  # no credentials, no such bucket, no network: named before any work
        raise StoreError(f"store {loc.name!r}: cannot be reached ({type(exc).__name__}: {exc}); check the URL and "
                         f"storage_options (credentials, endpoint_url)") from None
    if not exists or loc.is_local:
        return exists, False
    try:
        attrs = HistoryStore(loc).attrs()
    except StoreError:
        return True, False
    return True, (attrs.get(zarr_store.STATUS) == "creating" and "eqflow_kind" in attrs
                  and lease.holder(attrs) is None)


def _check_rules(stop, contract, operator: str, record, problems: list) -> tuple:
    """``stop`` as a tuple of rules; what each rule finds wrong with its variable joins ``problems``
    (a client rule reads the records: its variable must be recorded)."""
    try:
        rules = stop_rules.as_rules(stop)
    except TypeError as exc:
        problems.append(str(exc))
        return ()
    for rule in rules:
        check = getattr(rule, "validate", None)
        found = check(contract, operator) if callable(check) else stop_rules.check_var(rule, contract, operator)
        problems += found
        if not found and getattr(rule, "where", "task") == "client" and isinstance(record, dict) \
                and rule.var not in record:
            problems.append(f"stop rule variable: {rule.var!r} is read from the records by a rule checked on the "
                            f"client; expected it among the recorded {sorted(record)}: add it to record=")
    return rules
