"""Tests of eqflow.diagnostics against emcee, pymbar 4, ArviZ and the analytic AR(1) value."""

import logging
import warnings

import numpy as np
import pytest
import xarray as xr

from eqflow import diagnostics as diag

logging.getLogger("pymbar").setLevel(logging.ERROR)  # pymbar warns on import and per call


def ar1(shape, n_steps, phi, seed, start=None):
    """AR(1) x_t = phi x_{t-1} + e_t, unit innovations; stationary start unless ``start``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(tuple(shape) + (n_steps,))
    x = np.empty_like(noise)
    x[..., 0] = noise[..., 0] / np.sqrt(1 - phi**2) if start is None else start
    for t in range(1, n_steps):
        x[..., t] = phi * x[..., t - 1] + noise[..., t]
    return x


def as_da(x, dims, name="energy"):
    return xr.DataArray(x, dims=dims, name=name, attrs={"units": "kJ/mol"})


def flat_rows(x):
    return x.reshape(-1, x.shape[-1])


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


# ----------------------------------------------------------------- integrated time
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integrated_time_matches_emcee_per_series(seed):
    emcee = pytest.importorskip("emcee", reason="emcee is the oracle for integrated_time")
    x = ar1((2, 3), 1500, phi=0.8 + 0.05 * seed, seed=seed)
    tau = diag.integrated_time(as_da(x, ("temperature", "member", "step")))
    expected = [emcee.autocorr.integrated_time(row, c=5, tol=0)[0] for row in flat_rows(x)]
    assert tau.dims == ("temperature", "member")
    np.testing.assert_allclose(tau.values.ravel(), expected, rtol=1e-10)
    assert tau.attrs["units"] == "1" and tau.coords["reliable"].dtype == bool


@pytest.mark.parametrize("c", [5.0, 3.0])
def test_integrated_time_averages_acf_over_chains_like_emcee_walkers(c):
    emcee = pytest.importorskip("emcee", reason="emcee is the oracle for integrated_time")
    x = ar1((2, 6), 800, phi=0.9, seed=11)
    tau = diag.integrated_time(as_da(x, ("temperature", "member", "step")), chain_dim="member", c=c)
    expected = [emcee.autocorr.integrated_time(chains.T, c=c, tol=0)[0] for chains in x]
    assert tau.dims == ("temperature",)
    np.testing.assert_allclose(tau.values, expected, rtol=1e-10)


def test_integrated_time_short_chain_returns_value_and_flags_it():
    emcee = pytest.importorskip("emcee", reason="emcee is the oracle for integrated_time")
    x = ar1((3,), 40, phi=0.95, seed=5)  # far shorter than 50 tau: emcee would raise
    tau = diag.integrated_time(as_da(x, ("member", "step")))
    expected = [emcee.autocorr.integrated_time(row, quiet=True)[0] for row in x]
    np.testing.assert_allclose(tau.values, expected, rtol=1e-10)
    assert np.isfinite(tau.values).all() and not tau.coords["reliable"].values.any()


def test_integrated_time_matches_ar1_analytic_value():
    # tau = (1 + phi)/(1 - phi) = 39 for phi = 0.95.  Derived tolerance: with Sokal's
    # window M ~ 5 tau = 195 one chain's estimate has relative sd sqrt(2 (2M + 1)/T)
    # = sqrt(2 * 391 / 20000) ~ 20% (Sokal 1997, eq. 3.19), so the mean of 64 independent
    # chains has sd ~ 2.5%.  Biases: subtracting the sample mean lowers each rho(t) by
    # ~ tau/T, i.e. tau by ~ 2 M tau / T ~ 2%; truncating at M loses 2 phi^(M+1)/(1 - phi)
    # ~ 1e-3 (negligible).  Bound: 4 sd + 2% = 12%.
    phi = 0.95
    x = ar1((64,), 20000, phi=phi, seed=2024)
    tau = diag.integrated_time(as_da(x, ("member", "step")))
    assert abs(float(tau.mean()) / ((1 + phi) / (1 - phi)) - 1) < 0.12
    assert tau.coords["reliable"].values.all()  # T = 20000 > 50 * 39


def test_statistical_inefficiency_matches_ar1_analytic_value():
    # g = 1 + 2 sum_t phi^t = (1 + phi)/(1 - phi) = 9 for phi = 0.8.  The sum stops at
    # the first C(t) <= 0, t* ~ 15-40 lags (rho(t) falls below its noise sqrt(g/T) ~ 0.05
    # near t ~ 14), so one chain has relative sd ~ sqrt(2 (2 t* + 1)/T) ~ sqrt(2 * 61 /
    # 4000) ~ 17% and the mean of 48 chains ~ 2.5%.  Biases: mean subtraction ~ -2 t* g/T
    # ~ -1%, truncation -2 phi^(t*+1)/(1 - phi)/g ~ -1%.  Bound: 4 sd + 2% = 12%.
    x = ar1((48,), 4000, phi=0.8, seed=99)
    g = diag.statistical_inefficiency(as_da(x, ("member", "step")))
    assert abs(float(g.mean()) / 9.0 - 1) < 0.12


# ------------------------------------------------------- statistical inefficiency
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_statistical_inefficiency_matches_pymbar_fft(seed):
    pytest.importorskip("statsmodels", reason="pymbar's fft=True estimator needs statsmodels")
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    x = ar1((2, 3), 1000 + 37 * seed, phi=0.9, seed=seed, start=15.0)
    g = diag.statistical_inefficiency(as_da(x, ("temperature", "member", "step")))
    expected = [timeseries.statistical_inefficiency(row, fft=True) for row in flat_rows(x)]
    np.testing.assert_allclose(g.values.ravel(), expected, rtol=1e-10)
    assert g.dims == ("temperature", "member") and g.attrs["units"] == "1"


def test_statistical_inefficiency_matches_pymbar_direct_loop():
    # pymbar's default (non-FFT) loop differs only by omitting lag T-1 when C(t) never
    # crosses zero, which does not happen for these series; no statsmodels needed.
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    x = ar1((6,), 700, phi=0.7, seed=8)
    g = diag.statistical_inefficiency(as_da(x, ("member", "step")))
    np.testing.assert_allclose(g.values, [timeseries.statistical_inefficiency(r) for r in x], rtol=1e-10)


def test_statistical_inefficiency_constant_series_is_one():
    g = diag.statistical_inefficiency(as_da(np.full((2, 50), 4.0), ("member", "step")))
    np.testing.assert_array_equal(g.values, 1.0)


# ---------------------------------------------------------- equilibration detection
def transient_ensemble(seed, n_steps=1200):
    """AR(1) ensembles started far from equilibrium, plus one step change and white noise."""
    x = ar1((2, 4), n_steps, phi=0.9, seed=seed, start=25.0)
    x[1, 0, : n_steps // 3] += 6.0  # a shifted first third
    x[1, 1] = np.random.default_rng(seed).standard_normal(n_steps)
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detect_equilibration_exhaustive_matches_pymbar_exactly(seed):
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    x = transient_ensemble(seed)
    result = diag.detect_equilibration(as_da(x, ("temperature", "member", "step")))
    expected = np.array([timeseries.detect_equilibration(r, fast=False) for r in flat_rows(x)], float)
    np.testing.assert_array_equal(result.t0.values.ravel(), expected[:, 0])
    np.testing.assert_array_equal(result.g.values.ravel(), expected[:, 1])  # pymbar's float32
    np.testing.assert_array_equal(result.n_eff.values.ravel(), expected[:, 2])
    assert result.t0.dtype == np.int64 and result.n_eff.attrs["units"] == "1"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detect_equilibration_binary_matches_pymbar_binary_search(seed):
    pytest.importorskip("statsmodels", reason="pymbar's binary search needs statsmodels")
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    x = transient_ensemble(seed, n_steps=3000)
    result = diag.detect_equilibration(as_da(x, ("temperature", "member", "step")), method="binary")
    expected = np.array([timeseries.detect_equilibration_binary_search(r) for r in flat_rows(x)])
    np.testing.assert_array_equal(result.t0.values.ravel(), expected[:, 0])
    np.testing.assert_allclose(result.g.values.ravel(), expected[:, 1], rtol=1e-10)
    np.testing.assert_allclose(result.n_eff.values.ravel(), expected[:, 2], rtol=1e-10)


def test_binary_search_walks_windows_like_pymbar(monkeypatch):
    # Real g(t0) landscapes almost never put the maximum on a window's last node; drive
    # both searches with the same random N_eff landscape to cover every window update.
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    n_steps = 5000
    for seed in range(40):
        neff = np.random.default_rng(seed).uniform(50, 100, n_steps)

        def fake_g(t0, neff=neff):
            return (n_steps - np.asarray(t0) + 1) / neff[np.asarray(t0)]

        monkeypatch.setattr(timeseries, "statistical_inefficiency_fft",
                            lambda a, mintime=3: float(fake_g(n_steps - len(a))))
        monkeypatch.setattr(diag._Suffixes, "inefficiency",
                            lambda self, rows, starts, include_last_lag, n_lags=256: fake_g(starts))
        x = np.random.default_rng(seed).standard_normal(n_steps)
        ours = diag.detect_equilibration(as_da(x, ("step",)), method="binary")
        t0, g, n_eff = timeseries.detect_equilibration_binary_search(x)
        assert (int(ours.t0), float(ours.g), float(ours.n_eff)) == (t0, g, n_eff)


def _group_maxima(t0, groups):
    want = np.full(groups.max() + 1, -1)
    np.maximum.at(want, groups, t0)
    return want


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_latest_equilibration_is_each_groups_largest_binary_t0(seed):
    """The search that drops rows which cannot hold their group's largest t0 gives exactly the
    largest t0 of the full binary search, per group: transients of different lengths, a constant
    row, a white-noise row, groups of one row and a group without rows."""
    rng = np.random.default_rng(seed)
    x = ar1((12,), 3000, phi=0.95, seed=seed, start=0.0) + rng.uniform(0, 40, (12, 1)) * np.exp(
        -np.arange(3000) / rng.uniform(50, 900, (12, 1)))
    x[3] = 1.5  # constant: t0 = 0
    x[7] = rng.standard_normal(3000)
    full = diag.detect_equilibration(as_da(x, ("member", "step")), method="binary").t0.values
    for groups in (np.zeros(12, int), np.arange(12) % 4, rng.permutation(np.arange(12) % 5), np.arange(12),
                   np.r_[np.zeros(6, int), np.full(6, 2)]):
        np.testing.assert_array_equal(diag.latest_equilibration(x, groups), _group_maxima(full, groups))


def test_latest_equilibration_on_random_landscapes(monkeypatch):
    """Random N_eff landscapes (as above) put each row's maximum anywhere, so rows are dropped at
    every level of the search: the group maxima still equal the full search's."""
    n_rows, n_steps = 24, 5000
    for seed in range(25):
        rng = np.random.default_rng(seed)
        neff = rng.uniform(50, 100, (n_rows, n_steps))
        monkeypatch.setattr(diag._Suffixes, "inefficiency",
                            lambda self, rows, starts, include_last_lag, neff=neff:
                            (n_steps - starts + 1) / neff[rows, starts])
        x = rng.standard_normal((n_rows, n_steps))
        full = diag.detect_equilibration(as_da(x, ("member", "step")), method="binary").t0.values
        groups = rng.integers(0, 4, n_rows)
        np.testing.assert_array_equal(diag.latest_equilibration(x, groups), _group_maxima(full, groups))


