"""Feedback spiking networks (kind "feedback_snn") against exact values (Xiao et al., NeurIPS 2021).

- one IF neuron with constant input: N[T] = floor(T I / V) exactly (:func:`theory.spike_count`);
- the network identities V N[T] = W (N[T] - s[T]) + T c - u[T] (IF) and its LIF form, exact to rounding;
- max |a[T] - a*| ~ 1/T for a random n = 200 network with ||W||_2 = 1, V = 2 (a* by the exact solver),
  and the LIF plateau proportional to 1 - lambda;
- the implicit gradient equals central finite differences of L(a*(theta)) (float64, exact a*) and
  autograd through a long unrolled fixed-point iteration;
- outcomes per member when an adjoint solve fails; reproducibility; named errors at create/run.
"""
import numpy as np
import pytest
import torch

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.ops.learning import cross_entropy_and_gradient
from eqflow.systems import feedback_snn
from eqflow.systems.feedback_snn import dynamics, implicit, theory

from conftest import assert_same_history

GROUPS = feedback_snn.GROUPS


def _ones(*shape):
    return np.ones(shape)


def _simulate_counts(feedback, input_weights, bias, inputs, threshold, leak, steps):
    """Spike counts (steps, S, n), and (u, s) at every step, from rest, NumPy float64."""
    current = dynamics.drive(input_weights, bias, inputs)
    u, s = np.zeros_like(current), np.zeros_like(current)
    counts, us, ss = [], [], []
    n = np.zeros_like(current)
    v, lam = np.float64(threshold), np.float64(leak)
    for _ in range(steps):
        u, s = dynamics.step(u, s, feedback, current, v, lam)
        n = n + s
        counts.append(n.copy())
        us.append(u.copy())
        ss.append(s.copy())
    return np.array(counts), np.array(us), np.array(ss), current


# --- single neuron: N[T] = floor(T I / V) -----------------------------------------------------------------


@pytest.mark.parametrize("threshold", [2.0, 1.0, 0.75])
def test_single_neuron_spike_count_is_floor_of_t_i_over_v(threshold):
    """Dyadic currents I = k V / 64 (every product exact in binary, ties at integer T I / V included) and
    random currents away from ties, T = 1..300: counts equal floor(T I / V) clipped to [0, T]."""
    rng = np.random.default_rng(7)
    dyadic = np.arange(-16, 81) / 64 * threshold
    random_i = rng.uniform(-0.5, 1.5, 200) * threshold
    steps = 300
    t = np.arange(1, steps + 1)[:, None]
    frac = (t * random_i / threshold) % 1
    far = np.all((frac > 1e-9) & (frac < 1 - 1e-9), axis=0)
    currents = np.concatenate([dyadic, random_i[far]])
    counts, *_ = _simulate_counts(np.zeros((1, 1)), np.ones((1, 1)), np.zeros(1), currents[:, None], threshold,
                                  1.0, steps)
    expected = theory.spike_count(currents[None, :], t, threshold)
    np.testing.assert_array_equal(counts[..., 0].astype(np.int64), expected)
    assert expected[-1].min() == 0 and expected[-1].max() == steps  # both clips are exercised


def test_integrate_operator_counts_match_theory(tmp_path):
    """Through eq.run (owned state recorded): one neuron per sample, no feedback, I in [-1, 3], V = 2."""
    currents = np.array([-1.0, 0.0, 0.3, 1.0, 1.7, 2.0, 3.0])
    ds = eq.create("feedback_snn", data=currents[:, None], feedback=np.zeros((1, 1)), input_weights=np.ones((1, 1)),
                   bias=np.zeros(1), threshold=2.0, members=2)
    hist = eq.run(ds, "integrate", steps=40, store=tmp_path / "n.zarr", progress=False,
                  record={"spike_count": 1, "firing_rate": 1})
    counts = hist.spike_count.isel(member=1, neuron=0).values  # (step, sample)
    expected = theory.spike_count(currents[None, :], np.arange(41)[:, None], 2.0)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(hist.firing_rate.isel(member=0, neuron=0, step=40).values, expected[40] / 40)


