"""An operator's ``prepare`` runs once per distinct inputs per process, not once per chunk and segment."""
import dataclasses
import threading

import numpy as np
import pytest

import eqflow as eq
import eqflow.runner  # noqa: F401  (imported before a test patches system.prepare_key, which it binds)
from eqflow import registry, system

from toy import SYSTEM as RELAX


@pytest.fixture
def counted(monkeypatch):
    """The template system with a ``relax`` whose step size comes from a prepare that counts its calls."""
    calls = []

    def step_size(*, rate):
        calls.append(np.shape(rate))
        return {"step_size": np.array(rate, copy=True)}

    def relax(*, x, step_size, target):
        return {"x": x + step_size[..., None] * (target.reshape(target.shape[:1] + (1,) * (x.ndim - 2)
                                                                + target.shape[-1:]) - x)}

    operators = {**RELAX.operators, "relax": eq.Operator(relax, prepare=step_size)}
    monkeypatch.setattr(registry, "_RUNTIME", dict(registry._RUNTIME))
    eq.register(dataclasses.replace(RELAX, operators=operators))
    system.clear_prepared()
    yield calls
    system.clear_prepared()
    registry.get.cache_clear()


def _run(tmp_path, name, rate, chunks=2):
    ds = RELAX.create(rate=rate, members=4, sites=3)
    return eq.run(ds, "relax", steps=8, segment=2, chunks={"member": chunks}, store=tmp_path / name,
                  record={"x": 1}, progress=False)


def test_prepare_runs_once_per_distinct_inputs_over_segments_and_chunks(counted, tmp_path):
    import dask

    with dask.config.set(scheduler="threads"):
        hist = _run(tmp_path, "a.zarr", 0.5)
    # x_n = (1 - rate)^n x_0 towards the target 0: the prepared step size reached every chunk and segment
    np.testing.assert_array_equal(hist.x.values[-1], np.full((4, 3), 0.5 ** 8))
    # 4 segments x 2 chunks used to call it 9 times; now once: the client works chunk by chunk as the
    # tasks do, and both chunks' inputs are equal (2 members each, the same rate)
    assert counted == [(2,)]
    with dask.config.set(scheduler="threads"):
        _run(tmp_path, "same.zarr", 0.5)
    assert len(counted) == 1  # the same inputs in the same process: nothing prepared again
    with dask.config.set(scheduler="threads"):
        other = _run(tmp_path, "b.zarr", 0.25)
    assert counted[1:] == [(2,)]  # different inputs are prepared again
    np.testing.assert_array_equal(other.x.values[-1], np.full((4, 3), 0.75 ** 8))


def test_chunks_with_different_inputs_prepare_once_each(counted, tmp_path):
    ds = RELAX.create(rate=[0.5, 0.25, 0.125], members=2, sites=3)
    hist = eq.run(ds, "relax", steps=6, segment=2, chunks={"member": 2, "rate": 1}, store=tmp_path / "sweep.zarr",
                  record={"x": 1}, progress=False)
    assert len(counted) == 3  # one per distinct chunk (one rate each), over 3 segments
    for rate in (0.5, 0.25, 0.125):
        np.testing.assert_allclose(hist.x.sel(rate=rate).values[-1], (1 - rate) ** 6, rtol=1e-15)


def test_tasks_take_the_clients_key_and_hash_nothing(counted, tmp_path, monkeypatch):
    hashed = []
    original = system.prepare_key
    monkeypatch.setattr(system, "prepare_key", lambda *a, **k: hashed.append(1) or original(*a, **k))
    _run(tmp_path, "keyed.zarr", 0.5)
    assert hashed == []  # the client made each chunk's key once; 4 segments x 2 tasks reused it
    assert len(counted) == 1


def test_one_chunk_prepares_once(counted, tmp_path):
    _run(tmp_path, "one.zarr", 0.5, chunks=4)
    assert counted == [(4,)]  # the client's and the task's inputs are the same


def test_prepared_inputs_are_bounded(counted, tmp_path):
    for i in range(system.PREPARED_RUNS + 2):
        _run(tmp_path, f"{i}.zarr", 0.1 * (i + 1), chunks=4)
    assert len(counted) == system.PREPARED_RUNS + 2
    assert len(system._prepared) == system.PREPARED_RUNS
    _run(tmp_path, "first-again.zarr", 0.1, chunks=4)  # the oldest was let go: made again
    assert len(counted) == system.PREPARED_RUNS + 3


def test_threads_asking_at_once_share_one_call():
    calls, gate = [], threading.Barrier(8)

    def slow(*, rate):
        calls.append(1)
        return {"step_size": rate * 2}

    op = eq.Operator(lambda *, x: {"x": x}, prepare=slow)
    results = [None] * 8

    def ask(i):
        gate.wait()
        results[i] = system.prepared("relax", op, {"rate": np.arange(3.0), "x": None})

    system.clear_prepared()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    system.clear_prepared()
    assert len(calls) == 1
    assert all(r is results[0] for r in results)
    np.testing.assert_array_equal(results[0]["step_size"], [0.0, 2.0, 4.0])


def test_a_failing_prepare_is_not_kept():
    calls = []
    system.clear_prepared()

    def bad(*, rate):
        calls.append(1)
        raise ValueError("rate: expected something else")

    op = eq.Operator(lambda *, x: {"x": x}, prepare=bad)
    for _ in range(2):
        with pytest.raises(ValueError, match="rate: expected"):
            system.prepared("relax", op, {"rate": np.ones(2)})
    assert len(calls) == 2 and not system._prepared
