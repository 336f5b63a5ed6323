"""End-to-end integrity: a damaged, stale or interrupted store never gives a silently wrong answer.

Each test is one class of damage (the ten cases of the store-integrity issue): the commit record
(a manifest per commit, chained to a sealed root) makes every one a named StoreError, or, where
the data are intact, a store that opens and resumes bit for bit. The store tests run with the
quarantined fast path on and off (zarr's public API only): the same bytes and the same errors.
"""
import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

import eqflow as eq
from eqflow.store import _zarr_fast, root

from conftest import assert_same_history
from test_systems import crash_after_marks


@pytest.fixture(params=["fast", "public"], autouse=True)
def zarr_path(request, monkeypatch):
    """Every test here runs on both paths: eqflow's fast path, and zarr's public API alone."""
    monkeypatch.setattr(_zarr_fast, "ENABLED", request.param == "fast")
    return request.param


def run(system, path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("record", {"energy": 1})
    return eq.run(system, "metropolis", store=path, **kw)


def crash_before_marker(monkeypatch, n):
    """Die just before the n-th steps-done marker: that segment's chunks are written, its marker is not."""
    real, count = root.mark, {"n": 0}

    def mark(path, **attrs):
        if "eqflow_steps_done" in attrs:
            count["n"] += 1
            if count["n"] >= n:
                raise RuntimeError("simulated crash")
        real(path, **attrs)

    monkeypatch.setattr(root, "mark", mark)


def edit_root(path, **attrs):
    document = json.loads((path / "zarr.json").read_text())
    document["attributes"].update(attrs)
    (path / "zarr.json").write_text(json.dumps(document))


def test_case1_a_missing_record_chunk_hidden_by_the_next_segment_is_named(small_ising, tmp_path, monkeypatch):
    path = tmp_path / "h.zarr"
    crash_before_marker(monkeypatch, 4)  # markers at steps 5, 10, 15; the segment to 20 wrote its chunks
    with pytest.raises(RuntimeError):
        run(small_ising, path, steps=30, segment=5)
    monkeypatch.undo()
    assert eq.open(path).attrs["eqflow_steps_done"] == 15
    (path / "energy" / "c" / "2" / "0" / "0").unlink()  # steps 10-14; chunks 3 and 4 (steps 15-24) exist
    message = r"energy: 1 chunk\(s\) missing: c/2/0/0 \(steps 10-14, written by the commit at step 15\)"
    for call in (eq.open, eq.verify):
        with pytest.raises(eq.StoreError, match=message):
            call(path)
    with pytest.raises(eq.StoreError, match=message):
        run(small_ising, path, steps=30, segment=5, resume=True)


def test_case2_a_killed_anneal_opens_verifies_and_resumes(tmp_path, monkeypatch):
    system = eq.create("ising", size=6, temperature=3.0, members=3, seed=4)
    kwargs = dict(schedule={"temperature": [3.5, 2.5, 1.5]}, stage_steps=6, segment=3, record={"energy": 1},
                  progress=False)
    reference = eq.anneal(system, "metropolis", store=tmp_path / "ref.zarr", **kwargs)
    crash_after_marks(monkeypatch, 1)  # after the first segment: no stage has ended yet
    with pytest.raises(RuntimeError):
        eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", **kwargs)
    monkeypatch.undo()
    assert eq.verify(tmp_path / "a.zarr") and eq.open(tmp_path / "a.zarr").attrs["eqflow_steps_done"] == 3
    assert_same_history(reference, eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", resume=True,
                                             **kwargs))


