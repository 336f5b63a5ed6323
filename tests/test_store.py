"""Zarr stores: round trip, provenance, refusal to overwrite, resume, bad inputs, no partial stores."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import eqflow as eq
from eqflow import random
from eqflow.systems import ising

from conftest import RECORD, assert_same_history
from test_systems import crash_after_marks


def tree_digest(path: Path) -> str:
    """Hash of every file name and content under ``path``: proves a store was left untouched."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def bare_loop(system, steps):
    """The same updates written by hand with the pure functions: the reference for the store."""
    spin = system.spin.values
    t = system.temperature.values[None, :] * np.ones(spin.shape[:2])
    tables = ising.metropolis_acceptance(temperature=t, coupling=np.ones_like(t), field=np.zeros_like(t),
                                         sizes={"y": spin.shape[-2], "x": spin.shape[-1]})
    # each parameter point's streams are keyed by its parameter values (canonical units)
    points = random.point_ids({"temperature": system.temperature.values, "coupling": np.ones(spin.shape[1]),
                               "field": np.zeros(spin.shape[1])}, (spin.shape[1],))
    keys = random.cell_keys(system.attrs["eqflow_seed"], system.member.values, points)
    sizes = {"y": spin.shape[-2], "x": spin.shape[-1]}
    energy, spins = [ising.energy(spin=spin, coupling=1.0, field=0.0)], {0: spin}
    for step in range(1, steps + 1):
        words = random.generate(random.bits("y", "x"), keys, step=step - 1, slot=0, sizes=sizes)
        spin = ising.metropolis(spin=spin, words=words, **tables)["spin"]
        energy.append(ising.energy(spin=spin, coupling=1.0, field=0.0))
        spins[step] = spin
    return np.array(energy), spins


def test_history_equals_bare_loop_and_plain_xarray_reads_it(small_ising, tmp_path):
    hist = eq.run(small_ising, "metropolis", steps=23, store=tmp_path / "h.zarr", record=RECORD, segment=5,
                  chunks={"member": 4}, progress=False)
    energy, spins = bare_loop(small_ising, 23)
    np.testing.assert_array_equal(hist.energy.values, energy)
    assert hist.step.values.tolist() == list(range(24)) and hist.step_5.values.tolist() == [0, 5, 10, 15, 20]
    for i, step in enumerate(hist.step_5.values):
        np.testing.assert_array_equal(hist.spin.isel(step_5=i).values, spins[int(step)])
    plain = xr.open_zarr(tmp_path / "h.zarr")
    decoded = ["stop_reason"]  # plain readers see CF flags, eq.open decodes them to names
    xr.testing.assert_identical(plain.drop_vars(decoded).drop_attrs().load(),
                                hist.drop_vars(decoded).drop_attrs().load())
    assert (plain.stop_reason.values == 4).all() and plain.stop_reason.attrs["flag_meanings"].split()[4] == "max_steps"
    assert (hist.stop_reason.values == "max_steps").all() and (hist.stopped_at.values == 23).all()
    final = eq.final_state(hist)
    np.testing.assert_array_equal(final.spin.values, spins[23])
    assert final.attrs["eqflow_step"] == 23 and final.attrs["eqflow_parent"] == "h.zarr"  # no local directories
    assert str(plain.pint.quantify().energy.data.units) == "boltzmann_constant * kelvin"


def test_provenance(small_ising, tmp_path):
    hist = eq.run(small_ising, "heat_bath", steps=3, store=tmp_path / "h.zarr", chunks={"member": 3}, progress=False)
    a = hist.attrs
    assert a["eqflow_kind"] == "ising" and a["eqflow_operator"] == "heat_bath" and a["eqflow_seed"] == 11
    assert a["eqflow_backend"] == "numpy" and a["eqflow_device"] == "cpu"
    assert json.loads(a["eqflow_chunks"]) == {"member": 3, "temperature": 2}
    assert json.loads(a["eqflow_operator_parameters"])["temperature"] == {"units": "K", "values": [1.5, 3.0]}
    packages = json.loads(a["eqflow_packages"])
    assert ({"numpy", "xarray", "dask", "zarr", "pint", "torch"} <= set(packages)
            and packages["xarray"] == xr.__version__)
    assert a["eqflow_started"] <= a["eqflow_finished"] and a["eqflow_status"] == "complete"
    assert a["eqflow_version"] == eq.__version__ and a["eqflow_parent"] == ""


