"""``eq.anneal``: one run through a schedule of parameter values (a cooling schedule), in one store.

Stage i holds the parameter at ``values[i]`` for ``stage_steps`` steps, starting from the state
the previous stage ended in (no stitching, no duplicate boundary steps). The store is an
ordinary history: records along ``step`` carry the coordinates ``step_stage`` (the stage a
record belongs to: the state after steps ``first + i S + 1 .. first + (i + 1) S``, the initial
record counting as stage 0) and ``<parameter>_schedule`` (its value there); per stage and
member, ``stage_equilibrated_at`` is the first step of the equilibrium window that
:func:`eqflow.diagnostics.detect_equilibration` finds in that stage's records of the
``equilibrium`` observable (written when the stage ends). Resumable after a kill like any run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from . import dataset, registry
from .errors import SchemaError
from .inputs import MAX_STEPS


@dataclass(frozen=True)
class Schedule:
    """An anneal's schedule, as ``eq.run(schedule=...)`` takes it: the inputs per segment, and a
    reporter (:mod:`eqflow.reporting`) that ends segments at stage boundaries, lays out the
    stage arrays and writes each stage's equilibrium start when the stage ends."""

    parameter: str
    values: tuple
    stage_steps: int
    first: int
    equilibrium: str | None

    @property
    def last(self) -> int:
        return self.first + self.stage_steps * len(self.values)

    @property
    def reads(self) -> tuple:
        return (self.equilibrium,) if self.equilibrium else ()

    def stage_of(self, steps) -> np.ndarray:
        """The stage each record belongs to (the state after step s comes from stage (s - first - 1) // S)."""
        stage = (np.asarray(steps, dtype=np.int64) - self.first - 1) // self.stage_steps
        return np.clip(stage, 0, len(self.values) - 1)

    def next_boundary(self, position: int) -> int:
        return self.first + ((position - self.first) // self.stage_steps + 1) * self.stage_steps

    def next_report(self, position: int) -> int:
        return self.next_boundary(position)

    def value_during(self, start: int) -> float:
        """The parameter's value for the steps of the segment that starts at ``start``."""
        return float(self.values[(start - self.first) // self.stage_steps])

    def inputs(self, start: int, given: dict) -> dict:
        """A chunk's inputs for the segment that starts at ``start``: this stage's value of the parameter."""
        return {**given, self.parameter: np.full_like(given[self.parameter], self.value_during(start))}

    def text(self) -> str:
        return json.dumps({"parameter": self.parameter, "values": list(self.values), "stage_steps": self.stage_steps,
                           "equilibrium": self.equilibrium})

    def layout(self, run) -> dict:
        """The store's extra arrays: stage and parameter value per record, the stages, and the
        per-stage equilibrium start (-1 until the stage ends)."""
        from .store import ArraySpec

        plan, name = run.plan, self.parameter
        units = run.system[name].attrs.get("units", "1")
        arrays, along = {}, {}
        for dim in sorted({plan.dim(v) for v in plan.every}):
            var = next(v for v in plan.every if plan.dim(v) == dim)
            steps, suffix = plan.steps(var), dim[len("step"):]
            stage = self.stage_of(steps)
            arrays[f"step_stage{suffix}"] = ArraySpec((dim,), steps.shape, steps.shape, np.dtype(np.int64), 0,
                                                      {"units": "1", "long_name": "stage of the schedule"}, stage)
            arrays[f"{name}_schedule{suffix}"] = ArraySpec((dim,), steps.shape, steps.shape, np.dtype(np.float64), 0,
                                                           {"units": units, "long_name": f"{name} during the step"},
                                                           np.asarray(self.values)[stage])
            along[dim] = [f"step_stage{suffix}", f"{name}_schedule{suffix}"]
        n = len(self.values)
        arrays["stage"] = ArraySpec(("stage",), (n,), (n,), np.dtype(np.int64), 0, {"units": "1"}, np.arange(n))
        arrays[f"{name}_stage"] = ArraySpec(("stage",), (n,), (n,), np.dtype(np.float64), 0,
                                            {"units": units, "long_name": f"{name} of each stage"},
                                            np.asarray(self.values))
        lead = run.ensemble_shape
        arrays["stage_equilibrated_at"] = ArraySpec(("stage", *run.dims), (n, *lead), (1, *lead), np.dtype(np.int64),
                                                    -1, {"units": "1", "long_name": f"first step of the equilibrium "
                                                         f"window of {self.equilibrium} in each stage (-1: not "
                                                         f"detected yet)", "coordinates": f"{name}_stage"})
        return {"extra": arrays, "step_coordinates": along}

    def report(self, segment) -> None:
        """At the end of a stage: detect its equilibrium window (per member) and write its start."""
        from .diagnostics import detect_equilibration

        if not self.equilibrium:
            return
        end = segment.end
        stage = (end - self.first) // self.stage_steps - 1
        steps, values = segment.records(self.equilibrium, since=end - self.stage_steps)  # this stage's
        inside = (steps > end - self.stage_steps) & (steps <= end)
        found = np.full(segment.run.ensemble_shape, -1, dtype=np.int64)
        if inside.sum() >= 3:
            series = xr.DataArray(np.asarray(values[inside], dtype=np.float64), dims=("step", *segment.run.dims))
            t0 = detect_equilibration(series.fillna(0.0), method="binary").t0.values
            found = steps[inside][t0]
        segment.write("stage_equilibrated_at", (stage,), found)


def values_of(spec, name: str, problems: list) -> list:
    """A schedule's values: a sequence, or {"linear": [start, stop, n]} / {"geometric": [start, stop, n]}."""
    if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("linear", "geometric"):
        kind, arguments = next(iter(spec.items()))
        try:
            start, stop, n = arguments
            n = int(n)
            if n < 1 or n != arguments[2]:
                raise ValueError
            if kind == "geometric" and (start <= 0 or stop <= 0):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"schedule[{name!r}]: expected {{'{kind}': [start, stop, n]}} with n a positive integer"
                            f"{' and start, stop > 0' if kind == 'geometric' else ''}, got {spec!r}")
            return []
        return list((np.linspace if kind == "linear" else np.geomspace)(float(start), float(stop), n))
    try:
        values = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        problems.append(f"schedule[{name!r}]: expected a non-empty sequence of finite numbers (or {{'linear' | "
                        f"'geometric': [start, stop, n]}}), got {spec!r}")
        return []
    return values.tolist()


def anneal(system: xr.Dataset, operator: str, *, schedule: dict, stage_steps: int, store,
           equilibrium: str | None = "auto", **run_kwargs) -> xr.Dataset:
    """Run ``operator`` through ``schedule`` stage by stage, into one store (see the module docstring).

    Parameters
    ----------
    system : a system Dataset; the scheduled parameter must be a scalar there (not a sweep).
    schedule : {parameter: values}, values a sequence in the parameter's canonical units (e.g.
        kelvin for Ising's temperature), or ``{"linear": [start, stop, n]}`` /
        ``{"geometric": [start, stop, n]}``. One parameter.
    stage_steps : int > 0, steps per stage.
    equilibrium : the scalar observable whose equilibrium window is detected per stage;
        "auto" takes the kind's first scalar observable, None detects none.
    run_kwargs : as :func:`eqflow.run` (record, chunks, backend, segment, options, resume,
        overwrite, client, progress, storage_options, ...); ``steps`` and ``stop`` are not taken.

    >>> import eqflow as eq, numpy as np
    >>> ds = eq.create("ising", size=8, temperature=3.0, members=2, seed=1)
    >>> hist = eq.anneal(ds, "metropolis", schedule={"temperature": [3.0, 2.5, 2.0]}, stage_steps=20,
    ...                  store=None, progress=False)
    >>> np.unique(hist.temperature_schedule.values).tolist(), hist.stage_equilibrated_at.sizes["stage"]
    ([2.0, 2.5, 3.0], 3)
    """
    from .runner import run

    dataset.validate(system)
    contract = registry.get(system.attrs[dataset.KIND_ATTR])
    problems = [f"{k}: not taken by eq.anneal (the schedule fixes the steps; stop rules would end stages early)"
                for k in ("steps", "stop") if k in run_kwargs]
    name, values, equilibrium = check_schedule(system, contract, schedule, stage_steps, equilibrium, problems)
    if problems:
        raise SchemaError(problems, kind=contract.kind)
    units = system[name].attrs.get("units", contract.schema.parameters[name].units)
    system = system.assign_coords({name: ((), float(values[0]), {**system[name].attrs, "units": units})})
    first = int(system.attrs.get(dataset.STEP_ATTR, 0))
    plan = Schedule(name, tuple(float(v) for v in values), int(stage_steps), first, equilibrium)
    return run(system, operator, steps=plan.stage_steps * len(values), store=store, schedule=plan, **run_kwargs)


def check_schedule(system, contract, schedule, stage_steps, equilibrium, problems: list) -> tuple:
    """(parameter, values, equilibrium observable) of a schedule; every problem appended (nothing run)."""
    if not isinstance(schedule, dict) or len(schedule) != 1:
        problems.append(f"schedule: expected one {{parameter: values}}, got {schedule!r}")
        return None, [], None
    (name, spec), = schedule.items()
    if name not in contract.schema.parameters:
        problems.append(f"schedule: expected a parameter of {contract.kind!r} among "
                        f"{sorted(contract.schema.parameters)}, got {name!r}")
    elif name in system.dims:
        problems.append(f"schedule[{name!r}]: the system sweeps {name!r} (a dim of size {system.sizes[name]}); "
                        f"expected a scalar parameter to schedule")
    values = values_of(spec, name, problems)
    if name in contract.schema.parameters:
        problems += _bounds(contract.schema.parameters[name], name, values)
    if isinstance(stage_steps, bool) or not isinstance(stage_steps, (int, np.integer)) or stage_steps < 1:
        problems.append(f"stage_steps: expected a positive integer, got {stage_steps!r}")
    elif values and int(system.attrs.get(dataset.STEP_ATTR, 0)) + int(stage_steps) * len(values) >= MAX_STEPS:
        problems.append(f"stage_steps: expected a positive integer with start + stage_steps x {len(values)} stages "
                        f"< 2**62, got {stage_steps!r}")
    return name, values, _equilibrium(contract, equilibrium, problems)


def _bounds(spec, name: str, values: list) -> list:
    problems = []
    if values:
        spec.check_range(f"schedule[{name!r}]", np.asarray(values, dtype=np.float64), problems)
    return problems


def _equilibrium(contract, equilibrium, problems: list):
    scalars = [k for k, o in contract.schema.observables.items() if not o.dims]
    if equilibrium == "auto":
        return scalars[0] if scalars else None
    if equilibrium is not None and equilibrium not in scalars:
        problems.append(f"equilibrium: expected a scalar observable among {scalars} (or None), got {equilibrium!r}")
    return equilibrium
