"""Dense Hopfield network: physics against exact and mean-field values, and input errors.

Tolerances. A Glauber average is compared per member with that member's exact value (each
member has its own patterns); the members are independent chains, so the standard error of
the mean difference is SE = sd(member differences) / sqrt(M), which accounts for the
autocorrelation within each chain without estimating it. We assert |mean difference| < 5 SE:
for M = 16 members (Student t, 15 degrees of freedom) a correct sampler fails one comparison
with probability 1.6e-4, and the ~10 comparisons below together with probability < 2e-3
(the seeds are fixed, so the outcome is in any case reproducible). Root solves are checked to
1e-7, the precision of the published constants. Integer fields are compared exactly.
"""
import math

import numpy as np
import pytest

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems.dense_hopfield import observables, theory

Z_BOUND = 5.0  # standard errors (see the module docstring)


# ---------------------------------------------------------------------------- theory


@pytest.mark.parametrize("order", [3, 4])
def test_spinodal_and_transition_match_the_published_constants(order):
    beta_sp, m_sp = theory.spinodal(order)
    assert beta_sp == pytest.approx(theory.SPINODAL[order][0], abs=1e-7)
    assert m_sp == pytest.approx(theory.SPINODAL[order][1], abs=1e-7)
    assert theory.transition(order) == pytest.approx(theory.TRANSITION[order], abs=1e-7)
    # below the spinodal only the paramagnet solves m = tanh(beta m^(P-1)); just above, m jumps to ~m_sp
    assert theory.retrieval_overlap(beta_sp * 0.999, order) == 0.0
    assert theory.retrieval_overlap(beta_sp * 1.000001, order) == pytest.approx(m_sp, abs=2e-3)


@pytest.mark.parametrize("order,beta", [(2, 1.5), (3, 2.5), (4, 3.0), (5, 4.0)])
def test_retrieval_overlap_solves_the_self_consistency_and_minimises_f(order, beta):
    m = theory.retrieval_overlap(beta, order)
    assert m == pytest.approx(math.tanh(beta * m ** (order - 1)), abs=1e-13)
    # f(m) of the module docstring equals -m^P/P - T s(m), the Laplace form, at the solution
    s = math.log(2) - ((1 + m) * math.log(1 + m) + (1 - m) * math.log(1 - m)) / 2
    assert theory.free_energy(m, beta, order) == pytest.approx(-m**order / order - s / beta, abs=1e-12)
    beyond = beta > (theory.transition(order) if order > 2 else 1.0)
    assert (theory.free_energy(m, beta, order) < -math.log(2) / beta) == beyond


# ---------------------------------------------------------------------------- the field


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_the_field_is_half_the_exact_energy_change_of_a_flip(order):
    """G_i / (P N^(P-1)) = h_i = [H(sigma_i = -1) - H(sigma_i = +1)] / 2, from brute-force energies."""
    rng = np.random.default_rng(order)
    n, k = 9, 4
    patterns = rng.choice([-1, 1], size=(k, n)).astype(np.int8)
    spins = rng.choice([-1, 1], size=(6, n)).astype(np.int8)
    g = observables.integer_fields(spins, patterns, order)
    for state, fields in zip(spins, g):
        for i in range(n):
            up, down = state.copy(), state.copy()
            up[i], down[i] = 1, -1
            (e_up, e_down), _ = theory.energies_and_overlaps(np.stack([up, down]), patterns, order)
            h = (e_down - e_up) * n / 2  # energies are per neuron
            assert fields[i] / (order * n ** (order - 1)) == pytest.approx(h, abs=1e-12)


# ---------------------------------------------------------------------------- Glauber = Boltzmann


@pytest.mark.parametrize("order", [2, 3, 4])
def test_glauber_samples_the_exact_boltzmann_distribution(order):
    """N = 10, all 2^10 states enumerated per member; burn-in 200 sweeps, then 1800."""
    temperatures = [0.25, 0.5, 1.0]
    members = 16
    ds = eq.create("dense_hopfield", neurons=10, patterns=3, order=order, temperature=temperatures,
                   members=members, seed=11 + order, start="random")
    hist = eq.run(ds, "glauber", steps=2000, store=None, progress=False).load()
    patterns = ds.patterns.values
    for j, t in enumerate(temperatures):
        exact = [theory.enumerate_states(patterns[m], order, t) for m in range(members)]
        for name in ("energy", "retrieval"):
            measured = hist[name].values[200:, :, j].mean(axis=0)
            diff = measured - np.array([x[name] for x in exact])
            se = diff.std(ddof=1) / np.sqrt(members)
            assert abs(diff.mean()) < Z_BOUND * se + 1e-12, (order, t, name, diff.mean(), se)
        if order % 2:  # odd P: <m_mu> != 0 (even P: +-sigma symmetric, <m_mu> = 0)
            measured = hist["overlap"].values[200:, :, j].mean(axis=0)
            diff = (measured - np.array([x["overlap"] for x in exact])).sum(axis=-1)
            assert abs(diff.mean()) < Z_BOUND * diff.std(ddof=1) / np.sqrt(members), (order, t, diff.mean())