def test_chained_runs_continue_the_streams(small_ising, tmp_path):
    whole = eq.run(small_ising, "metropolis", steps=20, store=tmp_path / "whole.zarr", record={"energy": 1},
                   progress=False)
    first = eq.run(small_ising, "metropolis", steps=8, store=tmp_path / "a.zarr", record={"energy": 1}, progress=False)
    second = eq.run(eq.final_state(first), "metropolis", steps=12, store=tmp_path / "b.zarr", record={"energy": 1},
                    progress=False)
    assert second.step.values[0] == 8 and second.attrs["eqflow_parent"] == "a.zarr"  # no local directories
    assert second.attrs["eqflow_parent_run"] == first.attrs["eqflow_run"] != second.attrs["eqflow_run"]
    joined = xr.concat([first.energy, second.energy.isel(step=slice(1, None))], "step")
    xr.testing.assert_equal(joined.load(), whole.energy.load())


def test_refuses_to_overwrite_and_leaves_store_untouched(small_ising, tmp_path):
    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=3, store=path, progress=False)
    before = tree_digest(path)
    with pytest.raises(eq.StoreError, match="already exists; pass resume=True .* or overwrite=True"):
        eq.run(small_ising, "metropolis", steps=3, store=path, progress=False)
    with pytest.raises(eq.SchemaError, match="steps: expected a positive integer, got -1"):
        eq.run(small_ising, "metropolis", steps=-1, store=path, overwrite=True, progress=False)
    assert tree_digest(path) == before
    hist = eq.run(small_ising, "heat_bath", steps=2, store=path, overwrite=True, progress=False)
    assert hist.attrs["eqflow_operator"] == "heat_bath" and hist.sizes["step"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"record": {"entropy": 1}},
     "record['entropy']: expected an observable, state variable, owned state or diagnostic "
     "among ['energy', 'magnetization', 'abs_magnetization', 'spin'], got 'entropy'"),
    ({"record": {"energy": 0}}, "record['energy']: expected a positive integer interval in steps, got 0"),
    ({"chunks": {"y": 2}},
     "chunks['y']: expected a dimension among the ensemble dims ['member', 'temperature'], got 'y'"),
    ({"chunks": {"member": 0}}, "chunks['member']: expected a positive integer block size, got 0"),
    ({"backend": "jax"}, "backend: expected one of ['numpy', 'torch'], got 'jax'"),
    ({"backend": "numpy", "device": "cuda"}, "device: the numpy backend runs on 'cpu' only, got 'cuda'"),
    ({"segment": 0}, "segment: expected a positive integer, got 0"),
    ({"steps": 2.5}, "steps: expected a positive integer, got 2.5"),
])
def test_bad_run_inputs_write_nothing(small_ising, tmp_path, kwargs, message):
    args = {"steps": 3, **kwargs}
    with pytest.raises(eq.SchemaError) as err:
        eq.run(small_ising, "metropolis", store=tmp_path / "h.zarr", progress=False, **args)
    assert message in str(err.value)
    assert not (tmp_path / "h.zarr").exists()


def test_unknown_operator_and_invalid_system(small_ising, tmp_path):
    with pytest.raises(eq.SchemaError,
                       match=r"operator: expected one of \['heat_bath', 'metropolis', 'swendsen_wang', 'wolff'\] "
                             r"for kind 'ising', got 'kawasaki'"):
        eq.run(small_ising, "kawasaki", steps=3, store=tmp_path / "h.zarr")
    bad = small_ising.copy(deep=True)
    bad["spin"][:] = 0
    with pytest.raises(eq.SchemaError, match="spin: expected values in"):
        eq.run(bad, "metropolis", steps=3, store=tmp_path / "h.zarr")
    assert not (tmp_path / "h.zarr").exists()


