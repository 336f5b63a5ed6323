"""Equilibrium propagation (kind "equilibrium_propagation") against exact values (Laborieux & Zenke, ICLR 2024).

- the exact gradient (implicit differentiation, a batched linear solve) equals torch autograd through a
  long unrolled relaxation and central finite differences of the loss at Newton fixed points (theory);
- on a symmetric network the one-sided, symmetric and holomorphic estimators' errors against it fall as
  beta, beta^2 and beta^N when beta halves (N = 3 and 4); on an asymmetric network each estimator tends
  to the EP limit -ds/dbeta (theory.ep_limit) with the same orders, and its error against the gradient
  does not vanish;
- the homeostatic loss averages to ||J - J^T||_F^2 / (2 D) (5 standard errors, the per-probe standard
  deviation from theory) and its gradient is autograd's; the symmetry measure against closed forms;
- free relaxes to the Newton fixed point at the linear rate max |eig(I + dt (M D_s - I))| per step;
- train lowers the loss on a tiny case (and homeostasis raises the symmetry); errors are named.

Tolerances. Fixed points are converged to rounding (contraction, 200 iterations), so the estimator
errors are the truncation errors of the series in beta (theory); the log2 ratio of errors for halving
beta is checked within 0.25 of the order at beta <= 0.04 (0.1 on the asymmetric net), where the next
term is below a few percent.
"""
import numpy as np
import pytest
import torch

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems import equilibrium_propagation as ep
from eqflow.systems.equilibrium_propagation import network, theory
from eqflow.systems.equilibrium_propagation.operators import estimate

RNG = np.random.default_rng(20240)
X = RNG.uniform(0, 1, (6, 4))
Y = np.array([0, 1, 2, 0, 1, 2])
LONG = {"time_steps": np.array(200.0), "nudge_steps": np.array(200.0), "dt": np.array(1.0)}


def _net(symmetric, seed=1, gain=1.0):
    ds = ep.create((5, 3), data=X, labels=Y, symmetric=symmetric, gain=gain, seed=seed)
    return {k: ds[k].values[0] for k in network.GROUPS}, ds.layer.values


def _grads(weights, layer, estimator, beta, points=4):
    return estimate(weights=weights, inputs=X, onehot=np.eye(3)[Y], layer=layer, beta=np.array(beta),
                    points=np.array(float(points)), estimator=estimator, **LONG)


def _flat(grads):
    return np.concatenate([grads[k].ravel() for k in network.GROUPS])


def test_implicit_gradient_equals_autograd_and_finite_differences():
    weights, layer = _net(symmetric=False)
    exact = _flat(_grads(weights, layer, "implicit", 0.1)[0])
    # autograd through 200 unrolled steps (the relaxation contracts, so this is the fixed point's gradient)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    allowed = network.masks(layer, X.shape[1])
    out = torch.tensor(network.output_mask(layer))
    target = torch.tensor(network.targets(np.eye(3)[Y], network.output_mask(layer)))
    inputs = torch.tensor(X)
    m = params["feedforward"] + params["feedback"]
    current = inputs @ params["input_weights"].T + params["bias"]
    u = torch.zeros_like(current)
    for _ in range(200):
        u = u + network.vector_field(u, m, current)
    network.squared_error(torch.tanh(u), target, out).backward()
    auto = np.concatenate([np.where(allowed[k], params[k].grad.numpy(), 0).ravel() for k in network.GROUPS])
    np.testing.assert_allclose(exact, auto, rtol=1e-10, atol=1e-13)
    # central differences of the loss at Newton fixed points, on a few entries of each group
    h = 1e-6
    for name in network.GROUPS:
        for index in list(zip(*np.nonzero(allowed[name])))[:3]:
            plus, minus = ({**weights, name: weights[name].copy()} for _ in range(2))
            plus[name][index] += h
            minus[name][index] -= h
            fd = (_loss(plus, layer) - _loss(minus, layer)) / (2 * h)
            got = _grads(weights, layer, "implicit", 0.1)[0][name][index]
            assert abs(got - fd) < 1e-8, (name, index, got, fd)


def _loss(weights, layer):
    out = network.output_mask(layer)
    return theory.loss(*(weights[k] for k in network.GROUPS), X, network.targets(np.eye(3)[Y], out), out)


@pytest.mark.parametrize("estimator,points", [("one_sided", 2), ("symmetric", 2), ("holomorphic", 3),
                                              ("holomorphic", 4)])