def test_detect_equilibration_edge_cases_match_pymbar():
    timeseries = pytest.importorskip("pymbar.timeseries", reason="pymbar is the oracle")
    rng = np.random.default_rng(4)
    rows = [rng.standard_normal(3), np.round(3 * rng.standard_normal(40)),  # ties, short
            np.r_[rng.standard_normal(30), np.full(10, 2.0)],  # constant tail: pymbar's g = T-t+1
            np.r_[5 + rng.standard_normal(20), rng.standard_normal(60)]]
    for row in rows:
        result = diag.detect_equilibration(as_da(row, ("step",)))
        expected = timeseries.detect_equilibration(row, fast=False)
        assert (int(result.t0), float(result.g), float(result.n_eff)) == tuple(map(float, expected))
    constant = diag.detect_equilibration(as_da(np.full(30, 2.0), ("step",)))
    assert (int(constant.t0), float(constant.g), float(constant.n_eff)) == (0, 1.0, 1.0)


def test_detect_equilibration_discards_a_slow_transient():
    # offset 20 exp(-t/300) on noise of sd 2.3: still 3 sd at t = 300, 0.01 sd at t = 2400
    x = ar1((6,), 4000, phi=0.9, seed=6) + 20 * np.exp(-np.arange(4000) / 300)
    t0 = diag.detect_equilibration(as_da(x, ("member", "step"))).t0.values
    assert ((t0 > 300) & (t0 < 2400)).all()


