"""The 2-D Coulomb gas (kind "coulomb_gas") against its exact laws (see eqflow.systems.coulomb_gas.theory).

Exact results used (trap units, weight prod |z_i - z_j|^beta exp(-(beta/2) sum |z_i|^2)):
sum |z_i|^2 ~ Gamma(beta N (N - 1)/4 + N, scale 2/beta) at every beta (so its mean is
N (N - 1)/2 + 2N/beta and its variance shape * scale^2); sum Re z_i ~ Normal(0, N/beta) at
every beta; at beta = 2 Kostlan's independent |z|^2 ~ Gamma(k, 1), k = 1..N (E inside(s) =
sum_k P(Gamma(k) < s), the binned one-particle density); for N = 2 the mean energy at every beta.

Statistics. Members are independent chains (own start and draws), so each member's time
average over the window is one independent sample whose variance already holds the
autocorrelation; the standard error of the ensemble mean is s / sqrt(M), s the spread of the
M member averages. A comparison allows Z = 4.5 standard errors (two-sided false alarm 7e-6
each under normality; some 60 comparisons here, 4e-4 in all). Each also asserts that the
standard error is small (a few per cent of the value or less), so that it could fail.

Burn-in. From the random start (uniform in the disk |z| < sqrt(N)), the slowest measured
mode (sum Re z, integrated autocorrelation time about 25 sweeps at beta = 0.7 with
step_size 0.5, less at larger beta or with MALA) has forgotten the start after 200 sweeps
(e^-8); the Ginibre start is an exact beta = 2 sample and needs none.
"""
import math

import numpy as np
import pytest
import torch

import eqflow as eq
from eqflow.systems.coulomb_gas import observables, theory

Z = 4.5


def _run(tmp_path, name, op, ds, steps, **kw):
    record = kw.pop("record", {"sum_r2": 1, "sum_x": 1})
    return eq.run(ds, op, steps=steps, store=tmp_path / f"{name}.zarr", record=record, progress=False, **kw).load()


def _check(samples, expected, what, max_relative_se=0.03):
    """Member means of the time averages in ``samples`` (step, member) against ``expected`` within Z SE."""
    averages = samples.mean("step")
    mean = float(averages.mean("member"))
    se = float(averages.std("member", ddof=1)) / math.sqrt(averages.sizes["member"])
    assert se < max_relative_se * max(abs(expected), 1.0), f"{what}: standard error {se} too large to test"
    assert abs(mean - expected) < Z * se, f"{what}: measured {mean:.5f} +- {se:.5f}, exact {expected:.5f}"


def _gamma_and_gaussian_checks(hist, n, window, max_relative_se=0.03):
    """E S, Var S (Gamma law) and E (sum x)^2 = N/beta at every beta of ``hist``."""
    for beta in hist.beta.values:
        s = hist.sum_r2.sel(beta=beta).isel(step=window)
        x = hist.sum_x.sel(beta=beta).isel(step=window)
        mean = theory.mean_sum_r2(n, beta)
        _check(s, mean, f"E sum|z|^2 at beta={beta}", max_relative_se)
        _check((s - mean) ** 2, theory.sum_r2_cumulant(n, beta, 2), f"Var sum|z|^2 at beta={beta}",
               3 * max_relative_se)
        _check(x**2, theory.var_sum_x(n, beta), f"Var sum x at beta={beta}", 3 * max_relative_se)


def test_metropolis_samples_the_exact_laws_at_several_temperatures(tmp_path):
    """N = 5, beta in {0.7, 2.5, 5}, 128 members, 800 sweeps with step_size 0.8; window 200-800."""
    ds = eq.create("coulomb_gas", particles=5, beta=[0.7, 2.5, 5.0], members=128, seed=11)
    hist = _run(tmp_path, "m", "metropolis", ds, 800, options={"step_size": 0.8})
    _gamma_and_gaussian_checks(hist, 5, slice(200, None))


def test_mala_samples_the_exact_laws(tmp_path):
    """N = 9, beta in {1.3, 3}, 96 members, 600 sweeps (default step_size 0.5); window 200-600, torch backend."""
    ds = eq.create("coulomb_gas", particles=9, beta=[1.3, 3.0], members=96, seed=12)
    hist = _run(tmp_path, "l", "mala", ds, 600, backend="torch", record={"sum_r2": 1, "sum_x": 1, "acceptance": 1})
    _gamma_and_gaussian_checks(hist, 9, slice(200, None))
    assert float(hist.acceptance.mean()) > 0.5  # the default step is a useful one