def test_estimator_errors_shrink_as_beta_to_the_order_on_a_symmetric_network(estimator, points):
    weights, layer = _net(symmetric=True)
    assert network.jacobian_symmetry(weights["feedforward"] + weights["feedback"]) == pytest.approx(1.0, abs=1e-15)
    exact = _flat(_grads(weights, layer, "implicit", 0.1)[0])
    betas = [0.04, 0.02, 0.01, 0.005]
    errors = np.array([np.linalg.norm(_flat(_grads(weights, layer, estimator, b, points)[0]) - exact)
                       for b in betas]) / np.linalg.norm(exact)
    order = theory.error_order(estimator, points)
    slopes = np.log2(errors[:-1] / errors[1:])
    np.testing.assert_allclose(slopes, order, atol=0.25, err_msg=f"errors {errors}")
    assert errors[-1] < 0.02


@pytest.mark.parametrize("estimator,points", [("one_sided", 2), ("symmetric", 2), ("holomorphic", 4)])
def test_on_asymmetric_weights_estimators_converge_to_the_ep_limit_not_the_gradient(estimator, points):
    weights, layer = _net(symmetric=False)
    matrix = weights["feedforward"] + weights["feedback"]
    out = network.output_mask(layer)
    target = network.targets(np.eye(3)[Y], out)
    u = theory.fixed_point(matrix, X @ weights["input_weights"].T + weights["bias"])
    limit = _flat(network.parameter_gradients(-theory.ep_limit(matrix, u, target, out), np.tanh(u), X,
                                              network.masks(layer, X.shape[1])))
    exact = _flat(_grads(weights, layer, "implicit", 0.1)[0])
    betas = [0.1, 0.05, 0.025]
    estimates = [_flat(_grads(weights, layer, estimator, b, points)[0]) for b in betas]
    to_limit = np.array([np.linalg.norm(e - limit) for e in estimates])
    np.testing.assert_allclose(np.log2(to_limit[:-1] / to_limit[1:]), theory.error_order(estimator, points), atol=0.25)
    bias = np.linalg.norm(limit - exact) / np.linalg.norm(exact)
    assert bias > 0.1  # without symmetry EP is biased: its error against the gradient tends to this
    assert np.linalg.norm(estimates[-1] - exact) / np.linalg.norm(exact) == pytest.approx(bias, rel=0.05)


def _rotated(seed, degrees):
    """A network whose feedback is W_ff^T turned by ``degrees`` towards an independent draw of the same norm
    (the paper's ``rotate``: W_fb = cos(a) W_ff^T + sin(a) R); gain 0.5, where every phase contracts."""
    weights, layer = _net(symmetric=True, seed=seed, gain=0.5)
    allowed = network.masks(layer, X.shape[1])["feedback"]
    r = np.where(allowed, np.random.default_rng(seed).standard_normal(allowed.shape), 0.0)
    r *= np.linalg.norm(weights["feedback"]) / np.linalg.norm(r)
    a = np.deg2rad(degrees)
    return {**weights, "feedback": np.cos(a) * weights["feedforward"].T + np.sin(a) * r}, layer


def test_holomorphic_beats_one_sided_at_the_same_beta_on_asymmetric_weights():
    """Gradient quality, the direct claim of Laborieux & Zenke (ICLR 2024): without symmetry the error of an
    estimator against the gradient is the asymmetry bias of the EP limit plus its finite-beta bias, O(beta)
    one-sided and O(beta^N) holomorphic. At beta -> 0 both share the asymmetry bias (equal errors); at
    beta = 0.25, 0.5 and 1 the holomorphic estimator (N = 4) has the smaller error, averaged over 4 seeds
    (weights turned 20 degrees from symmetry, Jacobian symmetry about 0.94; mean errors 0.30 vs 0.23,
    0.45 vs 0.30, 0.93 vs 0.66 one-sided vs holomorphic, 0.23 for both at beta = 0.01)."""
    errors = []  # (seed, beta, estimator)
    for seed in range(4):
        weights, layer = _rotated(seed, 20.0)
        assert 0.9 < network.jacobian_symmetry(weights["feedforward"] + weights["feedback"]) < 0.97
        exact = _flat(_grads(weights, layer, "implicit", 0.1)[0])
        errors.append([[np.linalg.norm(_flat(_grads(weights, layer, e, b)[0]) - exact) / np.linalg.norm(exact)
                        for e in ("one_sided", "holomorphic")] for b in (0.01, 0.25, 0.5, 1.0)])
    mean = np.mean(errors, axis=0)
    assert mean[0, 0] > 0.1  # the asymmetry bias: EP does not tend to the gradient
    assert mean[0, 1] == pytest.approx(mean[0, 0], rel=0.05)  # which hEP shares (its finite-beta bias is gone)
    assert np.all(mean[1:, 1] < mean[1:, 0]), mean
    # at beta <= 0.5 the one-sided estimate moves from the EP limit's error more than twice as far as hEP's
    assert np.all(mean[1:3, 0] - mean[0, 0] > 2 * np.abs(mean[1:3, 1] - mean[0, 1])), mean


