"""Nothing lost: overwrite replaces only eqflow stores and atomically, creation is atomic, resume
refuses another system, bad inputs are named before anything is written, stores hold no local paths."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

import eqflow as eq
from eqflow import store

from conftest import assert_same_history


def run(system, path, **kw):
    kw.setdefault("steps", 6)
    kw.setdefault("progress", False)
    return eq.run(system, "metropolis", store=path, record={"energy": 1}, **kw)


def test_overwrite_refuses_what_is_not_an_eqflow_store(tmp_path, small_ising):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious")
    with pytest.raises(eq.StoreError, match="overwrite=True replaces only an eqflow store, got a directory"):
        run(small_ising, folder, overwrite=True)
    assert (folder / "chapter1.tex").read_text() == "precious"
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").attrs["note"] = "not eqflow"
    with pytest.raises(eq.StoreError, match="not an eqflow store"):
        run(small_ising, plain, overwrite=True)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(eq.StoreError, match="got a file"):
        run(small_ising, tmp_path / "file.zarr", overwrite=True)
    from eqflow.cli import main

    config = tmp_path / "run.toml"
    config.write_text(f'[system]\nkind = "ising"\nsize = 4\ntemperature = 2.0\n[run]\noperator = "metropolis"\n'
                      f'steps = 2\nstore = "{folder}"\n')
    assert main(["run", str(config), "--overwrite", "--no-progress"]) == 1
    assert (folder / "chapter1.tex").read_text() == "precious"


def test_overwrite_swaps_in_the_new_store_and_leaves_no_siblings(tmp_path, small_ising):
    old = run(small_ising, tmp_path / "h.zarr", steps=4)
    new = run(small_ising, tmp_path / "h.zarr", steps=9, overwrite=True)
    assert new.sizes["step"] == 10 and new.attrs["eqflow_run"] != old.attrs["eqflow_run"]
    assert sorted(os.listdir(tmp_path)) == ["h.zarr"]


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    import eqflow as eq
    from eqflow.store import atomic, layout
    point = sys.argv[2]
    real_create, real_move, real_rmtree = layout._create, layout.move_into_place, atomic.shutil.rmtree
    real_write = layout.write_folder
    def create_then_die(loc, root, arrays, replace, **kwargs):  # laid out through zarr (hidden or object store)
        sha = real_create(loc, root, arrays, replace, **kwargs)
        if point == "after-layout":
            os._exit(9)
        return sha
    def write_then_die(contents, folder):  # laid out in memory, written as files
        sha = real_write(contents, folder)
        if point == "after-layout":
            os._exit(9)
        return sha
    def die_before_move(building, path, replace):
        if point == "before-move":
            os._exit(9)
        real_move(building, path, replace)
    def die_before_deleting_the_old(path, *args, **kwargs):
        if point == "after-swap" and ".eqflow-" in str(path):
            os._exit(9)
        real_rmtree(path, *args, **kwargs)
    layout._create, layout.write_folder, layout.move_into_place = create_then_die, write_then_die, die_before_move
    atomic.shutil.rmtree = die_before_deleting_the_old
    system = eq.create("ising", size=4, temperature=[1.5, 2.5], members=2, seed=5)
    eq.run(system, "metropolis", steps=5, store=sys.argv[1], record={"energy": 1}, overwrite=True, progress=False)
""")


@pytest.mark.parametrize("point", ["after-layout", "before-move", "after-swap"])
def test_a_kill_while_creating_or_overwriting_leaves_the_old_store_or_the_new_one(tmp_path, point):
    system = eq.create("ising", size=4, temperature=[1.5, 2.5], members=2, seed=5)
    reference = eq.run(system, "metropolis", steps=5, store=tmp_path / "ref.zarr", record={"energy": 1},
                       progress=False)
    for existing in (False, True):
        path = tmp_path / f"{point}-{existing}.zarr"
        if existing:
            old = eq.run(system, "metropolis", steps=3, store=path, record={"energy": 1}, progress=False).load()
        result = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path), point], capture_output=True)
        if point == "after-swap" and not existing:  # nothing old to delete: the run completes
            assert result.returncode == 0, result.stderr.decode()
            continue
        assert result.returncode == 9, result.stderr.decode()
        if point == "after-swap":  # the new store is in place, complete as a layout: it resumes
            resumed = eq.run(system, "metropolis", steps=5, store=path, record={"energy": 1}, resume=True,
                             progress=False)
            assert_same_history(reference, resumed)
        elif existing:
            assert_same_history(old, eq.open(path))  # the old, complete store, untouched
        else:
            assert not path.exists()  # nothing half-made at the path


