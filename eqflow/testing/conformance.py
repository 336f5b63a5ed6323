"""The shared conformance suite: what every system must do, whoever wrote it.

Each check takes a registered kind (or a :class:`~eqflow.System`) and runs on the system's
``example`` (keep it tiny: the suite runs every operator several times); the checks that
write take a scratch ``directory``. A failed check raises AssertionError naming the kind,
the operator and what differed. A plug-in's own tests need one call::

    from eqflow.testing import check_system

    def test_my_system_conforms(tmp_path):
        check_system("my_kind", directory=tmp_path)

or, one test per check and operator (readable failures), :func:`cases` with pytest's
parametrize as eqflow's own ``tests/test_systems.py`` does.

The checks: the schema and the code declare the same operators, observables and variables;
``create`` passes the schema and quantifies with pint; a run keeps dims, dtypes and units on
every backend; the same seed gives the same history bit for bit whatever the chunking; NumPy
and torch agree (integers bit for bit, floats within ``System.tolerance``); a run resumed after
a crash equals an uninterrupted one; a different seed gives a different history (operators
with draws).
"""
from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..cf import CONVENTIONS, written_units
from ..system import System

STEPS = 6


@dataclass(frozen=True)
class Case:
    """One (kind, operator, backend) the suite runs; ``backend`` None: the per-operator checks."""

    kind: str
    operator: str | None = None
    backend: str | None = None

    @property
    def id(self) -> str:
        return "-".join(p for p in (self.kind, self.operator, self.backend) if p)


def resolve(kind_or_system) -> System:
    """The registered System of a kind name, or ``kind_or_system`` itself, registered if it was not."""
    if isinstance(kind_or_system, System):
        if kind_or_system.kind not in registry.available() or registry.get(kind_or_system.kind) is not kind_or_system:
            registry.register(kind_or_system)
        return kind_or_system
    return registry.get(kind_or_system)


def _torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def cases(kind_or_system, backends=None, operators=None, per="operator") -> list[Case]:
    """The cases of one system: ``per="system"`` one, ``"operator"`` one per operator, ``"backend"``
    one per operator and backend (``backends``: a subset of the schema's, default all of them)."""
    system = resolve(kind_or_system)
    if per == "system":
        return [Case(system.kind)]
    ops = [op for op in system.operators if operators is None or op in operators]
    if per == "operator":
        return [Case(system.kind, op) for op in ops]
    chosen = [b for b in system.schema.backends if backends is None or b in backends]
    return [Case(system.kind, op, b) for op in ops for b in chosen if b != "torch" or _torch_available()]


def assert_same_history(a, b) -> None:
    """Every record and coordinate equal (bit for bit); provenance attributes may differ."""
    import xarray as xr

    assert set(a.data_vars) == set(b.data_vars), f"records differ: {sorted(a.data_vars)} vs {sorted(b.data_vars)}"
    xr.testing.assert_equal(a.load(), b.load())


def histories_differ(a, b) -> bool:
    """Whether any record of ``a`` differs from ``b``'s."""
    return any(not np.array_equal(a[v].values, b[v].values) for v in a.data_vars)


def _create(system: System, **overrides):
    return system.create(**{**system.example, **overrides})


def _run(system: System, op: str, path, steps=STEPS, example=None, **kw):
    import eqflow as eq

    ds = _create(system, **(example or {}))
    return eq.run(ds, op, steps=steps, store=Path(path), progress=False, **kw)


def check_contract(kind_or_system) -> None:
    """The schema and the code declare the same operators, observables, owned state and variables."""
    system = resolve(kind_or_system)
    assert system.contract_problems() == [], system.contract_problems()
    ds = _create(system)
    schema = system.schema
    assert set(schema.variables) == set(ds.data_vars), (
        f"{system.kind}: the schema declares variables {sorted(schema.variables)}, create made {sorted(ds.data_vars)}")
    allowed = {*schema.parameters, *schema.constants, *schema.site_dims, schema.member_dim}
    extra = sorted(set(ds.coords) - allowed)
    assert not extra, f"{system.kind}: coordinates {extra} are neither parameters, constants, site dims nor members"


def check_create(kind_or_system) -> None:
    """``create(**example)`` passes the schema, carries CF metadata (``Conventions``, a ``long_name`` on
    every variable and coordinate), and its parameters quantify in the schema's units."""
    import eqflow as eq

    system = resolve(kind_or_system)
    ds = _create(system)
    assert eq.validate(ds) is ds
    assert ds.attrs.get("Conventions") == CONVENTIONS, f"{system.kind}: attrs['Conventions'] is not {CONVENTIONS!r}"
    unnamed = sorted(str(k) for k, v in ds.variables.items() if not v.attrs.get("long_name"))
    assert not unnamed, f"{system.kind}: no long_name on {unnamed} (give each a description in the schema)"
    quantified = ds.pint.quantify()
    for name, spec in system.schema.parameters.items():
        if name in ds.coords:
            assert str(quantified[name].data.units) == str(eq.ureg.Unit(spec.units)), name


def check_run(kind_or_system, operator: str, backend: str, directory) -> None:
    """A short run on ``backend`` keeps each variable's dims and dtype and each observable's units and dims."""
    import eqflow as eq

    system = resolve(kind_or_system)
    ds = _create(system)
    hist = eq.run(ds, operator, steps=4, store=Path(directory) / "run.zarr", progress=False, backend=backend)
    final = eq.final_state(hist)
    where = f"{system.kind}.{operator} on {backend}"
    for name in system.schema.variables:
        assert final[name].dims == ds[name].dims, f"{where}: {name} dims {final[name].dims} != {ds[name].dims}"
        assert final[name].dtype == ds[name].dtype, f"{where}: {name} dtype {final[name].dtype} != {ds[name].dtype}"
    for name, spec in system.schema.observables.items():
        units = hist[name].attrs["units"]
        assert units == written_units(spec.units), f"{where}: {name} units {units!r}"
        assert hist[name].dims[0] == "step", f"{where}: {name} dims {hist[name].dims}"
        assert hist[name].dims[len(hist[name].dims) - len(spec.dims):] == spec.dims, f"{where}: {name} dims"
    assert hist.sizes["step"] == 5, f"{where}: {hist.sizes['step']} records of 5"
    eq.validate(final)
    hist.pint.quantify()