# ------------------------------------------------------------------- R-hat and ESS
CHAIN_CASES = [(4, 500, 0.5, 0), (3, 201, 0.9, 1), (2, 64, 0.95, 2), (5, 9, 0.3, 3)]


@pytest.mark.parametrize("n_chains, n_steps, phi, seed", CHAIN_CASES)
def test_rhat_and_ess_match_arviz(n_chains, n_steps, phi, seed):
    az = pytest.importorskip("arviz", reason="ArviZ is the oracle for rhat/ess")
    x = ar1((2, n_chains), n_steps, phi=phi, seed=seed)
    x[1] += np.linspace(0, 1.5, n_chains)[:, None]  # unmixed chains in the second temperature
    if seed == 3:
        x = np.round(x)  # ties in the ranks and in the quantile indicators
    da = as_da(x, ("temperature", "member", "step"))
    for ours, oracle in [
        (diag.rhat(da), lambda c: az.rhat(c, method="rank")),
        (diag.ess(da, method="bulk"), lambda c: az.ess(c, method="bulk")),
        (diag.ess(da, method="tail"), lambda c: az.ess(c, method="tail", prob=(0.05, 0.95))),
    ]:
        expected = [quiet(oracle, chains) for chains in x]
        assert ours.dims == ("temperature",) and ours.attrs["units"] == "1"
        np.testing.assert_allclose(ours.values, expected, rtol=1e-8)


