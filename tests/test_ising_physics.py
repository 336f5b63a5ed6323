"""Ising physics against exact values: enumeration (4x4), Onsager and Yang (large lattice).

Statistics. Members are independent Markov chains (their own random streams), so the time
average of each member over the post-burn-in window is one independent sample whose variance
already contains the autocorrelation (sigma^2 * 2 tau / n). The standard error of the ensemble
mean is therefore s / sqrt(M), s the sample standard deviation of the M member averages, and
we require |mean - exact| < Z * SE with Z = 4.5 (two-sided false-alarm probability 7e-6 per
comparison under normality, ~1e-4 for the whole file). A frozen or otherwise broken member is
caught by a second check: every member average lies within 8 robust standard deviations
(1.4826 x median absolute deviation) of the exact value.
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow import random
from eqflow.systems import ising

Z = 4.5
OUTLIER = 8.0


def check_against_exact(member_means: np.ndarray, exact: float, name: str) -> None:
    """The two statistical checks of this file, on one parameter point."""
    m = member_means.size
    se = member_means.std(ddof=1) / np.sqrt(m)
    z = (member_means.mean() - exact) / se if se > 0 else np.inf * (member_means.mean() != exact)
    assert abs(z) < Z, f"{name}: ensemble mean {member_means.mean():.6f} vs exact {exact:.6f}, z = {z:.2f}"
    robust = 1.4826 * np.median(np.abs(member_means - np.median(member_means)))
    worst = np.max(np.abs(member_means - exact))
    assert worst < OUTLIER * max(robust, 1e-3 * abs(exact) + 1e-12), (
        f"{name}: a member averages {worst:.4f} away from exact {exact:.6f} (robust spread {robust:.2e}): "
        "frozen or broken member")


def test_theory_values():
    tc = ising.theory.critical_temperature()
    assert tc == pytest.approx(2.269185314213022, rel=1e-14)
    # Onsager: u(T_c) = -sqrt(2) J; u -> -2J as T -> 0; high-T series u ~ -2 tanh(J/T) to leading orders
    assert ising.theory.onsager_energy(tc * (1 + 1e-9)) == pytest.approx(-np.sqrt(2), abs=1e-6)
    assert ising.theory.onsager_energy(0.3) == pytest.approx(-2.0, abs=1e-9)
    for t in (1.5, 2.0, 3.5, 50.0):
        assert ising.theory.onsager_energy(t) == pytest.approx(_energy_from_free_energy(t), abs=1e-7)
    assert ising.theory.spontaneous_magnetization(2.0) == pytest.approx(0.911319, abs=1e-6)
    assert ising.theory.spontaneous_magnetization(3.0) == 0.0
    # the frozen set of the textbook checkerboard rule, as counted in the issue
    assert len(ising.theory.zero_field_states(4, 4)) == 36


def _energy_from_free_energy(t, n=256, h=1e-5):
    """u = d(beta f)/d beta from Onsager's double-integral free energy (independent of the closed form).

    beta f = -ln 2 - 1/(8 pi^2) int int ln[cosh^2 2K - sinh 2K (cos a + cos b)] da db, K = 1/T;
    the integrand is smooth and periodic away from T_c, so the midpoint rule converges spectrally.
    """
    a = (np.arange(n) + 0.5) * 2 * np.pi / n
    ca, cb = np.cos(a)[:, None], np.cos(a)[None, :]

    def beta_f(beta):
        k = 2 * beta
        return -np.log(2) - np.mean(np.log(np.cosh(k) ** 2 - np.sinh(k) * (ca + cb))) / 2

    beta = 1 / t
    return (beta_f(beta + h) - beta_f(beta - h)) / (2 * h)


def test_exact_enumeration_matches_known_limits():
    exact = ising.theory.exact_averages(4, [0.05, 1e6])
    assert exact["energy"][0] == pytest.approx(-2.0, abs=1e-12)
    assert exact["abs_magnetization"][0] == pytest.approx(1.0, abs=1e-12)
    assert exact["energy"][1] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("operator", ["metropolis", "heat_bath"])
def test_4x4_against_exact_enumeration(operator, tmp_path):
    temperatures = [1.5, 2.269, 3.5]
    system = eq.create("ising", size=4, temperature=temperatures, members=64, seed=3)
    hist = eq.run(system, operator, steps=3000, store=tmp_path / "h.zarr", record={"energy": 1, "magnetization": 1},
                  progress=False)
    window = hist.isel(step=slice(500, None))
    energy = window.energy.mean("step").values  # (member, temperature)
    abs_m = np.abs(window.magnetization).mean("step").values
    exact = ising.theory.exact_averages(4, temperatures)
    for j, t in enumerate(temperatures):
        check_against_exact(energy[:, j], exact["energy"][j], f"{operator} energy at T={t}")
        check_against_exact(abs_m[:, j], exact["abs_magnetization"][j], f"{operator} |m| at T={t}")


def test_4x4_with_field_against_exact_enumeration(tmp_path):
    system = eq.create("ising", size=4, temperature=2.0, field="0.3 k_B*K", members=64, seed=4)
    hist = eq.run(system, "metropolis", steps=3000, store=tmp_path / "h.zarr", record={"energy": 1}, progress=False)
    exact = ising.theory.exact_averages(4, [2.0], field=0.3)["energy"][0]
    check_against_exact(hist.energy.isel(step=slice(500, None)).mean("step").values.ravel(), exact, "energy, h=0.3")


def _bare_metropolis(spin, steps, temperature, zero_move_probability, seed=9):
    """The pure operator in a bare loop (no store): lets a test use a different acceptance rule."""
    t = np.full(spin.shape[:-2], temperature)
    tables = ising.metropolis_acceptance(temperature=t, coupling=np.ones_like(t), field=np.zeros_like(t),
                                         sizes={"y": spin.shape[-2], "x": spin.shape[-1]},
                                         zero_move_probability=zero_move_probability)
    points = random.point_ids({"temperature": t[0]}, t.shape[1:])
    keys = random.cell_keys(seed, np.arange(spin.shape[0]), points)
    sizes = {"y": spin.shape[-2], "x": spin.shape[-1]}
    energies = []
    for step in range(steps):
        words = random.generate(random.bits("y", "x"), keys, step=step, slot=0, sizes=sizes)
        spin = ising.metropolis(spin=spin, words=words, **tables)["spin"]
        energies.append(ising.energy(spin=spin, coupling=1.0, field=0.0))
    return np.array(energies)


def test_frozen_trap_is_caught_and_avoided():
    """The textbook rule (accept dE = 0 always) never leaves a zero-field state; ours does.

    The exact-enumeration check above must flag an ensemble holding such a member.
    """
    frozen = ising.theory.zero_field_states(4, 4)[0]
    start = np.broadcast_to(frozen, (64, 1, 4, 4)).copy()
    start[1:] = np.where(np.random.default_rng(0).random((63, 1, 4, 4)) < 0.5, 1, -1)
    exact = ising.theory.exact_averages(4, [1.5])["energy"][0]
    textbook = _bare_metropolis(start, 2000, 1.5, zero_move_probability=1.0)
    assert np.all(textbook[:, 0] == 0.0), "the textbook rule should keep the zero-field member frozen"
    with pytest.raises(AssertionError, match="frozen or broken member"):
        check_against_exact(textbook[300:].mean(axis=0).ravel(), exact, "textbook rule")
    ours = _bare_metropolis(start, 2000, 1.5, zero_move_probability=0.5)
    assert np.any(ours[:50, 0] != 0.0)
    check_against_exact(ours[300:].mean(axis=0).ravel(), exact, "metropolis")


@pytest.mark.slow
def test_large_lattice_against_onsager_and_yang(tmp_path):
    """L = 32 away from T_c, where finite-size corrections are exponentially small (xi << L)."""
    temperatures = [1.5, 2.0, 3.5]
    system = eq.create("ising", size=32, temperature=temperatures, members=16, seed=8, start="up")
    hist = eq.run(system, "metropolis", steps=1500, store=tmp_path / "h.zarr", record={"energy": 1, "magnetization": 1},
                  chunks={"member": 8}, progress=False)
    window = hist.isel(step=slice(300, None))
    energy = window.energy.mean("step").values
    abs_m = np.abs(window.magnetization).mean("step").values
    for j, t in enumerate(temperatures):
        check_against_exact(energy[:, j], float(ising.theory.onsager_energy(t)), f"energy at T={t}")
        if t < ising.theory.critical_temperature():
            check_against_exact(abs_m[:, j], float(ising.theory.spontaneous_magnetization(t)), f"|m| at T={t}")


@pytest.mark.parametrize("path", ["array-api", "compiled"])
@pytest.mark.parametrize("shape", [(127, 129), (128, 128), (2, 16383), (2, 16384), (3, 5), (1, 7), (6, 1)])
def test_energy_and_magnetization_sums_are_exact_at_the_narrow_type_limits(shape, path, monkeypatch):
    """The observables sum in int16 where the sum fits: an all-up lattice (the largest sums,
    2 L_y L_x bonds) on each side of the int16 limits gives E = -2 - h and M = 1 exactly, and a
    random lattice the same values as a sum in int64 throughout. The same for the compiled sums
    (numba, one pass) the observables use where a numba kernel runs."""
    from eqflow.systems.ising import observables

    if path == "compiled":
        pytest.importorskip("numba")
        monkeypatch.setattr(observables, "COMPILED_ROW", 1)  # every shape, short rows too
        assert observables.compiled_sums(np.ones((2, 3), np.int8)) is not None
    else:
        monkeypatch.setattr(observables, "compiled_sums", lambda spin: None)
    up = np.ones((2, *shape), np.int8)
    np.testing.assert_array_equal(ising.energy(spin=up, coupling=1.0, field=0.5), -2.5)
    np.testing.assert_array_equal(ising.magnetization(spin=up), 1.0)
    spin = np.random.default_rng(3).choice(np.array([-1, 1], np.int8), size=(2, *shape))
    right, down = np.roll(spin, -1, axis=-1).astype(np.int64), np.roll(spin, -1, axis=-2).astype(np.int64)
    bonds, total = (spin * (right + down)).sum(axis=(-2, -1)), spin.astype(np.int64).sum(axis=(-2, -1))
    np.testing.assert_array_equal(ising.energy(spin=spin, coupling=1.0, field=0.5),
                                  -(bonds + 0.5 * total) / spin[0].size)
    np.testing.assert_array_equal(ising.magnetization(spin=spin), total / spin[0].size)
