"""Same seed -> identical history, whatever the chunking, backend, resume point or workers."""
import numpy as np
import pytest

import eqflow as eq

from conftest import RECORD, assert_same_history, histories_differ

STEPS = 24


def run(system, path, **kw):
    return eq.run(system, "metropolis", steps=STEPS, store=path, record=RECORD, segment=kw.pop("segment", 7),
                  progress=False, **kw)


@pytest.fixture
def reference(small_ising, tmp_path):
    return run(small_ising, tmp_path / "ref.zarr")


@pytest.mark.parametrize("chunks", [{"member": 1}, {"member": 3}, {"member": 4, "temperature": 1}])
def test_chunking(small_ising, tmp_path, reference, chunks):
    assert_same_history(reference, run(small_ising, tmp_path / "c.zarr", chunks=chunks))


def test_segment_length(small_ising, tmp_path, reference):
    assert_same_history(reference, run(small_ising, tmp_path / "s.zarr", segment=1))


def test_numpy_vs_torch(small_ising, tmp_path, reference):
    torch_hist = run(small_ising, tmp_path / "t.zarr", backend="torch", device="cpu", chunks={"member": 3})
    assert torch_hist.attrs["eqflow_backend"] == "torch"
    assert_same_history(reference, torch_hist)


def test_heat_bath_numpy_vs_torch(small_ising, tmp_path):
    a = eq.run(small_ising, "heat_bath", steps=10, store=tmp_path / "a.zarr", progress=False)
    b = eq.run(small_ising, "heat_bath", steps=10, store=tmp_path / "b.zarr", backend="torch", progress=False)
    assert_same_history(a, b)


def test_member_subset_keeps_its_streams(small_ising, tmp_path, reference):
    """Streams are keyed by member label, so a subset of members replays exactly."""
    subset = small_ising.isel(member=[1, 4])
    part = run(subset, tmp_path / "sub.zarr")
    np.testing.assert_array_equal(part.energy.values, reference.energy.isel(member=[1, 4]).values)


def test_threads_and_processes_schedulers(small_ising, tmp_path, reference):
    import dask

    for scheduler in ("threads", "synchronous"):
        with dask.config.set(scheduler=scheduler):
            assert_same_history(reference, run(small_ising, tmp_path / f"{scheduler}.zarr", chunks={"member": 2}))


def test_different_seed(tmp_path, reference):
    other = eq.create("ising", size=8, temperature=[1.5, 3.0], members=6, seed=12)
    assert histories_differ(reference, run(other, tmp_path / "o.zarr"))


@pytest.mark.slow
def test_distributed_local_cluster_two_processes(small_ising, tmp_path, reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            hist = run(small_ising, tmp_path / "d.zarr", chunks={"member": 2}, client=client)
            implicit = run(small_ising, tmp_path / "i.zarr", chunks={"member": 3})  # the active client
            assert len(client.scheduler_info()["workers"]) == 2
    assert_same_history(reference, hist)
    assert_same_history(reference, implicit)