# --- network identities and convergence to a* ------------------------------------------------------------


def _network(n=200, m=10, samples=4, seed=0, norm=1.0):
    ds = eq.create("feedback_snn", neurons=n, data=np.random.default_rng(seed).uniform(0, 1, (samples, m)),
                   spectral_bound=norm, seed=seed)
    return {k: ds[k].values[0] for k in ("feedback", "input_weights", "bias")}, ds.data.values


def test_if_and_lif_identities_are_exact():
    """V N[T] = W (N[T] - s[T]) + T c - u[T] - (1 - lambda) sum_{t<T} u[t] (lambda = 1: IF)."""
    w, x = _network(n=50, samples=3)
    for leak in (1.0, 0.95):
        counts, us, ss, current = _simulate_counts(w["feedback"], w["input_weights"], w["bias"], x, 2.0, leak, 200)
        for t in (1, 17, 200):
            lhs = 2.0 * counts[t - 1]
            rhs = ((counts[t - 1] - ss[t - 1]) @ w["feedback"].T + t * current - us[t - 1]
                   - (1 - leak) * us[: t - 1].sum(axis=0))
            np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-9 * t)
        if leak == 1.0:
            e = theory.if_rate_error(us[-1], ss[-1], w["feedback"], 200, 2.0)
            a = counts[-1] / 200
            np.testing.assert_allclose(a, (a @ w["feedback"].T + current) / 2.0 - e, atol=1e-12)


def _errors(leak, times, n=200):
    w, x = _network(n=n)
    star = theory.fixed_point(w["feedback"], w["input_weights"], w["bias"], x, 2.0)
    counts, *_ = _simulate_counts(w["feedback"], w["input_weights"], w["bias"], x, 2.0, leak, max(times))
    return np.array([np.max(np.abs(counts[t - 1] / t - star)) for t in times]), star


def test_rates_converge_like_one_over_t():
    """IF, n = 200, ||W||_2 = 1, V_th = 2: log-log slope of max |a[T] - a*| over T in [30, 3000] is -1 +- 0.1."""
    times = np.unique(np.round(np.geomspace(30, 3000, 15)).astype(int))
    errors, star = _errors(1.0, times)
    inner = np.mean((star > 0) & (star < 1))
    assert 0.2 < inner < 0.9  # a network with interior, silent and saturated neurons
    slope = np.polyfit(np.log(times), np.log(errors), 1)[0]
    assert abs(slope + 1) < 0.1, (slope, errors)


def test_lif_error_plateaus_in_proportion_to_one_minus_leak():
    """LIF: the identity's (1 - lambda) mean(u) / V term does not decay with T: the error stops falling and
    scales with 1 - lambda (a tenfold smaller 1 - lambda gives a 5x-20x smaller plateau)."""
    times = [1000, 3000]
    e1, _ = _errors(0.9, times)
    e2, _ = _errors(0.99, times)
    assert 0.8 < e1[1] / e1[0] < 1.25 and 0.7 < e2[1] / e2[0] < 1.3  # a plateau, not 1/T (which would be 1/3)
    assert 5 < e1[1] / e2[1] < 20
    if_error, _ = _errors(1.0, times)
    assert e2[1] > 3 * if_error[1]


def test_error_bound_holds_and_fixed_point_is_exact():
    w, x = _network(n=60, samples=3)
    star = theory.fixed_point(w["feedback"], w["input_weights"], w["bias"], x, 2.0)
    current = x @ w["input_weights"].T + w["bias"]
    assert np.max(np.abs(theory.fixed_point_map(star, w["feedback"], current, 2.0) - star)) < 1e-14
    counts, *_ = _simulate_counts(w["feedback"], w["input_weights"], w["bias"], x, 2.0, 1.0, 100)
    for t in (10, 100):
        a = counts[t - 1] / t
        bound = theory.error_bound(a, w["feedback"], w["input_weights"], w["bias"], x, 2.0)
        assert np.all(np.linalg.norm(a - star, axis=-1) <= bound * (1 + 1e-12))


