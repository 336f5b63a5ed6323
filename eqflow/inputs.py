"""What a run feeds its operators besides the state, checked and converted once per run."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from . import dataset, random
from .backends import BACKENDS, check_backend, dtype_of
from .schema import Schema


@dataclass(frozen=True)
class RunInputs:
    """Parameters (float64, ensemble-shaped), constants (1 where they do not vary), the
    system's string attributes, the operator's options and one stream id per parameter point."""

    parameters: dict
    constants: dict
    attributes: dict
    options: dict
    point_ids: np.ndarray

    @classmethod
    def of(cls, system: xr.Dataset, schema: Schema, options: dict) -> "RunInputs":
        parameters = dataset.parameter_arrays(system, schema)
        sweep_shape = tuple(system.sizes[d] for d in schema.sweeps(system))
        at_points = {k: v[0] for k, v in parameters.items()}  # members share a point's parameters
        return cls(parameters, dataset.constant_arrays(system, schema), dataset.attributes(system, schema),
                   dict(options), random.point_ids(at_points, sweep_shape))

    def flat(self) -> dict:
        """Every input by name, as NumPy arrays or Python values."""
        return {**self.parameters, **self.constants, **self.attributes, **self.options}

    def region(self, region: tuple) -> dict:
        """The inputs of one ensemble chunk: arrays indexed along the ensemble dims they vary along."""
        arrays = {k: v[region] for k, v in self.parameters.items()}
        arrays.update({k: v[_along(v, region)] for k, v in self.constants.items()})
        return {**arrays, **self.attributes, **self.options}


def _along(array: np.ndarray, region: tuple) -> tuple:
    """Index a constant by the chunk's region along the ensemble dims it varies along."""
    return tuple(r if array.shape[i] > 1 else slice(None) for i, r in enumerate(region))


@dataclass
class CheckedRun:
    """The outcome of checking a run's inputs: every problem, and the normalised record plan and options."""

    problems: list = field(default_factory=list)
    record: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    recordable: list = field(default_factory=list)
    kernel: str = "reference"  # the operator variant the run uses (see eqflow.system.Kernel)


MAX_STEPS = 2**62  # step counts stay exact in int64 and float64 step coordinates


def check_run_inputs(system, contract, operator, *, steps, record=None, chunks=None, backend="numpy", device=None,
                     segment=None, options=None, torch_threads=None, client=None, kernel="auto") -> CheckedRun:
    """Check every input of ``eq.run`` at once (nothing is written before this passes)."""
    schema = contract.schema
    out = CheckedRun()
    problems = out.problems
    if operator not in contract.operators:
        problems.append(f"operator: expected one of {sorted(contract.operators)} for kind {contract.kind!r}, "
                        f"got {operator!r}")
    spec = schema.operators.get(operator)
    steps = _check_counts(system, steps, segment, torch_threads, client, problems)
    for name, value in (("record", record), ("chunks", chunks), ("options", options)):
        if value is not None and not isinstance(value, dict):
            problems.append(f"{name}: expected a dict, got {type(value).__name__} {value!r}")
    record = record if isinstance(record, dict) or record is None else {}
    chunks = chunks if isinstance(chunks, dict) else None
    options = options if isinstance(options, dict) else None
    owned = list(spec.state) if spec else []
    diagnostics = list(spec.diagnostics) if spec else []
    out.recordable = [*contract.observables, *schema.variables, *owned, *diagnostics]
    if record is None:
        record = {**{k: 1 for k in contract.observables},
                  **{v: steps if _positive_int(steps) else 1 for v in schema.variables}}
    _check_record(record, out.recordable, problems)
    # NumPy integers (np.int64(5)) are valid intervals: kept as Python ints (the store's JSON)
    out.record = {var: int(every) if _positive_int(every) else every for var, every in record.items()}
    for name, obs in schema.observables.items():
        missing = [d for d in obs.dims if d not in system.dims]
        if name in record and missing:
            problems.append(f"observable {name!r}: declares dims {list(obs.dims)}, the system lacks {missing}")
    _check_chunks(chunks or {}, schema.ensemble_dims(system), problems)
    check_backend(backend, device, problems)
    if backend in BACKENDS and backend not in schema.backends:
        problems.append(f"backend: kind {contract.kind!r} supports {list(schema.backends)}, got {backend!r}")
    out.options = _check_options(spec, options or {}, problems) if spec else {}
    if operator in contract.operators:
        out.kernel, problem = contract.operators[operator].select_kernel(kernel, backend, device)
        if problem:
            problems.append(problem)
    elif kernel not in ("auto", "reference"):  # an unknown operator: only the generic names can be checked
        problems.append(f"kernel: expected 'auto', 'reference' or a kernel of the operator, got {kernel!r}")
    return out