def test_resume_refuses_another_system(tmp_path, small_ising, monkeypatch):
    from test_systems import crash_after_marks

    crash_after_marks(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        run(small_ising, tmp_path / "h.zarr", segment=2)
    monkeypatch.undo()
    other = small_ising.assign_coords(temperature=("temperature", [3.0, 4.0], small_ising.temperature.attrs))
    with pytest.raises(eq.StoreError, match=r"system: differs from the one this store was started with in "
                                            r"\['temperature'\]"):
        run(other, tmp_path / "h.zarr", segment=2, resume=True)
    fewer = small_ising.isel(member=[0, 1, 2, 3, 4])
    with pytest.raises(eq.StoreError, match=r"in \[.*'member'.*\]"):
        run(fewer, tmp_path / "h.zarr", segment=2, resume=True)
    flipped = small_ising.copy(deep=True)
    flipped["spin"].values[0, 0, 0, 0] *= -1
    with pytest.raises(eq.StoreError, match=r"in \['spin'\]"):
        run(flipped, tmp_path / "h.zarr", segment=2, resume=True)
    resumed = run(small_ising, tmp_path / "h.zarr", segment=2, resume=True)
    assert_same_history(run(small_ising, tmp_path / "ref.zarr", segment=2), resumed)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 2**63}, "steps: expected a positive integer with start + steps < 2**62, got 9223372036854775808"),
    ({"segment": 2**70}, "segment: expected a positive integer < 2**62"),
    ({"torch_threads": 0}, "torch_threads: expected a positive integer (or None: one per task), got 0"),
    ({"torch_threads": "4"}, "torch_threads: expected a positive integer"),
    ({"client": "tcp://127.0.0.1:8786"}, "client: expected a dask.distributed Client (or None), got str"),
    ({"record": ["energy"]}, "record: expected a dict, got list ['energy']"),
    ({"chunks": 4}, "chunks: expected a dict, got int 4"),
    ({"options": [1]}, "options: expected a dict, got list [1]"),
])
def test_bad_run_inputs_are_named_before_anything_is_written(tmp_path, small_ising, kwargs, message):
    with pytest.raises(eq.SchemaError) as err:
        eq.run(small_ising, "metropolis", store=tmp_path / "h.zarr", progress=False, **{"steps": 3, **kwargs})
    assert message in str(err.value)
    assert not (tmp_path / "h.zarr").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": 1.5}, "seed: expected an integer in [0, 2**64), got 1.5"),
    ({"seed": "1"}, "seed: expected an integer in [0, 2**64), got '1'"),
    ({"seed": True}, "seed: expected an integer in [0, 2**64), got True"),
    ({"seed": -1}, "seed: expected an integer in [0, 2**64), got -1"),
    ({"temperature": True}, "temperature: expected a number or a quantity in 'K', got True"),
    ({"temperature": []}, "temperature: expected a non-empty sweep of distinct values, got []"),
    ({"temperature": [2.0, 2.0]}, "temperature: expected a non-empty sweep of distinct values, got [2.0, 2.0]"),
])
def test_bad_create_inputs_are_schema_errors(kwargs, message):
    with pytest.raises(eq.SchemaError) as err:
        eq.create("ising", **{"size": 4, "temperature": 2.0, **kwargs})
    assert message in str(err.value)


def test_a_dataset_with_a_bad_sweep_is_refused(small_ising):
    doubled = small_ising.assign_coords(temperature=("temperature", [2.0, 2.0], small_ising.temperature.attrs))
    with pytest.raises(eq.SchemaError, match=r"temperature: expected a non-empty sweep of distinct values"):
        eq.validate(doubled)
    with pytest.raises(eq.SchemaError, match=r"temperature: expected a non-empty sweep"):
        eq.validate(small_ising.isel(temperature=[]))


