"""Exact checks of the selu_map system against theory (Klambauer et al., NeurIPS 2017).

Tolerances, and where they come from:
- closed form vs adaptive quadrature (relative accuracy 1e-13): the mean within 1e-10 (1 + |mu~|),
  the variance within 1e-10 (nu~ + mu~^2): nu~ = E selu^2 - mu~^2 is a difference, so its error
  scales with the second moment, not with nu~ itself;
- torch vs NumPy in float64: 1e-12 on the same scales (different erfcx/ndtr implementations);
  float32 vs float64: 2e-5 relative (a few hundred float32 ulps, eps = 6e-8, through exp and erfcx);
- Jacobian vs central differences with step h = 1e-5: truncation h^2 |g'''| ~ 1e-10, rounding
  eps / h ~ 2e-11, so 1e-7 on scale 1 + |J| leaves a wide margin;
- the paper's Jacobian at (0, 1) is printed to 4 digits: within half a unit of the last one;
- the map iterated to residual r sits within about (r + d) / (1 - q) of the fixed point, q < 0.94 the
  spectral radius of J there and d = 50 ulps (1 + |x*|) the rounding of one evaluation of g;
- the network (Monte Carlo): independent members (own weights and inputs) give independent
  estimates; a member's mean over a window of layers is one draw, and the mean over M members
  is tested against the map within 4 standard errors of the member spread (Student t with
  M - 1 = 15 dof: a false alarm about once in a thousand per comparison; the seed is fixed). The map
  is the wide-network limit; measured here (n = 96, 32 inputs) the deep-layer t values of mu were
  -1.7, 0.5, 0.4, -2.6, -2.0 over seeds 7, 1, 2, 3, 4, and a width study (n = 32 to 256, 32 networks)
  found no departure beyond 2 standard errors.
"""
import numpy as np
import pytest
import torch

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems import selu_map
from eqflow.systems.selu_map import observables, operators, theory
from eqflow.systems.selu_map.moments import jacobian, selu_moments


def _points(n, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple(v) for v in np.column_stack([rng.uniform(-2, 2, n), rng.uniform(0.05, 5, n),
                                               rng.uniform(-2, 2, n), rng.uniform(0.05, 5, n)])]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_zero_one_is_the_fixed_point_at_omega_0_tau_1(backend, dtype):
    tol = 1e-15 if dtype == "float64" else 3e-7
    omega = np.array([0.0, 0.3, -2.0], dtype=dtype)  # with mu = 0, omega drops out: (0, 1) is fixed at tau = 1
    mu, nu, tau = (np.full(3, v, dtype=dtype) for v in (0.0, 1.0, 1.0))
    args = [torch.from_numpy(a) for a in (mu, nu, omega, tau)] if backend == "torch" else [mu, nu, omega, tau]
    m, v = selu_moments(*args)
    m, v = np.asarray(m), np.asarray(v)
    assert m.dtype == np.dtype(dtype) and v.dtype == np.dtype(dtype)
    np.testing.assert_allclose(m, 0.0, atol=tol)
    np.testing.assert_allclose(v, 1.0, atol=tol, rtol=0)
    assert theory.fixed_point(0.0, 1.0) == pytest.approx((0.0, 1.0), abs=1e-14)


@pytest.mark.parametrize("point", [*_points(24), (0.5, 400.0, 1.0, 2.0), (-1.0, 300.0, 3.0, 4.0), (2.0, 0.01, 3.0, 1.0),
                                   (-5.0, 2.0, 3.0, 10.0)])
def test_closed_form_matches_quadrature(point):
    """Eq. 4-5 against scipy.integrate.quad; nu tau up to 1200 (the textbook e^{2 s^2} form overflows there)."""
    mean, var = selu_moments(*point)
    ref_mean, ref_var = theory.quadrature_moments(*point)
    assert np.isfinite(mean) and np.isfinite(var)
    assert abs(mean - ref_mean) <= 1e-10 * (1 + abs(ref_mean))
    assert abs(var - ref_var) <= 1e-10 * (ref_var + ref_mean**2)


def test_torch_and_float32_agree_with_numpy_float64():
    mu, nu, omega, tau = (np.asarray(v) for v in zip(*_points(200, seed=1)))
    ref = selu_moments(mu, nu, omega, tau)
    scale = [np.abs(ref[0]) + 1, ref[1] + ref[0] ** 2]
    tensors = [torch.from_numpy(a) for a in (mu, nu, omega, tau)]
    for got, rtol in ((selu_moments(*tensors), 1e-12),
                      (selu_moments(*(a.astype(np.float32) for a in (mu, nu, omega, tau))), 2e-5),
                      (selu_moments(*(t.float() for t in tensors)), 2e-5)):
        for g, r, s in zip(got, ref, scale):
            assert np.all(np.abs(np.asarray(g, dtype=np.float64) - r) <= rtol * s)


