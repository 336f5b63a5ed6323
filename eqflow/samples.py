"""``eq.write_samples``: a history of independent samples (e.g. from a generative model), as an
ordinary eqflow store.

A sampler that is not a Markov chain (a trained generator, exact sampling, a reweighted
set) still produces states of a system; written here they become a store that ``eq.open``,
``eq.summarize``, ``eq.final_state``, ``eq.verify``, the reports and a kind's own analyses
read unchanged, so samples and Monte Carlo are compared with the same code.

Layout: as a run's store (:mod:`eqflow.store`) with ``step`` = the sample index 0 .. n-1 of
each member (records are independent draws, not consecutive updates), every state variable
and every observable of the kind recorded at each index, ``equilibrated_at`` = 0 for every
member (the whole record is the equilibrium window), ``stop_reason`` = max_steps at n-1, the
checkpoint holding the last sample, and root attributes ``eqflow_operator`` = ``source``
(what drew them) and ``eqflow_samples`` = "independent".
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from . import dataset, lease, outcomes, registry
from .backends import Backend
from .errors import SchemaError, StoreError
from .location import Location
from .provenance import now, provenance
from .store import CHECKPOINT, STATUS, HistoryStore, RecordPlan, VariableSpec, plan_arrays, settle
from .system import call_with

SAMPLES_ATTR = "eqflow_samples"


def write_samples(system: xr.Dataset, states: dict, store, *, source: str, overwrite: bool = False,
                  storage_options: dict | None = None, records_per_chunk: int | None = None) -> xr.Dataset:
    """Write ``n`` independent samples per member of ``system`` as a history; returns it opened.

    Parameters
    ----------
    system : a valid system Dataset: its kind, parameters, sweeps, member labels, seed and
        attributes label the samples (its own state is not written).
    states : {state variable: array of shape (n, *system[var].shape)}, every state variable of
        the kind; record i of member j at a parameter point is sample i of that member.
        Each sample must be a valid state (dtype and allowed values of the schema).
    store : a new store (path, URL, zarr Store or None for memory), as ``eq.run`` takes it.
    source : what drew the samples (recorded as ``eqflow_operator``), e.g. "ising.flow".
    overwrite : replace an existing eqflow store.
    records_per_chunk : samples per Zarr chunk (default: about 8 MiB of state per chunk).

    >>> import eqflow as eq, numpy as np
    >>> ds = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    >>> spins = np.ones((3, 2, 4, 4), np.int8)
    >>> hist = eq.write_samples(ds, {"spin": spins}, None, source="all up")
    >>> hist.energy.values.tolist()
    [[-2.0, -2.0], [-2.0, -2.0], [-2.0, -2.0]]
    """
    dataset.validate(system)
    contract = registry.get(system.attrs[dataset.KIND_ATTR])
    schema = contract.schema
    problems = []
    states = _check_states(system, schema, states, problems)
    if not isinstance(source, str) or not source:
        problems.append(f"source: expected a non-empty string naming the sampler, got {source!r}")
    try:
        path = Location(store, storage_options)
    except TypeError as exc:
        problems.append(str(exc))
    if records_per_chunk is not None and (not dataset.is_int(records_per_chunk) or records_per_chunk < 1):
        problems.append(f"records_per_chunk: expected a positive integer, got {records_per_chunk!r}")
    if problems:
        raise SchemaError(problems, kind=contract.kind)
    n = next(iter(states.values())).shape[0]
    exists = path.exists()
    if exists and not overwrite:
        raise StoreError(f"store {path.name!r}: already exists; pass overwrite=True to replace it")
    if exists:
        HistoryStore(path).check_replaceable()
    dims = schema.ensemble_dims(system)
    given = dataset.parameter_arrays(system, schema)
    given.update({**dataset.constant_arrays(system, schema), **dataset.attributes(system, schema),
                  "sizes": {d: system.sizes[d] for d in system.dims if d not in dims}, "backend": "numpy"})
    observed = {name: np.stack([np.asarray(call_with(fn, {**given, **{k: v[i] for k, v in states.items()},
                                                          "step": i}))
                                for i in range(n)])
                for name, fn in contract.observables.items()}
    plan = RecordPlan({k: 1 for k in (*states, *observed)}, 0, n - 1)
    records = {}
    for name, value in states.items():
        records[name] = VariableSpec(tuple(system[name].dims[len(dims):]), value.shape[1 + len(dims):], value.dtype,
                         dict(system[name].attrs))
    for name, value in observed.items():
        spec = schema.observables[name]
        records[name] = VariableSpec(spec.dims, value.shape[1 + len(dims):], np.dtype(spec.dtype or value.dtype),
                         {"units": spec.units, "description": spec.description})
    per_record = sum(v[0].nbytes for v in (*states.values(), *observed.values()))
    # a chunk larger than the samples holds all of them
    block = min(int(records_per_chunk), n) if records_per_chunk else max(1, min(n, (8 * 2**20) // max(per_record, 1)))
    chunks = {d: system.sizes[d] for d in dims}
    attrs = provenance(system, contract, source, plan, chunks, Backend("numpy"), block, (), {})
    attrs.update({SAMPLES_ATTR: "independent", lease.WRITER_ATTR: ""})
    checkpoint = {k: records[k] for k in states}
    history = HistoryStore(path)
    history.create(plan_arrays(system, plan, dims, chunks, dict.fromkeys(plan.every, block), records, checkpoint),
                   attrs, replace=exists)
    try:
        found = outcomes.new(tuple(system.sizes[d] for d in dims))
        found["equilibrated_at"][...] = 0
        outcomes.finish(found, n - 1)
        regions = [(k, (slice(None),), v) for k, v in (*states.items(), *observed.items())]
        regions += [(f"{CHECKPOINT}/{k}", (0,), v[-1]) for k, v in states.items()]
        regions += [(f"{CHECKPOINT}/{k}", (0,), v) for k, v in found.items()] + [(k, (Ellipsis,), v)
                                                                                for k, v in found.items()]
        written = history.write(regions)
        history.commit(written, steps_done=n - 1, slot=0, **{STATUS: "complete", "eqflow_finished": now(),
                                                              "eqflow_source": json.dumps(source)})
    finally:
        settle()  # the store this one replaced is gone
    return history.open(check=False)


def _check_states(system: xr.Dataset, schema, states, problems: list) -> dict:
    if not isinstance(states, dict):
        problems.append(f"states: expected a dict {{state variable: array}}, got {type(states).__name__}")
        return {}
    wanted = sorted(schema.variables)
    if sorted(states) != wanted:
        problems.append(f"states: expected exactly the state variables {wanted}, got {sorted(states)}")
        return {}
    out, counts = {}, set()
    for name, value in states.items():
        value = np.asarray(value)
        spec, shape = schema.variables[name], system[name].shape
        if value.ndim != len(shape) + 1 or value.shape[1:] != shape or value.shape[0] < 1:
            problems.append(f"states[{name!r}]: expected shape (n >= 1, *{shape}) along (sample, "
                            f"{', '.join(system[name].dims)}), got {value.shape}")
            continue
        if value.dtype.name not in spec.dtypes:
            problems.append(f"states[{name!r}]: expected dtype {' or '.join(spec.dtypes)}, got {value.dtype}")
            continue
        if spec.allowed_values is not None and value.dtype.kind in "iub":
            bad = ~np.isin(value, spec.allowed_values)
            if bad.any():
                problems.append(f"states[{name!r}]: expected values in {list(spec.allowed_values)}, got "
                                f"{int(bad.sum())} other value(s) such as {np.unique(value[bad])[:5].tolist()}")
                continue
        elif value.dtype.kind == "f" and not np.isfinite(value).all():
            problems.append(f"states[{name!r}]: expected finite values, got NaN or inf")
            continue
        counts.add(value.shape[0])
        out[name] = value
    if len(counts) > 1:
        problems.append(f"states: expected one number of samples for every variable, got {sorted(counts)}")
    return out
