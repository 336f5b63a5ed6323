"""Honest numbers: per-stage summaries of anneals and learning-rate steps, z against the exact value,
per-member flags, and the linear-time equilibrated rule against the exhaustive one.

Tolerances: summaries of a stage must equal the same statistics of that stage's records taken
alone (exact arithmetic, 1e-12); the flags are checked on records with a known planted offset
(metastable members 0.08 per spin away, hundreds of standard errors) and on clean records, where
|z| < 3 holds with probability 0.997 per point (fixed seeds make the test deterministic).
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow import stop as stop_rules
from eqflow.cli import main
from eqflow.generators import fidelity
from eqflow.systems.ising import theory, thermodynamics

SCHEDULE = [3.0, 2.5, 2.0]


@pytest.fixture(scope="module")
def annealed():
    system = eq.create("ising", size=8, temperature=4.0, members=4, seed=3)
    return eq.anneal(system, "metropolis", schedule={"temperature": SCHEDULE}, stage_steps=150, store=None,
                     record={"energy": 1, "magnetization": 1, "spin": 50}, progress=False)


def test_anneal_is_summarised_per_stage_never_pooled(annealed):
    found = thermodynamics(annealed)
    assert found.energy.dims == ("temperature",) and found.temperature.values.tolist() == SCHEDULE
    for k, t in enumerate(SCHEDULE):  # each stage alone, labelled with its own temperature
        exact = theory.kaufman((8, 8), t)["energy"][0]
        assert float(found.energy_exact.sel(temperature=t)) == pytest.approx(exact, rel=1e-12)
        stage = annealed.isel(step=annealed.step_stage.values == k)
        start = int(annealed.stage_equilibrated_at.isel(stage=k).max())
        alone = stage.energy.sel(step=stage.step >= start).mean()
        assert float(found.energy.sel(temperature=t)) == pytest.approx(float(alone), rel=1e-12)
    summary = eq.summarize(annealed, "energy")
    assert summary.energy.dims == ("temperature",) and summary.temperature.values.tolist() == SCHEDULE
    np.testing.assert_allclose(summary.energy_exact.values, found.energy_exact.values, rtol=1e-12)
    assert "per stage" in summary.attrs["stages"]
    with pytest.raises(ValueError, match=r"history: its temperature changes along step \(stages \[3.0, 2.5, 2.0\]\)"):
        fidelity.correlation(annealed)


def test_smd_learning_rate_step_is_summarised_per_stage():
    system = eq.create("smd", dim=8, learning_rate=[0.1, 0.4], weight_decay=0.01, members=3, seed=1)
    hist = eq.run(system, "sgd", steps=300, store=None, options={"lr_step": 150, "lr_factor": 10.0}, progress=False)
    found = eq.summarize(hist, "weight_norm")
    assert found.learning_rate_divisor.values.tolist() == [1.0, 10.0]
    assert found.weight_norm.dims[0] == "learning_rate_divisor"
    for k, window in enumerate((hist.step <= 150, hist.step > 150)):  # the record at t used eta_(t-1)
        part = hist.weight_norm.sel(step=window)
        start = int(found.weight_norm_equilibrated_at.isel(learning_rate_divisor=k, learning_rate=0, layer=0))
        alone = part.isel(learning_rate=0, layer=0).sel(step=part.step >= start).mean()
        got = float(found.weight_norm.isel(learning_rate_divisor=k, learning_rate=0, layer=0))
        assert got == pytest.approx(float(alone), rel=1e-12)
    assert eq.systems.smd.theory.stages(eq.run(system, "sgd", steps=20, store=None, progress=False)) is None


@pytest.fixture(scope="module")
def metastable(tmp_path_factory):
    """T = 1.8 and 3.0 on 8^2, two members at T = 1.8 shifted up by 0.08 per spin (planted metastable states)."""
    system = eq.create("ising", size=8, temperature=[1.8, 3.0], members=16, seed=5)
    path = tmp_path_factory.mktemp("honest") / "h.zarr"
    hist = eq.run(system, "metropolis", steps=1500, store=path, record={"energy": 1, "magnetization": 1},
                  progress=False)
    clean = eq.summarize(hist, "energy")
    energy = hist.energy.load().copy()
    energy.loc[{"temperature": 1.8, "member": [3, 11]}] += 0.08
    return clean, hist.assign(energy=energy), path


def test_z_against_kaufman_and_stuck_members_are_named(metastable):
    clean, shifted, _ = metastable
    assert (abs(clean.energy_z) < 3).all() and not clean.energy_disagrees.any()
    assert not clean.energy_stuck.any()
    np.testing.assert_allclose(clean.energy_exact.values, [theory.kaufman((8, 8), t)["energy"][0] for t in (1.8, 3.0)])
    found = eq.summarize(shifted, "energy")
    cold = found.sel(temperature=1.8)
    assert cold.member.values[cold.energy_stuck.values].tolist() == [3, 11]
    assert not found.sel(temperature=3.0).energy_stuck.any()
    assert float(cold.energy_rhat) > eq.summary.RHAT_THRESHOLD and bool(cold.energy_unmixed)
    assert {"energy_ess_bulk", "energy_ess_tail", "energy_member_z"} <= set(found.data_vars)
    # the error bar now spans the members' spread; a bias shared by every member is flagged by z
    biased = eq.summarize(shifted.assign(energy=shifted.energy.sel(temperature=[3.0]) + 0.02), "energy")
    assert bool(biased.energy_disagrees.sel(temperature=3.0)) and float(biased.energy_z.sel(temperature=3.0)) > 3
    assert not biased.energy_stuck.any() and not biased.energy_unmixed.any()


def test_info_and_report_show_z_and_flags(metastable, tmp_path, capsys):
    _, _, path = metastable
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "R-hat > 1.01 not mixed" in out and "exact" in out and " z " in out
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "energy z" in page and "members off" in page and "ESS bulk/tail" in page


class Exhaustive(stop_rules.Monitor):
    """The rule before the screen: t0 re-detected over the whole history at every check."""

    def evaluate(self, outcomes, history, steps, now):
        stop_rules.evaluate_equilibrated(self.rule, outcomes, history, steps, now, self.dims)


@pytest.mark.parametrize("per, min_ess", [("point", 1500), ("member", 400)])
def test_an_overlapped_check_stops_exactly_one_check_later(per, min_ess):
    """overlap=True decides from the records up to a check while the next segment runs and stops at
    the next check (or at the last step); the window start is the same, the others unchanged."""
    system = eq.create("ising", size=8, temperature=[1.6, 2.3, 3.5], members=8, seed=5)
    runs = {}
    for overlap in (False, True):
        rule = eq.stop.equilibrated("energy", check_every=100, min_ess=min_ess, per=per, overlap=overlap)
        runs[overlap] = eq.run(system, "metropolis", steps=1250, store=None, record={"energy": 1}, stop=rule,
                               progress=False)
    waited, overlapped = runs[False], runs[True]
    hit = waited.stop_reason.values == "equilibrated"
    assert hit.any() and (~hit).any(), waited.stopped_at.values
    assert (overlapped.stop_reason.values == waited.stop_reason.values).all()
    expected = np.where(hit, np.minimum(waited.stopped_at.values + 100, 1250), waited.stopped_at.values)
    np.testing.assert_array_equal(overlapped.stopped_at.values, expected)
    np.testing.assert_array_equal(overlapped.equilibrated_at.values, waited.equilibrated_at.values)
    # the members it stopped later ran on: their records up to the stop are those of the free run
    free = eq.run(system, "metropolis", steps=1250, store=None, record={"energy": 1}, progress=False)
    for index in zip(*np.nonzero(hit)):
        stop = int(expected[index])
        cell = dict(zip(waited.stop_reason.dims, index))
        np.testing.assert_array_equal(overlapped.energy.isel(cell).sel(step=slice(None, stop)).values,
                                      free.energy.isel(cell).sel(step=slice(None, stop)).values)


def _within_one_check(linear, full, check: int, last: int) -> bool:
    """The default rule (screened, overlapped) against the exhaustive rule that waits for its checks:
    the same outcomes, stops one check later (overlap; at the last step: the same step), or one
    more where the screen passes a check after the exhaustive test would have (the documented bound)."""
    a, b = linear.stopped_at.values, full.stopped_at.values
    hit = full.stop_reason.values == "equilibrated"
    expected = np.where(hit, np.minimum(b + check, last), b)
    return bool((linear.stop_reason.values == full.stop_reason.values).all()
                and ((a == expected) | (hit & (a - expected == check))).all())


@pytest.mark.parametrize("per", ["point", "member"])
def test_linear_time_rule_stops_where_the_exhaustive_rule_does(per, monkeypatch):
    system = eq.create("ising", size=12, temperature=[1.6, 2.6, 3.5], members=12, seed=7)
    kwargs = dict(steps=3000, store=None, record={"energy": 1}, progress=False)
    linear = eq.run(system, "metropolis", **kwargs,
                    stop=eq.stop.equilibrated("energy", check_every=100, min_ess=300, per=per, overlap=True))
    monkeypatch.setattr(stop_rules, "Monitor", Exhaustive)
    full = eq.run(system, "metropolis", **kwargs,
                  stop=eq.stop.equilibrated("energy", check_every=100, min_ess=300, per=per, overlap=False))
    assert (full.stop_reason.values == "equilibrated").any()
    assert _within_one_check(linear, full, 100, 3000), (linear.stopped_at.values, full.stopped_at.values)


def test_a_client_rule_chunks_the_records_by_its_checks(tmp_path):
    """A client-side rule ends a segment at each check it asks for: the records are chunked by the
    checks' spacing (no check rewrites part of a larger record chunk), and past the 64 dense checks
    the rule asks only at its scheduled ones, so the segments between them are long. The history is
    the one any segmenting gives."""
    import zarr

    from conftest import assert_same_history

    system = eq.create("ising", size=8, temperature=[2.3, 3.5], members=8, seed=2)
    kwargs = dict(steps=900, record={"energy": 1, "magnetization": 2}, progress=False,
                  stop=eq.stop.equilibrated("energy", check_every=60, min_ess=200))
    hist = eq.run(system, "metropolis", store=tmp_path / "a.zarr", **kwargs)
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")
    assert group["energy"].chunks[0] == 60 and group["magnetization"].chunks[0] == 30
    longer = eq.run(system, "metropolis", store=tmp_path / "b.zarr", segment=300, **kwargs)
    assert zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["energy"].chunks[0] == 60
    assert_same_history(hist, longer)
    eq.run(system, "metropolis", store=tmp_path / "c.zarr", steps=900, record={"energy": 1}, progress=False)
    assert zarr.open_group(str(tmp_path / "c.zarr"), mode="r")["energy"].chunks[0] == 900  # no rule: the segment
    # a point that never passes: 64 dense checks, then 72, 81, 92, 103, 116, 130 and the last step
    never = eq.stop.equilibrated("energy", check_every=10, min_steps=10, min_ess=1e30)
    eq.run(system, "metropolis", store=tmp_path / "d.zarr", steps=1400, record={"energy": 1}, stop=never,
           progress=False)
    assert zarr.open_group(str(tmp_path / "d.zarr"), mode="r").attrs["eqflow_commit"]["n"] == 64 + 6 + 1
    # overlapped: each scheduled check's decision lands at the next check (65, 73, 82, ..., 131)
    never = eq.stop.equilibrated("energy", check_every=10, min_steps=10, min_ess=1e30, overlap=True)
    eq.run(system, "metropolis", store=tmp_path / "e.zarr", steps=1400, record={"energy": 1}, stop=never,
           progress=False)
    assert zarr.open_group(str(tmp_path / "e.zarr"), mode="r").attrs["eqflow_commit"]["n"] == 64 + 1 + 2 * 6 + 1


@pytest.mark.parametrize("segment, overlap", [(None, False), (50, True)])
def test_linear_time_rule_resumes_as_it_runs(tmp_path, monkeypatch, segment, overlap):
    """The screen's state is a function of the record count: a run killed and resumed stops where an
    uninterrupted one does (same outcomes, same history), also when the kill comes between checks
    while an overlapped check's decision is pending (segment 50, check every 100: killed 50 steps
    before the first stop, after the check that decided it)."""
    from conftest import assert_same_history
    from test_systems import crash_after_marks

    system = eq.create("ising", size=8, temperature=[2.3, 3.5], members=8, seed=2)
    kwargs = dict(steps=1400, record={"energy": 1}, stop=eq.stop.equilibrated("energy", check_every=100,
                                                                           min_ess=1500, overlap=overlap),
                  progress=False, segment=segment)
    reference = eq.run(system, "metropolis", store=tmp_path / "ref.zarr", **kwargs)
    assert (reference.stop_reason.values == "equilibrated").any()
    assert reference.stopped_at.values.max() > 300, reference.stopped_at.values  # the crash comes before a stop
    first_stop = int(reference.stopped_at.values[reference.stop_reason.values == "equilibrated"].min())
    crash_after_marks(monkeypatch, 2 if segment is None else (first_stop - 50) // 50)
    with pytest.raises(RuntimeError):
        eq.run(system, "metropolis", store=tmp_path / "r.zarr", **kwargs)
    monkeypatch.undo()
    assert_same_history(reference, eq.run(system, "metropolis", store=tmp_path / "r.zarr", resume=True, **kwargs))


def test_exhaustive_tests_follow_the_geometric_schedule(monkeypatch):
    """Where the screen passes at every check and the exhaustive test never does (a point hovering
    at the thresholds), the test runs at the 64 first checks, then at 72, 81, 92, 103, 116, 130:
    at most 74 tests' worth of work over any run (see eqflow.stop.scheduled)."""
    assert [k for k in range(60, 140) if stop_rules.scheduled(k)] == [60, 61, 62, 63, 64, 72, 81, 92, 103, 116, 130]
    calls = []
    real = stop_rules.evaluate_equilibrated
    monkeypatch.setattr(stop_rules.Monitor, "_screen_passes", lambda self, window: True)
    monkeypatch.setattr(stop_rules, "evaluate_equilibrated", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    system = eq.create("ising", size=4, temperature=2.5, members=4, seed=1)
    rule = eq.stop.equilibrated("energy", check_every=10, min_steps=10, min_ess=1e30)  # never passes
    hist = eq.run(system, "metropolis", steps=1400, store=None, record={"energy": 1}, stop=rule, progress=False)
    assert (hist.stop_reason.values == "max_steps").all()
    # (the first checks may pass too few records after the screen's t0 to test)
    assert [c for c in calls if c > 100] == [10 * k for k in [*range(11, 65), 72, 81, 92, 103, 116, 130]]


def test_mixed_equals_rhat_and_ess():
    """The rule's one-pass test answers as rhat() < max and ess(bulk) >= min on the same window, and the
    average ranks behind both equal scipy's (ties averaged) on discrete and continuous draws."""
    import scipy.stats
    import xarray as xr

    from eqflow import diagnostics

    rng = np.random.default_rng(4)
    for draws in (rng.standard_normal((2, 999)), np.round(rng.standard_normal((3, 800)), 1)):
        np.testing.assert_array_equal(diagnostics._average_ranks(draws),
                                      scipy.stats.rankdata(draws, method="average", axis=-1))
    walk = np.cumsum(rng.standard_normal((600, 6)), axis=0) * 0.05 + rng.standard_normal((600, 6))
    answers = set()
    for shift in (0.0, 0.3, 1.0):
        x = xr.DataArray(walk + shift * np.arange(6), dims=["step", "member"])
        for rhat_max, min_ess in ((1.01, 100), (1.1, 100), (1.5, 3000), (3.0, 10)):
            expected = float(diagnostics.rhat(x)) < rhat_max and float(diagnostics.ess(x, method="bulk")) >= min_ess
            assert diagnostics.mixed(x, rhat_max, min_ess) == expected
            answers.add(expected)
    assert answers == {True, False}


def test_smd_angle_has_z_per_learning_rate_stage(tmp_path, capsys):
    """smd's mean angular update against its theory (E atan(a chi) at the equilibrium norm), per stage
    of a learning-rate step, each stage against its own learning rate; in summaries and ``eqflow info``.

    eta lambda = 0.01-0.04: the norm relaxes in 6-25 steps, so each 800-step stage is at equilibrium
    after its detected start, and the theory's neglected terms (relative eta lambda / d < 1e-3) stay
    under half a standard error; |z| < 3 holds with probability 0.997 per point (fixed seed)."""
    from eqflow.systems.smd import theory as smd_theory

    system = eq.create("smd", dim=64, learning_rate=[0.2, 0.4], weight_decay=0.1, members=4, seed=1)
    path = tmp_path / "smd.zarr"
    hist = eq.run(system, "sgd", steps=1600, store=path, options={"lr_step": 800, "lr_factor": 2.0}, progress=False)
    found = eq.summarize(hist, "angular_update").isel(layer=0)
    for k, divisor in enumerate([1.0, 2.0]):
        for i, eta in enumerate([0.2, 0.4]):
            expected = smd_theory.mean_angular_update(learning_rate=eta / divisor, weight_decay=0.1, dim=64)
            exact = float(found.angular_update_exact.isel(learning_rate_divisor=k, learning_rate=i))
            assert exact == pytest.approx(float(expected), rel=1e-12)
            # the root mean square angle is higher by a relative 1/(4 (d - 1)) (chi's mean against its rms)
            rms = smd_theory.equilibrium_angular_update(learning_rate=eta / divisor, weight_decay=0.1)
            assert exact / rms == pytest.approx(1 - 1 / (4 * 63), abs=0.01)
    assert (abs(found.angular_update_z) < 3).all() and not found.angular_update_disagrees.any(), found.angular_update_z
    biased = eq.summarize(hist.assign(angular_update=hist.angular_update * 1.02), "angular_update")
    assert biased.angular_update_disagrees.all() and (biased.angular_update_z > 3).all()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "angular_update" in out and "exact" in out and " z " in out
    # no value where the theory gives only the rms angle (momentum), nor across the step
    moving = eq.run(eq.create("smd", dim=8, momentum=[0.0, 0.5], members=2), "sgd", steps=20, store=None,
                    progress=False)
    value = smd_theory.reference(moving)["angular_update"].isel(layer=0)
    assert np.isfinite(value.sel(momentum=0.0)) and np.isnan(value.sel(momentum=0.5))
    assert smd_theory.reference(hist) == {}


def test_rule_stops_within_one_check_of_the_exhaustive_rule_on_scf(monkeypatch):
    """A second kind: an SCF ensemble (rotated guesses, damping) whose energies settle, per point and per
    member; the stop steps are the exhaustive rule's one check later, and some members stop."""
    system = eq.create("scf", problem="nonlinear", alpha=[0.5, 1.0, 2.0], members=8, rotation=1.0, seed=1)
    for per in ("point", "member"):
        kwargs = dict(steps=600, store=None, record={"energy": 1}, progress=False)
        linear = eq.run(system, "damping", **kwargs,
                        stop=eq.stop.equilibrated("energy", check_every=50, min_ess=100, per=per, overlap=True))
        with monkeypatch.context() as patch:
            patch.setattr(stop_rules, "Monitor", Exhaustive)
            full = eq.run(system, "damping", **kwargs, stop=eq.stop.equilibrated(
                "energy", check_every=50, min_ess=100, per=per, overlap=False))
        assert (full.stop_reason.values == "equilibrated").sum() >= 8, full.stop_reason.values
        assert _within_one_check(linear, full, 50, 600), (per, linear.stopped_at.values,
                                                          full.stopped_at.values)
