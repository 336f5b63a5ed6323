"""``eq.run``: advance an ensemble in segments with dask and stream its history to Zarr."""
from __future__ import annotations

import itertools
import json
import math
import sys
import time
from datetime import datetime, timezone
from functools import cache, cached_property
from importlib.metadata import PackageNotFoundError, version
from dataclasses import asdict, dataclass
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from . import registry, schema
from . import stop as stop_rules
from . import store as zarr_store
from .backends import Backend, check_backend
from .errors import SchemaError, StoreError
from .segment import ChunkTask, advance_chunk
from .store import RecordPlan

SEGMENT_BYTES = 8 * 2**20  # records held per segment, whole ensemble: bounds the memory of a run
MAX_SEGMENT_STEPS = 10_000
PACKAGES = ("eqflow", "numpy", "xarray", "dask", "distributed", "zarr", "pint", "pint-xarray", "torch")


def run(system: xr.Dataset, operator: str, *, steps: int, store: str | Path, record: dict | None = None,
        chunks: dict | None = None, backend: str = "numpy", device: str | None = None, segment: int | None = None,
        stop=None, resume: bool = False, overwrite: bool = False, client=None, progress: bool | None = None,
        torch_threads: int | None = None) -> xr.Dataset:
    """Advance ``system`` by ``steps`` updates of ``operator`` and stream the history to ``store``.

    Parameters
    ----------
    system : a valid system Dataset (``eq.create`` or ``eq.final_state``); its attribute
        ``eqflow_step`` is the step the run starts from.
    operator : name of an operator of the system's kind, e.g. "metropolis".
    steps : int > 0, the most updates any member gets (for Ising, sweeps of the lattice).
    store : path of a new Zarr directory (or an existing one with ``resume``/``overwrite``).
    record : {variable: every k steps}; observables or state variables. Default: every
        observable every step, the state at the start and the end.
    chunks : {ensemble dim: block size}, e.g. {"member": 16}; one dask task per block and segment.
    backend, device : "numpy", or "torch" with device "cpu" / "cuda" / ...
    segment : steps per segment (one task per chunk, one write, one checkpoint); default
        chosen to bound memory, a multiple of every record interval.
    stop : a rule or list of rules from :mod:`eqflow.stop` (converged, equilibrated).
        Every member's outcome is recorded in ``stop_reason``, ``stopped_at``, ``equilibrated_at``.
    resume : continue an interrupted store to its target step; the history equals an uninterrupted run.
    overwrite : replace an existing store (only after every input has been validated).
    client : a dask.distributed Client; by default the active one, else the local scheduler.
    progress : print progress to stderr; default when stderr is a terminal.
    torch_threads : torch threads per task (default 1, one per dask worker thread).

    Returns the history as :func:`eqflow.open` gives it.
    """
    schema.validate(system)
    kind = system.attrs[schema.KIND_ATTR]
    sys_ = registry.get(kind)
    plan_every, problems = _check_run_inputs(system, sys_, operator, steps, record, chunks, backend, device, segment)
    rules = _check_rules(stop, sys_, problems)
    path = Path(store)
    if resume and overwrite:
        problems.append("resume, overwrite: expected at most one of them to be True, got both")
    if problems:
        raise SchemaError(problems, kind=kind)
    if store_exists := path.exists():
        if not (resume or overwrite):
            raise StoreError(f"store {str(path)!r}: already exists; pass resume=True to continue it or overwrite=True to replace it")
    elif resume:
        raise StoreError(f"store {str(path)!r}: resume=True needs an existing store, got a path that does not exist")
    start = int(system.attrs.get(schema.STEP_ATTR, 0))
    plan = RecordPlan(plan_every, start, start + steps)
    dims = schema.ensemble_dims(system, sys_.schema)
    job = _Job(system, kind, operator, plan, dims, {d: int((chunks or {}).get(d, system.sizes[d])) for d in dims},
               Backend(backend, device), path, client, torch_threads, rules)
    if resume:
        state, book, done, slot, segment = _resume_point(job)
    else:
        if store_exists:
            zarr_store.remove(path)
        segment = segment or _auto_segment(system, sys_, plan)
        attrs = _provenance(system, kind, operator, plan, job.chunks, job.engine, segment, rules)
        records_per_chunk = {v: max(1, segment // k) for v, k in plan.every.items()}
        zarr_store.create_layout(path, system, plan, dims, job.chunks, records_per_chunk, sys_.schema["observables"], attrs)
        state, book, done, slot = None, None, None, 1
    if done is None:  # nothing complete yet: start (again) from the system itself
        state = {v: system[v].values for v in sys_.schema["variables"]}
        book = stop_rules.new_book(tuple(system.sizes[d] for d in dims))
    _advance(job, state, book, done, slot, segment, progress)
    return zarr_store.open_history(path)


@dataclass(frozen=True)
class _Job:
    """What stays fixed during one call of :func:`run`."""

    system: xr.Dataset
    kind: str
    operator: str
    plan: RecordPlan
    dims: list
    chunks: dict
    engine: Backend
    path: Path
    client: object
    torch_threads: int | None
    rules: tuple

    @cached_property
    def inputs(self) -> dict:
        """Parameters and constants in canonical units, converted once per run (not per segment)."""
        return {"parameters": schema.parameter_arrays(self.system, self.kind),
                "constants": schema.constant_arrays(self.system, self.kind)}


def _advance(job: _Job, state, book, done, slot, segment, progress) -> None:
    """The segment loop: run, evaluate client-side stop rules, checkpoint, then mark (last)."""
    plan = job.plan
    checks = [r for r in job.rules if isinstance(r, stop_rules.Equilibrated)]
    position = plan.first if done is None else done
    bar = _Progress(position, plan.last, progress)
    while done is None or done < plan.last:
        end = min([position + segment - position % segment, plan.last]
                  + [position + r.check_every - position % r.check_every for r in checks])
        slot = 1 - slot
        state, book = _run_segment(job, state, book, position, end, done is None, slot)
        for rule in checks:
            if end % rule.check_every == 0:
                steps, values = zarr_store.read_records(job.path, rule.var, plan, end)
                stop_rules.evaluate_equilibrated(rule, book, values, steps, end, job.dims)
        finished = end == plan.last or not (book["stop_reason"] == stop_rules.RUNNING).any()
        if finished:
            stop_rules.finish(book, end)
        zarr_store.write_book(job.path, book, slot)
        marker = {zarr_store.STEPS_DONE: end, zarr_store.SLOT: slot, zarr_store.STATUS: "running"}
        if finished:
            if end < plan.last:
                zarr_store.trim(job.path, plan, end)
            marker.update({zarr_store.STATUS: "complete", "eqflow_finished": _now()})
        zarr_store.mark(job.path, **marker)
        done = position = end
        bar.update(done)
        if finished:
            break
    bar.close()


def _check_run_inputs(system, sys_, operator, steps, record, chunks, backend, device, segment):
    problems: list[str] = []
    if operator not in sys_.operators:
        problems.append(f"operator: expected one of {sorted(sys_.operators)} for kind {sys_.kind!r}, got {operator!r}")
    if not _positive_int(steps):
        problems.append(f"steps: expected a positive integer, got {steps!r}")
    if segment is not None and not _positive_int(segment):
        problems.append(f"segment: expected a positive integer, got {segment!r}")
    state_vars = list(sys_.schema["variables"])
    if record is None:
        record = {**{k: 1 for k in sys_.observables}, **{v: steps if _positive_int(steps) else 1 for v in state_vars}}
    known = [*sys_.observables, *state_vars]
    for var, every in record.items():
        if var not in known:
            problems.append(f"record[{var!r}]: expected an observable or state variable among {known}, got {var!r}")
        if not _positive_int(every):
            problems.append(f"record[{var!r}]: expected a positive integer interval in steps, got {every!r}")
    if not record:
        problems.append(f"record: expected at least one variable among {known}, got {{}}")
    dims = schema.ensemble_dims(system, sys_.schema)
    for dim, size in (chunks or {}).items():
        if dim not in dims:
            problems.append(f"chunks[{dim!r}]: expected a dimension among the ensemble dims {dims}, got {dim!r}")
        elif not _positive_int(size):
            problems.append(f"chunks[{dim!r}]: expected a positive integer block size, got {size!r}")
    check_backend(backend, device, problems)
    return dict(record), problems


def _positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _auto_segment(system, sys_, plan: RecordPlan) -> int:
    members = math.prod(system.sizes[d] for d in schema.ensemble_dims(system, sys_.schema))
    per_step = sum((system[v].nbytes if v in system else 8 * members) / k for v, k in plan.every.items())
    period = plan.period()
    limit = min(plan.last - plan.first, MAX_SEGMENT_STEPS, max(1, int(SEGMENT_BYTES / max(per_step, 1))))
    return max(period, limit - limit % period) if period <= plan.last - plan.first else plan.last - plan.first


def _blocks(size: int, block: int) -> list[slice]:
    return [slice(i, min(i + block, size)) for i in range(0, size, block)]


def _run_segment(job: _Job, state, book, start, stop, record_start, slot):
    """One segment: one task per ensemble chunk, computed with dask; returns the full new state and outcomes."""
    system, dims = job.system, job.dims
    parameters, constants = job.inputs["parameters"], job.inputs["constants"]
    sweep_shape = tuple(system.sizes[d] for d in dims[1:])
    parameter_index = np.arange(math.prod(sweep_shape)).reshape(sweep_shape)
    labels = system[dims[0]].values
    sizes = {d: system.sizes[d] for d in system.dims if d not in dims}
    regions = list(itertools.product(*(_blocks(system.sizes[d], job.chunks[d]) for d in dims)))
    in_task = tuple(r for r in job.rules if isinstance(r, stop_rules.Converged))
    tasks = []
    for region in regions:
        task = ChunkTask(
            kind=job.kind, operator=job.operator, state={k: v[region] for k, v in state.items()},
            parameters={k: v[region] for k, v in parameters.items()},
            constants={k: v[_along(v, region)] for k, v in constants.items()}, sizes=sizes,
            member_labels=labels[region[0]], parameter_index=parameter_index[region[1:]],
            seed=int(system.attrs[schema.SEED_ATTR]), start=start, stop=stop, record_start=record_start,
            plan=job.plan, store=str(job.path), region=region, slot=slot, backend=job.engine,
            stops={k: v[region] for k, v in book.items()}, rules=in_task, torch_threads=job.torch_threads)
        tasks.append(dask.delayed(advance_chunk, pure=False)(task))
    results = dask.compute(*tasks, scheduler=job.client.get if job.client is not None else None)
    new_state = {k: np.empty_like(v) for k, v in state.items()}
    new_book = {k: np.empty_like(v) for k, v in book.items()}
    for region, result in zip(regions, results):
        for k, v in result["state"].items():
            new_state[k][region] = v
        for k, v in result["stops"].items():
            new_book[k][region] = v
    return new_state, new_book


def _along(array: np.ndarray, region: tuple) -> tuple:
    """Index a constant by the chunk's region along the ensemble dims it varies along."""
    return tuple(r if array.shape[i] > 1 else slice(None) for i, r in enumerate(region))


def _resume_point(job: _Job):
    path, plan, system = job.path, job.plan, job.system
    attrs = zarr_store.read_attrs(path)
    expected = {"eqflow_kind": job.kind, "eqflow_operator": job.operator,
                "eqflow_seed": int(system.attrs[schema.SEED_ATTR]), "eqflow_record": json.dumps(plan.every, sort_keys=True),
                "eqflow_step_start": plan.first, "eqflow_step_end": plan.last, "eqflow_stop": _rules_text(job.rules)}
    wrong = [f"{k}: the store has {attrs.get(k)!r}, this call asks for {v!r}" for k, v in expected.items() if attrs.get(k) != v]
    if wrong:
        raise StoreError(f"store {str(path)!r}: cannot resume a different run:\n  - " + "\n  - ".join(wrong))
    job.chunks.update(json.loads(attrs["eqflow_chunks"]))
    segment = int(attrs["eqflow_segment"])
    if attrs.get(zarr_store.STEPS_DONE) is None:
        return None, None, None, 1, segment
    state, done = zarr_store.read_checkpoint(path, list(registry.get(job.kind).schema["variables"]))
    book = zarr_store.read_book(path)
    return {k: v.values for k, v in state.items()}, book, done, attrs.get(zarr_store.SLOT, 0), segment


def _check_rules(stop, sys_, problems) -> tuple:
    try:
        rules = stop_rules.as_rules(stop)
    except TypeError as exc:
        problems.append(str(exc))
        return ()
    for rule in rules:
        if rule.var not in sys_.observables:
            problems.append(f"stop rule variable: expected an observable among {sorted(sys_.observables)}, got {rule.var!r}")
    return rules


def _rules_text(rules) -> str:
    return json.dumps([{"rule": type(r).__name__.lower(), **asdict(r)} for r in rules])


def _provenance(system, kind, operator, plan, chunks, engine, segment, rules) -> dict:
    return {
        "eqflow_stop": _rules_text(rules),
        "eqflow_kind": kind, "eqflow_operator": operator, "eqflow_seed": int(system.attrs[schema.SEED_ATTR]),
        "eqflow_operator_parameters": json.dumps(_parameter_summary(system, kind)),
        "eqflow_record": json.dumps(plan.every, sort_keys=True), "eqflow_step_start": plan.first,
        "eqflow_step_end": plan.last, "eqflow_segment": segment, "eqflow_chunks": json.dumps(chunks),
        "eqflow_backend": engine.name, "eqflow_device": engine.device or "cpu",
        "eqflow_parent": system.attrs.get("eqflow_parent", ""), "eqflow_started": _now(),
        "eqflow_packages": json.dumps(_versions()), "eqflow_version": _versions()["eqflow"],
        "eqflow_python": sys.version.split()[0],
    }


def _parameter_summary(system, kind) -> dict:
    out = {}
    for name, spec in registry.get(kind).schema["parameters"].items():
        if name not in system.coords:
            continue
        values = np.atleast_1d(system[name].values).tolist()
        out[name] = {"units": system[name].attrs.get("units", spec["units"]), "values": values}
    return out


@cache
def _versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Progress:
    """A one-line progress report on stderr, shown on terminals unless turned off."""

    def __init__(self, done: int, total: int, enabled: bool | None):
        self.first, self.total, self.t0 = done, total, time.perf_counter()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        rate = (done - self.first) / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        print(f"\r[eqflow] step {done}/{self.total} ({100 * done / self.total:.0f}%) {rate:,.0f} steps/s, eta {eta:.0f} s",
              end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)