def test_not_an_eqflow_store(tmp_path, small_ising):
    xr.Dataset({"a": ("x", [1, 2])}).to_zarr(tmp_path / "other.zarr", zarr_format=3)
    with pytest.raises(eq.StoreError, match="expected an eqflow history"):
        eq.open(tmp_path / "other.zarr")
    with pytest.raises(eq.StoreError, match="cannot resume a different run"):
        eq.run(small_ising, "metropolis", steps=3, store=tmp_path / "other.zarr", resume=True)
    with pytest.raises(eq.StoreError, match="expected an eqflow Zarr store"):
        eq.open(tmp_path / "missing.zarr")
    with pytest.raises(eq.StoreError, match="resume=True needs an existing store"):
        eq.run(small_ising, "metropolis", steps=3, store=tmp_path / "missing.zarr", resume=True)


def test_resume_refuses_a_different_run(small_ising, tmp_path, monkeypatch):
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        eq.run(small_ising, "metropolis", steps=10, store=tmp_path / "h.zarr", segment=2, progress=False)
    monkeypatch.undo()
    with pytest.raises(eq.StoreError,
                       match="eqflow_operator: the store has 'metropolis', this call asks for 'heat_bath'"):
        eq.run(small_ising, "heat_bath", steps=10, store=tmp_path / "h.zarr", segment=2, resume=True)


def test_final_state_needs_a_store(small_ising):
    with pytest.raises(eq.StoreError, match="expected a Dataset from eq.open/eq.run"):
        eq.final_state(small_ising)


@settings(max_examples=12, deadline=None)
@given(steps=st.integers(1, 12), crash_after=st.integers(1, 6), segment=st.integers(1, 5), chunk=st.integers(1, 6))
def test_property_k_steps_then_resume_equals_n_steps(tmp_path_factory, steps, crash_after, segment, chunk):
    system = eq.create("ising", size=4, temperature=[1.0, 2.5], members=6, seed=21)
    d = tmp_path_factory.mktemp("prop")
    reference = eq.run(system, "metropolis", steps=steps, store=d / "ref.zarr", record={"energy": 1, "spin": 2},
                       progress=False)
    with pytest.MonkeyPatch.context() as mp:
        crash_after_marks(mp, crash_after)
        try:
            eq.run(system, "metropolis", steps=steps, store=d / "r.zarr", record={"energy": 1, "spin": 2},
                   segment=segment, chunks={"member": chunk}, progress=False)
        except RuntimeError:
            pass
    resumed = (eq.run(system, "metropolis", steps=steps, store=d / "r.zarr", record={"energy": 1, "spin": 2},
                      segment=segment, resume=True, progress=False)
               if eq.open(d / "r.zarr").attrs["eqflow_status"] != "complete" else eq.open(d / "r.zarr"))
    assert_same_history(reference, resumed)


def test_marker_is_one_metadata_write(small_ising, tmp_path, monkeypatch):
    """steps-done and checkpoint slot change together: a kill between two saves of the root
    metadata once paired a new step with the old slot (found by killing runs in a loop)."""
    from zarr.storage import LocalStore

    from eqflow import store

    eq.run(small_ising, "metropolis", steps=2, store=tmp_path / "h.zarr", progress=False)
    saves = []
    real_set = LocalStore.set

    async def counting_set(self, key, value, *args, **kwargs):
        saves.append(key)
        return await real_set(self, key, value, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "set", counting_set)
    store.mark(tmp_path / "h.zarr", **{store.STEPS_DONE: 2, store.SLOT: 1, store.STATUS: "running"})
    assert saves == ["zarr.json"]