def test_homeostatic_loss_matches_its_expectation_and_gradient():
    weights, _ = _net(symmetric=False, seed=4)
    matrix = weights["feedforward"] + weights["feedback"]
    d, probes = matrix.shape[0], 20000
    noise = RNG.standard_normal((probes, d))
    value, grad = network.homeostasis(matrix, noise)
    mean, sd = theory.homeostatic_mean(matrix), theory.homeostatic_std(matrix)
    assert mean > 0 and abs(value - mean) < 5 * sd / np.sqrt(probes), (value, mean, sd)
    m = torch.tensor(matrix, requires_grad=True)
    e = torch.tensor(noise[:7])
    j = lambda v: v @ m.T - v  # noqa: E731  (J v for row vectors)
    loss = torch.sum(j(e) ** 2 - e * j(j(e))) / (d * 7)
    loss.backward()
    np.testing.assert_allclose(network.homeostasis(matrix, noise[:7])[1], m.grad.numpy(), rtol=1e-12, atol=1e-14)
    symmetric, _ = _net(symmetric=True)
    zero, _ = network.homeostasis(symmetric["feedforward"] + symmetric["feedback"], noise)
    assert zero == pytest.approx(0, abs=1e-12)


def test_jacobian_symmetry_against_closed_forms():
    weights, _ = _net(symmetric=False)
    matrix = weights["feedforward"] + weights["feedback"]
    assert network.jacobian_symmetry(matrix) == pytest.approx(theory.symmetry_of(matrix), rel=1e-14)
    anti = weights["feedforward"] - weights["feedforward"].T  # J_sym = -I, J_anti = M
    d = anti.shape[0]
    expected = np.sqrt(d) / (np.sqrt(d) + np.linalg.norm(anti))
    assert network.jacobian_symmetry(anti) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_free_relaxes_to_the_newton_fixed_point(backend, tmp_path):
    ds = ep.create((5, 3), data=X, labels=Y, gain=1.0, seed=2, dt=[1.0, 0.5], time_steps=200)
    hist = eq.run(ds, "free", steps=160, store=tmp_path / "f.zarr", progress=False, backend=backend,
                  record={"residual": 40, "loss": 160})
    final = eq.final_state(hist)
    w = {k: final[k].values[0, 0] for k in network.GROUPS}
    u_star = theory.fixed_point(w["feedforward"] + w["feedback"], X @ w["input_weights"].T + w["bias"])
    residual = hist.residual.values[:, 0]
    rates = [theory.convergence_rate(w["feedforward"] + w["feedback"], u_star, dt) for dt in (1.0, 0.5)]
    assert np.all(residual[0] > 0.1) and np.all(residual[-1] < 1e-5), residual
    np.testing.assert_allclose(residual[-1] / residual[-2], np.array(rates) ** 40, rtol=0.2)
    loss = hist.loss.values[-1, 0, 0]
    out = network.output_mask(ds.layer.values)
    e = np.where(out, np.tanh(u_star) - network.targets(np.eye(3)[Y], out), 0)[~ds.held_out.values]
    assert loss == pytest.approx(np.sum(e * e) / (2 * len(e)), rel=1e-10)


@pytest.mark.parametrize("estimator", ["holomorphic", "one_sided", "implicit"])
def test_training_lowers_the_loss_on_a_tiny_case(estimator, tmp_path):
    ds = ep.create((6, 3), data=X, labels=Y, held_out=np.zeros(6, bool), learning_rate=0.3, batch=6, members=2,
                   seed=5, homeostasis=0.5, beta=0.05)
    hist = eq.run(ds, "train", steps=40, store=tmp_path / "t.zarr", progress=False, options={"estimator": estimator},
                  record={"loss": 40, "jacobian_symmetry": 40})
    loss = hist.loss.values  # (step, member)
    assert np.all(loss[-1] < 0.7 * loss[0]), loss
    symmetry = hist.jacobian_symmetry.values
    assert np.all(symmetry[-1] > symmetry[0])  # homeostasis pulls W_fb towards W_ff^T