@pytest.mark.parametrize("point", _points(12, seed=2))
def test_jacobian_matches_central_differences(point):
    mu, nu, omega, tau = point
    h = 1e-5
    exact = theory.jacobian_matrix(*point)
    fd = np.empty((2, 2))
    for col, (dm, dn) in enumerate(((h, 0.0), (0.0, h))):
        up, down = selu_moments(mu + dm, nu + dn, omega, tau), selu_moments(mu - dm, nu - dn, omega, tau)
        fd[:, col] = (np.asarray(up) - np.asarray(down)) / (2 * h)
    np.testing.assert_allclose(exact, fd, rtol=0, atol=1e-7 * (1 + np.abs(exact).max()))


def test_jacobian_at_the_fixed_point_is_the_papers_contraction():
    j = theory.jacobian_matrix(0.0, 1.0, 0.0, 1.0)
    np.testing.assert_allclose(j, theory.PAPER_JACOBIAN, atol=5e-5)
    norm = float(theory.spectral_norm(0.0, 1.0, 0.0, 1.0))
    assert abs(norm - theory.PAPER_SPECTRAL_NORM) < 5e-5 and norm < 1
    t = [torch.tensor(v, dtype=torch.float64) for v in (0.0, 1.0, 0.0, 1.0)]
    np.testing.assert_allclose([float(e) for e in jacobian(*t)], j.reshape(-1), atol=1e-15)


@pytest.mark.parametrize("backend,dtype", [("numpy", "float64"), ("torch", "float64"), ("numpy", "float32"),
                                           ("torch", "float32")])
def test_iterating_the_map_converges_to_the_root_solve(backend, dtype, tmp_path):
    """The paper's domain omega in [-0.1, 0.1], tau in [0.95, 1.1], mu in [-0.1, 0.1], nu in [0.8, 1.5], and beyond."""
    omegas, taus = [-0.1, 0.05, 0.1, 0.6], [0.95, 1.1, 1.5]
    ds = eq.create("selu_map", omega=omegas, tau=taus, mu=[-0.1, 0.1, 0.8], nu=[0.8, 1.5, 3.0], members=3,
                   dtype=dtype)
    stop, eps = (1e-13, 2.2e-16) if dtype == "float64" else (1e-5, 1.2e-7)
    hist = eq.run(ds, "map", steps=800, store=tmp_path / "h.zarr", progress=False, backend=backend,
                  stop=eq.stop.converged("residual", stop))
    assert (hist.stop_reason.values == "converged").all()
    final = eq.final_state(hist)
    for i, omega in enumerate(omegas):
        for j, tau in enumerate(taus):
            star = theory.fixed_point(omega, tau)
            # attracting: spectral radius q < 1 (the norm may exceed 1 far from (0, 1): 1.59 at omega 0.6, tau 1.5)
            q = np.abs(np.linalg.eigvals(theory.jacobian_matrix(*star, omega, tau))).max()
            assert q < 1
            for var, value in zip(("mu", "nu"), star):  # the stop residual and g's own rounding (50 ulps), / (1 - q)
                bound = (stop + 50 * eps * (1 + abs(value))) / (1 - q)
                np.testing.assert_allclose(final[var].values[:, i, j], value, atol=bound, rtol=0)