@pytest.mark.parametrize("order,t", [(3, 0.4), (4, 0.3)])
def test_one_pattern_overlap_matches_the_exact_law_and_the_mean_field_solution(order, t):
    """K = 1, N = 200, beta > beta_t: <|m|> against the exact law of m (any N) and m = tanh(beta m^(P-1)).

    |m|, since for even P the law is symmetric under m -> -m (a chain stays on one side)."""
    n, members = 200, 8
    ds = eq.create("dense_hopfield", neurons=n, patterns=1, order=order, temperature=t, members=members, seed=2)
    hist = eq.run(ds, "glauber", steps=250, store=None, progress=False).load()
    per_member = np.abs(hist["overlap"].values[50:, :, 0]).mean(axis=0)
    m, p = theory.one_pattern_distribution(n, order, t)
    exact = p @ np.abs(m)
    se = per_member.std(ddof=1) / np.sqrt(members)
    assert abs(per_member.mean() - exact) < Z_BOUND * se
    # finite-size: the exact mean differs from the N -> infinity solution by O(1/N)
    assert abs(exact - theory.retrieval_overlap(1 / t, order)) < 1.0 / n


# ---------------------------------------------------------------------------- zero temperature


@pytest.mark.parametrize("order,neurons,patterns", [(2, 60, 12), (3, 30, 40), (4, 16, 60)])
def test_zero_temperature_descends_and_stops_converged_at_a_local_minimum(order, neurons, patterns):
    ds = eq.create("dense_hopfield", neurons=neurons, patterns=patterns, order=order, members=6, seed=4,
                   start="random")
    hist = eq.run(ds, "zero_temperature", steps=60, store=None, progress=False, record={"flips": 1, "energy": 1},
                  stop=eq.stop.converged("unstable", 0.5)).load()
    assert (hist.stop_reason.values == "converged").all()
    energy = hist.energy.values  # NaN after a member stopped
    steps = np.diff(energy, axis=0)
    assert (steps[np.isfinite(steps)] <= 1e-12).all()  # never up
    assert (hist.flips.values[1:][np.isfinite(steps)] >= 0).all()
    final = eq.final_state(hist)
    pats = ds.patterns.values
    for m in range(ds.sizes["member"]):
        state = final.spin.values[m]
        flips = np.where(np.eye(neurons, dtype=bool), -state, state)  # every single flip of the final state
        e0, _ = theory.energies_and_overlaps(state[None], pats[m], order)
        e1, _ = theory.energies_and_overlaps(flips, pats[m], order)
        assert (e1 >= e0 - 1e-12).all()  # a local minimum: no flip lowers the energy
    # the stop is at the first step after which a sweep changes nothing: one more sweep flips no neuron
    again = eq.run(final, "zero_temperature", steps=1, store=None, progress=False, record={"flips": 1}).load()
    assert (again.flips.values[-1] == 0).all()
    assert (eq.final_state(again).spin.values == final.spin.values).all()


def test_zero_temperature_retrieves_below_and_loses_the_pattern_above_the_ags_capacity():
    """P = 2, N = 300: alpha = 0.04 stays at m ~ 1; alpha = 0.3 > 0.138 drifts far from the pattern."""
    low = eq.create("dense_hopfield", neurons=300, patterns=12, members=3, seed=5)
    high = eq.create("dense_hopfield", neurons=300, patterns=90, members=3, seed=5)
    out = [eq.run(ds, "zero_temperature", steps=30, store=None, progress=False,
                  stop=eq.stop.converged("unstable", 0.5)) for ds in (low, high)]
    kept, lost = (eq.final_state(h) for h in out)
    m_low = observables.overlap(spin=kept.spin.values, patterns=low.patterns.values)[:, 0]
    m_high = observables.overlap(spin=lost.spin.values, patterns=high.patterns.values)[:, 0]
    assert (m_low > 0.97).all() and (m_high < 0.9).all(), (m_low, m_high)


# ---------------------------------------------------------------------------- inputs


def test_random_patterns_per_member_or_shared():
    per = eq.create("dense_hopfield", neurons=64, patterns=3, members=3, temperature=[0.5, 1.0], seed=9)
    shared = eq.create("dense_hopfield", neurons=64, patterns=3, members=3, seed=9, shared_patterns=True)
    assert per.patterns.dims == ("member", "pattern", "neuron") and shared.patterns.dims == ("pattern", "neuron")
    assert len({per.patterns.values[m].tobytes() for m in range(3)}) == 3  # independent per member
    assert set(np.unique(shared.patterns.values)) == {-1, 1}
    assert (shared.spin.values == shared.patterns.values[0]).all()  # start="pattern": every member at xi^1
    # fair +-1: 3 x 64 values, mean within 5 standard deviations (1 / sqrt(192)) of 0
    assert abs(per.patterns.values.mean()) < 5 / np.sqrt(per.patterns.size)
    with pytest.raises(SchemaError, match="shared_patterns: only with patterns=K"):
        eq.create("dense_hopfield", patterns=np.ones((2, 4)), shared_patterns=True)


