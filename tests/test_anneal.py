"""eq.anneal: a schedule of parameter values, stage by stage, in one store."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

import eqflow as eq
from eqflow.systems.ising import theory

import toy
from conftest import assert_same_history
from test_systems import crash_after_marks

RATES = [0.5, 0.1, 0.25]


def test_each_stage_continues_from_the_last_with_its_own_value(tmp_path):
    """relax: x <- x + r (target - x), x_0 = 1, target 0: after k steps of stage i,
    x = prod_{j < i} (1 - r_j)^S (1 - r_i)^k, exactly."""
    system = toy.create(rate=0.9, members=2)
    hist = eq.anneal(system, "relax", schedule={"rate": RATES}, stage_steps=4, store=tmp_path / "a.zarr",
                     record={"x": 1, "residual": 1}, progress=False)
    steps = hist.step.values
    assert steps.tolist() == list(range(13))  # one store, no duplicate boundary steps
    exact = [1.0]
    for rate in RATES:
        exact += [exact[-1] * (1 - rate) ** k for k in range(1, 5)]
    np.testing.assert_allclose(hist.x.isel(member=0, site=0).values, exact, rtol=1e-14)
    assert hist.step_stage.values.tolist() == [0] + [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_array_equal(hist.rate_schedule.values, np.array([0.5] + [0.5] * 4 + [0.1] * 4 + [0.25] * 4))
    assert hist.rate_stage.values.tolist() == RATES and hist.attrs["eqflow_steps_done"] == 12
    eq_at = hist.stage_equilibrated_at
    assert eq_at.dims[0] == "stage" and ((eq_at > [[0], [4], [8]]) & (eq_at <= [[4], [8], [12]])).all()
    # the chain goes on: the final state continues from step 12
    assert eq.final_state(hist).attrs["eqflow_step"] == 12


def test_a_killed_anneal_resumes_to_the_same_history(tmp_path, monkeypatch):
    system = eq.create("ising", size=6, temperature=3.0, members=3, seed=4)
    kwargs = dict(schedule={"temperature": {"geometric": [3.5, 1.5, 4]}}, stage_steps=6, segment=4,
                  record={"energy": 1, "spin": 2}, progress=False)
    reference = eq.anneal(system, "metropolis", store=tmp_path / "ref.zarr", **kwargs)
    np.testing.assert_allclose(np.unique(reference.temperature_schedule), np.geomspace(1.5, 3.5, 4))
    crash_after_marks(monkeypatch, 3)
    with pytest.raises(RuntimeError):
        eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", **kwargs)
    monkeypatch.undo()
    with pytest.raises(eq.StoreError, match="eqflow_schedule"):  # another schedule is another run
        eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", resume=True,
                  **{**kwargs, "schedule": {"temperature": [3.5, 2.0, 1.5, 1.0]}})
    resumed = eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", resume=True, **kwargs)
    assert_same_history(reference, resumed)


@pytest.mark.slow
def test_cooling_reaches_each_stages_equilibrium_energy():
    """A hot start cooled through T = 4, 3, 2.5, 2: the second half of each stage's energy
    agrees with Kaufman's exact finite-lattice value (error from the spread of 16 independent
    members: Student's t with 15 dof, P(|t| > 4.5) = 4e-4)."""
    temperatures = [4.0, 3.0, 2.5, 2.0]
    system = eq.create("ising", size=8, temperature=4.0, members=16, seed=12)
    hist = eq.anneal(system, "heat_bath", schedule={"temperature": temperatures}, stage_steps=600, store=None,
                     record={"energy": 1}, progress=False)
    exact = theory.kaufman(8, temperatures)["energy"]
    for stage, value in enumerate(exact):
        inside = hist.energy.where(hist.step_stage == stage, drop=True)
        late = inside.isel(step=slice(inside.sizes["step"] // 2, None)).mean("step")
        z = (float(late.mean()) - value) / (float(late.std(ddof=1)) / 4)
        assert abs(z) < 4.5, (stage, z)
    found = hist.stage_equilibrated_at
    starts = 600 * np.arange(4)
    assert ((found.values > starts[:, None]) & (found.values <= starts[:, None] + 600)).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": {"temperature": [2.0, -1.0]}}, "schedule['temperature']: expected values > 0"),
    ({"schedule": {"entropy": [1.0]}}, "schedule: expected a parameter of 'ising' among"),
    ({"schedule": {"temperature": []}}, "schedule['temperature']: expected a non-empty sequence"),
    ({"schedule": {"temperature": {"linear": [3.0, 1.0, 0]}}}, "expected {'linear': [start, stop, n]}"),
    ({"stage_steps": 0}, "stage_steps: expected a positive integer, got 0"),
    ({"steps": 10}, "steps: not taken by eq.anneal"),
    ({"equilibrium": "spin"}, "equilibrium: expected a scalar observable among"),
])
def test_bad_schedules_are_named_before_anything_is_written(tmp_path, kwargs, message):
    system = eq.create("ising", size=4, temperature=3.0, members=2, seed=1)
    arguments = {"schedule": {"temperature": [3.0, 2.0]}, "stage_steps": 5, **kwargs}
    with pytest.raises(eq.SchemaError) as err:
        eq.anneal(system, "metropolis", store=tmp_path / "a.zarr", progress=False, **arguments)
    assert message in str(err.value)
    assert not (tmp_path / "a.zarr").exists()


def test_a_swept_parameter_cannot_be_scheduled(tmp_path):
    system = eq.create("ising", size=4, temperature=[2.0, 3.0], members=2, seed=1)
    with pytest.raises(eq.SchemaError, match=r"schedule\['temperature'\]: the system sweeps 'temperature'"):
        eq.anneal(system, "metropolis", schedule={"temperature": [3.0, 2.0]}, stage_steps=5,
                  store=tmp_path / "a.zarr")


def test_run_file_with_a_schedule(tmp_path):
    config = tmp_path / "anneal.toml"
    config.write_text(textwrap.dedent(f"""
        [system]
        kind = "ising"
        size = 4
        temperature = 3.0
        members = 2
        seed = 3
        start = "up"
        [run]
        operator = "metropolis"
        store = "{tmp_path / 'cli.zarr'}"
        schedule = {{temperature = {{linear = [3.0, 2.0, 3]}}}}
        stage_steps = 5
    """))
    out = subprocess.run([sys.executable, "-m", "eqflow.cli", "run", str(config), "--no-progress"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    hist = xr.open_zarr(tmp_path / "cli.zarr")
    np.testing.assert_allclose(np.unique(hist.temperature_schedule), [2.0, 2.5, 3.0])
    assert hist.sizes["step"] == 16