def test_gradient_error_observable_orders_the_estimators(tmp_path):
    ds = ep.create((5, 3), data=X, labels=Y, symmetric=True, gain=1.0, seed=1, beta=[0.05, 0.025], time_steps=200,
                   nudge_steps=200)
    hist = eq.run(ds, "free", steps=1, store=tmp_path / "g.zarr", progress=False)
    errors = hist.gradient_error.values[0, 0]  # (beta, estimator)
    assert np.all(errors[:, 0] > errors[:, 1]) and np.all(errors[:, 1] > errors[:, 2])
    np.testing.assert_allclose(np.log2(errors[0] / errors[1]), [1, 2, 4], atol=0.3)


@pytest.mark.parametrize("kwargs,match", [
    ({"points": 1}, r"points: expected values >= 2 1, got 1.0"),
    ({"points": 2.5}, r"points: expected integers, got 2.5"),
    ({"points": 1, "dt": 0, "layers": (4, 2)}, r"(?s)layers: .*points: .*dt: expected values > 0"),
    ({"beta": 0.0}, r"beta"),
    ({"beta": [0.1, float("nan")]}, r"beta"),
    ({"learning_rate": -1.0}, r"learning_rate"),
    ({"layers": (5, 2)}, r"layers: expected an output layer of at least 3 units .* got 2"),
    ({"layers": (5, 0, 3)}, r"layers: expected a non-empty sequence of positive integers"),
    ({"data": np.full((6, 4), np.nan)}, r"data: expected a finite 2-D array"),
    ({"feedback": np.full((8, 8), np.nan)}, r"feedback: expected finite values of shape \(8, 8\).*non-finite"),
    ({"feedforward": np.ones((8, 8))}, r"feedforward: expected zeros outside the layered pattern"),
    ({"input_weights": np.zeros((8, 5))}, r"input_weights: expected finite values of shape \(8, 4\)"),
    ({"time_steps": 0}, r"time_steps: expected values >= 1 1, got 0.0"),
    ({"nudge_steps": [10, 7.5]}, r"nudge_steps: expected integers, got \[10, 7.5\]"),
    ({"labels": None}, r"labels: expected class labels \(sample,\)"),
])
def test_bad_inputs_are_named_errors(kwargs, match):
    args = {"layers": (5, 3), "data": X, "labels": Y, **kwargs}
    with pytest.raises(SchemaError, match=match):
        ep.create(**args)


def test_bad_options_are_named_before_anything_is_written(tmp_path):
    ds = ep.create((5, 3), data=X, labels=Y)
    for options, match in (({"estimator": "two_sided"}, r"options\['estimator'\]: expected one of"),
                           ({"probes": 0}, r"options\['probes'\]: expected a value >= 1, got 0"),
                           ({"probes": 2.5}, r"options\['probes'\]: expected a int like the default 4, got 2.5")):
        with pytest.raises(SchemaError, match=match):
            eq.run(ds, "train", steps=2, store=tmp_path / "x.zarr", progress=False, options=options)
        assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("op", ["free", "train"])
def test_float32_weights_stay_float32_and_backends_agree(op, tmp_path):
    """float32 weights (complex64 holomorphic phases); NumPy and torch within float32 rounding (1e-4 relative)."""
    ds = ep.create((6, 3), data=X, labels=Y, dtype="float32", members=2)
    runs = [eq.run(ds, op, steps=3, store=tmp_path / f"{b}.zarr", progress=False, backend=b).load()
            for b in ("numpy", "torch")]
    for hist in runs:
        assert eq.final_state(hist).feedback.dtype == np.float32
    for name in ("loss", "gradient_error", "jacobian_symmetry"):
        np.testing.assert_allclose(runs[1][name].values, runs[0][name].values, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("name,values,match", [("beta", [0.1, 0.0], r"beta: expected values > 0 1, got \[0.1, 0.0\]"),
                                               ("points", [2, 1], r"points: expected values >= 2 1, got \[2.0, 1.0\]")])
def test_edited_parameters_are_named_at_run_before_anything_is_written(name, values, match, tmp_path):
    ds = ep.create((5, 3), data=X, labels=Y, beta=[0.1, 0.2], points=[2, 3])
    bad = ds.assign_coords({name: (name, values, ds[name].attrs)})
    for op in ("free", "train"):
        with pytest.raises(SchemaError, match=match):
            eq.run(bad, op, steps=2, store=tmp_path / "x.zarr", progress=False)
        assert not (tmp_path / "x.zarr").exists()
