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

from . import dataset, lease, outcomes, registry
from . import stop as stop_rules
from . import store as zarr_store
from .backends import Backend
from .errors import SchemaError, StoreError
from .inputs import RunInputs, check_run_inputs, record_specs
from .location import Location
from .provenance import KERNEL_ATTR, Progress, digest_mismatch, log, now, provenance, rules_text
from .segment import ChunkTask, advance_chunk
from .store import ArraySpec, HistoryStore, RecordPlan, VariableSpec, plan_arrays
from .store.chunks import merge
from .system import call_with, prepared

SEGMENT_BYTES = 8 * 2**20  # records held per segment, whole ensemble: bounds the memory of a run
MAX_SEGMENT_STEPS = 10_000


def run(system: xr.Dataset, operator: str, *, steps: int, store, record: dict | None = None,
        chunks: dict | None = None, backend: str = "numpy", device: str | None = None, segment: int | None = None,
        stop=None, options: dict | None = None, resume: bool = False, overwrite: bool = False, client=None,
        progress: bool | None = None, torch_threads: int | None = None,
        storage_options: dict | None = None, kernel: str = "auto", _schedule=None) -> xr.Dataset:
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
        chosen to bound memory, a multiple of every record interval.
    stop : a rule or list of rules from :mod:`eqflow.stop` (converged, equilibrated, cycled).
        Every member's outcome is recorded in ``stop_reason``, ``stopped_at``, ``equilibrated_at``.
    options : the operator's options (see the schema's ``operators.<name>.options``), e.g.
        ``{"history": 8}`` for SCF's DIIS.
    resume : continue an interrupted store to its target step; the history equals an uninterrupted run.
    overwrite : replace an existing store (only after every input has been validated).
    client : a dask.distributed Client; by default the active one, else the local scheduler.
    progress : print progress to stderr; default when stderr is a terminal.
    torch_threads : torch threads per task (default 1, one per dask worker thread). A numba
        kernel's parallel loops use every core when the segment has one task on the local
        scheduler, else one thread per task.
    storage_options : for a URL store, passed to fsspec (credentials, ``endpoint_url``); never
        written into the store.
    kernel : "auto" (the operator's first fast variant available for this backend, else its
        reference update), "reference", or the name of a variant (e.g. "numba"); every variant
        gives the reference's history bit for bit. Recorded as the store's ``eqflow_kernel``.

    Returns the history as :func:`eqflow.open` gives it.
    """
    dataset.validate(system)
    sys_ = registry.get(system.attrs[dataset.KIND_ATTR])
    checked = check_run_inputs(system, sys_, operator, steps=steps, record=record, chunks=chunks, backend=backend,
                               device=device, segment=segment, options=options, torch_threads=torch_threads,
                               client=client, kernel=kernel)
    problems = checked.problems
    rules = _check_rules(stop, sys_, checked, problems)
    path = _location(store, storage_options, client, problems)
    flags_ok = _check_flags(resume=resume, overwrite=overwrite, progress=progress, problems=problems)
    if flags_ok and resume and overwrite:
        problems.append("resume, overwrite: expected at most one of them to be True, got both")
    if problems:
        raise SchemaError(problems, kind=sys_.kind)
    resume, overwrite, steps = bool(resume), bool(overwrite), int(steps)
    store_exists, unfinished = _existing(path)
    if store_exists and not unfinished:
        if not (resume or overwrite):
            raise StoreError(f"store {path.name!r}: already exists; pass resume=True to continue it or "
                             f"overwrite=True to replace it")
    elif resume and not unfinished:
        raise StoreError(f"store {path.name!r}: resume=True needs an existing store, got a location where "
                         f"nothing exists")
    if store_exists and (overwrite or unfinished):
        HistoryStore(path).check_replaceable()
    resume = resume and not unfinished  # a layout that was never finished is laid out anew
    start = int(system.attrs.get(dataset.STEP_ATTR, 0))
    plan = RecordPlan(checked.record, start, start + steps)
    dims = sys_.schema.ensemble_dims(system)
    # a block larger than its dim is the whole dim
    job = _Job(system, sys_, operator, plan, dims,
               {d: min(int((chunks or {}).get(d, system.sizes[d])), system.sizes[d]) for d in dims},
               Backend(backend, device), path, client, torch_threads, rules, checked.options, lease.new_token(),
               kernel=checked.kernel, schedule=_schedule)
    job.given  # prepare once, here: an operator that cannot serve these inputs fails before anything is written
    if resume:
        state, found, done, slot, segment = _resume_point(job)
    else:
        segment = segment or _auto_segment(system, dims, plan, job)
        state = job.initial_state()
        attrs = provenance(system, sys_, operator, plan, job.chunks, job.engine, segment, rules, job.options,
                           job.kernel)
        attrs[lease.WRITER_ATTR] = lease.writer(job.token)
        layout = dict(records=record_specs(job, state), checkpoint=_checkpoint_specs(job, state))
        if _schedule is not None:
            attrs["eqflow_schedule"] = _schedule.text()
            layout.update(_schedule_layout(job))
        records_per_chunk = {v: max(1, segment // k) for v, k in plan.every.items()}
        job.history.create(plan_arrays(system, plan, dims, job.chunks, records_per_chunk, **layout), attrs,
                           replace=store_exists)
        found, done, slot = None, None, 1
    if done is None:  # nothing complete yet: start (again) from the system itself
        state = job.initial_state() if state is None else state
        found = outcomes.new(tuple(system.sizes[d] for d in dims))
    try:
        found = _advance(job, state, found, done, slot, segment, progress)
    finally:
        zarr_store.settle()  # a replaced store, deleted while the run went on, is gone
    # just written: no listing of every chunk, and the outcomes as this run holds them
    return job.history.open(check=False, found=found)


@dataclass(frozen=True)
class _Job:
    """What stays fixed during one call of :func:`run`."""

    system: xr.Dataset
    sys_: object
    operator: str
    plan: RecordPlan
    dims: list
    chunks: dict
    engine: Backend
    path: Location
    client: object
    torch_threads: int | None
    rules: tuple
    options: dict
    token: str = ""  # this run's writer token (eqflow.lease)
    kernel: str = "reference"  # the operator variant that runs (eqflow.system.Kernel)
    schedule: object = None  # an eqflow.schedule.Schedule: the parameter's value per stage

    @cached_property
    def history(self) -> HistoryStore:
        """The store this run writes (one object: it carries the commit chain from segment to segment)."""
        return HistoryStore(self.path)

    @cached_property
    def inputs(self) -> RunInputs:
        """Parameters, constants, attributes and stream ids, converted once per run (not per segment)."""
        return RunInputs.of(self.system, self.sys_.schema, self.options)

    @cached_property
    def given(self) -> dict:
        """Every input by name for the whole ensemble, with ``sizes``, ``backend`` and what ``prepare`` derives."""
        given = {**self.inputs.flat(), "sizes": _site_sizes(self), "backend": self.engine.name}
        # once per distinct inputs in this process: chunk tasks that run here share it
        return {**given, **prepared(self.sys_.kind, self.sys_.operators[self.operator], given)}

    def initial_state(self) -> dict:
        """Physical state, the operator's owned state (its ``init``) and the stop rules' state."""
        schema = self.sys_.schema
        state = {v: self.system[v].values for v in schema.variables}
        op = self.sys_.operators[self.operator]
        if op.init is not None:
            owned = call_with(op.init, {**self.given, **state})
            _check_owned(self, owned, state)
            state.update(owned)
        for rule in self.rules:
            if isinstance(rule, stop_rules.Cycled):
                value = state[rule.var] if rule.var in state else _observe_full(self, rule.var, state)
                state[rule.buffer_name] = rule.new_buffer(np.asarray(value), len(self.dims))
        return state


def _check_flags(problems: list, **flags) -> bool:
    """Flags take booleans only (NumPy's too): a truthy string such as "no" must not replace a store."""
    ok = True
    for name, flag in flags.items():
        if not isinstance(flag, (bool, np.bool_)) and not (name == "progress" and flag is None):
            extra = " (or None: a bar when stderr is a terminal)" if name == "progress" else ""
            problems.append(f"{name}: expected True or False{extra}, got {type(flag).__name__} {flag!r}")
            ok = False
    return ok


def _check_owned(job: _Job, owned: dict, state: dict) -> None:
    declared = job.sys_.schema.operators[job.operator].state
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
    return call_with(job.sys_.observables[var], {**job.given, **state, "step": job.plan.first})


def _site_sizes(job: _Job) -> dict:
    """{dim: size} of the dims that are not ensemble dims, as prepare and init receive them."""
    return {d: job.system.sizes[d] for d in job.system.dims if d not in job.dims}


def _checkpoint_specs(job: _Job, state: dict) -> dict:
    """{name: VariableSpec} of everything the checkpoint holds."""
    schema, n = job.sys_.schema, len(job.dims)
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
            own, attrs = ("cycle_lag", f"{name}_values"), {}
        specs[name] = VariableSpec(own, value.shape[n:], value.dtype, attrs)
    return specs


def _advance(job: _Job, state, found, done, slot, segment, progress) -> dict:
    """The segment loop: run, evaluate client-side stop rules, checkpoint, then mark (last).
    Returns the outcomes as the store now holds them."""
    plan = job.plan
    checks = [r for r in job.rules if isinstance(r, stop_rules.Equilibrated)]
    monitors = [stop_rules.Monitor(r, job.dims) for r in checks]  # linear-time screens, then the exhaustive test
    position = plan.first if done is None else done
    chunks = math.prod(-(-job.system.sizes[d] // job.chunks[d]) for d in job.dims)
    bar = Progress(position, plan.last, progress, f"{job.sys_.kind} {job.operator}", key=job.token, chunks=chunks)
    log.info("%s %s: steps %d -> %d into %s (%s; chunks %s)", job.sys_.kind, job.operator, position, plan.last,
             job.path.short_name, "resumed" if done is not None else "new", job.chunks)
    while done is None or done < plan.last:
        end = min([position + segment - position % segment, plan.last]
                  + [position + r.check_every - position % r.check_every for r in checks]
                  + ([job.schedule.next_boundary(position)] if job.schedule is not None else []))
        slot = 1 - slot
        job.history.require_present()
        lease.check_owner(job.path, job.history.attrs(), job.token)  # nobody took the store over
        state, found, written = _run_segment(job, state, found, position, end, done is None, slot)
        for rule, monitor in zip(checks, monitors):
            if end % rule.check_every == 0:
                steps, values = monitor.records(job.history, rule.var, plan, end)  # only the new rows
                monitor.evaluate(found, values, steps, end)
        if job.schedule is not None and job.schedule.equilibrium and (end - plan.first) % job.schedule.stage_steps == 0:
            merge(written, _stage_equilibrium(job, end))  # before the marker: a resume writes the same values again
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
        bar.update(done)
        if finished:
            break
    bar.close()
    return found


def _write_outcomes(job: _Job, found: dict, slot: int, end: int) -> dict:
    """The per-member outcomes into checkpoint ``slot`` and the visible arrays (before the marker)."""
    regions = [(f"{zarr_store.CHECKPOINT}/{k}", (slot,), v) for k, v in found.items()]
    try:
        return job.history.write(regions + [(k, (Ellipsis,), v) for k, v in found.items()])
    except OSError as exc:
        raise StoreError(f"store {job.path.name!r}: writing the outcomes at step {end} failed ({exc}); the store "
                         f"is consistent up to its last complete segment: fix the cause and resume=True") from None


def _schedule_layout(job: _Job) -> dict:
    """An anneal's extra arrays: stage and parameter value per record, the stages, and the
    per-stage equilibrium start (-1 until the stage ends)."""
    plan, schedule, name = job.plan, job.schedule, job.schedule.parameter
    units = job.system[name].attrs.get("units", "1")
    arrays, along = {}, {}
    for dim in sorted({plan.dim(v) for v in plan.every}):
        var = next(v for v in plan.every if plan.dim(v) == dim)
        steps, suffix = plan.steps(var), dim[len("step"):]
        stage = schedule.stage_of(steps)
        arrays[f"step_stage{suffix}"] = ArraySpec((dim,), steps.shape, steps.shape, np.dtype(np.int64), 0,
                                         {"units": "1", "long_name": "stage of the schedule"}, stage)
        arrays[f"{name}_schedule{suffix}"] = ArraySpec((dim,), steps.shape, steps.shape, np.dtype(np.float64), 0,
                                              {"units": units, "long_name": f"{name} during the step"},
                                              np.asarray(schedule.values)[stage])
        along[dim] = [f"step_stage{suffix}", f"{name}_schedule{suffix}"]
    n = len(schedule.values)
    arrays["stage"] = ArraySpec(("stage",), (n,), (n,), np.dtype(np.int64), 0, {"units": "1"}, np.arange(n))
    arrays[f"{name}_stage"] = ArraySpec(("stage",), (n,), (n,), np.dtype(np.float64), 0,
                               {"units": units, "long_name": f"{name} of each stage"}, np.asarray(schedule.values))
    lead = tuple(job.system.sizes[d] for d in job.dims)
    arrays["stage_equilibrated_at"] = ArraySpec(("stage", *job.dims), (n, *lead), (1, *lead), np.dtype(np.int64), -1,
                                       {"units": "1", "long_name": f"first step of the equilibrium window of "
                                        f"{schedule.equilibrium} in each stage (-1: not detected yet)",
                                        "coordinates": f"{name}_stage"})
    return {"extra": arrays, "step_coordinates": along}


def _stage_equilibrium(job: _Job, end: int) -> dict:
    """Detect the equilibrium window of the stage that ends at ``end`` (per member) and write its start."""
    from .diagnostics import detect_equilibration

    schedule, var = job.schedule, job.schedule.equilibrium
    stage = (end - job.plan.first) // schedule.stage_steps - 1
    steps, values = job.history.records(var, job.plan, end)
    inside = (steps > end - schedule.stage_steps) & (steps <= end)
    lead = tuple(job.system.sizes[d] for d in job.dims)
    found = np.full(lead, -1, dtype=np.int64)
    if inside.sum() >= 3:
        series = xr.DataArray(np.asarray(values[inside], dtype=np.float64), dims=("step", *job.dims))
        t0 = detect_equilibration(series.fillna(0.0), method="binary").t0.values
        found = steps[inside][t0]
    return job.history.write([("stage_equilibrated_at", (stage,), found)])


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


def _blocks(size: int, block: int) -> list[slice]:
    return [slice(i, min(i + block, size)) for i in range(0, size, block)]


def _run_segment(job: _Job, state, found, start, stop, record_start, slot):
    """One segment: one task per ensemble chunk, computed with dask; returns the full new state and outcomes."""
    system, dims, inputs = job.system, job.dims, job.inputs
    labels = system[dims[0]].values
    sizes = {d: system.sizes[d] for d in system.dims if d not in dims}
    regions = list(itertools.product(*(_blocks(system.sizes[d], job.chunks[d]) for d in dims)))
    in_task = tuple(r for r in job.rules if not isinstance(r, stop_rules.Equilibrated))
    tasks = []
    for index, region in enumerate(regions):
        given = inputs.region(region)
        if job.schedule is not None:  # this stage's value of the scheduled parameter
            given[job.schedule.parameter] = np.full_like(given[job.schedule.parameter],
                                                         job.schedule.value_during(start))
        task = ChunkTask(
            kind=job.sys_.kind, operator=job.operator, state={k: v[region] for k, v in state.items()},
            inputs=given, sizes=sizes, member_labels=labels[region[0]],
            point_ids=inputs.point_ids[region[1:]], seed=int(system.attrs[dataset.SEED_ATTR]), start=start, stop=stop,
            record_start=record_start, plan=job.plan, store=job.path, region=region, slot=slot,
            backend=job.engine, outcomes={k: v[region] for k, v in found.items()}, rules=in_task,
            torch_threads=job.torch_threads, progress_key=job.token, kernel=job.kernel,
            alone=len(regions) == 1 and _local_scheduler(job.client))
        # the dashboard and the logs say which run, steps and chunk a task is
        name = f"eqflow-{job.sys_.kind}-{job.operator}-steps-{start}-{stop}-chunk-{index}-{job.token}"
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
    expected = {"eqflow_kind": job.sys_.kind, "eqflow_operator": job.operator,
                "eqflow_seed": int(system.attrs[dataset.SEED_ATTR]),
                "eqflow_record": json.dumps(plan.every, sort_keys=True),
                "eqflow_step_start": plan.first, "eqflow_step_end": plan.last, "eqflow_stop": rules_text(job.rules),
                "eqflow_options": json.dumps(job.options, sort_keys=True),
                "eqflow_schedule": job.schedule.text() if job.schedule is not None else None}
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
    job.chunks.update(json.loads(attrs["eqflow_chunks"]))
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
    if loc.in_memory and client is not None:
        problems.append(f"store: an in-memory store ({loc.name}) lives in this process only, so a dask.distributed "
                        f"client's workers cannot write it; give a local path or an fsspec URL")
    if loc.kind == "url":
        try:
            loc.filesystem()
        except (ImportError, ValueError) as exc:
            problems.append(f"store: cannot use {loc.name!r} ({type(exc).__name__}: {exc}); an s3:// URL needs "
                            f"s3fs (pip install 'eqflow[s3]'), gs:// needs gcsfs")
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


def _check_rules(stop, sys_, checked, problems) -> tuple:
    try:
        rules = stop_rules.as_rules(stop)
    except TypeError as exc:
        problems.append(str(exc))
        return ()
    for rule in rules:
        if isinstance(rule, stop_rules.Cycled):
            allowed = [*sys_.observables, *sys_.schema.variables]
            what = "an observable or state variable"
        else:
            allowed, what = list(sys_.observables), "an observable"
        if rule.var not in allowed:
            problems.append(f"stop rule variable: expected {what} among {sorted(allowed)}, got {rule.var!r}")
        elif not isinstance(rule, stop_rules.Cycled) and sys_.schema.observables[rule.var].dims:
            dims = list(sys_.schema.observables[rule.var].dims)
            problems.append(f"stop rule variable: {rule.var!r} has dims {dims}; expected a scalar observable "
                            f"(one value per member)")
    return rules

