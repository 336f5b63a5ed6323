"""numba's thread pool on a shared machine: eqflow sets a passive wait policy before the pool starts,
leaves every choice the user made in the environment alone, runs a lone task on the cores no other
process is running on, and one numba thread per task when dask tasks run side by side. No timings:
the settings themselves are checked, in a fresh interpreter each (the pool starts once per process).
The histories these settings produce are the kernel tests' (test_ising_kernels.py: parallel and
serial loops equal the reference bit for bit)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY", "NUMBA_THREADING_LAYER",
        "NUMBA_NUM_THREADS", "OMP_DISPLAY_ENV")

# a fresh process: load the Ising kernels (which set the pool up), start the pool with a parallel loop
# that OpenMP reports its settings for (OMP_DISPLAY_ENV), and say what is in force
PROBE = """
import json, os, sys
import numpy as np
from eqflow.systems.ising import kernels
import numba

@numba.njit(parallel=True)
def total(a):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i]
    return s

assert total(np.ones(1000)) == 1000.0
from eqflow.backends import configure_numba
again = configure_numba()  # after the pool started: changes nothing
print(json.dumps({"layer": numba.threading_layer(), "threads": numba.get_num_threads(),
                  "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "GOMP_SPINCOUNT")},
                  "again": again}))
"""


def probe(**env):
    clean = {k: v for k, v in os.environ.items() if k not in WAIT}
    clean.update({"OMP_DISPLAY_ENV": "TRUE", **env})
    done = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    shown = {}  # what OpenMP itself read when the pool started (GNU OpenMP prints it to stderr)
    for line in done.stderr.splitlines():
        name, eq_sign, value = line.strip().partition(" = ")
        if eq_sign:
            shown[name] = value.strip("'")
    return found, shown


def test_the_pool_waits_passively_by_default():
    found, shown = probe()
    assert found["env"] == {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": None}
    if found["layer"] == "omp" and shown:  # GNU OpenMP read it when the pool started
        assert shown["OMP_WAIT_POLICY"] == "PASSIVE"
    assert found["threads"] == len(os.sched_getaffinity(0))  # numba's default: the CPUs this process may use
    assert found["again"]["layer"] == found["layer"] and found["again"]["wait"] == {}


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "300000"},
                                  {"KMP_BLOCKTIME": "200"}])
def test_a_wait_policy_the_user_set_wins(user):
    found, shown = probe(**user)
    assert {k: v for k, v in found["env"].items() if v is not None} == user
    assert found["again"]["user"] == user
    if found["layer"] == "omp" and shown and "OMP_WAIT_POLICY" in user:
        assert shown["OMP_WAIT_POLICY"] == user["OMP_WAIT_POLICY"]


def test_the_users_layer_and_thread_count_win():
    found, _ = probe(NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="1")
    assert found["layer"] == "workqueue" and found["threads"] == 1
    assert found["env"]["OMP_WAIT_POLICY"] == "PASSIVE"  # set, though this layer has no OpenMP to read it


@pytest.mark.parametrize("loadavg, cpus, free", [("0.10 0.20 0.30 1/300 99", 2, 2), ("3.1 2.0 1.0 2/300 99", 2, 1),
                                                  ("9.0 9.0 9.0 17/300 99", 2, 1), ("1.0 1.0 1.0 3/300 99", 8, 6),
                                                  ("1.0 1.0 1.0 1/300 99", 1, 1), ("garbled", 4, 4)])
def test_free_cores_are_the_cpus_no_other_thread_runs_on(loadavg, cpus, free):
    from eqflow.backends import free_cores

    assert free_cores(loadavg, cpus) == free


def test_a_lone_task_runs_on_the_free_cores_and_side_by_side_tasks_on_one(monkeypatch):
    import numba

    from eqflow import backends
    from eqflow.systems.ising import SYSTEM

    kernel = SYSTEM.operator("metropolis").kernels["numba"]
    before = numba.get_num_threads()
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    for free, alone, inside in ((64, True, before), (1, True, 1), (64, False, 1)):
        monkeypatch.setattr(backends, "free_cores", lambda free=free: free)
        with backends.numba_threads(kernel, alone=alone):
            assert numba.get_num_threads() == inside
        assert numba.get_num_threads() == before  # restored
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(before))  # the user's count: taken as it is for a lone task
    with backends.numba_threads(kernel, alone=True):
        assert numba.get_num_threads() == before


def test_two_dask_threads_give_the_one_thread_history(tmp_path):
    """The ensemble in two chunks on dask's threaded scheduler (one numba thread per task) equals the
    reference update's history bit for bit."""
    import dask

    import eqflow as eq

    system = eq.create("ising", size=8, temperature=[1.8, 2.3, 3.0], members=64, seed=5)
    runs = {}
    for kernel, chunks in (("reference", None), ("numba", {"member": 32})):
        with dask.config.set(scheduler="threads", num_workers=2):
            runs[kernel] = eq.run(system, "metropolis", steps=12, store=tmp_path / f"{kernel}.zarr", chunks=chunks,
                                  progress=False, kernel=kernel, record={"spin": 4, "energy": 1})
    for name in ("spin", "energy"):
        np.testing.assert_array_equal(runs["numba"][name].values, runs["reference"][name].values)
