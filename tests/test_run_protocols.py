"""Stop rules and reporters defined outside the package: they run, checkpoint, resume, go to a
dask.distributed cluster, are named in a run file, and read each observable once per step."""
import math
import pickle

import numpy as np
import pytest

import eqflow as eq
from eqflow import stop as stop_rules
from eqflow.systems.selu_map import observables as selu_observables
from eqflow.systems.selu_map import operators as selu_operators
from eqflow.systems.selu_map.moments import selu_moments

import toy  # noqa: F401  (registers the 'relax' test system)
from conftest import assert_same_history
from test_systems import crash_after_marks
from user_rules import Shrunk, Tally

RATES = [0.5, 0.1]
FRACTION = 1e-3


def shrunk_step(rate: float, fraction: float = FRACTION) -> int:
    """relax from x = 1 towards 0: residual (1 - rate)^t; the first t with (1 - rate)^t < fraction."""
    t = math.ceil(math.log(fraction) / math.log(1 - rate))
    return t if (1 - rate) ** t < fraction else t + 1


def relax_run(path, **kwargs):
    system = eq.create("relax", rate=RATES, members=2)
    return eq.run(system, "relax", steps=100, store=path, record={"residual": 1, "x": 10}, segment=7,
                  stop=Shrunk("residual", FRACTION), progress=False, **kwargs)


def test_a_user_rule_stops_relax_where_theory_says(tmp_path):
    tally = Tally("residual", 10)
    hist = relax_run(tmp_path / "h.zarr", reporters=[tally])
    assert shrunk_step(0.5) == 10 and shrunk_step(0.1) == 66
    np.testing.assert_array_equal(hist.stopped_at.values, [[10, 66], [10, 66]])
    assert (hist.stop_reason.values == "converged").all()
    np.testing.assert_array_equal(hist.equilibrated_at.values, [[10, 66], [10, 66]])  # converged: window from the stop
    assert '"rule": "shrunk"' in hist.attrs["eqflow_stop"] and '"fraction": 0.001' in hist.attrs["eqflow_stop"]
    # the reporter: every 10 steps up to the segment in which the last member stopped (the run then
    # finishes at that stop), each time with the records since its last call
    assert [c[:3] for c in tally.calls] == [(s - 10, s, 10) for s in range(10, 80, 10)]
    assert tally.begun == [("relax", 0, 100)] and tally.ended == 1
    assert [c[4] for c in tally.calls] == [2, 2, 2, 2, 2, 2, 0]  # rate 0.5 stopped at 10, rate 0.1 at 66
    residual = hist.residual.values
    expected = [np.nansum(residual[s - 9: s + 1]) for s in range(10, 80, 10)]
    np.testing.assert_allclose([c[3] for c in tally.calls], expected, rtol=1e-12)


def test_a_user_rule_on_selu_map_stops_at_the_first_recorded_step_below_its_level(tmp_path):
    ds = eq.create("selu_map", omega=[0.0, 0.1], tau=1.0, mu=[0.5, -0.3], nu=[2.0, 0.5], members=2)
    tally = Tally("residual", 5)
    hist = eq.run(ds, "map", steps=150, store=tmp_path / "s.zarr", record={"residual": 1, "mu": 1}, segment=4,
                  stop=Shrunk("residual", 1e-4), reporters=[tally], progress=False)
    residual = hist.residual.values  # (step, member, omega); NaN after a member's stop
    for index in np.ndindex(residual.shape[1:]):
        series = residual[(slice(None), *index)]
        first = int(np.argmax(series < 1e-4 * series[0]))
        assert first > 0 and hist.stopped_at.values[index] == first
    assert (hist.stop_reason.values == "converged").all()
    assert all(end % 5 == 0 for _, end, *_ in tally.calls)