def _counting(monkeypatch):
    calls = {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        return selu_moments(*args, **kwargs)

    monkeypatch.setattr(operators, "selu_moments", counted)
    monkeypatch.setattr(observables, "selu_moments", counted)
    return calls


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_residual_costs_no_second_evaluation_and_equals_recomputing(dtype, tmp_path, monkeypatch):
    """'map' carries g(x): recording the residual and a converged rule cost nothing more (1 per step + 1 in
    init); an operator without the image ('network') pays one evaluation of the residual per step, shared by the
    record and the stop rule."""
    ds = eq.create("selu_map", omega=[0.0, 0.2], tau=1.2, mu=[0.7, -0.4], nu=[3.0, 0.4], members=2, samples=2,
                   units=2, dtype=dtype)
    calls, steps = _counting(monkeypatch), 12
    hist = eq.run(ds, "map", steps=steps, store=tmp_path / "m.zarr", progress=False, segment=4,
                  record={"residual": 1, "mu": 1, "nu": 1}, stop=eq.stop.converged("residual", 1e-30))
    assert calls["n"] == steps + 1
    calls["n"] = 0
    eq.run(ds, "network", steps=6, store=tmp_path / "n.zarr", progress=False, record={"residual": 1}, segment=3,
           stop=eq.stop.converged("residual", 1e-30))
    # the step-0 record, then per step the prediction and one residual (read by the stop rule and the record)
    assert calls["n"] == 1 + 2 * 6
    monkeypatch.undo()
    recomputed = observables.residual(mu=hist.mu.values, nu=hist.nu.values,
                                      omega=hist.omega.values.astype(dtype), tau=np.asarray(1.2, dtype))
    assert hist.residual.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(hist.residual.values, recomputed)
    mu_next, nu_next = selu_moments(hist.mu.values[:-1], hist.nu.values[:-1],
                                    hist.omega.values.astype(dtype), np.asarray(1.2, dtype))
    np.testing.assert_array_equal(hist.mu.values[1:], mu_next)  # the state moves to exactly g(state)
    np.testing.assert_array_equal(hist.nu.values[1:], nu_next)


def test_a_deep_selu_network_follows_the_map_to_its_fixed_point(tmp_path):
    members, layers, window = 16, 40, slice(20, None)
    omega, tau = 0.15, 1.25
    ds = eq.create("selu_map", omega=omega, tau=tau, mu=0.3, nu=1.6, members=members, samples=32, units=96, seed=7)
    hist = eq.run(ds, "network", steps=layers, store=tmp_path / "n.zarr", progress=False,
                  record={"mu": 1, "nu": 1, "map_mu": 1, "map_nu": 1})
    mu_star, nu_star = theory.fixed_point(omega, tau)
    for var, star in (("mu", mu_star), ("nu", nu_star)):
        net, pred = hist[var].values[:, :], hist[f"map_{var}"].values
        assert np.all(pred == pred[:, :1])  # one prediction for every member
        # layer 1 (independent Gaussian inputs) and the mean over the deep layers, member by member
        for d in ((net - pred)[1], (net - pred)[window].mean(axis=0)):
            se = d.std(ddof=1) / np.sqrt(members)
            assert abs(d.mean()) < 4 * se, (var, d.mean(), se)
        deep = net[window].mean(axis=0)
        # the map reaches its fixed point (q = 0.79 per layer: 1e-4 after 40 layers from 0.67 away)...
        assert float(hist[f"map_{var}"][-1, 0]) == pytest.approx(star, abs=1e-3)
        # ... and the deep layers of the network reach it too, within 4 standard errors plus what the
        # map itself still lacks over the window (the map's own mean distance from the fixed point there)
        gap = abs(pred[window].mean() - star)
        assert abs(deep.mean() - star) < 4 * deep.std(ddof=1) / np.sqrt(members) + gap


def test_bad_inputs_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(SchemaError) as err:
        eq.create("selu_map", omega=np.nan, tau=0.0, mu=np.nan, nu=[1.0, -1.0], members=2, dtype="float16")
    text = str(err.value)
    for piece in ("omega: expected finite values", "tau: expected values > 0", "mu: expected finite means",
                  "nu: expected finite variances > 0, got [-1.0]", "dtype: expected one of"):
        assert piece in text, piece
    with pytest.raises(SchemaError, match=r"samples, units: expected both 0 \(no network\) or both >= 2"):
        eq.create("selu_map", samples=1, units=4)
    with pytest.raises(SchemaError, match="nu: expected finite variances > 0, got"):
        eq.create("selu_map", nu=np.nan)
    ds = eq.create("selu_map", members=2, samples=2, units=2)
    for nu in (0.0, np.nan):
        bad = ds.copy(deep=True)
        bad["nu"][0] = nu
        for op in ("map", "network"):
            with pytest.raises(SchemaError, match="nu: expected finite variances > 0"):
                eq.run(bad, op, steps=3, store=tmp_path / "bad.zarr", progress=False)
            assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(SchemaError, match="sample: the operator 'network' needs a network of size >= 2, got 0"):
        eq.run(eq.create("selu_map"), "network", steps=3, store=tmp_path / "bad.zarr", progress=False)
    narrow = eq.create("selu_map", omega=[0.5, 3.0], tau=2.0, samples=4, units=4)
    with pytest.raises(SchemaError, match=r"tau: expected tau > omega\^2 / unit .* \(omega, tau\) = \[\(3.0, 2.0\)\]"):
        eq.run(narrow, "network", steps=3, store=tmp_path / "bad.zarr", progress=False)
    assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(ValueError, match="omega, tau: expected finite numbers with tau > 0"):
        theory.fixed_point(0.0, -1.0)


def test_second_moment_and_the_create_conventions():
    ds = selu_map.create(omega=[0.0, 0.1], tau=[1.0, 2.0], mu=[0.5, -0.5], nu=[2.0, 0.5], members=2, samples=3000,
                         units=2, seed=4)
    assert dict(ds.mu.sizes) == {"member": 2, "omega": 2, "tau": 2}
    np.testing.assert_array_equal(ds.mu.values[:, 1, 1], [0.5, -0.5])
    np.testing.assert_array_equal(observables.second_moment(mu=ds.mu.values, nu=ds.nu.values),
                                  ds.nu.values + ds.mu.values**2)
    x = ds.x.values[:, 0, 0]  # 6000 N(mu, nu) inputs per member: the sample mean within 4 standard errors
    assert np.all(np.abs(x.mean(axis=(-2, -1)) - [0.5, -0.5]) < 4 * np.sqrt(np.array([2.0, 0.5]) / 6000))


def test_edited_tau_is_named_at_run_before_anything_is_written(tmp_path):
    ds = eq.create("selu_map", tau=[1.0, 2.0])
    for tau in ([1.0, -1.0], [0.0, 2.0]):
        bad = ds.assign_coords(tau=("tau", tau, ds.tau.attrs))
        with pytest.raises(SchemaError, match=r"tau: expected values > 0 1, got \[" + str(tau[0])):
            eq.run(bad, "map", steps=2, store=tmp_path / "x.zarr", progress=False)
        assert not (tmp_path / "x.zarr").exists()
