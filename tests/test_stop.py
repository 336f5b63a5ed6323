"""Stop rules: per-member outcomes as data, frozen states, early ends, exact resume."""
import numpy as np
import pytest
import xarray as xr

import eqflow as eq

import toy  # noqa: F401  (registers the 'relax' test system)
from conftest import assert_same_history
from test_systems import crash_after_marks

RATES = [0.5, 0.1, 0.0, -1e300]  # converges in 20, in 132, never; x = 1e300 after one step, inf after two


def expected_steps(rate, tol=1e-6):
    return int(np.ceil(np.log(tol) / np.log(1 - rate)))


def test_converged_max_steps_and_diverged_side_by_side(tmp_path):
    system = eq.create("relax", rate=RATES, members=3)
    hist = eq.run(system, "relax", steps=300, store=tmp_path / "h.zarr", stop=eq.stop.converged("residual", 1e-6),
                  chunks={"member": 2, "rate": 1}, segment=25, progress=False)
    assert expected_steps(0.5) == 20 and expected_steps(0.1) == 132
    reasons = hist.stop_reason.values
    assert (reasons[:, 0] == "converged").all() and (reasons[:, 1] == "converged").all()
    assert (reasons[:, 2] == "max_steps").all() and (reasons[:, 3] == "diverged").all()
    np.testing.assert_array_equal(hist.stopped_at.values[0], [20, 132, 300, 2])
    np.testing.assert_array_equal(hist.equilibrated_at.values[0], [20, 132, -1, -1])
    residual = hist.residual.isel(member=0)
    assert residual.sel(step=20, rate=0.5) < 1e-6 <= residual.sel(step=19, rate=0.5)
    assert np.isnan(residual.sel(rate=0.5).values[21:]).all(), "no data after a member stopped"
    final = eq.final_state(hist)
    np.testing.assert_allclose(final.x.sel(rate=0.5).values, 0.5**20)  # frozen at its stopping step
    np.testing.assert_allclose(final.x.sel(rate=0.1).values, 0.9**132, rtol=1e-12)


def test_all_stopped_ends_the_run_early_and_trims(tmp_path):
    system = eq.create("relax", rate=[0.5, 0.25], members=2)
    hist = eq.run(system, "relax", steps=10_000, store=tmp_path / "h.zarr", stop=eq.stop.converged("residual", 1e-6),
                  segment=10, progress=False)
    assert hist.attrs["eqflow_steps_done"] == 49 and hist.attrs["eqflow_status"] == "complete"
    plain = xr.open_zarr(tmp_path / "h.zarr")
    assert plain.sizes["step"] == 50 and int(plain.step[-1]) == 49  # trimmed at the last stop: no empty records left
    np.testing.assert_array_equal(hist.stopped_at.values, [[20, 49], [20, 49]])


def test_stop_outcomes_survive_a_crash(tmp_path, monkeypatch):
    system = eq.create("relax", rate=RATES, members=2)
    kwargs = dict(steps=200, stop=eq.stop.converged("residual", 1e-6), segment=7, progress=False)
    reference = eq.run(system, "relax", store=tmp_path / "ref.zarr", **kwargs)
    crash_after_marks(monkeypatch, 5)
    with pytest.raises(RuntimeError):
        eq.run(system, "relax", store=tmp_path / "r.zarr", **kwargs)
    monkeypatch.undo()
    partial = eq.open(tmp_path / "r.zarr")
    assert ((partial.stop_reason.sel(rate=0.5) == "converged").all()
            and (partial.stop_reason.sel(rate=0.1) == "running").all())
    resumed = eq.run(system, "relax", store=tmp_path / "r.zarr", resume=True, **kwargs)
    assert_same_history(reference, resumed)
    with pytest.raises(eq.StoreError, match="eqflow_stop"):
        eq.run(system, "relax", store=tmp_path / "r.zarr", resume=True, **{**kwargs, "stop": None})


def test_bad_rules(tmp_path, small_ising):
    with pytest.raises(eq.SchemaError, match="stop rule variable: expected an observable among .*got 'entropy'"):
        eq.run(small_ising, "metropolis", steps=5, store=tmp_path / "h.zarr", stop=eq.stop.equilibrated("entropy"))
    with pytest.raises(eq.SchemaError, match="stop: expected eq.stop.converged"):
        eq.run(small_ising, "metropolis", steps=5, store=tmp_path / "h.zarr", stop="energy")
    with pytest.raises(ValueError, match="tol: expected a positive tolerance, got -1"):
        eq.stop.converged("energy", -1)
    with pytest.raises(ValueError, match="per: expected 'point' or 'member', got 'chunk'"):
        eq.stop.equilibrated("energy", per="chunk")
    assert not (tmp_path / "h.zarr").exists()


def test_ising_stops_early_away_from_tc(tmp_path):
    """Far from T_c the energy equilibrates within a few hundred sweeps; the run stops there."""
    system = eq.create("ising", size=16, temperature=[1.5, 3.5], members=16, seed=2)
    hist = eq.run(system, "metropolis", steps=20_000, store=tmp_path / "h.zarr", record={"energy": 1},
                  stop=eq.stop.equilibrated("energy", check_every=200), chunks={"member": 8}, progress=False)
    assert (hist.stop_reason.values == "equilibrated").all()
    assert hist.attrs["eqflow_steps_done"] < 20_000
    assert (hist.equilibrated_at.values >= 0).all() and (hist.equilibrated_at.values < hist.stopped_at.values).all()