def test_a_user_rule_and_reporter_survive_a_kill_and_resume(tmp_path, monkeypatch):
    reference_tally = Tally("residual", 10)
    reference = relax_run(tmp_path / "ref.zarr", reporters=[reference_tally])
    killed = Tally("residual", 10)
    crash_after_marks(monkeypatch, 4)  # the layout, then three segments (of 7 steps, or shorter to a report)
    with pytest.raises(RuntimeError):
        relax_run(tmp_path / "r.zarr", reporters=[killed])
    monkeypatch.undo()
    assert killed.ended == 1  # told that the run stopped
    done = eq.HistoryStore(tmp_path / "r.zarr").attrs()["eqflow_steps_done"]
    assert 0 < done < 66
    resumed_tally = Tally("residual", 10)
    resumed = relax_run(tmp_path / "r.zarr", resume=True, reporters=[resumed_tally])
    assert_same_history(reference, resumed)  # the rule's start values came back from the checkpoint
    np.testing.assert_array_equal(resumed.stopped_at.values, [[10, 66], [10, 66]])
    assert resumed_tally.begun == [("relax", done, 100)]
    assert killed.calls + resumed_tally.calls == reference_tally.calls


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_user_rule_and_reporter_on_a_distributed_cluster(tmp_path, processes):
    """Workers in this process over TCP (the tasks, rule included, are pickled), or in two worker
    processes that import the rule's module (about 45 s under load: marked slow)."""
    distributed = pytest.importorskip("distributed")
    temperatures = [1.5, 3.0]
    ising = eq.create("ising", size=6, temperature=temperatures, members=4, seed=5, start="up")
    rule = Shrunk("magnetization", 0.5)
    kwargs = dict(steps=40, record={"energy": 1, "magnetization": 1}, segment=6, chunks={"member": 2},
                  stop=rule, progress=False)
    pickle.loads(pickle.dumps(rule))  # what travels to a worker in another process
    reference_tally, tally = Tally("energy", 10), Tally("energy", 10)
    reference = eq.run(ising, "metropolis", store=tmp_path / "ref.zarr", reporters=[reference_tally], **kwargs)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, protocol="tcp",
                                       host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        hist = eq.run(ising, "metropolis", store=tmp_path / "d.zarr", client=client, reporters=[tally], **kwargs)
        relax = relax_run(tmp_path / "relax.zarr", client=client)
    assert_same_history(reference, hist)
    assert tally.calls == reference_tally.calls and len(tally.calls) >= 1
    np.testing.assert_array_equal(relax.stopped_at.values, [[10, 66], [10, 66]])
    # from m = 1: below T_c = 2.269 the lattice keeps Onsager's m(1.5) = 0.986 > 0.5 (never stops); above
    # it the order melts (m -> 0), so every member stops
    onsager = (1 - np.sinh(2 / 1.5) ** -4) ** (1 / 8)
    assert onsager > 0.98
    reasons = hist.stop_reason.sel(temperature=temperatures)
    assert (reasons.values[:, 0] == "max_steps").all() and (reasons.values[:, 1] == "converged").all()


