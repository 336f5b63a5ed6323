"""eq.write_samples (histories of independent samples) and the Ising flow-matching generator."""
import numpy as np
import pytest

import eqflow as eq
from eqflow.generators import fidelity
from eqflow.generators import ising_flow as flow
from eqflow.systems.ising import theory

import toy

SCHEDULE = [3.5, 2.5, 1.5]


# --- eq.write_samples: general, any kind ---------------------------------------------------------------------
def test_samples_become_an_ordinary_history(tmp_path):
    """Toy samples x_i = i + member / 10: records, observables, summaries and the final state follow."""
    system = toy.create(rate=[0.2, 0.4], members=3, sites=2)
    n = 6
    x = (np.arange(n)[:, None, None, None] + np.arange(3)[None, :, None, None] / 10 + np.zeros((n, 3, 2, 2)))
    hist = eq.write_samples(system, {"x": x}, tmp_path / "s.zarr", source="test grid")
    again = eq.open(tmp_path / "s.zarr")
    np.testing.assert_array_equal(again.x.values, x)
    np.testing.assert_array_equal(again.clock.values, np.broadcast_to(np.arange(n)[:, None, None], (n, 3, 2)))
    np.testing.assert_allclose(again.deviation.values, x)  # target 0: the observable, evaluated per sample
    assert again.attrs["eqflow_operator"] == "test grid" and again.attrs["eqflow_samples"] == "independent"
    assert (hist.equilibrated_at == 0).all() and (hist.stopped_at == n - 1).all()
    summary = eq.summarize(again, "residual")
    np.testing.assert_allclose(summary.residual.values, np.full(2, x[..., 0, 0].mean()))  # whole record is the window
    np.testing.assert_array_equal(eq.final_state(again).x.values, x[-1])
    assert eq.verify(tmp_path / "s.zarr")


def test_bad_samples_are_refused_by_name(tmp_path):
    system = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    good = np.ones((3, 2, 4, 4), np.int8)
    cases = [({"spin": good[:, :1]}, r"states\['spin'\]: expected shape \(n >= 1, \*\(2, 4, 4\)\)"),
             ({"spin": good.astype(np.int32)}, r"states\['spin'\]: expected dtype int8, got int32"),
             ({"spin": good * 0}, r"states\['spin'\]: expected values in \[-1, 1\], got 96 other"),
             ({"x": good}, r"states: expected exactly the state variables \['spin'\], got \['x'\]")]
    for states, message in cases:
        with pytest.raises(eq.SchemaError, match=message):
            eq.write_samples(system, states, tmp_path / "bad.zarr", source="test")
    assert not (tmp_path / "bad.zarr").exists()  # nothing written
    eq.write_samples(system, {"spin": good}, tmp_path / "s.zarr", source="test")
    with pytest.raises(eq.StoreError, match="already exists"):
        eq.write_samples(system, {"spin": good}, tmp_path / "s.zarr", source="test")


# --- the generator ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schedule_store(tmp_path_factory):
    """L = 4, 32 members, Swendsen-Wang through T = 3.5, 2.5, 1.5 (300 sweeps each)."""
    system = eq.create("ising", size=4, temperature=SCHEDULE[0], members=32, seed=3)
    return eq.anneal(system, "swendsen_wang", schedule={"temperature": SCHEDULE}, stage_steps=300,
                     store=tmp_path_factory.mktemp("flow") / "anneal.zarr", record={"energy": 1, "spin": 1},
                     progress=False)


@pytest.fixture(scope="module")
def trained(schedule_store):
    return flow.train(schedule_store, iterations=400, batch=128, hidden=16, layers=3, steps=8, seed=0, threads=1)


def test_training_reads_each_stages_equilibrium_window(schedule_store):
    temperatures, spins, lattice = flow.training_data(schedule_store, thin=2)
    assert temperatures.tolist() == sorted(SCHEDULE, reverse=True) and lattice["size"] == [4, 4]
    starts = schedule_store.stage_equilibrated_at.values
    for k, block in enumerate(spins):  # per member: the records at/after its window start, every 2nd
        expected = sum(len(range(int(s), 300 * (k + 1) + 1, 2)) for s in starts[k])
        assert block.shape == (expected, 4, 4) and block.dtype == np.int8