def test_kostlan_and_ginibre_at_beta_2(tmp_path):
    """N = 6 from the Ginibre start (exact), 128 members, 300 Metropolis sweeps, every record used:
    inside(s) against sum_k P(Gamma(k) < s), the density histogram against the binned Q(N, s)/pi,
    and the mean energy against that of 20000 eigenvalue sets of theory.ginibre (two-sample, Z SE of the difference).
    """
    n, radii, edges = 6, [0.5, 2.0, 4.0, 6.0, 9.0], [0.0, 1.0, 3.0, 5.0, 7.0, 10.0]
    ds = eq.create("coulomb_gas", particles=n, members=128, seed=13, start="ginibre", radii=radii, bins=edges)
    hist = _run(tmp_path, "k", "metropolis", ds, 300, record={"inside": 1, "density": 1, "energy": 1, "sum_r2": 1})
    for r, s in enumerate(radii):
        _check(hist.inside.isel(radius=r), float(theory.inside_mean(n, s)), f"inside({s})", 0.05)
    expected = theory.binned_density(n, edges)
    for k in range(len(edges) - 1):
        _check(hist.density.isel(radius_bin=k), float(expected[k]), f"density bin {k}", 0.05)
    _check(hist.sum_r2, n * (n + 1) / 2, "E sum|z|^2 = N (N + 1)/2")
    exact = observables.energy(position=theory.as_position(theory.ginibre(n, 20000, seed=1)))
    averages = hist.energy.mean("step")
    se = math.hypot(float(averages.std(ddof=1)) / math.sqrt(128), exact.std(ddof=1) / math.sqrt(exact.size))
    assert abs(float(averages.mean()) - exact.mean()) < Z * se, (float(averages.mean()), exact.mean(), se)


def test_two_particle_energy_at_every_beta(tmp_path):
    """N = 2: E[E] = 1/2 + 2/beta - (psi(beta/2 + 1) + ln(4/beta))/2; MALA, 256 members, window 100-400."""
    ds = eq.create("coulomb_gas", particles=2, beta=[1.0, 4.0], members=256, seed=14)
    hist = _run(tmp_path, "e", "mala", ds, 400, record={"energy": 1})
    for beta in (1.0, 4.0):
        _check(hist.energy.sel(beta=beta).isel(step=slice(100, None)), theory.two_particle_energy(beta),
               f"energy at beta={beta}")


def test_ginibre_sampler_obeys_kostlan():
    """20000 eigenvalue sets of 5 x 5 Ginibre matrices: S = sum |z|^2 has the Gamma(15) mean, variance
    and third cumulant, inside(s) the Kostlan mean and variance (Z SE, the SE of a variance from
    the fourth moment, of the third cumulant sqrt(6 kappa_2^3 / n + ...) estimated by 20 batches)."""
    n, count = 5, 20000
    z = theory.ginibre(n, count, seed=3)
    r2 = np.abs(z) ** 2
    s = r2.sum(-1)
    assert abs(s.mean() - 15) < Z * s.std() / math.sqrt(count)
    c = s - 15.0
    assert abs((c**2).mean() - 15) < Z * (c**2).std() / math.sqrt(count)
    batches = [np.mean((b - b.mean()) ** 3) for b in np.split(s, 20)]
    assert abs(np.mean(batches) - 30) < Z * np.std(batches, ddof=1) / math.sqrt(20)
    for threshold in (1.0, 3.0, 6.0):
        inside = (r2 < threshold).sum(-1)
        assert abs(inside.mean() - theory.inside_mean(n, threshold)) < Z * inside.std() / math.sqrt(count)
        assert abs(inside.var() / theory.inside_variance(n, threshold) - 1) < Z * math.sqrt(2 / count) * 1.5


def test_theory_closed_forms_agree_with_each_other():
    """beta = 2 reduces the Gamma law to Kostlan's; the density integrates to N; cumulants approach N^(2-p)."""
    for n in (2, 7, 30):
        assert theory.sum_r2_law(n, 2.0) == (n * (n + 1) / 2, 1.0)
        assert theory.mean_sum_r2(n, 2.0) == pytest.approx(sum(range(1, n + 1)))
        assert theory.inside_mean(n, 1e6) == pytest.approx(n)
        s = np.linspace(0, 4 * n + 40, 200001)
        assert np.trapezoid(theory.density(n, s), s) * math.pi == pytest.approx(n, rel=1e-6)
        assert theory.sum_r2_cumulant(n, 1.3, 1) == pytest.approx(theory.mean_sum_r2(n, 1.3))
    for beta in (1.0, 2.0, 4.0):
        for p in (2, 3, 4):
            ratio = theory.scaled_cumulant(4000, beta, p) / (theory.scaled_cumulant_limit(beta, p) * 4000.0 ** (2 - p))
            assert ratio == pytest.approx(1, abs=2e-3)
    assert theory.density(400, 100.0) == pytest.approx(theory.DROPLET_DENSITY, rel=1e-12)  # deep in the bulk


