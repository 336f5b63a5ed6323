import numpy as np
import pytest
import xarray as xr

import eqflow as eq


@pytest.fixture
def small_ising():
    """8x8 lattices, 6 members x 2 temperatures: big enough to chunk, small enough to be fast."""
    return eq.create("ising", size=8, temperature=[1.5, 3.0], members=6, seed=11)


RECORD = {"energy": 1, "magnetization": 1, "spin": 5}


def assert_same_history(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every record and coordinate equal (bit for bit); provenance attributes may differ."""
    assert set(a.data_vars) == set(b.data_vars)
    xr.testing.assert_equal(a.load(), b.load())


def histories_differ(a: xr.Dataset, b: xr.Dataset) -> bool:
    return any(not np.array_equal(a[v].values, b[v].values) for v in a.data_vars)