def test_a_shared_store_holds_no_local_paths(tmp_path, small_ising):
    first = run(small_ising, tmp_path / "a.zarr")
    run(eq.final_state(first), tmp_path / "b.zarr")
    text = json.dumps(dict(zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs))
    assert str(tmp_path) not in text
    assert np.all(eq.open(tmp_path / "b.zarr").energy.notnull())


def _crash_after_first_segment(system, path, monkeypatch):
    from test_systems import crash_after_marks

    crash_after_marks(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        run(system, path, segment=2)
    monkeypatch.undo()


def test_a_lost_checkpoint_chunk_is_named_not_resumed_from_zeros(tmp_path, small_ising, monkeypatch):
    path = tmp_path / "h.zarr"
    _crash_after_first_segment(small_ising, path, monkeypatch)
    slot = zarr.open_group(str(path), mode="r").attrs["eqflow_checkpoint_slot"]
    chunk = next(p for p in (path / "_checkpoint" / "spin" / "c" / str(slot)).rglob("*") if p.is_file())
    chunk.unlink()
    for call in (lambda: run(small_ising, path, segment=2, resume=True), lambda: eq.final_state(path)):
        missing = (r"_checkpoint/spin: 1 chunk\(s\) missing: c/\d/0/0/0/0 \(checkpoint slot \d, written by the "
                   r"commit at step 2\)")
        with pytest.raises(eq.StoreError, match=missing):
            call()


def test_a_corrupted_checkpoint_chunk_fails_its_checksum(tmp_path, monkeypatch):
    system = eq.create("ising", size=4, temperature=[1.5, 2.5], members=2, seed=5)
    path = tmp_path / "h.zarr"
    _crash_after_first_segment(system, path, monkeypatch)
    slot = zarr.open_group(str(path), mode="r").attrs["eqflow_checkpoint_slot"]
    for name in ("spin", "stop_reason"):
        chunk = next(p for p in (path / "_checkpoint" / name / "c" / str(slot)).rglob("*") if p.is_file())
        original = chunk.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
        with pytest.raises(eq.StoreError, match=rf"_checkpoint/{name}: 1 chunk\(s\) corrupted .*checkpoint slot"):
            run(system, path, segment=2, resume=True)
        chunk.write_bytes(original)


def test_zero_valued_checkpoints_are_written_and_resume(tmp_path, monkeypatch):
    """Chunks equal to the fill value are still written (a missing chunk means damage, not zeros)."""
    import toy

    system = toy.create(rate=[0.5], members=2)
    kwargs = dict(steps=6, segment=2, progress=False, record={"x": 1}, options={"beta": 0.0})
    reference = eq.run(system, "momentum", store=tmp_path / "ref.zarr", **kwargs)
    from test_systems import crash_after_marks

    crash_after_marks(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        eq.run(system, "momentum", store=tmp_path / "h.zarr", **kwargs)
    monkeypatch.undo()
    assert_same_history(reference, eq.run(system, "momentum", store=tmp_path / "h.zarr", resume=True, **kwargs))


@pytest.mark.parametrize("where, message", [
    (42, "store: expected a local path (str or pathlib.Path), an fsspec URL such as 's3://bucket/run.zarr', a zarr "
         "Store object or None (in memory), got int 42"),
    ("", "store: expected a local path, an fsspec URL, a zarr Store or None, got ''"),
    ("nosuchscheme://bucket/run.zarr", "store: cannot use 'nosuchscheme://bucket/run.zarr'"),
])
def test_unusable_store_locations_are_named(tmp_path, small_ising, where, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(eq.SchemaError) as err:
        eq.run(small_ising, "metropolis", steps=2, store=where, progress=False)
    assert message in str(err.value)
    assert os.listdir(tmp_path) == []  # never a local folder named after a URL's scheme


def test_storage_options_only_with_a_url(tmp_path, small_ising):
    with pytest.raises(eq.SchemaError, match="storage_options: only used with an fsspec URL store, got a local"):
        eq.run(small_ising, "metropolis", steps=2, store=tmp_path / "h.zarr", storage_options={"anon": True},
               progress=False)
    assert not (tmp_path / "h.zarr").exists()


def test_a_relative_store_is_made_absolute_at_the_start(tmp_path, small_ising, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hist = run(small_ising, "rel.zarr")
    assert hist.attrs["eqflow_store"] == str(tmp_path / "rel.zarr")
    os.chdir("/")
    assert eq.final_state(hist).attrs["eqflow_step"] == 6


def _hold(path, pid, host=None, heartbeat=None):
    """Make ``path`` look as if the process ``pid`` were writing it."""
    import socket
    import time

    record = {"token": "someone-else", "host": host or socket.gethostname(), "pid": pid,
              "heartbeat": time.time() if heartbeat is None else heartbeat}
    store.mark(path, **{"eqflow_writer": json.dumps(record), "eqflow_status": "running"})


def test_one_writer_at_a_time_and_stale_leases_are_taken_over(tmp_path, small_ising, monkeypatch):
    path = tmp_path / "h.zarr"
    _crash_after_first_segment(small_ising, path, monkeypatch)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold(path, sleeper.pid)
        for kwargs, what in (({"resume": True}, "resume"), ({"overwrite": True}, "overwrite")):
            with pytest.raises(eq.StoreError, match=rf"{what} refused, another run is writing it \(pid {sleeper.pid}"):
                run(small_ising, path, segment=2, **kwargs)
        _hold(path, 1, host="another-host")  # another machine, heartbeat now: alive
        with pytest.raises(eq.StoreError, match="resume refused"):
            run(small_ising, path, segment=2, resume=True)
        _hold(path, 1, host="another-host", heartbeat=0.0)  # its heartbeat is ancient: stale
        resumed = run(small_ising, path, segment=2, resume=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert_same_history(run(small_ising, tmp_path / "ref.zarr", segment=2), resumed)
    assert zarr.open_group(str(path), mode="r").attrs["eqflow_writer"] == ""  # released at the end
    _hold(path, sleeper.pid)  # a killed writer's lease is stale
    run(small_ising, path, segment=2, overwrite=True)


def test_a_run_whose_store_is_taken_over_fails(tmp_path, small_ising, monkeypatch):
    path = tmp_path / "h.zarr"
    from eqflow import runner

    real = runner._write_outcomes

    def taken_over_after_the_first_segment(job, found, slot, end):
        written = real(job, found, slot, end)
        _hold(job.path, os.getpid() + 10**6)  # another token now owns it
        return written

    monkeypatch.setattr(runner, "_write_outcomes", taken_over_after_the_first_segment)
    with pytest.raises(eq.StoreError, match="was replaced or taken over by another run"):
        run(small_ising, path, segment=2)


def test_verify_names_missing_and_corrupted_record_chunks(tmp_path, small_ising, capsys):
    from eqflow.cli import main

    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=12, store=path, record={"energy": 1, "spin": 3}, segment=3,
           progress=False)
    assert eq.verify(path) == str(path)
    assert main(["verify", str(path)]) == 0 and "every chunk present" in capsys.readouterr().out
    chunks = sorted(p for p in (path / "energy" / "c").rglob("*") if p.is_file())
    saved = chunks[1].read_bytes()
    chunks[1].unlink()
    spin = sorted(p for p in (path / "spin" / "c").rglob("*") if p.is_file())
    data = bytearray(spin[-1].read_bytes())
    data[-6] ^= 0xFF
    spin[-1].write_bytes(bytes(data))
    with pytest.raises(eq.StoreError) as err:
        eq.verify(path)
    text = str(err.value)
    assert "damaged (2 problem(s), steps done 12)" in text
    assert "energy: 1 chunk(s) missing: c/1/0/0 (steps 3-5, written by the commit at step 6)" in text
    assert "spin: 1 chunk(s) corrupted" in text
    assert main(["verify", str(path)]) == 1
    with pytest.raises(eq.StoreError, match=r"energy: 1 chunk\(s\) missing: c/1/0/0 \(steps 3-5"):
        eq.open(path)  # never served as NaN
    chunks[1].write_bytes(chunks[0].read_bytes())  # a valid chunk, but not this one's
    with pytest.raises(eq.StoreError, match=r"energy: 1 chunk\(s\) holding other bytes than eqflow wrote"):
        eq.open(path)
    chunks[1].write_bytes(saved)
    with pytest.raises(eq.StoreError, match=r"spin: 1 chunk\(s\) corrupted"):
        eq.verify(path)


def test_verify_checks_the_outcomes_and_the_previous_checkpoint_slot(tmp_path, small_ising):
    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=12, store=path, record={"energy": 1}, segment=3, progress=False)
    slot = eq.open(path).attrs["eqflow_checkpoint_slot"]
    previous = sorted(p for p in (path / "_checkpoint" / "spin" / "c" / str(1 - slot)).rglob("*") if p.is_file())
    previous[0].unlink()
    (path / "stopped_at" / "c" / "0" / "0").write_bytes(b"damaged")
    with pytest.raises(eq.StoreError) as err:
        eq.verify(path)
    assert f"_checkpoint/spin: 1 chunk(s) missing: c/{1 - slot}/0/0" in str(err.value)
    assert "stopped_at: 1 chunk(s) holding other bytes than eqflow wrote" in str(err.value)


def test_verify_checks_scalar_coordinates(tmp_path, small_ising):
    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=4, store=path, record={"energy": 1}, progress=False)
    (path / "coupling" / "c").unlink()  # would read back as 0.0
    data = bytearray((path / "field" / "c").read_bytes())
    data[0] ^= 0xFF
    (path / "field" / "c").write_bytes(bytes(data))
    with pytest.raises(eq.StoreError) as err:
        eq.verify(path)
    assert "coupling: 1 chunk(s) missing: c (written by the layout)" in str(err.value)
    assert "field: 1 chunk(s) corrupted" in str(err.value)
    for call in (eq.open, eq.final_state):  # never served as coupling = 0
        with pytest.raises(eq.StoreError, match=r"coupling: 1 chunk\(s\) missing"):
            call(path)


def test_version_flag(capsys):
    from eqflow.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("eqflow ")


def test_progress_and_logging(tmp_path, small_ising, caplog, capsys):
    import logging

    with caplog.at_level(logging.INFO, logger="eqflow"):
        eq.run(small_ising, "metropolis", steps=6, store=tmp_path / "h.zarr", record={"energy": 1}, segment=3,
               progress=True)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("ising metropolis: steps 0 -> 6 into h.zarr (new;")
    assert messages[-1] == "finished at step 6: max_steps 12"
    assert "6/6" in capsys.readouterr().err  # the bar reached the end


def test_progress_moves_within_one_long_segment(tmp_path, small_ising, monkeypatch):
    from eqflow import provenance

    seen = []
    real = provenance.Progress.within

    def within(self, steps):
        real(self, steps)
        seen.append((steps, self.shown))

    monkeypatch.setattr(provenance, "REPORT_SECONDS", 0.0)  # report at every step
    monkeypatch.setattr(provenance.Progress, "within", within)
    eq.run(small_ising, "metropolis", steps=40, store=tmp_path / "h.zarr", record={"energy": 1}, segment=40,
           chunks={"member": 3}, progress=True)
    # 2 chunks (member blocks of 3; both temperatures in each) each report steps 1..39 in the one segment
    assert sum(steps for steps, _ in seen) == 2 * 39
    positions = [shown for _, shown in seen]
    assert positions == sorted(positions) and 0 < positions[len(positions) // 2] < 40 and positions[-1] == 39
    assert provenance._LIVE == {}  # the bar is gone after the run


def test_a_full_disk_is_named_and_the_run_resumes(tmp_path, small_ising, monkeypatch):
    import errno

    path = tmp_path / "h.zarr"
    real, calls = store.write, {"n": 0}

    def disk_fills_on_the_third_write(where, regions):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(where, regions)

    monkeypatch.setattr(store, "write", disk_fills_on_the_third_write)
    with pytest.raises(eq.StoreError, match=r"writing steps \d+-\d+ failed \(\[Errno 28\] No space left on device\)"):
        run(small_ising, path, segment=2)
    monkeypatch.undo()
    assert_same_history(run(small_ising, tmp_path / "ref.zarr", segment=2), run(small_ising, path, segment=2,
                                                                                  resume=True))


@pytest.mark.parametrize("large", [False, True])
def test_a_full_disk_while_laying_out_is_named_and_the_old_store_stays(tmp_path, small_ising, monkeypatch, large):
    """The layout (made in memory then written as files, or for large constants written by zarr
    straight to disk) fails on a full disk: a StoreError names it, no hidden half-made layout is
    left, and the store an overwrite was to replace is untouched."""
    import errno

    path = tmp_path / "h.zarr"
    old = run(small_ising, path, segment=2)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    from eqflow.store import _zarr_fast, layout

    if large:
        monkeypatch.setattr(layout, "IN_MEMORY_LAYOUT", -1)
        monkeypatch.setattr(_zarr_fast, "gather", full)
    else:
        monkeypatch.setattr(layout, "open", full, raising=False)
    with pytest.raises(eq.StoreError, match=r"laying out the new store failed \(\[Errno 28\] No space left"):
        run(small_ising, path, segment=2, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.zarr"]
    assert_same_history(old, eq.open(path))


def test_a_corrupted_root_metadata_file_is_named_and_overwrite_replaces_the_store(tmp_path, small_ising):
    path = tmp_path / "h.zarr"
    reference = run(small_ising, path, segment=2)
    (path / "zarr.json").write_bytes(b'{"zarr_format": 3, "node_ty\x00')
    for call in (eq.open, eq.final_state, eq.verify):
        with pytest.raises(eq.StoreError, match=rf"store '{path}': expected an eqflow Zarr store, got one that zarr "
                                                r"cannot open"):
            call(path)
    with pytest.raises(eq.StoreError, match="already exists"):
        run(small_ising, path, segment=2)
    assert_same_history(reference, run(small_ising, path, segment=2, overwrite=True))


def test_a_damaged_step_coordinate_is_named(tmp_path, small_ising):
    path = tmp_path / "h.zarr"
    eq.run(small_ising, "metropolis", steps=6, store=path, record={"energy": 1}, progress=False)
    chunk = path / "step" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    for call in (eq.verify, eq.open):  # named when opened, not when the data are first read
        with pytest.raises(eq.StoreError, match=r"step: 1 chunk\(s\) corrupted .*: c/0"):
            call(path)


def test_a_layout_whose_one_array_fails_cleans_up_after_every_other_write(tmp_path, small_ising, monkeypatch):
    """The arrays of a layout are written side by side: when one fails (a full disk), the others
    finish before the half-made layout is removed, so none of them recreates it afterwards."""
    import asyncio
    import errno

    from zarr.storage import LocalStore

    real_set = LocalStore.set

    async def one_fails_the_others_are_slow(self, key, value):
        if key == "energy/zarr.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        await asyncio.sleep(0.05)
        await real_set(self, key, value)

    from eqflow.store import layout

    monkeypatch.setattr(layout, "IN_MEMORY_LAYOUT", -1)  # zarr straight to disk, array by array
    monkeypatch.setattr(LocalStore, "set", one_fails_the_others_are_slow)
    with pytest.raises(eq.StoreError, match=r"laying out the new store failed \(\[Errno 28\] No space left"):
        run(small_ising, tmp_path / "h.zarr", segment=2)
    monkeypatch.undo()
    time.sleep(0.3)  # anything still writing would have recreated the layout by now
    assert list(tmp_path.iterdir()) == []


def test_a_replaced_store_that_cannot_be_deleted_is_named_after_the_run(tmp_path, small_ising, monkeypatch):
    """The replaced store is deleted on a thread while the new run goes on; its failure reaches the
    caller when the run ends, with the new store complete in place."""
    from eqflow.store import atomic

    path = tmp_path / "h.zarr"
    run(small_ising, path, steps=3)

    def refuse(folder, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(atomic.shutil, "rmtree", refuse)
    with pytest.raises(PermissionError):
        run(small_ising, path, steps=5, overwrite=True)
    monkeypatch.undo()
    assert atomic._DELETING == []
    assert eq.open(path).sizes["step"] == 6