@pytest.mark.parametrize("as_torch", [False, True])
def test_observables_against_direct_formulas(as_torch):
    """energy against all pairs, inside and density against np.histogram of |z|^2, on random configurations."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(5)
    pos = rng.normal(size=(3, 4, 7, 2)) * 2
    arg = torch.from_numpy(pos) if as_torch else pos
    radii, edges = np.array([0.5, 4.0, 30.0]), np.array([0.0, 2.0, 5.0, 40.0])
    energy = np.asarray(observables.energy(position=arg))
    inside = np.asarray(observables.inside(position=arg, radii=torch.from_numpy(radii) if as_torch else radii))
    dens = np.asarray(observables.density(position=arg, bin_edges=torch.from_numpy(edges) if as_torch else edges))
    r2 = (pos**2).sum(-1)
    for index in np.ndindex(3, 4):
        direct = -np.log(pdist(pos[index])).sum() + 0.5 * r2[index].sum()
        assert energy[index] == pytest.approx(direct, rel=1e-12)
        assert inside[index].tolist() == [(r2[index] < s).sum() for s in radii]
        counts, _ = np.histogram(r2[index], bins=edges)
        np.testing.assert_allclose(dens[index], counts / (np.pi * np.diff(edges)), rtol=1e-14)
    assert np.asarray(observables.sum_x(position=arg)) == pytest.approx(pos[..., 0].sum(-1))


def test_given_and_ginibre_starts():
    z = theory.ginibre(4, 3, seed=2)
    ds = eq.create("coulomb_gas", position=z, beta=[1.0, 2.0], members=3)
    assert dict(ds.position.sizes) == {"member": 3, "beta": 2, "particle": 4, "component": 2}
    np.testing.assert_array_equal(ds.position.isel(beta=1).values, theory.as_position(z))
    one = eq.create("coulomb_gas", position=theory.as_position(z[0]), members=2)
    np.testing.assert_array_equal(one.position.isel(member=1).values, theory.as_position(z[0]))
    a = eq.create("coulomb_gas", particles=5, members=2, seed=4, start="ginibre", beta=[1.0, 3.0])
    b = eq.create("coulomb_gas", particles=5, members=2, seed=4, start="ginibre")
    np.testing.assert_array_equal(a.position.sel(beta=1.0).values, b.position.values)  # per member, not per beta
    assert not np.array_equal(a.position.isel(member=0).values, a.position.isel(member=1).values)
    r = eq.create("coulomb_gas", particles=50, members=4, seed=4).position.values
    assert np.max((r**2).sum(-1)) < 50  # the random start fills the droplet disk |z| < sqrt(N)


BAD = [
    ({"particles": 4, "beta": 0.0}, r"beta: expected values > 0"),
    ({"particles": 4, "beta": [-1.0, 2.0]}, r"beta: expected values > 0"),
    ({"particles": 1}, r"particles: expected an integer >= 2, got 1"),
    ({"particles": 3.5}, r"particles: expected an integer >= 2, got 3.5"),
    ({}, r"particles: required"),
    ({"particles": 4, "radii": [1.0, -0.5]}, r"radii: expected a 1-D array of finite squared radii >= 0"),
    ({"particles": 4, "bins": [0.0, 2.0, 1.0]}, r"bins: expected an integer >= 1 or at least 2 increasing"),
    ({"particles": 4, "bins": 0}, r"bins: expected an integer >= 1"),
    ({"position": np.zeros((4, 3))}, r"position: expected shape \(\.\.\., N, 2\)"),
    ({"position": np.random.default_rng(0).normal(size=(5, 4, 2)), "members": 3},
     r"position: expected shape \(4, 2\), \(3, 4, 2\)"),
    ({"position": np.arange(8.0).reshape(4, 2), "particles": 5}, r"position: expected 5 particles"),
    ({"position": np.zeros((3, 2))}, r"position: expected distinct particles"),
    ({"position": [[0.0, np.nan], [1.0, 1.0]]}, r"position: expected finite"),
    ({"particles": 4, "start": "grid"}, r"start: expected one of \['random', 'ginibre'\]"),
]


@pytest.mark.parametrize("kw,match", BAD)
def test_bad_inputs_are_named(kw, match):
    with pytest.raises(eq.SchemaError, match=match):
        eq.create("coulomb_gas", **kw)


def test_every_bad_input_at_once_and_before_anything_is_written(tmp_path):
    with pytest.raises(eq.SchemaError) as info:
        eq.create("coulomb_gas", particles=1, beta=-2.0, radii=[-1.0])
    assert {p.split(":")[0] for p in info.value.problems} == {"particles", "beta", "radii"}
    ds = eq.create("coulomb_gas", particles=3, members=2)
    for step_size in (0.0, float("inf")):
        refused = r"options\['step_size'\]: expected a finite number( > 0 \(trap lengths\))?, got (0.0|inf)"
        with pytest.raises(eq.SchemaError, match=refused):
            eq.run(ds, "mala", steps=2, store=tmp_path / "h.zarr", options={"step_size": step_size}, progress=False)
        assert not (tmp_path / "h.zarr").exists()
