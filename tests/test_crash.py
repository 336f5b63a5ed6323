"""A real run killed with SIGKILL mid-run leaves a readable, consistent store that resumes exactly."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

import eqflow as eq

from conftest import assert_same_history

SCRIPT = textwrap.dedent("""
    import sys
    import eqflow as eq
    system = eq.create("ising", size=16, temperature=[1.5, 2.5], members=8, seed=5)
    eq.run(system, "metropolis", steps=int(sys.argv[2]), store=sys.argv[1], record={"energy": 1, "spin": 3},
           segment=3, chunks={"member": 4}, progress=False)
""")
STEPS = 900


def steps_done(path):
    try:
        return zarr.open_group(str(path), mode="r").attrs.get("eqflow_steps_done")
    except Exception:
        return None


def run(path, **kw):
    system = eq.create("ising", size=16, temperature=[1.5, 2.5], members=8, seed=5)
    return eq.run(system, "metropolis", steps=STEPS, store=path, record={"energy": 1, "spin": 3}, segment=3,
                  chunks={"member": 4}, progress=False, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run(tmp_path_factory.mktemp("ref") / "ref.zarr")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [30, 150, 420])
def test_sigkill_then_open_and_resume(tmp_path, kill_after, reference):
    path = tmp_path / "killed.zarr"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path), str(STEPS)])
    deadline = time.time() + 120
    while (steps_done(path) or 0) < kill_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; raise STEPS"
    partial = eq.open(path)
    done = partial.attrs["eqflow_steps_done"]
    assert kill_after <= done < STEPS and partial.attrs["eqflow_status"] == "running"
    assert partial.step.values[-1] == done and np.isfinite(partial.energy.values).all()
    np.testing.assert_array_equal(partial.energy.values, reference.energy.isel(step=slice(0, done + 1)).values)
    resumed = run(path, resume=True)
    assert resumed.attrs["eqflow_status"] == "complete"
    assert_same_history(reference, resumed)
