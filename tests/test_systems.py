"""The shared suite: every registered system x operator x backend x chunking.

create passes the schema; the schema and the code declare the same keys; a run keeps dims,
dtypes and units; the same seed gives the same history whatever the chunking or the backend
(within the system's declared tolerance for floats); a resumed run equals an uninterrupted one.
An import error in a system fails here: nothing is skipped.
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow import registry

import toy  # noqa: F401  (registers the template system 'relax')
from conftest import assert_same_history, histories_differ

KINDS = registry.available()
BACKENDS = ["numpy", "torch"]


def _cases(with_backends=False):
    for kind in KINDS:
        system = registry.get(kind)  # an ImportError here fails collection, loudly
        for op in system.operators:
            for backend in BACKENDS if with_backends else [None]:
                if backend is None:
                    yield pytest.param(kind, op, id=f"{kind}-{op}")
                elif backend in system.schema.backends:
                    yield pytest.param(kind, op, backend, id=f"{kind}-{op}-{backend}")


CASES = list(_cases())
BACKEND_CASES = list(_cases(with_backends=True))


def test_builtins_are_discovered_from_the_folder():
    from pathlib import Path

    folder = Path(eq.systems.__file__).parent
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}
    assert packages == set(registry.builtin()) and {"ising", "scf"} <= packages
    assert "relax" in KINDS  # registered at run time


@pytest.mark.parametrize("kind", KINDS)
def test_schema_and_code_declare_the_same_keys(kind):
    system = registry.get(kind)
    assert system.contract_problems() == []
    ds = eq.create(kind, **system.example)
    assert set(system.schema.variables) == set(ds.data_vars)
    for name in ds.coords:
        assert name in {*system.schema.parameters, *system.schema.constants, *system.schema.site_dims,
                        system.schema.member_dim}, name


@pytest.mark.parametrize("kind", KINDS)
def test_create_passes_schema_and_quantifies(kind):
    system = registry.get(kind)
    ds = eq.create(kind, **system.example)
    assert eq.validate(ds) is ds
    quantified = ds.pint.quantify()
    for name, spec in system.schema.parameters.items():
        if name in ds.coords:
            assert str(quantified[name].data.units) == str(eq.ureg.Unit(spec.units))


def _run(kind, op, path, steps=6, **kw):
    ds = eq.create(kind, **registry.get(kind).example)
    return eq.run(ds, op, steps=steps, store=path, progress=False, **kw)


@pytest.mark.parametrize("kind,op,backend", BACKEND_CASES)
def test_run_keeps_dims_dtypes_units(kind, op, backend, tmp_path):
    system = registry.get(kind)
    ds = eq.create(kind, **system.example)
    hist = eq.run(ds, op, steps=4, store=tmp_path / "h.zarr", progress=False, backend=backend)
    final = eq.final_state(hist)
    for name in system.schema.variables:
        assert final[name].dims == ds[name].dims
        assert final[name].dtype == ds[name].dtype
    for name, spec in system.schema.observables.items():
        assert hist[name].attrs["units"] == spec.units
        assert hist[name].dims[0] == "step"
        assert hist[name].dims[len(hist[name].dims) - len(spec.dims):] == spec.dims
    assert hist.sizes["step"] == 5
    eq.validate(final)
    hist.pint.quantify()


@pytest.mark.parametrize("kind,op", CASES)
def test_same_seed_same_history_across_chunks(kind, op, tmp_path):
    a = _run(kind, op, tmp_path / "a.zarr")
    b = _run(kind, op, tmp_path / "b.zarr", chunks={"member": 1})
    assert_same_history(a, b)


@pytest.mark.parametrize("kind,op", CASES)
def test_numpy_and_torch_agree(kind, op, tmp_path):
    """Integer histories are bit-identical; float histories agree within the system's tolerance
    (NumPy and torch call different LAPACK routines; the random draws themselves are identical)."""
    rtol, atol = registry.get(kind).tolerance
    a = _run(kind, op, tmp_path / "a.zarr").load()
    b = _run(kind, op, tmp_path / "b.zarr", chunks={"member": 1}, backend="torch").load()
    for name, var in a.data_vars.items():
        if var.dtype.kind == "f":
            np.testing.assert_allclose(b[name].values, var.values, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(b[name].values, var.values, err_msg=name)


@pytest.mark.parametrize("kind,op", CASES)
def test_resume_equals_uninterrupted(kind, op, tmp_path, monkeypatch):
    reference = _run(kind, op, tmp_path / "ref.zarr", segment=2)
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(kind, op, tmp_path / "r.zarr", segment=2)
    monkeypatch.undo()
    partial = eq.open(tmp_path / "r.zarr")
    assert 0 < partial.attrs["eqflow_steps_done"] < 6
    resumed = _run(kind, op, tmp_path / "r.zarr", segment=2, resume=True)
    assert_same_history(reference, resumed)


def crash_after_marks(monkeypatch, n):
    """Make the run die (like a crash) after its n-th steps-done marker."""
    from eqflow.store import STEPS_DONE, root

    real, count = root.mark, {"n": 0}

    def mark(path, **attrs):
        real(path, **attrs)
        if STEPS_DONE in attrs:
            count["n"] += 1
            if count["n"] >= n:
                raise RuntimeError("simulated crash")

    monkeypatch.setattr(root, "mark", mark)


@pytest.mark.parametrize("kind,op", [c for c in CASES if registry.get(c.values[0]).operators[c.values[1]].draws])
def test_different_seed_different_history(kind, op, tmp_path):
    system = registry.get(kind)
    a = eq.run(eq.create(kind, **system.example), op, steps=5, store=tmp_path / "a.zarr", progress=False)
    other = {**system.example, "seed": system.example.get("seed", 0) + 1}
    b = eq.run(eq.create(kind, **other), op, steps=5, store=tmp_path / "b.zarr", progress=False)
    assert histories_differ(a, b)