def _check_counts(system, steps, segment, torch_threads, client, problems: list):
    """Steps, segment, torch threads and client; returns ``steps``, or None when it is unusable."""
    start = system.attrs.get("eqflow_step", 0)
    if not _positive_int(steps):
        problems.append(f"steps: expected a positive integer, got {steps!r}")
        steps = None
    elif steps + (start if dataset.is_int(start) else 0) >= MAX_STEPS:
        problems.append(f"steps: expected a positive integer with start + steps < 2**62, got {steps!r}")
        steps = None
    if segment is not None and not _positive_int(segment):
        problems.append(f"segment: expected a positive integer, got {segment!r}")
    elif segment is not None and segment >= MAX_STEPS:
        problems.append(f"segment: expected a positive integer < 2**62, got {segment!r}")
    if torch_threads is not None and not _positive_int(torch_threads):
        problems.append(f"torch_threads: expected a positive integer (or None: one per task), got {torch_threads!r}")
    if client is not None and not callable(getattr(client, "get", None)):
        problems.append(f"client: expected a dask.distributed Client (or None), got {type(client).__name__}")
    return steps


def _check_record(record: dict, recordable: list, problems: list) -> None:
    """Each recorded variable must be recordable, at a positive integer interval; at least one is needed."""
    for var, every in record.items():
        if var not in recordable:
            problems.append(f"record[{var!r}]: expected an observable, state variable, owned state or diagnostic "
                            f"among {recordable}, got {var!r}")
        if not _positive_int(every):
            problems.append(f"record[{var!r}]: expected a positive integer interval in steps, got {every!r}")
        elif every >= MAX_STEPS:
            problems.append(f"record[{var!r}]: expected a positive integer interval < 2**62 steps, got {every!r}")
    if not record:
        problems.append(f"record: expected at least one variable among {recordable}, got {{}}")


def _check_chunks(chunks: dict, dims: list, problems: list) -> None:
    """Chunk sizes must name ensemble dims and be positive integers."""
    for dim, size in chunks.items():
        if dim not in dims:
            problems.append(f"chunks[{dim!r}]: expected a dimension among the ensemble dims {dims}, got {dim!r}")
        elif not _positive_int(size):
            problems.append(f"chunks[{dim!r}]: expected a positive integer block size, got {size!r}")


def _check_options(spec, given: dict, problems: list) -> dict:
    unknown = sorted(set(given) - set(spec.options))
    if unknown:
        problems.append(f"options: unknown {unknown}; this operator takes {sorted(spec.options) or 'none'}")
    out = {}
    for name, rule in spec.options.items():
        value = given.get(name, rule["default"])
        problem = _option_problem(value, rule)
        if problem:
            problems.append(f"options[{name!r}]: {problem}")
        out[name] = int(value) if dataset.is_int(value) else float(value) if isinstance(value, np.floating) else value
    return out


_BOUNDS = {"minimum": (np.less, ">="), "exclusive_minimum": (np.less_equal, ">"),
           "maximum": (np.greater, "<="), "exclusive_maximum": (np.greater_equal, "<")}


def _option_problem(value, rule) -> str | None:
    """What is wrong with one option's value (its type is the default's; numbers are finite, integers
    exact in int64, within the schema's bounds), or None."""
    default = rule["default"]
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if numeric:
        same = dataset.is_int(value) or (isinstance(default, float) and isinstance(value, (float, np.floating)))
    else:
        same = isinstance(default, bool) == isinstance(value, (bool, np.bool_)) and (
            isinstance(value, (bool, np.bool_)) or isinstance(value, type(default)))
    if not same:
        return f"expected a {type(default).__name__} like the default {default!r}, got {value!r}"
    if not numeric:
        return None
    if not np.isfinite(float(value)):  # NaN passes every comparison with a bound: refused here
        return f"expected a finite number, got {value!r}"
    if dataset.is_int(value) and abs(value) >= MAX_STEPS:
        return f"expected an integer of magnitude < 2**62, got {value!r}"
    for key, (bad, sign) in _BOUNDS.items():
        if key in rule and bad(value, rule[key]):
            return f"expected a value {sign} {rule[key]}, got {value!r}"
    return None


def _positive_int(value) -> bool:
    return dataset.is_int(value) and value > 0


def record_specs(job, state: dict) -> dict:
    """{var: VariableSpec (own dims, sizes, dtype, attrs)} of every recorded variable, for the store layout."""
    from .store import VariableSpec

    schema, system, n = job.contract.schema, job.system, len(job.dims)
    spec = schema.operators[job.operator]
    working = working_dtype({k: state[k] for k in schema.variables})
    out = {}
    for var in job.plan.every:
        if var in state:
            value = np.asarray(state[var])
            attrs = dict(system[var].attrs) if var in system else (
                {"units": spec.state[var].units} if spec.state[var].units else {})
            own = tuple(system[var].dims[n:]) if var in system else spec.state[var].dims
            out[var] = VariableSpec(own, value.shape[n:], value.dtype, attrs)
        elif var in spec.diagnostics:
            d = spec.diagnostics[var]
            attrs = {"description": d.description, **({"units": d.units} if d.units else {})}
            out[var] = VariableSpec(d.dims, tuple(system.sizes[x] for x in d.dims), d.dtype, attrs)
        else:
            obs = schema.observables[var]
            attrs = {"units": obs.units, "description": obs.description}
            out[var] = VariableSpec(obs.dims, tuple(system.sizes[x] for x in obs.dims), obs.dtype or working, attrs)
    return out


def working_dtype(state: dict) -> str:
    """The state's float dtype (parameters, constants and float draws are cast to it); float64 without one."""
    for value in state.values():
        dtype = dtype_of(value)
        if dtype.kind == "f":
            return dtype.name
    return "float64"