def test_bad_inputs_are_named(schedule_store, trained, tmp_path):
    plain = eq.run(eq.create("ising", size=4, temperature=2.0, members=2, seed=1), "metropolis", steps=4,
                   store=None, record={"energy": 1, "spin": 1}, progress=False)
    with pytest.raises(ValueError, match=r"history: expected an anneal store of temperature"):
        flow.train(plain)
    with pytest.raises(ValueError, match=r"history: expected an Ising history"):
        flow.train(eq.run(toy.create(), "relax", steps=2, store=None, progress=False))
    with pytest.raises(ValueError, match=r"history: expected the state 'spin' recorded"):
        flow.train(schedule_store.drop_vars("spin"))
    with pytest.raises(ValueError, match=r"thin: expected a positive integer, got 0"):
        flow.train(schedule_store, thin=0)
    with pytest.raises(ValueError, match=r"temperatures: expected values within the trained schedule's range "
                                         r"\[1.5, 3.5\] K, got \[4.0\]"):
        trained.sample([2.0, 4.0], 4, store=tmp_path / "x.zarr")
    with pytest.raises(ValueError, match=r"members: expected an integer >= 1, got 0"):
        trained.sample(2.0, 4, members=0, store=tmp_path / "x.zarr")
    with pytest.raises(ValueError, match=r"size: expected an even integer"):
        trained.sample(2.0, 4, size=5, store=tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    import torch

    torch.save({"format": 99}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"path: expected an Ising flow generator file \(format 1\), got 99"):
        flow.Generator.load(tmp_path / "other.pt")


def test_same_seed_same_samples_whatever_the_batch_and_after_save(trained, tmp_path):
    a = trained.spins(2.5, 300, seed=7, batch=300, threads=1)
    np.testing.assert_array_equal(a, trained.spins(2.5, 300, seed=7, batch=64, threads=1))
    assert not np.array_equal(a, trained.spins(2.5, 300, seed=8, threads=1))
    trained.save(tmp_path / "g.pt")
    loaded = flow.Generator.load(tmp_path / "g.pt")
    np.testing.assert_array_equal(a, loaded.spins(2.5, 300, seed=7, threads=1))
    assert loaded.temperatures.tolist() == trained.temperatures.tolist() and loaded.config == trained.config
    # a temperature's samples do not depend on which other temperatures are asked for
    both = trained.sample([3.5, 2.5], 10, seed=7, members=2, store=None, threads=1)
    one = trained.sample(2.5, 10, seed=7, members=2, store=None, threads=1)
    np.testing.assert_array_equal(both.spin.sel(temperature=2.5).values, one.spin.values)


def test_generated_store_is_an_ordinary_ising_history(trained, tmp_path):
    hist = trained.sample(SCHEDULE, 50, seed=1, members=4, store=tmp_path / "gen.zarr", threads=1)
    hist = eq.open(tmp_path / "gen.zarr")
    assert dict(hist.spin.sizes) == {"step": 50, "member": 4, "temperature": 3, "y": 4, "x": 4}
    assert hist.energy.attrs["units"] == "1.380649e-23 J" and hist.attrs["eqflow_operator"] == "ising.flow"
    np.testing.assert_array_equal(hist.energy.values, theory.energy(spin=hist.spin.values, coupling=1.0, field=0.0))
    thermo = eq.systems.ising.thermodynamics(hist)
    assert thermo.attrs["records"] == 50 and np.isfinite(thermo.specific_heat_sem).all()
    assert set(eq.summarize(hist)) >= {"energy", "abs_magnetization_sem"}


def test_trained_generator_samples_near_boltzmann_at_l4(trained):
    """At L = 4, 2000 samples per schedule T against the exact Boltzmann distribution of all 2^16
    states: the KL of the energy histogram is below 0.25 nats and <E> within 0.3 J of exact at
    every T after 400 training steps. Exact draws would give about (levels - 1) / 2n ~ 0.002
    nats; the same network untrained (its samples are nearly sign(noise), T = infinity) gives
    >= 1.5 nats and >= 0.78 J off, so both bounds fail without training."""
    hist = trained.sample(SCHEDULE, 500, seed=2, members=4, store=None, threads=1)
    found = fidelity.boltzmann(hist)
    assert (found.kl_energy < 0.25).all(), found.kl_energy.values
    np.testing.assert_allclose(found.energy, found.energy_exact, atol=0.3)
    untrained = flow.Generator(flow._network(16, 3, True), trained.temperatures, trained.lattice, trained.config)
    worse = fidelity.boltzmann(untrained.sample(SCHEDULE, 500, seed=2, members=4, store=None, threads=1))
    assert (worse.kl_energy > 0.25).all() and (abs(worse.energy - worse.energy_exact) > 0.3).all()


# --- fidelity measures, on samples of known law ------------------------------------------------------------------
def test_fidelity_measures_on_exact_draws_and_ordered_lattices():
    """Exact Boltzmann draws at L = 4 (from the enumeration): the energy-histogram KL is near its
    finite-n bias (levels - 1) / 2n and <E> within 4 standard errors; G(r) of the ordered and the
    checkerboard lattices is 1 and (-1)^r."""
    t, n = 2.5, 4000
    states = theory.all_states(4, 4)
    e = theory.energy(spin=states, coupling=1.0, field=0.0)
    p = np.exp(-16 * (e - e.min()) / t)
    p /= p.sum()
    draws = states[np.random.default_rng(1).choice(len(p), size=(n, 2), p=p)]
    system = eq.create("ising", size=4, temperature=t, members=2, seed=0)
    found = fidelity.boltzmann(eq.write_samples(system, {"spin": draws}, None, source="exact"))
    levels = len(np.unique(np.round(16 * e)))
    assert float(found.kl_energy) < 5 * (levels - 1) / (2 * 2 * n)
    sem = np.sqrt((p @ e**2 - (p @ e) ** 2) / (2 * n))
    assert abs(float(found.energy) - float(found.energy_exact)) < 4 * sem
    ordered = np.ones((3, 2, 4, 4), np.int8)
    checker = np.broadcast_to(np.where(np.add.outer(np.arange(4), np.arange(4)) % 2, 1, -1).astype(np.int8),
                              (3, 2, 4, 4)).copy()
    for spins, expected in ((ordered, [1, 1, 1]), (checker, [1, -1, 1])):
        g = fidelity.correlation(eq.write_samples(system, {"spin": spins}, None, source="fixed"))
        np.testing.assert_array_equal(g.correlation.values, expected)
        assert g.r.values.tolist() == [0, 1, 2]