def _counting(monkeypatch):
    calls = {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        return selu_moments(*args, **kwargs)

    monkeypatch.setattr(selu_operators, "selu_moments", counted)
    monkeypatch.setattr(selu_observables, "selu_moments", counted)
    return calls


def test_the_selu_map_is_evaluated_once_per_step_with_residual_rules_and_records(tmp_path, monkeypatch):
    ds = eq.create("selu_map", omega=[0.0, 0.2], tau=1.2, mu=[0.7, -0.4], nu=[3.0, 0.4], members=2, samples=2,
                   units=2)
    never = [eq.stop.converged("residual", 1e-300), Shrunk("residual", 1e-300)]  # checked at every step
    calls, steps = _counting(monkeypatch), 10
    eq.run(ds, "map", steps=steps, store=tmp_path / "m.zarr", record={"residual": 1}, segment=3, stop=never,
           progress=False)
    # 'map' carries g(state) as owned state: one evaluation per step (the update) and one in init; the
    # residual read by both rules and the record costs none
    assert calls["n"] == steps + 1
    calls["n"] = 0
    # 'network' has no image: per step the map's prediction, and the residual once for both rules and the
    # record; Shrunk's start value and the step-0 record are one evaluation each
    eq.run(ds, "network", steps=steps, store=tmp_path / "n.zarr", record={"residual": 1}, segment=3, stop=never,
           progress=False)
    assert calls["n"] == 1 + 1 + 2 * steps


def test_a_rule_reads_the_operator_diagnostic(tmp_path):
    """relax's 'momentum' returns the diagnostic speed = max |velocity|; a rule reads it, nothing recomputes it."""

    class Slow(eq.stop.Rule):
        name, outcome = "slow", "converged"

        def __init__(self, var, tol):
            self.var, self.tol = var, tol

        def check(self, value, state):
            return value < self.tol, {}

    system = eq.create("relax", rate=0.5, members=2)
    hist = eq.run(system, "momentum", steps=200, store=tmp_path / "h.zarr", record={"speed": 1},
                  options={"beta": 0.5}, stop=Slow("speed", 1e-6), progress=False)
    speed = hist.speed.isel(member=0).values
    stop = int(hist.stopped_at.values[0])
    assert speed[stop] < 1e-6 <= speed[stop - 1]


def test_a_registered_rule_is_named_in_a_run_file(tmp_path, monkeypatch, capsys):
    from eqflow.cli import load_config, main

    monkeypatch.setattr(stop_rules, "_REGISTERED", dict(stop_rules._REGISTERED))
    config = tmp_path / "run.toml"
    config.write_text(f"""
[system]
kind = "relax"
rate = [0.5, 0.1]
members = 2
[run]
operator = "relax"
steps = 100
store = "{tmp_path / 'h.zarr'}"
record = {{ residual = 1 }}
stop = [{{ rule = "shrunk", var = "residual", fraction = {FRACTION} }}]
""")
    with pytest.raises(eq.SchemaError, match=r"stop\[0\]: expected a table with rule one of \['converged', 'cycled', "
                                             r"'equilibrated'\]"):
        load_config(config)
    assert eq.stop.register("shrunk", Shrunk) is Shrunk
    assert "shrunk" in eq.stop.names()
    _, run_args = load_config(config)
    assert isinstance(run_args["stop"][0], Shrunk) and run_args["stop"][0].fraction == FRACTION
    assert main(["run", str(config), "--no-progress"]) == 0
    hist = eq.open(tmp_path / "h.zarr")
    np.testing.assert_array_equal(hist.stopped_at.values, [[10, 66], [10, 66]])


def test_a_rule_from_the_entry_point_group(tmp_path, monkeypatch):
    package = tmp_path / "shrinking"
    package.mkdir()
    (package / "__init__.py").write_text("from user_rules import Shrunk\n")
    info = tmp_path / "shrinking-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shrinking\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[eqflow.stop_rules]\nshrinking = shrinking:Shrunk\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(stop_rules, "_REGISTERED", dict(stop_rules._REGISTERED))
    assert "shrinking" in eq.stop.names()
    rule = eq.stop.make("shrinking", var="residual", fraction=0.5)
    assert type(rule).__name__ == "Shrunk" and rule.fraction == 0.5


def test_bad_rules_and_reporters_are_named_before_anything_is_written(tmp_path):
    system = eq.create("relax", rate=RATES, members=2)
    path = tmp_path / "h.zarr"

    class NoCheck:
        var, outcome = "residual", "converged"

    class Wrong(eq.stop.Rule):
        outcome = "happy"
        var = "residual"

        def check(self, value, state):
            return value < 0, {}

    for stop, message in [(NoCheck(), r"stop: expected eq.stop.converged.*\(no method check\)"),
                          (Wrong(), r"outcome: expected one of \['converged', 'equilibrated', 'cycled'\], got 'happy'"),
                          (Shrunk("speed", 0.5), r"stop rule variable: expected an observable or state variable or "
                                                 r"owned state or diagnostic among \['clock', 'deviation', "
                                                 r"'residual', 'x'\], got 'speed'")]:
        with pytest.raises(eq.SchemaError, match=message):
            eq.run(system, "relax", steps=10, store=path, stop=stop, progress=False)
    with pytest.raises(eq.SchemaError, match=r"reporters\[0\] reads 'deviation': expected a recorded variable "
                                             r"among \['residual'\]; add it to record="):
        eq.run(system, "relax", steps=10, store=path, record={"residual": 1}, reporters=[Tally("deviation", 5)],
               progress=False)
    with pytest.raises(eq.SchemaError, match=r"reporters\[0\]: expected an object with a method report"):
        eq.run(system, "relax", steps=10, store=path, reporters=[object()], progress=False)
    with pytest.raises(ValueError, match="name: expected an identifier"):
        eq.stop.register("two words", Shrunk)
    assert not path.exists()


def test_a_client_rule_needs_its_variable_recorded(tmp_path, small_ising):
    with pytest.raises(eq.SchemaError, match=r"'energy' is read from the records .* expected it among the recorded "
                                             r"\['magnetization'\]"):
        eq.run(small_ising, "metropolis", steps=5, store=tmp_path / "h.zarr", record={"magnetization": 1},
               stop=eq.stop.equilibrated("energy"), progress=False)
    assert not (tmp_path / "h.zarr").exists()