def test_fields_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    patterns = rng.choice([-1, 1], size=(2, 1, 7, 23)).astype(np.int8)
    spins = rng.choice([-1, 1], size=(2, 3, 23)).astype(np.int8)
    whole = observables.integer_fields(spins, patterns, 4)
    monkeypatch.setattr(observables, "BLOCK", 90)  # 6 cells x 7 patterns: blocks of 2 neurons
    np.testing.assert_array_equal(observables.integer_fields(spins, patterns, 4), whole)


def test_given_patterns_shared_or_per_member_and_a_start_array():
    shared = np.array([[1, -1, 1, -1], [1, 1, -1, -1]])
    ds = eq.create("dense_hopfield", patterns=shared, members=2, start="pattern")
    assert ds.patterns.dims == ("pattern", "neuron") and (ds.spin.values == shared[0]).all()
    per = np.stack([shared, -shared])
    ds = eq.create("dense_hopfield", patterns=per, members=2, temperature=[0.5, 1.0], start=[1, 1, 1, -1])
    assert ds.patterns.dims == ("member", "pattern", "neuron")
    assert (ds.spin.values == [1, 1, 1, -1]).all()
    e = observables.energy(spin=ds.spin.values, patterns=ds.patterns.values[:, None], order=2)
    assert e[0, 0] == pytest.approx(-(0.5**2 + 0.5**2) / 2)


@pytest.mark.parametrize("kwargs,message", [
    ({"neurons": 8, "patterns": 2, "order": 1}, "order: expected an integer P >= 2, got 1"),
    ({"neurons": 8, "patterns": 2, "order": 2.5}, "order: expected an integer P >= 2, got 2.5"),
    ({"neurons": 1, "patterns": 2}, "neurons: expected an integer N >= 2, got 1"),
    ({"patterns": 2}, "neurons: required with patterns=K"),
    ({"neurons": 8, "patterns": 0}, "patterns: expected a number of patterns K >= 1"),
    ({"patterns": np.ones(5)}, "patterns: expected an integer K >= 1 or an array of +-1 of shape (K, N)"),
    ({"patterns": np.ones((2, 2, 5)), "members": 3}, "with members = 3, got (2, 2, 5)"),
    ({"patterns": np.array([[1, 0, 1], [1, 1, -1]])}, "patterns: expected values -1 and +1 only, got [0]"),
    ({"patterns": np.ones((2, 4)), "neurons": 5}, "neurons: expected 4 (the patterns' last axis)"),
    ({"neurons": 8, "patterns": 2, "temperature": [0.5, -0.5]}, "temperature: expected values >= 0"),
    ({"neurons": 8, "patterns": 2, "start": "up"}, "start: expected 'pattern', 'random' or an array of +-1"),
    ({"neurons": 8, "patterns": 2, "start": [1, 0]},
     "start: expected 'pattern', 'random' or an array of +-1, got values [0]"),
    ({"neurons": 10**6, "patterns": 10, "order": 4}, "expected K N^P < 2^62"),
])
def test_bad_inputs_are_named_errors_before_anything_is_written(kwargs, message, tmp_path):
    with pytest.raises(SchemaError) as info:
        eq.create("dense_hopfield", **kwargs)
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_all_problems_are_reported_at_once():
    with pytest.raises(SchemaError) as info:
        eq.create("dense_hopfield", neurons=1, patterns=2, order=1, start="up")
    text = str(info.value)
    assert "order:" in text and "neurons:" in text and "start:" in text


# ---------------------------------------------------------------------------- the numba kernel


def _history(ds, op, path=None, **kw):
    return eq.run(ds, op, steps=8, store=path, progress=False, record={"spin": 1, "flips": 1, "energy": 1},
                  **kw).load()


@pytest.mark.parametrize("op", ["glauber", "zero_temperature"])
@pytest.mark.parametrize("order,shared", [(2, False), (3, True), (4, False), (5, True)])
def test_numba_kernel_reproduces_the_reference_bit_for_bit(op, order, shared, tmp_path):
    pytest.importorskip("numba")
    rng = np.random.default_rng(order)
    patterns = rng.choice([-1, 1], size=(6, 17)) if shared else 6
    ds = eq.create("dense_hopfield", neurons=None if shared else 17, patterns=patterns, order=order,
                   temperature=[0.0, 0.2, 0.6, 2.0], members=3, seed=order, start="random")
    reference = _history(ds, op, kernel="reference")
    fast = _history(ds, op, tmp_path / "a.zarr", kernel="numba", chunks={"member": 1}, segment=3)
    assert fast.attrs["eqflow_kernel"] == "numba"
    for name in ("spin", "flips", "energy"):
        np.testing.assert_array_equal(fast[name].values, reference[name].values, err_msg=name)
    if op == "glauber":  # the chain moved (a kernel that did nothing would fail above only by luck)
        assert fast.flips.values[1:].sum() > 0
