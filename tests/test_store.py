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


def test_marker_is_one_atomic_replace(small_ising, tmp_path, monkeypatch):
    """steps-done and checkpoint slot change together: a kill between two saves of the root
    metadata once paired a new step with the old slot (found by killing runs in a loop). A local
    root is rewritten aside and renamed over the old one once; the consolidated metadata stays."""
    import os

    import zarr

    from eqflow import store

    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=2, store=path, progress=False)
    before = json.loads((path / "zarr.json").read_text())
    from eqflow.store import atomic, root

    replaced, real_replace = [], os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (replaced.append(Path(b).name), real_replace(a, b)))
    store.mark(path, **{store.STEPS_DONE: 2, store.SLOT: 1, store.STATUS: "running", "extra": np.int64(3)})
    assert replaced == ["zarr.json"]
    after = json.loads((path / "zarr.json").read_text())
    assert after["consolidated_metadata"] == before["consolidated_metadata"]
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    expected = {**before["attributes"], store.STEPS_DONE: 2, store.SLOT: 1, store.STATUS: "running", "extra": 3}
    assert attrs == {**expected, store.DIGEST: root.digest(expected)}  # sealed anew
    assert attrs[store.DIGEST] != before["attributes"][store.DIGEST]
    assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []  # nothing left aside

    def killed(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(OSError):
        store.mark(path, **{store.STEPS_DONE: 0, store.SLOT: 0})
    assert json.loads((path / "zarr.json").read_text()) == after  # the old marker whole
    assert [p.name for p in path.iterdir() if p.name.startswith(".")] == []


def _specs(arrays: dict) -> dict:
    from eqflow.store import ArraySpec

    return {name: ArraySpec(*fields) for name, fields in arrays.items()}


def test_layout_made_in_memory_equals_zarrs_own(tmp_path):
    """The in-memory layout (metadata from zarr's classes, the root consolidated by hand) holds
    the very documents, chunks and commit 0 that creating each array through zarr's public API
    and consolidating makes."""
    import zarr

    from eqflow.location import Location
    from eqflow.store import layout

    arrays = _specs({  # name -> (dims, shape, chunks, dtype, fill, attrs, values)
        "member": (("member",), (3,), (3,), np.dtype(np.int64), 0, {}, np.array([0, 4, 9])),
        "molecule": (("point",), (2,), (2,), np.dtype("<U7"), "", {"long_name": "x"}, np.array(["h2o", "benzene"])),
        "temperature": ((), (), None, np.dtype(np.float64), 0, {"units": "K"}, np.array(2.5)),
        "flag": (("member",), (3,), (3,), np.dtype(bool), False, {}, np.array([True, False, True])),
        "edge": (("edge", "member"), (0, 3), (0, 3), np.dtype(np.int64), 0, {}, np.zeros((0, 3), np.int64)),
        "energy": (("step", "member", "point"), (11, 3, 2), (5, 2, 2), np.dtype(np.float32), np.nan,
                   {"units": "1", "record_every": 1, "coordinates": "temperature"}, None),
        "spin": (("step_10", "member", "y", "x"), (2, 3, 4, 6), (1, 3, 4, 6), np.dtype(np.int8), 0, {}, None),
        "_checkpoint/spin": (("slot", "member", "y", "x"), (2, 3, 4, 6), (1, 3, 4, 6), np.dtype(np.int8), 0, {}, None),
        "extra/deep/state": (("slot", "member"), (2, 3), (1, 3), np.dtype(np.complex128), 0, {}, None),
    })
    assert arrays["edge"].chunks == (1, 3)  # never a zero-length chunk (tensorstore refuses one)
    root = {"eqflow_kind": "toy", "eqflow_seed": 3, "eqflow_status": "starting", "nested": {"a": [1, 2.5]}}
    ours, sha = layout.in_memory(root, arrays)
    theirs = {}
    theirs_sha = layout._create(Location(zarr.storage.MemoryStore(store_dict=theirs)), root, arrays, replace=False,
                                hidden=True)
    theirs = {key: value.to_bytes() for key, value in theirs.items()}
    assert sorted(ours) == sorted(theirs) and sha == theirs_sha
    for key in theirs:
        if key.endswith("zarr.json"):
            assert json.loads(ours[key]) == json.loads(theirs[key]), key
        else:
            assert ours[key] == theirs[key], key
    layout.write_folder((ours, sha), tmp_path / "s.zarr")
    opened = xr.open_zarr(tmp_path / "s.zarr", consolidated=True)
    assert list(opened.molecule.values) == ["h2o", "benzene"] and opened.energy.isnull().all()


def test_direct_chunk_writes_equal_zarrs_own(tmp_path, monkeypatch):
    """Regions of numeric arrays are encoded by eqflow (bytes, zstd, crc32c) and written file by
    file, a chunk covered in part read and updated first: the same files as zarr's own region
    writes, byte for byte; strings go to zarr. Every write reports each chunk's stored checksum
    (what the commit manifest records)."""
    import os
    import types

    import zarr

    from eqflow import store
    from eqflow.location import as_location
    from eqflow.store import atomic, chunks, layout

    arrays = _specs({
        "energy": (("step", "member"), (11, 3), (5, 3), np.dtype(np.float64), np.nan, {}, None),
        "spin": (("step_10", "member", "y", "x"), (3, 3, 4, 6), (1, 2, 4, 6), np.dtype(np.int8), 0, {}, None),
        "done": (("member",), (3,), (3,), np.dtype(bool), False, {}, None),
        "psi": (("slot", "member", "k"), (2, 3, 5), (1, 3, 5), np.dtype(np.complex128), 0, {}, None),
        "_checkpoint/stopped_at": (("slot", "member"), (2, 3), (1, 3), np.dtype(np.int64), 0, {}, None),
        "label": (("member",), (3,), (3,), np.dtype("<U4"), "", {}, None),
    })
    rng = np.random.default_rng(0)
    regions = [
        ("energy", (slice(0, 10),), rng.normal(size=(10, 3))),  # two whole chunks
        ("energy", (slice(10, 11),), rng.normal(size=(1, 3))),  # the edge chunk, padded with NaN
        ("spin", (slice(1, 3),), rng.choice(np.array([-1, 1], np.int8), size=(2, 3, 4, 6))),  # edge along member
        ("done", (Ellipsis,), np.array([True, False, True])),
        ("psi", (1,), rng.normal(size=(3, 5)) + 1j * rng.normal(size=(3, 5))),  # an integer index drops its dim
        ("_checkpoint/stopped_at", (0,), np.array([3, -1, 7])),
        ("energy", (slice(2, 4),), rng.normal(size=(2, 3))),  # part of a chunk: read, updated, encoded again
        ("label", (Ellipsis,), np.array(["a", "bb", "ccc"])),  # a string: zarr
        ("spin", (0, slice(0, 2)), np.ones((2, 4, 6), np.int8)),  # one whole chunk, a dim dropped
    ]
    root = {"eqflow_status": "starting"}
    for name in ("ours", "zarrs"):
        layout.write_folder(layout.in_memory(root, arrays), tmp_path / name)
    written = {"chunks": {}, "pieces": {}}
    left = chunks._write_direct(as_location(tmp_path / "ours"), regions, written, set())
    assert [r[0] for r in left] == ["label"]  # the strings: zarr
    chunks.merge(written, store.write(tmp_path / "ours", left))
    target = zarr.storage.LocalStore(str(tmp_path / "zarrs"))
    for name, index, values in regions:
        zarr.open_array(store=target, path=name, mode="r+").with_config({"write_empty_chunks": True})[index] = values

    def files(folder):
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    ours, theirs = files(tmp_path / "ours"), files(tmp_path / "zarrs")
    assert sorted(ours) == sorted(theirs) and all(ours[k] == theirs[k] for k in theirs)
    assert not [k for k in ours if ".partial" in k]
    # every chunk written is reported with its stored crc32c (its last four bytes)
    reported = {f"{name}/{key}": crc for name, keys in written["chunks"].items() for key, crc in keys.items()}
    # the partial write (energy rows 2-3 of the chunk of rows 0-4) also reports its values
    [(box, sha)] = written["pieces"]["energy"]["c/0/0"]
    assert box == [[2, 4], [0, 3]] and sha == chunks.value_digest(regions[6][2])
    assert reported and all(ours[key][-4:].hex() == crc for key, crc in reported.items())
    assert {k for k in ours if "/c/" in k or k.endswith("/c")} - {"_eqflow"} >= set(reported)
    read = zarr.open_array(store=target, path="psi", mode="r")[1]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours" / "psi"), mode="r")[1], read)

    def full(fd, data):  # a full disk on the chunk's file: a named OSError, nothing half-written left
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "os", types.SimpleNamespace(**{**vars(os), "write": full}))
    with pytest.raises(OSError, match="No space"):
        store.write(tmp_path / "ours", regions[:1])
    monkeypatch.undo()
    assert files(tmp_path / "ours") == ours


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_region_writes_equal_zarrs_read_modify_write(tmp_path_factory, data):
    """Any sequence of region writes (parts of chunks, edge chunks, whole chunks, integer indices)
    leaves a local store, and an in-memory one, holding the very bytes that zarr's own writes
    leave, and reports each partial chunk's piece; a chunk damaged on disk is named by a
    StoreError before anything is written over it."""
    import math

    import zarr

    from eqflow import store
    from eqflow.location import Location, as_location
    from eqflow.store import chunks, layout

    dtype = np.dtype(data.draw(st.sampled_from(["float64", "int8", "int64", "bool", "complex128"])))
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=3)))
    grid = tuple(data.draw(st.integers(1, n)) for n in shape)
    fill = {"f": np.nan, "c": 0}.get(dtype.kind, 0)
    arrays = _specs({"a": (tuple(f"d{i}" for i in range(len(shape))), shape, grid, dtype, fill, {}, None)})
    folder = tmp_path_factory.mktemp("writes")
    root = {"eqflow_status": "starting"}
    for name in ("ours", "zarrs"):
        layout.write_folder(layout.in_memory(root, arrays), folder / name)
    memory = Location(None)
    for key, value in layout.in_memory(root, arrays)[0].items():
        memory.write_object(key, value)
    target = zarr.open_array(str(folder / "zarrs" / "a"), mode="r+").with_config({"write_empty_chunks": True})
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    for _ in range(data.draw(st.integers(1, 4))):
        index = []
        for n in shape:
            if data.draw(st.booleans()) or n == 1:
                start = data.draw(st.integers(0, n - 1))
                index.append(slice(start, data.draw(st.integers(start + 1, n))))
            else:
                index.append(data.draw(st.integers(0, n - 1)))
        index = tuple(index)
        values = rng.normal(size=np.empty(shape)[index].shape) * 3
        values = {"c": values + 1j * values, "b": values > 0}.get(dtype.kind, values).astype(dtype)
        written = {"ours": store.write(folder / "ours", [("a", index, values)]),
                   "memory": store.write(memory, [("a", index, values)])}
        target[index] = values
        box = chunks._box(index, shape)
        for report in written.values():
            for key, pieces in report["pieces"].get("a", {}).items():
                assert all(all(lo >= b0 and hi <= b1 for (lo, hi), (b0, b1) in zip(piece[0], box)) for piece in pieces)

    def files(base):
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in (base / "a").rglob("*") if p.is_file()}

    ours, theirs = files(folder / "ours"), files(folder / "zarrs")
    assert ours == theirs
    assert {f"a/{k}": memory.read_object(f"a/{k}") for k in (f[2:] for f in ours)} == {f"a/{k[2:]}": v
                                                                                       for k, v in ours.items()}
    np.testing.assert_array_equal(zarr.open_array(memory.zarr(), path="a", mode="r")[...], target[...])
    first = "a/c/" + "/".join("0" * len(shape))  # the chunk that holds element 0
    if first in ours and math.prod(grid) > 1:  # writing element 0 alone updates it in part: it is read
        damaged = bytearray(ours[first])
        damaged[-1] ^= 1
        (folder / "ours" / first).write_bytes(bytes(damaged))
        with pytest.raises(eq.StoreError, match="array 'a': expected its chunks as written, got one whose checksum"):
            store.write(as_location(folder / "ours"), [("a", (0,) * len(shape), np.zeros((), dtype))])
        assert (folder / "ours" / first).read_bytes() == bytes(damaged)