def _interrupted(small_ising, path, monkeypatch):
    crash_after_marks(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        run(small_ising, path, steps=12, segment=2)
    monkeypatch.undo()
    return json.loads((path / "zarr.json").read_text())["attributes"]["eqflow_checkpoint_slot"]


def _resume(small_ising, path):
    return run(small_ising, path, steps=12, segment=2, resume=True)


def test_case3_a_stale_checkpoint_chunk_is_named_never_resumed(small_ising, tmp_path, monkeypatch):
    path = tmp_path / "h.zarr"
    slot = _interrupted(small_ising, path, monkeypatch)
    current = path / "_checkpoint" / "spin" / "c" / str(slot) / "0" / "0" / "0" / "0"
    other = path / "_checkpoint" / "spin" / "c" / str(1 - slot) / "0" / "0" / "0" / "0"
    shutil.copyfile(other, current)  # a lost write, a rollback, a restore: a valid chunk of another step
    message = r"_checkpoint/spin: 1 chunk\(s\) holding other bytes than eqflow wrote"
    for call in (eq.verify, eq.final_state, eq.open, lambda p: _resume(small_ising, p)):
        with pytest.raises(eq.StoreError, match=message):
            call(path)


def test_case3_a_flipped_slot_or_rolled_back_step_is_named(small_ising, tmp_path, monkeypatch):
    path = tmp_path / "h.zarr"
    slot = _interrupted(small_ising, path, monkeypatch)
    saved = (path / "zarr.json").read_bytes()
    for change in ({"eqflow_checkpoint_slot": 1 - slot}, {"eqflow_steps_done": 4}):
        edit_root(path, **change)
        for call in (eq.verify, eq.final_state, eq.open, lambda p: _resume(small_ising, p)):
            with pytest.raises(eq.StoreError, match="do not match their digest"):
                call(path)
        (path / "zarr.json").write_bytes(saved)
    edit_root(path, title="my run")  # an attribute of the user's own is not eqflow's to judge
    assert_same_history(run(small_ising, tmp_path / "ref.zarr", steps=12, segment=2), _resume(small_ising, path))


def test_case4_final_state_refuses_a_lost_constant(small_ising, tmp_path):
    path = tmp_path / "h.zarr"
    run(small_ising, path, steps=4)
    (path / "coupling" / "c").unlink()  # zarr would read it back as J = 0
    with pytest.raises(eq.StoreError, match=r"coupling: 1 chunk\(s\) missing: c \(written by the layout\)"):
        eq.final_state(path)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated", "shape", "dtype", "consolidated", "swapped"])
def test_case5_metadata_and_chunk_positions_are_checked(small_ising, tmp_path, monkeypatch, damage):
    path = tmp_path / "h.zarr"
    _interrupted(small_ising, path, monkeypatch)
    meta = path / "energy" / "zarr.json"
    document = json.loads(meta.read_text())
    if damage == "deleted":
        meta.unlink()
    elif damage == "garbage":
        meta.write_bytes(b"\x00garbage")
    elif damage == "truncated":
        meta.write_bytes(meta.read_bytes()[:40])
    elif damage in ("shape", "dtype"):
        document.update({"shape": [3, 6, 2]} if damage == "shape" else {"data_type": "float32"})
        meta.write_text(json.dumps(document))
    elif damage == "consolidated":
        top = json.loads((path / "zarr.json").read_text())
        del top["consolidated_metadata"]["metadata"]["energy"]
        (path / "zarr.json").write_text(json.dumps(top))
    else:  # two valid chunks of the same array change places
        a, b = path / "energy" / "c" / "0" / "0" / "0", path / "energy" / "c" / "1" / "0" / "0"
        data = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(data)
    expected = {"consolidated": "energy: missing from the root's consolidated metadata",
                "swapped": r"energy: 2 chunk\(s\) holding other bytes"}.get(damage,
                                                                          r"energy: its metadata \(energy/zarr.json\)")
    calls = [eq.verify, eq.open, lambda p: _resume(small_ising, p)]
    if damage == "swapped":  # the state and constants are intact: chaining from it is safe
        assert eq.final_state(path).attrs["eqflow_step"] == 6
    else:
        calls.append(eq.final_state)
    for call in calls:
        with pytest.raises(eq.StoreError, match=expected):
            call(path)


def test_case6_leftover_siblings_are_reported_then_removed(small_ising, tmp_path):
    path = tmp_path / "h.zarr"
    run(small_ising, path, steps=2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f".h.zarr.eqflow-new-{int(dead.stdout)}-1-abcdef012345"
    old_style = tmp_path / ".h.zarr.eqflow-old-0123456789ab"
    from eqflow.store.atomic import sibling

    live = sibling(path, "new")  # this very process: a layout being made now, not a leftover
    for folder in (gone, old_style, live):
        (folder / "energy").mkdir(parents=True)
    other_store = tmp_path / ".other.zarr.eqflow-new-1-1-abcdef012345"  # another store's: never touched
    other_store.mkdir()
    with pytest.warns(importlib.import_module("eqflow.verify").LeftoverWarning, match="2 hidden folder"):
        eq.verify(path)
    run(small_ising, path, steps=2, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["h.zarr", live.name, other_store.name])


def test_case7_a_reused_pid_or_a_zombie_holds_no_lease(small_ising, tmp_path, monkeypatch):
    import socket
    import time

    path = tmp_path / "h.zarr"
    _interrupted(small_ising, path, monkeypatch)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        while open(f"/proc/{zombie.pid}/stat").read().split(")")[-1].split()[0] != "Z":
            time.sleep(0.05)  # exited, not reaped: a zombie
        for pid, started in ((sleeper.pid, 1), (zombie.pid, None)):  # a live pid that started at another time
            record = {"token": "other", "host": socket.gethostname(), "pid": pid, "started": started,
                      "heartbeat": time.time() - 86400}
            eq.store.mark(path, **{"eqflow_writer": json.dumps(record), "eqflow_status": "running"})
            assert eq.store.HistoryStore(path).attrs()["eqflow_writer"]
            from eqflow import lease

            assert lease.holder(eq.store.read_attrs(path)) is None
        resumed = _resume(small_ising, path)
    finally:
        sleeper.kill()
        sleeper.wait()
        zombie.wait()
    assert_same_history(run(small_ising, tmp_path / "ref.zarr", steps=12, segment=2), resumed)


def test_case8_a_symlinked_store_is_followed_and_a_deleted_one_named(small_ising, tmp_path, monkeypatch):
    real = tmp_path / "data" / "h.zarr"
    real.parent.mkdir()
    run(small_ising, real, steps=2)
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    hist = run(small_ising, link, steps=4, overwrite=True)
    assert link.is_symlink() and link.resolve() == real and hist.sizes["step"] == 5
    assert eq.open(link).sizes["step"] == 5 and sorted(os.listdir(real.parent)) == ["h.zarr"]

    from eqflow import runner

    real_write = runner._write_outcomes

    def deleted_meanwhile(job, found, slot, end):
        written = real_write(job, found, slot, end)
        shutil.rmtree(job.path.target)
        return written

    monkeypatch.setattr(runner, "_write_outcomes", deleted_meanwhile)
    with pytest.raises(eq.StoreError, match="no longer exists .* nothing of it is left"):
        run(small_ising, tmp_path / "gone.zarr", steps=4, segment=2)
    assert not (tmp_path / "gone.zarr").exists()


def _stores(tmp_path) -> dict:
    """One small store of each built-in kind (their shared-suite examples), an anneal and samples."""
    stores = {}
    for kind in eq.available():
        system = eq.create(kind, **eq.get_system(kind).example)
        operator = next(iter(eq.get_system(kind).operators))
        stores[kind] = eq.run(system, operator, steps=2, store=tmp_path / f"{kind}.zarr", progress=False)
    ising = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    stores["anneal"] = eq.anneal(ising, "metropolis", schedule={"temperature": [3.0, 2.0]}, stage_steps=2,
                                 store=tmp_path / "anneal.zarr", progress=False)
    return stores


def test_case9_tensorstore_reads_every_array_as_zarr_does(tmp_path, zarr_path):
    ts = pytest.importorskip("tensorstore")
    if zarr_path == "public":
        pytest.skip("one path is enough: both write the same bytes (see the test below)")
    def read(store, path):
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{store}/{path}"}}
        return ts.open(spec, read=True).result().read().result()

    for kind, hist in _stores(tmp_path).items():
        store = hist.attrs["eqflow_store"]
        group = zarr.open_group(store, mode="r")
        checkpoint = [(f"_checkpoint/{name}", array) for name, array in group["_checkpoint"].arrays()]
        for path, node in [*group.arrays(), *checkpoint]:
            assert 0 not in node.chunks, (kind, path)
            if node.dtype.kind in "OUT":  # strings: a zarr-python extension type, not in the v3 core
                continue
            np.testing.assert_array_equal(read(store, path), node[...], err_msg=f"{kind}: {path}")


def test_case10_a_plain_xarray_copy_opens_as_an_ordinary_dataset(small_ising, tmp_path):
    run(small_ising, tmp_path / "a.zarr", steps=3)
    xr.open_zarr(tmp_path / "a.zarr").to_zarr(tmp_path / "b.zarr", zarr_format=3)
    with pytest.warns(eq.store.NoIntegrityRecord, match="no eqflow integrity record"):
        copy = eq.open(tmp_path / "b.zarr")
    xr.testing.assert_equal(copy.energy, xr.open_zarr(tmp_path / "a.zarr").energy)
    with pytest.raises(eq.StoreError):  # it cannot be chained: its checkpoint was not copied
        eq.final_state(tmp_path / "b.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eq.open(tmp_path / "a.zarr")  # the original: no warning


def test_fast_path_and_public_api_write_the_same_bytes(small_ising, tmp_path, monkeypatch, zarr_path):
    if zarr_path == "public":
        pytest.skip("compares both paths in one test")
    folders = {}
    for on in (True, False):
        monkeypatch.setattr(_zarr_fast, "ENABLED", on)
        folders[on] = tmp_path / f"{on}.zarr"
        hist = run(small_ising, folders[on], steps=6, segment=2, record={"energy": 1, "spin": 3})
        hist.load()

    def files(folder):
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
                if p.is_file() and p.relative_to(folder).as_posix() != "zarr.json"}

    fast, public = files(folders[True]), files(folders[False])
    assert sorted(fast) == sorted(public)
    differ = [k for k in fast if fast[k] != public[k] and not k.endswith("zarr.json")]
    assert differ == []  # every chunk, and the commit manifests' chunk checksums below
    for key in fast:
        if key.endswith("zarr.json"):
            assert json.loads(fast[key]) == json.loads(public[key]), key
    assert_same_history(eq.open(folders[True]), eq.open(folders[False]))