# --- implicit gradient -------------------------------------------------------------------------------------


def _tiny(seed):
    """A tiny float64 net (n = 5, m = 3, 4 samples, 3 classes) whose a* has no neuron within 0.02 of a kink."""
    rng = np.random.default_rng(seed)
    n, m, c, s = 5, 3, 3, 4
    w = rng.normal(size=(n, n))
    params = {"feedback": w * 1.2 / np.linalg.norm(w, 2), "input_weights": rng.normal(size=(n, m)),
              "bias": rng.normal(0.5, 0.5, size=n), "readout": rng.normal(size=(c, n)),
              "readout_bias": rng.normal(size=c)}
    x, y = rng.uniform(0, 1, (s, m)), rng.integers(0, c, s)
    return params, x, np.eye(c)[y]


def _loss_at_star(p, x, onehot):
    star = theory.fixed_point(p["feedback"], p["input_weights"], p["bias"], x, 2.0)
    return float(cross_entropy_and_gradient(star @ p["readout"].T + p["readout_bias"], onehot)[0]), star


def _smooth_tiny():
    for seed in range(100):
        p, x, onehot = _tiny(seed)
        _, star = _loss_at_star(p, x, onehot)
        z = (star @ p["feedback"].T + x @ p["input_weights"].T + p["bias"]) / 2.0
        inner = (z > 0) & (z < 1)
        if np.min(np.abs(np.concatenate([z.ravel(), z.ravel() - 1]))) > 0.02 and 0.3 < inner.mean() < 1:
            return p, x, onehot, star
    raise AssertionError("no smooth tiny network found")


@pytest.mark.parametrize("solver", ["broyden", "damped"])
def test_implicit_gradient_equals_central_differences(solver):
    p, x, onehot, star = _smooth_tiny()
    grads, loss, info = implicit.implicit_gradients(**p, inputs=x, onehot=onehot, rates=star,
                                                    threshold=np.float64(2.0), solver=solver, tol=1e-14,
                                                    max_iter=500, damping=0.8)
    assert bool(info["converged"]) and info["residual"] <= 1e-14
    h = 1e-6
    for name in GROUPS:
        fd = np.zeros_like(p[name])
        for index in np.ndindex(p[name].shape):
            plus = {**p, name: p[name].copy()}
            minus = {**p, name: p[name].copy()}
            plus[name][index] += h
            minus[name][index] -= h
            fd[index] = (_loss_at_star(plus, x, onehot)[0] - _loss_at_star(minus, x, onehot)[0]) / (2 * h)
        scale = np.max(np.abs(fd))
        assert scale > 1e-4, name  # every group has a gradient to check
        np.testing.assert_allclose(grads[name], fd, rtol=0, atol=1e-6 * scale, err_msg=name)


def test_implicit_gradient_matches_autograd_through_unrolled_iteration():
    """Autograd through K = 300 steps of a <- f(a) (contraction 0.6: the unrolled gradient is exact to 0.6^300)."""
    p, x, onehot, star = _smooth_tiny()
    grads, _, _ = implicit.implicit_gradients(**p, inputs=x, onehot=onehot, rates=star, threshold=np.float64(2.0),
                                              tol=1e-14, max_iter=500)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    xt, yt = torch.tensor(x), torch.tensor(onehot)
    a = torch.zeros(x.shape[0], p["feedback"].shape[0], dtype=torch.float64)
    for _ in range(300):
        a = torch.clamp((a @ t["feedback"].T + xt @ t["input_weights"].T + t["bias"]) / 2.0, 0, 1)
    scores = a @ t["readout"].T + t["readout_bias"]
    loss = -(yt * torch.log_softmax(scores, dim=-1)).sum() / x.shape[0]
    loss.backward()
    for name in GROUPS:
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=0,
                                   atol=1e-10 * float(t[name].grad.abs().max()), err_msg=name)