def test_opened_history_equals_plain_xarray(tmp_path):
    """The dimension coordinates read from their chunk files give the Dataset xr.open_zarr gives:
    values, attributes, encodings and indexes, for sweeps, several record intervals and an
    anneal's per-step coordinates."""
    import zarr

    from eqflow.location import as_location
    from eqflow.store.history import _open_zarr

    import toy

    system = eq.create("ising", size=6, temperature=[1.5, 2.5, 3.0], field=[0.0, 0.25], members=2, seed=4)
    eq.run(system.assign_coords(member=[3, 11]), "metropolis", steps=7, store=tmp_path / "sweep.zarr",
           record={"energy": 1, "magnetization": 2, "spin": 7}, progress=False)
    eq.anneal(toy.create(rate=0.9, members=2), "relax", schedule={"rate": [0.5, 0.1]}, stage_steps=3,
              store=tmp_path / "anneal.zarr", record={"x": 1, "residual": 1}, progress=False)
    for name in ("sweep.zarr", "anneal.zarr"):
        ours = _open_zarr(as_location(tmp_path / name))
        theirs = xr.open_zarr(tmp_path / name, consolidated=True)
        xr.testing.assert_identical(ours, theirs)
        assert set(ours.xindexes) == set(theirs.xindexes) and ours.encoding == theirs.encoding
        assert all(repr(ours[k].encoding) == repr(theirs[k].encoding) for k in theirs.variables)  # NaN fills
        assert all(type(ours[k].data) is type(theirs[k].data) for k in theirs.variables)  # lazy stays lazy
    # a coordinate chunk that went missing reads as zarr reads it: the fill value
    (tmp_path / "sweep.zarr" / "field" / "c" / "0").unlink()
    ours = _open_zarr(as_location(tmp_path / "sweep.zarr"))
    stored = zarr.open_array(str(tmp_path / "sweep.zarr" / "field"))[:]
    assert ours.field.values.tolist() == [0.0, 0.0] == stored.tolist()
