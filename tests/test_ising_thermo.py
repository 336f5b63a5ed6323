"""Kaufman's exact finite lattice, and thermodynamic estimates from histories against exact values."""
import math

import numpy as np
import pytest

import eqflow as eq
from eqflow.systems.ising import theory, thermodynamics

TC = theory.critical_temperature()
# |estimate - exact| / jackknife SE over 16 members follows Student's t with 15 degrees of freedom:
# P(|t| > 4.5) = 4e-4 per comparison, so a wrong formula fails and noise alone almost never does.
T_BOUND = 4.5


@pytest.mark.parametrize("size", [(4, 4), (2, 5), (3, 4), (5, 4), (3, 6)])
def test_kaufman_equals_enumeration(size):
    t = np.array([0.7, 1.5, TC, 2.6, 5.0, 20.0])
    exact = theory.kaufman(size, t, coupling=1.3)
    states = theory.all_states(*size)
    n = size[0] * size[1]
    e = eq.systems.ising.energy(spin=states, coupling=1.3, field=0.0)
    weights = np.exp(-(e - e.min()) * n / t[:, None])
    z = weights.sum(axis=1)
    mean_e = (weights * e).sum(axis=1) / z
    var_e = (weights * e * e).sum(axis=1) / z - mean_e ** 2
    np.testing.assert_allclose(exact["log_partition"], np.log(z) - e.min() * n / t, rtol=1e-12)
    np.testing.assert_allclose(exact["energy"], mean_e, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(exact["specific_heat"], n * var_e / t ** 2, rtol=1e-9, atol=1e-12)


def test_kaufman_approaches_onsager_and_the_log_divergence_at_tc():
    t = np.array([1.0, 1.8, 2.6, 4.0])  # away from T_c the finite-size correction is exponentially small
    np.testing.assert_allclose(theory.kaufman(128, t)["energy"], theory.onsager_energy(t), rtol=1e-12)
    # at T_c: u(L) = -sqrt(2) + a/L exactly to leading order, and C(2L) - C(L) -> (8 K_c^2 / pi) ln 2
    u = {L: theory.kaufman(L, TC)["energy"][0] for L in (64, 128, 256)}
    assert abs((u[64] + math.sqrt(2)) * 64 - (u[256] + math.sqrt(2)) * 256) < 1e-3
    c = {L: theory.kaufman(L, TC)["specific_heat"][0] for L in (256, 512)}
    k_c = 1 / TC
    assert abs(c[512] - c[256] - 8 * k_c ** 2 / math.pi * math.log(2)) < 1e-3


def test_kaufman_refuses_bad_input():
    with pytest.raises(ValueError, match=r"temperature: expected finite values > 0, got \[1.0, -2.0\]"):
        theory.kaufman(8, [1.0, -2.0])
    with pytest.raises(ValueError, match="size: Kaufman's formula needs both sides >= 2, got 1 x 8"):
        theory.kaufman((1, 8), 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("size", [8, 16])
def test_energy_and_specific_heat_against_kaufman(size):
    system = eq.create("ising", size=size, temperature=[2.0, TC, 3.0], members=16, seed=3)
    hist = eq.run(system, "heat_bath", steps=2500, store=None, record={"energy": 1, "magnetization": 1},
                  progress=False)
    found = thermodynamics(hist, start=500)
    for name in ("energy", "specific_heat"):
        z = (found[name] - found[f"{name}_exact"]) / found[f"{name}_sem"]
        assert (abs(z) < T_BOUND).all(), (name, z.values)
    assert found.energy.attrs["units"] == "1.380649e-23 J" and found.attrs["members"] == 16


@pytest.mark.slow
def test_every_estimate_against_enumeration_at_l4():
    t = np.array([1.8, 3.0])
    system = eq.create("ising", size=4, temperature=t, members=16, seed=9)
    hist = eq.run(system, "metropolis", steps=4000, store=None, record={"energy": 1, "magnetization": 1},
                  progress=False)
    found = thermodynamics(hist, start=200)
    states = theory.all_states(4, 4)
    e = eq.systems.ising.energy(spin=states, coupling=1.0, field=0.0)
    m = eq.systems.ising.magnetization(spin=states)
    w = np.exp(-(e - e.min()) * 16 / t[:, None])
    w /= w.sum(axis=1, keepdims=True)
    avg = lambda x: (w * x).sum(axis=1)  # noqa: E731
    exact = {"energy": avg(e), "specific_heat": 16 * (avg(e * e) - avg(e) ** 2) / t ** 2,
             "abs_magnetization": avg(abs(m)), "susceptibility": 16 * (avg(m * m) - avg(abs(m)) ** 2) / t,
             "binder": 1 - avg(m ** 4) / (3 * avg(m * m) ** 2)}
    for name, value in exact.items():
        z = (found[name].values - value) / found[f"{name}_sem"].values
        assert (abs(z) < T_BOUND).all(), (name, z)


@pytest.mark.slow
def test_abs_magnetization_below_tc_against_yang_at_large_l():
    t = np.array([1.6, 1.9, 2.1])  # correlation length << L = 48: finite-size corrections are negligible
    system = eq.create("ising", size=48, temperature=t, members=8, seed=2, start="up")
    hist = eq.run(system, "heat_bath", steps=400, store=None, record={"abs_magnetization": 1}, progress=False)
    window = hist.abs_magnetization.sel(step=slice(100, None))
    per_member = window.mean("step")  # independent chains: their spread gives the error bar
    sem = per_member.std("member", ddof=1) / np.sqrt(8)
    z = (per_member.mean("member") - theory.spontaneous_magnetization(t)) / sem
    assert (abs(z) < 5.4).all(), z.values  # Student's t with 7 dof: P(|t| > 5.4) = 1e-3


def test_thermodynamics_names_missing_records():
    system = eq.create("ising", size=4, temperature=2.0, members=2, seed=1)
    hist = eq.run(system, "metropolis", steps=4, store=None, record={"energy": 1}, progress=False)
    with pytest.raises(ValueError, match=r"history: expected the record 'magnetization'"):
        thermodynamics(hist)


@pytest.mark.slow
def test_summarize_flags_unmixed_members_and_widens_their_error_bar():
    """Below T_c each member stays in one of the two ordered phases: the signed magnetization's
    members disagree (R-hat >> 1), the exact <m> is 0 by symmetry, and only the spread between
    members gives an error bar that covers it."""
    system = eq.create("ising", size=16, temperature=[1.5, 3.5], members=8, seed=4)
    hist = eq.run(system, "heat_bath", steps=600, store=None, record={"magnetization": 1}, progress=False)
    found = eq.summarize(hist, "magnetization")
    cold, hot = found.sel(temperature=1.5), found.sel(temperature=3.5)
    assert bool(cold.magnetization_unmixed) and not bool(hot.magnetization_unmixed)
    assert float(cold.magnetization_rhat) > 1.05
    per_member = hist.magnetization.sel(temperature=1.5, step=slice(300, None)).mean("step")
    assert (abs(per_member) > 0.9).all()  # every member ordered, in either phase
    assert abs(float(cold.magnetization)) < 4 * float(cold.magnetization_sem)  # covers the exact 0
    assert abs(float(hot.magnetization)) < 4 * float(hot.magnetization_sem)
