"""Run inputs that once failed after the store was written, or were silently misread, are named
before anything is written (or accepted, where they are valid)."""
import json

import numpy as np
import pytest

import eqflow as eq


@pytest.fixture
def system():
    return eq.create("ising", size=4, temperature=[2.0], members=2, seed=1)


def test_numpy_integers_are_valid_counts(system, tmp_path):
    hist = eq.run(system, "metropolis", steps=np.int64(5), record={"energy": np.int64(1)}, store=tmp_path / "h.zarr",
                  progress=False)
    assert hist.sizes["step"] == 6 and hist.attrs["eqflow_step_end"] == 5
    assert eq.verify(tmp_path / "h.zarr")


@pytest.mark.parametrize("flag", ["resume", "overwrite"])
def test_flags_take_booleans_only(system, tmp_path, flag):
    path = tmp_path / "h.zarr"
    first = eq.run(system, "metropolis", steps=3, store=path, progress=False).load()
    with pytest.raises(eq.SchemaError, match=rf"{flag}: expected True or False, got str 'no'"):
        eq.run(system, "metropolis", steps=4, store=path, progress=False, **{flag: "no"})
    np.testing.assert_array_equal(eq.open(path).energy.values, first.energy.values)  # untouched
    with pytest.raises(eq.SchemaError, match=r"progress: expected True or False .*got str 'yes'"):
        eq.run(system, "metropolis", steps=4, store=tmp_path / "p.zarr", progress="yes")
    assert not (tmp_path / "p.zarr").exists()
    hist = eq.run(system, "metropolis", steps=4, store=path, progress=False, overwrite=np.True_)  # NumPy's bool
    assert hist.sizes["step"] == 5


def test_huge_intervals_and_blocks_are_named_or_clamped_before_writing(system, tmp_path):
    with pytest.raises(eq.SchemaError, match=r"record\['energy'\]: expected a positive integer interval < 2\*\*62"):
        eq.run(system, "metropolis", steps=3, store=tmp_path / "a.zarr", record={"energy": 2**63}, progress=False)
    assert not (tmp_path / "a.zarr").exists()
    hist = eq.run(system, "metropolis", steps=3, store=tmp_path / "b.zarr", chunks={"member": 2**63}, progress=False)
    assert json.loads(hist.attrs["eqflow_chunks"])["member"] == 2  # a block larger than its dim is the whole dim