def test_ess_single_chain_matches_arviz():
    az = pytest.importorskip("arviz", reason="ArviZ is the oracle for ess")
    x = ar1((3,), 300, phi=0.6, seed=12)
    ours = diag.ess(as_da(x, ("temperature", "step")), chain_dim=None)
    np.testing.assert_allclose(ours.values, [quiet(az.ess, r[None], method="bulk") for r in x], rtol=1e-8)


# ------------------------------------------------------------------------ laziness
def test_dask_input_stays_lazy_and_equals_eager():
    dask_array = pytest.importorskip("dask.array", reason="laziness is tested on dask input")
    x = ar1((2, 4), 600, phi=0.9, seed=21, start=10.0)
    da = as_da(x, ("temperature", "member", "step"))
    lazy_da = da.chunk({"temperature": 1, "step": 200})  # the step dim is rechunked inside
    calls = [
        lambda d: diag.integrated_time(d),
        lambda d: diag.integrated_time(d, chain_dim="member"),
        lambda d: diag.statistical_inefficiency(d),
        lambda d: diag.rhat(d),
        lambda d: diag.ess(d, method="tail"),
        lambda d: diag.detect_equilibration(d).n_eff,
        lambda d: diag.detect_equilibration(d, method="binary").t0,
    ]
    for call in calls:
        lazy, eager = call(lazy_da), call(da)
        assert isinstance(lazy.data, dask_array.Array)
        np.testing.assert_array_equal(lazy.compute().values, eager.values)


def test_pint_quantified_input_gives_the_same_dimensionless_result():
    pytest.importorskip("pint_xarray", reason="pint-backed DataArrays need pint-xarray")
    da = as_da(ar1((3,), 400, phi=0.8, seed=2, start=9.0), ("member", "step"))
    quantified = da.pint.quantify()
    for call in (diag.statistical_inefficiency, lambda d: diag.detect_equilibration(d).g,
                 lambda d: diag.ess(d, chain_dim=None)):
        result = call(quantified)
        assert not hasattr(result.data, "magnitude") and result.attrs["units"] == "1"
        np.testing.assert_array_equal(result.values, call(da).values)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call", [
    lambda d: diag.integrated_time(d, dim="time"),
    lambda d: diag.statistical_inefficiency(d, dim="time"),
    lambda d: diag.detect_equilibration(d, dim="time"),
    lambda d: diag.rhat(d, dim="time"),
    lambda d: diag.ess(d, chain_dim="walker"),
])
def test_missing_dimension_is_a_clear_error(call):
    da = as_da(np.zeros((2, 10)), ("member", "step"))
    with pytest.raises(ValueError, match=r"variable 'energy' has no dimension '(time|walker)'"):
        call(da)


@pytest.mark.parametrize("call, n_steps, minimum", [
    (lambda d: diag.detect_equilibration(d), 2, 3),
    (lambda d: diag.statistical_inefficiency(d), 1, 2),
    (lambda d: diag.rhat(d), 3, 4),
    (lambda d: diag.ess(d, method="tail"), 3, 4),
])
def test_too_short_series_is_a_clear_error(call, n_steps, minimum):
    da = as_da(np.random.default_rng(0).standard_normal((2, n_steps)), ("member", "step"))
    with pytest.raises(ValueError, match=rf"'energy' needs at least {minimum} entries along 'step', got {n_steps}"):
        call(da)


def test_rhat_needs_two_chains_and_valid_methods():
    da = as_da(np.random.default_rng(0).standard_normal((1, 50)), ("member", "step"))
    with pytest.raises(ValueError, match=r"at least 2 entries along 'member', got 1"):
        diag.rhat(da)
    with pytest.raises(ValueError, match="method must be 'bulk' or 'tail'"):
        diag.ess(da, method="mean")
    with pytest.raises(ValueError, match="method must be 'exhaustive' or 'binary'"):
        diag.detect_equilibration(da, method="fast")
