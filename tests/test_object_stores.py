"""Stores that are not local directories: in memory (``store=None``, Store objects, ``memory://``)
and a real S3-protocol server (moto's server mode) that these tests start on 127.0.0.1."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
import zarr

import eqflow as eq

from conftest import assert_same_history

RECORD = {"energy": 1, "magnetization": 1, "spin": 3}


def small():
    return eq.create("ising", size=6, temperature=[1.5, 2.5], members=4, seed=21)


def run(store, **kwargs):
    kwargs = {"steps": 12, "record": RECORD, "segment": 3, "progress": False, **kwargs}
    return eq.run(kwargs.pop("system", small()), "metropolis", store=store, **kwargs)


# -- in memory ----------------------------------------------------------------------------------

def test_store_none_runs_in_memory_and_chains(tmp_path):
    reference = run(tmp_path / "ref.zarr")
    hist = run(None)
    assert_same_history(reference, hist)
    final = eq.final_state(hist)  # the in-memory store is found again through the history
    xr.testing.assert_equal(final.spin, eq.final_state(reference).spin)
    second = run(None, system=final, steps=3)
    assert second.step.values.tolist() == list(range(12, 16))


def test_a_zarr_store_object_opens_again(tmp_path):
    target = zarr.storage.MemoryStore()
    hist = run(target)
    assert_same_history(hist, eq.open(target))
    np.testing.assert_array_equal(xr.open_zarr(target).energy.values, run(tmp_path / "ref.zarr").energy.values)


def test_a_local_store_object_and_a_file_url_give_the_same_history(tmp_path):
    reference = run(tmp_path / "ref.zarr")
    target = zarr.storage.LocalStore(tmp_path / "object.zarr")
    assert_same_history(reference, run(target))
    assert_same_history(reference, run(f"file://{tmp_path}/url.zarr"))
    assert eq.verify(target).startswith("<LocalStore") and eq.final_state(target).attrs["eqflow_step"] == 12
    (tmp_path / "object.zarr" / "coupling" / "c").unlink()  # a 0-d array's one chunk, listed from its folder
    with pytest.raises(eq.StoreError, match=r"coupling: 1 chunk\(s\) missing: c \(written by the layout\)"):
        eq.open(target)


def test_memory_url_resumes_bit_identically(tmp_path, monkeypatch):
    from test_systems import crash_after_marks

    url = "memory://eqflow-tests/resume.zarr"
    reference = run(tmp_path / "ref.zarr")
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError):
        run(url)
    monkeypatch.undo()
    assert eq.open(url).attrs["eqflow_steps_done"] == 6
    assert_same_history(reference, run(url, resume=True))
    assert eq.verify(url) == url


def test_an_in_memory_store_with_a_cluster_client_is_refused():
    class FakeClient:  # what matters is only that a client is given
        pass

    with pytest.raises(eq.SchemaError, match="in-memory store .* lives in this process only"):
        run(None, client=FakeClient())


# -- a real S3-protocol server -----------------------------------------------------------------

@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (a free port), a bucket, and the storage_options to reach it."""
    moto_server = pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (the test extra)")
    pytest.importorskip("s3fs", reason="the S3 tests need s3fs (the s3 extra)")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="eqflow")
    options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": endpoint,
                                                                  "region_name": "us-east-1"}}
    yield options
    server.stop()


def s3_fs(options):
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    fs.invalidate_cache()
    return fs