def check_chunking(kind_or_system, operator: str, directory) -> None:
    """The same seed gives the same history bit for bit with one member per chunk."""
    system = resolve(kind_or_system)
    a = _run(system, operator, Path(directory) / "whole.zarr")
    b = _run(system, operator, Path(directory) / "chunked.zarr", chunks={system.schema.member_dim: 1})
    assert_same_history(a, b)


def check_backends_agree(kind_or_system, operator: str, directory) -> None:
    """NumPy and torch histories: integers bit for bit, floats within ``System.tolerance`` (no-op unless
    the schema lists both backends and torch is installed)."""
    system = resolve(kind_or_system)
    if not {"numpy", "torch"} <= set(system.schema.backends) or not _torch_available():
        return
    rtol, atol = system.tolerance
    a = _run(system, operator, Path(directory) / "numpy.zarr").load()
    b = _run(system, operator, Path(directory) / "torch.zarr", chunks={system.schema.member_dim: 1},
             backend="torch").load()
    for name, var in a.data_vars.items():
        message = f"{system.kind}.{operator}: {name}, numpy vs torch"
        if var.dtype.kind == "f":
            np.testing.assert_allclose(b[name].values, var.values, rtol=rtol, atol=atol, err_msg=message)
        else:
            np.testing.assert_array_equal(b[name].values, var.values, err_msg=message)


class SimulatedCrash(RuntimeError):
    """Raised by :func:`crash_after_marks` in place of a killed process."""


def crashing(mark, n: int):
    """``mark`` (the store's marker writer, ``eqflow.store.root.mark``) that raises
    :class:`SimulatedCrash` right after its ``n``-th steps-done marker, like a process killed there."""
    from ..store import STEPS_DONE

    count = {"n": 0}

    def crashing_mark(path, *args, **attrs):
        mark(path, *args, **attrs)
        if STEPS_DONE in attrs:
            count["n"] += 1
            if count["n"] >= n:
                raise SimulatedCrash("simulated crash")

    return crashing_mark


@contextlib.contextmanager
def crash_after_marks(n: int):
    """Within the block, a run dies, like a crash, right after its ``n``-th steps-done marker."""
    from ..store import root

    real = root.mark
    root.mark = crashing(real, n)
    try:
        yield
    finally:
        root.mark = real


def check_resume(kind_or_system, operator: str, directory) -> None:
    """A run that crashes after a segment and is resumed equals an uninterrupted one, bit for bit."""
    import eqflow as eq

    system = resolve(kind_or_system)
    reference = _run(system, operator, Path(directory) / "reference.zarr", segment=2)
    path = Path(directory) / "resumed.zarr"
    try:
        with crash_after_marks(2):
            _run(system, operator, path, segment=2)
    except SimulatedCrash:
        pass
    else:
        raise AssertionError(f"{system.kind}.{operator}: the simulated crash did not happen")
    done = eq.open(path).attrs["eqflow_steps_done"]
    assert 0 < done < STEPS, f"{system.kind}.{operator}: {done} steps done before the crash"
    assert_same_history(reference, _run(system, operator, path, segment=2, resume=True))


def check_seed(kind_or_system, operator: str, directory) -> None:
    """Another seed gives another history (no-op for operators without random draws)."""
    system = resolve(kind_or_system)
    if not system.operators[operator].draws:
        return
    a = _run(system, operator, Path(directory) / "seed.zarr", steps=5)
    b = _run(system, operator, Path(directory) / "other.zarr", steps=5,
             example={"seed": system.example.get("seed", 0) + 1})
    assert histories_differ(a, b), f"{system.kind}.{operator}: seeds {system.example.get('seed', 0)} and +1 agree"


PER_SYSTEM = (check_contract, check_create)
PER_OPERATOR = (check_chunking, check_backends_agree, check_resume, check_seed)
PER_BACKEND = (check_run,)


def check_system(kind_or_system, *, backends=None, operators=None, directory=None) -> None:
    """Run every conformance check on one system; raise AssertionError at the first failure.

    kind_or_system : a registered kind name (built-in or an ``eqflow.systems`` entry point), or a
        :class:`~eqflow.System` (registered for this process if it is not).
    backends : the backends to run on (default: every one the schema lists that is installed).
    operators : the operators to check (default: all).
    directory : where the checks write their stores (default: a temporary directory, removed after).
    """
    system = resolve(kind_or_system)
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="eqflow-conformance-") as scratch:
            return check_system(system, backends=backends, operators=operators, directory=scratch)
    for check in PER_SYSTEM:
        check(system)
    for case in cases(system, backends, operators, per="operator"):
        for check in PER_OPERATOR:
            if check is check_backends_agree and backends is not None and "torch" not in backends:
                continue
            _fresh(directory, check, case, system)
    for case in cases(system, backends, operators, per="backend"):
        _fresh(directory, check_run, case, system, case.backend)


def _fresh(directory, check, case: Case, system: System, *extra) -> None:
    """Run ``check`` for ``case`` in a directory of its own under ``directory``."""
    folder = Path(directory) / f"{check.__name__}-{case.id}"
    folder.mkdir(parents=True, exist_ok=False)
    check(system, case.operator, *extra, folder)
