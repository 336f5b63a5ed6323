"""Bad inputs that were cryptic (a bare KeyError, OverflowError, MemoryError), silently accepted, or
failing after the store was written: each is named (variable, expected, actual) before anything is
written."""
import math

import numpy as np
import pytest

import eqflow as eq

import toy

BIG = 2**63


@pytest.mark.parametrize("size", [(8,), (8, 8, 8), []])
def test_ising_size_of_the_wrong_shape(size):
    with pytest.raises(eq.SchemaError, match=r"size: expected a side L or a pair \(L_y, L_x\).*got"):
        eq.create("ising", size=size)


@pytest.mark.parametrize("kind, arguments, message", [
    ("ising", {"size": 4, "members": BIG}, r"members: expected a positive integer, at most 2\*\*31 - 1, got 92233"),
    ("scf", {"problem": "hubbard", "sites": BIG}, r"sites: expected an integer >= 2 .*at most 32768 sites"),
    ("scf", {"size": BIG}, r"size: expected an integer number of grid points >= 2, at most 32768"),
    ("smd", {"dim": BIG}, r"dim: expected an integer >= 2, at most 2\*\*31 - 1, got 92233"),
    ("alignment", {"graph": "ring", "nodes": BIG}, r"nodes: expected an integer >= 1, at most 10,000,000"),
    ("feedback_snn", {"neurons": 3, "inputs": 2, "time_steps": BIG}, r"time_steps: expected integers >= 1 \(T\), at "
                                                                     r"most 2\*\*31 - 1, got 92233"),
    ("feedback_snn", {"neurons": 3, "data": np.ones((2, 2)), "labels": np.array([0, 2**40])},
     r"classes: expected a positive integer, at most 65536 .*got 1099511627777"),
    ("smd", {"model": "network", "batch": 10**7}, r"batch: .*at most the 1437 training samples, got 10000000"),
])
def test_huge_sizes_are_named(kind, arguments, message):
    with pytest.raises(eq.SchemaError, match=message):
        eq.create(kind, **arguments)


@pytest.mark.parametrize("feedback, found", [(np.ones((3, 3)), r"got shape \(3, 3\)$"),
                                             (np.full((4, 4), np.nan), r"got shape \(4, 4\) with non-finite values")])
def test_feedback_of_the_wrong_shape_or_nan(feedback, found):
    with pytest.raises(eq.SchemaError, match=r"feedback: expected finite values of shape \(4, 4\) or \(1, 4, 4\), "
                                             + found):
        eq.create("feedback_snn", neurons=4, inputs=3, feedback=feedback)


def test_allow_expansive_takes_a_bool():
    with pytest.raises(eq.SchemaError, match=r"allow_expansive: expected True or False, got str 'no'"):
        eq.create("feedback_snn", neurons=4, inputs=3, feedback=np.eye(4) * 5, allow_expansive="no")
    eq.create("feedback_snn", neurons=4, inputs=3, feedback=np.eye(4) * 5, allow_expansive=np.True_)


@pytest.mark.parametrize("make, message", [
    (lambda: eq.stop.converged("energy", "x"), r"tol: expected a positive tolerance, got 'x' \(a finite number"),
    (lambda: eq.stop.converged("energy", math.nan), r"tol: expected a positive tolerance, got nan"),
    (lambda: eq.stop.converged(3, 1e-3), r"var: expected the name of a recorded variable \(a str\), got int 3"),
    (lambda: eq.stop.equilibrated("energy", min_ess=math.nan), r"min_ess: expected a finite effective sample size"),
    (lambda: eq.stop.equilibrated("energy", rhat=math.nan), r"rhat: expected a finite threshold > 1, got nan"),
    (lambda: eq.stop.equilibrated("energy", min_steps=-1), r"min_steps: expected an integer number of steps >= 0"),
    (lambda: eq.stop.cycled("action", tol=math.nan), r"tol: expected a finite tolerance >= 0, got nan"),
])
def test_stop_rule_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.fixture
def ising():
    return eq.create("ising", size=4, temperature=[2.0], members=2, seed=1)


@pytest.mark.parametrize("kind, arguments, operator, options, message", [
    ("scf", {}, "diis", {"history": BIG}, r"options\['history'\]: expected an integer of magnitude < 2\*\*62"),
    ("alignment", {}, "best_response", {"picks_per_step": BIG}, r"options\['picks_per_step'\]: expected an integer"),
    ("scf", {}, "online_pca", {"momentum": math.nan}, r"options\['momentum'\]: expected a finite number, got nan"),
    ("smd", {"dim": 4}, "sgd", {"lr_step": -2}, r"options\['lr_step'\]: expected a value >= -1, got -2"),
    ("smd", {"dim": 4}, "sgd", {"lr_factor": math.inf}, r"options\['lr_factor'\]: expected a finite number"),
])
def test_options_are_checked_before_writing(tmp_path, kind, arguments, operator, options, message):
    system = eq.create(kind, **arguments)
    with pytest.raises(eq.SchemaError, match=message):
        eq.run(system, operator, steps=2, store=tmp_path / "h.zarr", options=options, progress=False)
    assert not (tmp_path / "h.zarr").exists()


def test_numpy_options_are_plain_numbers(tmp_path):
    hist = eq.run(eq.create("smd", dim=4), "sgd", steps=2, store=tmp_path / "h.zarr", progress=False,
                  options={"lr_factor": np.float64(2.0), "lr_step": np.int64(1)})
    assert '"lr_step": 1' in hist.attrs["eqflow_options"]


def test_anneal_names_stage_steps(ising):
    with pytest.raises(eq.SchemaError, match=r"stage_steps: expected a positive integer with start \+ stage_steps x 2 "
                                             r"stages < 2\*\*62, got 4611686018427387904"):
        eq.anneal(ising.isel(temperature=0), "metropolis", schedule={"temperature": [2.0, 1.5]}, stage_steps=2**62,
                  store=None, progress=False)


def test_write_samples_with_a_huge_chunk_holds_every_sample(tmp_path):
    system = toy.create(rate=0.2, members=2, sites=2)
    x = np.arange(3)[:, None, None] + np.zeros((3, 2, 2))
    hist = eq.write_samples(system, {"x": x}, tmp_path / "s.zarr", source="grid", records_per_chunk=BIG)
    np.testing.assert_array_equal(hist.x.values, x)
    assert eq.verify(tmp_path / "s.zarr")