def test_adjoint_solvers_agree_batched_over_cells():
    """Broyden and damped iteration give the same adjoint for a stack of cells with different thresholds."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 6, 6))
    w = w / np.linalg.matrix_norm(w, ord=2)[:, None, None]
    v, d = rng.normal(size=(3, 4, 6)), (rng.uniform(size=(3, 4, 6)) < 0.7).astype(float)
    th = np.array([1.5, 2.0, 3.0])
    g1, it1, r1, ok1 = implicit.adjoint_solve(v, w, d, th, solver="broyden", tol=1e-13, max_iter=200)
    g2, it2, r2, ok2 = implicit.adjoint_solve(v, w, d, th, solver="damped", tol=1e-13, max_iter=400)
    assert ok1.all() and ok2.all() and np.all(r1 <= 1e-13) and np.all(it1 < it2)
    np.testing.assert_allclose(g1, g2, atol=1e-11)
    exact = np.stack([np.linalg.solve(np.eye(24) - np.kron(np.eye(4), w[k].T) @ np.diag(d[k].ravel() / th[k]),
                                      v[k].ravel()).reshape(4, 6) for k in range(3)])
    np.testing.assert_allclose(g1, exact, atol=1e-11)


# --- operators through eq.run --------------------------------------------------------------------------------


def _expansive_pair(**kw):
    """Two members: member 0 contractive (||W|| = 1), member 1 with ||W|| = 6 > V_th = 2 (allowed explicitly)."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(2, 8, 8))
    w = z / np.linalg.matrix_norm(z, ord=2)[:, None, None] * np.array([1.0, 6.0])[:, None, None]
    x, y = rng.uniform(0, 1, (20, 4)), rng.integers(0, 3, 20)
    return eq.create("feedback_snn", data=x, labels=y, feedback=w, spectral_bound=6.0, allow_expansive=True,
                     members=2, batch=8, time_steps=20, seed=2, **kw)


def test_a_member_whose_adjoint_fails_records_it_and_the_others_go_on(tmp_path):
    ds = _expansive_pair()
    hist = eq.run(ds, "train", steps=3, store=tmp_path / "f.zarr", progress=False,
                  options={"adjoint_max_iter": 40, "solver": "damped"},
                  record={"adjoint_iterations": 1, "adjoint_residual": 1, "batch_loss": 1})
    final = eq.final_state(hist)
    iters, res = hist.adjoint_iterations.values[1:], hist.adjoint_residual.values[1:]
    assert np.all(iters[:, 0] < 40) and np.all(res[:, 0] <= 1e-8)
    assert np.all(iters[:, 1] == 40) and np.all(res[:, 1] > 1e-8)
    for name in GROUPS:
        assert not np.array_equal(final[name].values[0], ds[name].values[0]), name  # member 0 trained
        np.testing.assert_array_equal(final[name].values[1], ds[name].values[1])  # member 1 skipped
    assert list(hist.stop_reason.values) == ["max_steps"] * 2

    stopped = eq.run(ds, "train", steps=3, store=tmp_path / "s.zarr", progress=False,
                     options={"adjoint_max_iter": 40, "solver": "damped", "adjoint_failure": "stop"},
                     record={"batch_loss": 1})
    assert list(stopped.stop_reason.values) == ["max_steps", "diverged"]
    assert int(stopped.stopped_at[1]) == 1