def test_s3_run_reads_back_with_plain_xarray_elsewhere(tmp_path, s3):
    url = "s3://eqflow/plain.zarr"
    hist = run(url, storage_options=s3)
    assert hist.attrs["eqflow_store"] == url and "secret" not in json.dumps(dict(hist.attrs))
    assert_same_history(run(tmp_path / "ref.zarr"), hist)
    reader = textwrap.dedent("""
        import json, sys
        import xarray as xr
        ds = xr.open_zarr(sys.argv[1], storage_options=json.loads(sys.argv[2]))
        print(json.dumps({"energy": ds.energy.values.tolist(), "kind": ds.attrs["eqflow_kind"],
                          "eqflow": "eqflow" in sys.modules}))
    """)
    out = subprocess.run([sys.executable, "-c", reader, url, json.dumps(s3)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["kind"] == "ising" and not seen["eqflow"]
    np.testing.assert_array_equal(np.array(seen["energy"]), hist.energy.values)
    text = json.dumps({k: str(v) for k, v in xr.open_zarr(url, storage_options=s3).attrs.items()})
    assert str(tmp_path) not in text and "test" not in json.loads(text).get("eqflow_writer", "")


def test_s3_final_state_chains_and_cli_info(tmp_path, s3):
    url = "s3://eqflow/chain.zarr"
    first = run(url, storage_options=s3)
    state = eq.final_state(url, storage_options=s3)
    xr.testing.assert_equal(state.spin, eq.final_state(first).spin)
    second = run("s3://eqflow/chain2.zarr", storage_options=s3, system=state, steps=3)
    assert second.attrs["eqflow_parent"] == "chain.zarr"
    whole = run(tmp_path / "whole.zarr", steps=15)
    np.testing.assert_array_equal(second.energy.values, whole.energy.sel(step=second.step).values)
    out = subprocess.run([sys.executable, "-m", "eqflow.cli", "info", url, "--storage-options", json.dumps(s3)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"store      {url}" in out.stdout and "status complete" in out.stdout
    out = subprocess.run([sys.executable, "-m", "eqflow.cli", "verify", url, "--storage-options", json.dumps(s3)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "every chunk present" in out.stdout, out.stderr


KILL = textwrap.dedent("""
    import json, os, signal, sys
    import eqflow as eq
    from eqflow.store import STEPS_DONE, root
    url, options, after = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    real, count = root.mark, {"n": 0}
    def mark(loc, **attrs):
        real(loc, **attrs)
        if STEPS_DONE in attrs:
            count["n"] += 1
            if count["n"] >= after:
                os.kill(os.getpid(), signal.SIGKILL)
    root.mark = mark
    system = eq.create("ising", size=6, temperature=[1.5, 2.5], members=4, seed=21)
    eq.run(system, "metropolis", steps=12, record={"energy": 1, "magnetization": 1, "spin": 3}, segment=3,
           store=url, storage_options=options, progress=False)
""")


def test_s3_sigkill_then_resume_is_bit_identical(tmp_path, s3):
    url = "s3://eqflow/killed.zarr"
    out = subprocess.run([sys.executable, "-c", KILL, url, json.dumps(s3), "2"], capture_output=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr.decode()
    assert eq.open(url, storage_options=s3).attrs["eqflow_steps_done"] == 6
    with pytest.raises(eq.StoreError, match="already exists; pass resume=True"):
        run(url, storage_options=s3)
    assert_same_history(run(tmp_path / "ref.zarr"), run(url, storage_options=s3, resume=True))
    assert eq.verify(url, storage_options=s3) == url


def test_s3_overwrite_replaces_only_an_eqflow_store(s3):
    fs = s3_fs(s3)
    fs.pipe("eqflow/thesis/chapter1.tex", b"precious")
    with pytest.raises(eq.StoreError, match="overwrite=True replaces only an eqflow store"):
        run("s3://eqflow/thesis", storage_options=s3, overwrite=True)
    assert s3_fs(s3).cat("eqflow/thesis/chapter1.tex") == b"precious"
    url = "s3://eqflow/replace.zarr"
    run(url, storage_options=s3, steps=3)
    hist = run(url, storage_options=s3, overwrite=True)
    assert hist.attrs["eqflow_steps_done"] == 12 and hist.sizes["step"] == 13


CREATE_KILL = textwrap.dedent("""
    import json, os, signal, sys
    import eqflow as eq
    from eqflow.store import _zarr_fast
    url, options, overwrite = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
    real = _zarr_fast.gather
    def die_in_the_layout(coroutines):  # half of the arrays laid out, then killed
        coroutines = list(coroutines)
        if len(coroutines) == 1:  # the root group itself
            return real(coroutines)
        real(coroutines[: len(coroutines) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    _zarr_fast.gather = die_in_the_layout
    system = eq.create("ising", size=6, temperature=[1.5, 2.5], members=4, seed=21)
    eq.run(system, "metropolis", steps=12, record={"energy": 1, "magnetization": 1, "spin": 3}, segment=3,
           store=url, storage_options=options, progress=False, overwrite=overwrite)
""")


@pytest.mark.parametrize("existing", [False, True])
def test_s3_a_kill_while_laying_out_never_leaves_a_complete_looking_store(tmp_path, s3, existing):
    url = f"s3://eqflow/layout-{existing}.zarr"
    if existing:
        run(url, storage_options=s3)
    out = subprocess.run([sys.executable, "-c", CREATE_KILL, url, json.dumps(s3), str(int(existing))],
                         capture_output=True, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr.decode()
    with pytest.raises(eq.StoreError, match="its layout was never finished"):
        eq.open(url, storage_options=s3)
    # an unfinished layout counts as nothing: a plain rerun (or a resume) lays it out anew
    assert_same_history(run(tmp_path / "ref.zarr"), run(url, storage_options=s3, resume=existing))


def test_s3_a_missing_record_chunk_is_reported(s3):
    url = "s3://eqflow/damaged.zarr"
    run(url, storage_options=s3)
    fs = s3_fs(s3)
    chunk = sorted(fs.find("eqflow/damaged.zarr/energy/c"))[0]
    fs.rm(chunk)
    with pytest.raises(eq.StoreError, match=r"energy: 1 chunk\(s\) missing: c/0/0/0 \(steps 0-2"):
        eq.verify(url, storage_options=s3)
    checkpoint = sorted(fs.find("eqflow/damaged.zarr/_checkpoint/spin/c"))
    fs.pipe(checkpoint[-1], b"garbage")
    with pytest.raises(eq.StoreError, match=r"_checkpoint/spin: 1 chunk\(s\) holding other bytes"):
        eq.final_state(url, storage_options=s3)


def test_s3_bad_location_is_named_before_any_work(s3):
    bad = {**s3, "client_kwargs": {**s3["client_kwargs"], "endpoint_url": "http://127.0.0.1:9"}}
    with pytest.raises(eq.StoreError, match="s3://eqflow/x.zarr': cannot be reached"):
        run("s3://eqflow/x.zarr", storage_options={**bad, "config_kwargs": {"retries": {"max_attempts": 1}},
                                                  "connect_timeout": 2})


def test_run_file_takes_storage_options(tmp_path, s3):
    config = tmp_path / "run.toml"
    config.write_text(textwrap.dedent(f"""
        [system]
        kind = "ising"
        size = 4
        temperature = 2.0
        members = 2
        seed = 3
        [run]
        operator = "metropolis"
        steps = 4
        store = "s3://eqflow/from-toml.zarr"
        [run.storage_options]
        key = "test"
        secret = "test"
        client_kwargs = {{endpoint_url = "{s3['client_kwargs']['endpoint_url']}", region_name = "us-east-1"}}
    """))
    out = subprocess.run([sys.executable, "-m", "eqflow.cli", "run", str(config), "--no-progress"],
                         capture_output=True, text=True, timeout=180, env={**os.environ, "AWS_ACCESS_KEY_ID": ""})
    assert out.returncode == 0, out.stderr
    assert eq.open("s3://eqflow/from-toml.zarr", storage_options=s3).attrs["eqflow_status"] == "complete"


# -- a real multi-process cluster: `dask scheduler` + two `dask worker` processes on loopback ----

def _start(args, cwd, log):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler (dashboard on a free port where bokeh is installed) and two single-thread workers,
    each started by the same CLI a multi-machine cluster uses, each in its own working directory."""
    distributed = pytest.importorskip("distributed")
    import importlib.util

    file = tmp_path / "scheduler.json"
    dashboard = importlib.util.find_spec("bokeh") is not None
    log = open(tmp_path / "cluster.log", "wb")
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                     str(file), *(["--dashboard-address", "127.0.0.1:0"] if dashboard else ["--no-dashboard"])],
                    tmp_path, log)]
    workers = []
    for i in range(2):
        home = tmp_path / f"worker{i}"
        home.mkdir()
        workers.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(file), "--nthreads", "1",
                               "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(home),
                               "--name", f"w{i}"], home, log))
    procs += workers
    try:
        for _ in range(600):
            if file.exists():
                break
            import time

            time.sleep(0.1)
        client = distributed.Client(scheduler_file=str(file), timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield client, workers, dashboard
        client.close()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()


@pytest.mark.slow
def test_cluster_of_processes_survives_a_killed_worker(tmp_path, s3, cluster):
    import threading
    import time
    import urllib.request

    client, workers, dashboard = cluster
    system = eq.create("ising", size=32, temperature=[1.5, 2.5], members=4, seed=8)
    kwargs = dict(steps=60, record={"energy": 1, "spin": 30}, segment=10, chunks={"member": 1}, progress=False)
    reference = eq.run(system, "metropolis", store=tmp_path / "ref.zarr", **kwargs)
    victim = {w["name"]: addr for addr, w in client.scheduler_info()["workers"].items()}["w0"]
    killed = {}

    def kill_when_busy():  # SIGKILL worker w0 while it runs an eqflow task (not between segments)
        for _ in range(3000):
            busy = client.processing().get(victim, [])
            if any(str(k).startswith("eqflow-ising-metropolis-steps-") for k in busy):
                os.killpg(workers[0].pid, signal.SIGKILL)
                killed["task"] = str(busy[0])
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_when_busy, daemon=True)
    watcher.start()
    url = "s3://eqflow/cluster.zarr"
    hist = eq.run(system, "metropolis", store=url, storage_options=s3, client=client, **kwargs)
    watcher.join(timeout=5)
    assert "task" in killed, "the worker was never seen running a task"
    assert workers[0].wait(timeout=30) == -signal.SIGKILL
    assert "-steps-" in killed["task"] and "-chunk-" in killed["task"]  # task names say the segment and chunk
    assert_same_history(reference, hist)  # dask ran the lost task again; the history is the same
    assert eq.verify(url, storage_options=s3) == url
    if dashboard:
        port = client.scheduler_info()["services"]["dashboard"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as page:
            assert page.status == 200
