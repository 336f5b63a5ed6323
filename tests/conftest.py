import pytest

import eqflow as eq
from eqflow.testing import assert_same_history, histories_differ  # noqa: F401  (tests import them here)


@pytest.fixture
def small_ising():
    """8x8 lattices, 6 members x 2 temperatures: big enough to chunk, small enough to be fast."""
    return eq.create("ising", size=8, temperature=[1.5, 3.0], members=6, seed=11)


RECORD = {"energy": 1, "magnetization": 1, "spin": 5}



@pytest.fixture(autouse=True)
def _stop_rules_registered_in_a_test_stay_there(monkeypatch):
    """A rule a test (or a docs page's code block) registers by name with ``eq.stop.register`` is
    forgotten after that test: the registry is process-wide, and a later test may check that a
    name is unknown."""
    from eqflow import stop

    monkeypatch.setattr(stop, "_REGISTERED", dict(stop._REGISTERED))