def test_training_is_reproducible_and_members_see_their_own_data(tmp_path):
    kw = dict(data=np.random.default_rng(0).uniform(0, 1, (30, 5)), labels=np.arange(30) % 3, neurons=10,
              time_steps=10, batch=6, members=2, seed=9)
    a = eq.run(eq.create("feedback_snn", **kw), "train", steps=4, store=tmp_path / "a.zarr", progress=False,
               record={"batch_loss": 1, "loss": 2, "feedback": 4})
    b = eq.run(eq.create("feedback_snn", **kw), "train", steps=4, store=tmp_path / "b.zarr", progress=False,
               record={"batch_loss": 1, "loss": 2, "feedback": 4}, chunks={"member": 1})
    assert_same_history(a, b)
    c = eq.run(eq.create("feedback_snn", **{**kw, "members": 2}), "train", steps=4, store=tmp_path / "c.zarr",
               progress=False, record={"batch_loss": 1, "loss": 2, "feedback": 4}, backend="torch")
    np.testing.assert_allclose(c.batch_loss.values, a.batch_loss.values, rtol=1e-10)
    # members share the initial weights only through the seed; each draws its own minibatches
    assert not np.allclose(a.batch_loss.values[1:, 0], a.batch_loss.values[1:, 1])
    assert np.all(np.linalg.matrix_norm(eq.final_state(a).feedback.values, ord=2) <= 1.0 + 1e-12)


def test_float32_networks_stay_float32_and_train_on_both_backends(tmp_path):
    """The adjoint tolerance is floored at 8 ulp, so float32 members converge (1e-8 is below float32's reach)."""
    kw = dict(data=np.random.default_rng(2).uniform(0, 1, (16, 4)), labels=np.arange(16) % 2, neurons=8,
              time_steps=10, batch=4, members=2, seed=4, dtype="float32")
    for backend in ("numpy", "torch"):
        ds = eq.create("feedback_snn", **kw)
        hist = eq.run(ds, "train", steps=3, store=tmp_path / f"{backend}.zarr", progress=False, backend=backend,
                      record={"adjoint_iterations": 1, "adjoint_residual": 1})
        final = eq.final_state(hist)
        assert all(final[k].dtype == np.float32 for k in GROUPS)
        assert np.all(hist.adjoint_iterations.values[1:] < 100)
        assert np.all(hist.adjoint_residual.values[1:] <= 8 * np.finfo(np.float32).eps)
        assert not np.array_equal(final.feedback.values, ds.feedback.values)


def test_sweeps_of_threshold_leak_and_time_steps_match_separate_runs(tmp_path):
    kw = dict(data=np.random.default_rng(1).uniform(0, 1, (12, 4)), labels=np.arange(12) % 2, neurons=6, batch=4,
              members=1, seed=5)
    swept = eq.run(eq.create("feedback_snn", threshold=[1.5, 2.0], time_steps=[5, 12], leak=[0.9, 1.0], **kw),
                   "train", steps=3, store=tmp_path / "s.zarr", progress=False, record={"batch_loss": 1, "loss": 3})
    one = eq.run(eq.create("feedback_snn", threshold=2.0, time_steps=5, leak=0.9, **kw), "train", steps=3,
                 store=tmp_path / "o.zarr", progress=False, record={"batch_loss": 1, "loss": 3})
    np.testing.assert_array_equal(swept.batch_loss.sel(threshold=2.0, time_steps=5, leak=0.9).values,
                                  one.batch_loss.values)
    np.testing.assert_array_equal(swept.loss.sel(threshold=2.0, time_steps=5, leak=0.9).values, one.loss.values)


@pytest.mark.slow
def test_digits_training_reaches_95_percent_held_out(tmp_path):
    """IF network, 128 neurons, T = 30, batch 64, 200 SGD steps (8.9 epochs of the 1437 training images),
    lr 0.1, momentum 0.9: >= 95 % of the 360 held-out digits (96.9 % measured; about 10 s on one CPU thread)."""
    ds = eq.create("feedback_snn", neurons=128, dataset="digits", time_steps=30, batch=64, learning_rate=0.1,
                   members=1, seed=1)
    hist = eq.run(ds, "train", steps=200, store=tmp_path / "d.zarr", progress=False, backend="torch",
                  record={"accuracy": 200, "adjoint_iterations": 1})
    assert float(hist.accuracy.isel(step_200=-1, member=0)) >= 0.95
    assert int(hist.adjoint_iterations.max()) < 100  # every adjoint solve converged


# --- named errors -------------------------------------------------------------------------------------------


def test_expansive_feedback_is_a_named_error_unless_allowed():
    w = 3.0 * np.eye(4)
    with pytest.raises(SchemaError, match=r"feedback: expected \|\|W\|\|_2 < threshold V_th = 2.*got \|\|W\|\|_2 = 3"):
        eq.create("feedback_snn", data=_ones(2, 3), feedback=w)
    with pytest.raises(SchemaError, match="spectral_bound: expected a value < threshold V_th = 1.5"):
        eq.create("feedback_snn", neurons=4, data=_ones(2, 3), threshold=[1.5, 2.0], spectral_bound=1.5)
    ds = eq.create("feedback_snn", data=_ones(2, 3), feedback=w, allow_expansive=True, spectral_bound=3.0)
    assert ds.feedback.shape == (1, 4, 4)


def test_create_from_sizes_alone_is_seeded_and_a_given_contractive_w_is_kept():
    a = eq.create("feedback_snn", neurons=10, inputs=3, samples=4, members=3, seed=8)
    b = eq.create("feedback_snn", neurons=10, inputs=3, samples=4, members=3, seed=8)
    c = eq.create("feedback_snn", neurons=10, inputs=3, samples=4, members=3, seed=9)
    same = all(np.array_equal(a[k].values, b[k].values) for k in [*GROUPS, "data"])
    assert same and not np.array_equal(a.feedback.values, c.feedback.values)
    assert a.data.shape == (4, 3) and 0 <= a.data.min() and a.data.max() < 1
    assert not np.array_equal(a.feedback.values[0], a.feedback.values[1])  # members start apart
    np.testing.assert_allclose(np.linalg.matrix_norm(a.feedback.values, ord=2), 1.0, rtol=1e-12)
    w = np.diag([1.5, -0.5, 0.25])
    ds = eq.create("feedback_snn", feedback=w, data=_ones(2, 2))
    assert float(ds.spectral_bound) == 1.5 and np.array_equal(ds.feedback.values[0], w)


@pytest.mark.parametrize("kwargs,match", [
    ({"neurons": 3}, "data: expected an array"),
    ({"neurons": 3, "data": np.ones(3)}, r"data: expected a finite 2-D array.*shape \(3,\)"),
    ({"neurons": 3, "data": _ones(2, 3), "labels": [0, 1, 2]}, r"labels: expected .* shape \(2,\)"),
    ({"neurons": 3, "data": _ones(2, 3), "time_steps": 2.5}, "time_steps: expected integers >= 1"),
    ({"neurons": 3, "data": _ones(2, 3), "leak": 1.5}, "leak: expected values <= 1"),
    ({"neurons": 3, "data": _ones(2, 3), "inputs": 4}, r"inputs: expected 3 \(the columns of data\), got 4"),
    ({"neurons": 3, "data": _ones(2, 3), "input_weights": _ones(3, 2)}, r"input_weights: expected .*\(3, 3\)"),
    ({"neurons": 3, "dataset": "mnist"}, "dataset: expected one of"),
    ({"neurons": 3, "data": _ones(2, 3), "dtype": "float16"}, "dtype: expected"),
])
def test_bad_inputs_are_named(kwargs, match):
    with pytest.raises(SchemaError, match=match):
        eq.create("feedback_snn", **kwargs)


def test_train_without_labels_or_with_bad_options_is_refused_before_writing(tmp_path):
    ds = eq.create("feedback_snn", neurons=3, data=_ones(4, 2))
    with pytest.raises(SchemaError, match="labels: the train operator needs class labels"):
        eq.run(ds, "train", steps=1, store=tmp_path / "x.zarr", progress=False)
    assert not (tmp_path / "x.zarr").exists()
    ds = eq.create("feedback_snn", neurons=3, data=_ones(4, 2), labels=[0, 1, 0, 1])
    with pytest.raises(SchemaError, match="options\\['solver'\\]: expected one of"):
        eq.run(ds, "train", steps=1, store=tmp_path / "y.zarr", progress=False, options={"solver": "newton"})
    assert not (tmp_path / "y.zarr").exists()
