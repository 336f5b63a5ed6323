"""Exact checks of the monotone DBM against theory.

Tolerances (all computations are deterministic, float64, so no statistical error enters):
- prox: the KKT condition (1 - alpha) z + alpha log z - y = -nu - alpha is checked to 1e-11
  (solved to |sum z - 1| <= 1e-13 and a relative Newton step <= 1e-14);
- monotonicity: lambda_min(I - W) >= m - 1e-12 (eigvalsh of a matrix of norm ~1: rounding ~1e-15);
- fixed points: solvers stop at a mean-field residual below 1e-12; with I - W >= m I the map
  q -> softmax(W q + b) has a Lipschitz inverse residual bound |q - q*| <= |residual| (1 + ||W||) / m,
  so two solutions agree to ~1e-10, and SciPy's root (tol 1e-13) to 1e-9; asserted 1e-8;
- free energy: m-strong convexity, F(q) - F(q*) >= m |q - q*|^2 / 2, with slack 1e-10;
- implicit gradients against central differences with h = 1e-6 (truncation ~h^2, rounding ~1e-16 / h):
  relative 1e-5.
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems import monotone_dbm as mdbm
from eqflow.systems.monotone_dbm import implicit, model, theory, training


def _problem(seed=0, n=6, k=3, r=5, strength=2.0):
    rng = np.random.default_rng(seed)
    a = strength * rng.normal(size=(r, n, k))
    b = rng.normal(size=(n, k))
    evidence = np.array([[-1] * n, [1] + [-1] * (n - 2) + [0], [-1, 2] + [-1] * (n - 2)])
    return a, b, evidence


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9, 1.0])
def test_prox_solves_its_optimality_condition(alpha):
    y = np.random.default_rng(1).normal(size=(4, 7, 5)) * 4
    z = model.prox(y, alpha)
    assert np.all(z > 0) and np.allclose(z.sum(-1), 1, atol=1e-14)
    kkt = (1 - alpha) * z + alpha * np.log(z) - y  # = -alpha - nu: the same for every state of a group
    assert np.max(np.ptp(kkt, axis=-1)) < 1e-11
    if alpha == 1.0:
        np.testing.assert_allclose(z, np.exp(y) / np.exp(y).sum(-1, keepdims=True), rtol=1e-13)


@pytest.mark.parametrize("scaling", ["monotone", "variable"])
@pytest.mark.parametrize("margin", [0.05, 0.5, 1.0])
def test_coupling_is_symmetric_hollow_and_monotone(margin, scaling):
    a, _, _ = _problem(strength=3.0)
    w = model.coupling(a, np.float64(margin), scaling)
    n, k = a.shape[1:]
    assert np.allclose(w, w.T, atol=1e-14)
    for i in range(n):
        assert np.all(w[i * k:(i + 1) * k, i * k:(i + 1) * k] == 0)
    assert theory.margin_of(a, margin, scaling) >= margin - 1e-12
    q = np.random.default_rng(2).uniform(size=(2, n, k))
    np.testing.assert_allclose(model.couple(q, model.factored(a, np.float64(margin), scaling)),
                               (q.reshape(2, -1) @ w).reshape(q.shape), atol=1e-12)
    assert float(model.scale(a, np.float64(margin), "none")) == 1.0
    if scaling == "monotone":  # W = -s (A^T A - blockdiag(A^T A)), one s = (1 - m) / max_i ||A_i^T A_i||_2
        rho = max(np.linalg.norm(a[:, i, :].T @ a[:, i, :], 2) for i in range(n))
        bare = model.coupling(a, np.float64(margin), "none")
        np.testing.assert_allclose(w, min(1.0, (1 - margin) / rho) * bare, rtol=1e-12, atol=1e-12)


def test_same_fixed_point_from_random_starts_alphas_and_scipy():
    a, b, evidence = _problem()
    ds = mdbm.create(weights=a, bias=b, evidence=evidence, margin=0.2, start="random", members=6, seed=5)
    stop = eq.stop.converged("residual", 1e-12)
    finals = []
    for op, options in (("anderson", {"alpha": 0.5}), ("forward_backward", {"alpha": 0.3}),
                        ("forward_backward", {"alpha": 0.8}), ("mean_field", {})):
        h = eq.run(ds, op, steps=1500, store=None, options=options, stop=stop, progress=False)
        assert set(np.asarray(h.stop_reason).ravel()) == {"converged"}, op
        finals.append(eq.final_state(h).marginals.values)
    exact = theory.root_fixed_point(a, b, evidence, margin=0.2)
    for q in finals:
        assert np.max(np.abs(q - exact)) < 1e-8  # every member (start) and every alpha
    assert np.all(finals[0][..., 1, 0, :] == np.eye(3)[1])  # clamped evidence stays clamped


def test_free_energy_is_minimal_and_strongly_convex_at_the_fixed_point():
    a, b, evidence = _problem(seed=3)
    margin = 0.3
    ds = mdbm.create(weights=a, bias=b, evidence=evidence, margin=margin)
    star = eq.final_state(eq.run(ds, "anderson", steps=400, store=None, progress=False,
                                 stop=eq.stop.converged("residual", 1e-13)))
    q_star = star.marginals.values[0]
    inputs = {"weights": a[None], "bias": b[None], "margin": np.array([margin]), "evidence": evidence}
    f_star = mdbm.free_energy(marginals=q_star[None], **inputs)[0]
    _, free = model.evidence_arrays(evidence, 3, q_star)
    rng = np.random.default_rng(4)
    for _ in range(20):
        e = rng.exponential(size=q_star.shape)
        q = np.where(free > 0, e / e.sum(-1, keepdims=True), q_star)
        f = mdbm.free_energy(marginals=q[None], **inputs)[0]
        gap = np.sum((q - q_star) ** 2, axis=(-2, -1))
        assert np.all(f - f_star >= margin * gap / 2 - 1e-10)


def test_unscaled_mean_field_cycles_and_the_scaled_one_converges():
    a = theory.cycle_coupling(3.0)
    start = [[[0.9, 0.1], [0.8, 0.2]]]
    rules = [eq.stop.cycled("marginals", tol=1e-12), eq.stop.converged("residual", 1e-12)]
    outcome = {}
    for scaling in ("none", "monotone"):
        ds = mdbm.create(weights=a, bias=np.zeros((2, 2)), scaling=scaling, marginals=start)
        h = eq.run(ds, "mean_field", steps=300, store=None, progress=False, stop=rules)
        outcome[scaling] = str(np.asarray(h.stop_reason).ravel()[0])
    assert outcome == {"none": "cycled", "monotone": "converged"}
    assert theory.margin_of(a, 0.1, "none") < 0  # I - W is not monotone without the scaling


@pytest.mark.parametrize("scaling", ["monotone", "variable", "none"])
def test_implicit_gradients_match_central_differences(scaling):
    a, b, evidence = _problem(seed=1, n=5, r=4, strength=0.3 if scaling == "none" else 2.0)
    targets = np.random.default_rng(6).integers(0, 3, size=evidence.shape)
    weight = (evidence < 0) * np.random.default_rng(7).uniform(size=evidence.shape)
    margin = np.float64(0.2)

    def loss(a, b):
        c = model.factored(a, margin, scaling)
        onehot, free = model.evidence_arrays(evidence, 3, b)
        q, _ = training.solve(model.clamp(np.full_like(onehot, 1 / 3), onehot, free), c, b, onehot, free,
                              alpha=0.5, history=5, tol=1e-13, max_iter=300)
        return training.loss_and_rhs(q, targets, weight), q, c, free

    (value, rhs), q, c, free = loss(a, b)
    u, relative = implicit.adjoint(q, free, c, rhs, tol=1e-13, max_iter=500)
    assert relative < 1e-12
    grad_a, grad_b = implicit.parameter_gradients(a, margin, scaling, q, u)
    h = 1e-6
    for index in [(0, 1, 2), (2, 0, 0), (3, 4, 1)]:
        up, down = a.copy(), a.copy()
        up[index] += h
        down[index] -= h
        fd = (loss(up, b)[0][0] - loss(down, b)[0][0]) / (2 * h)
        assert abs(fd - grad_a[index]) <= 1e-5 * max(abs(fd), 1e-3)
    for index in [(1, 2), (3, 0)]:
        up, down = b.copy(), b.copy()
        up[index] += h
        down[index] -= h
        fd = (loss(a, up)[0][0] - loss(a, down)[0][0]) / (2 * h)
        assert abs(fd - grad_b[index]) <= 1e-5 * max(abs(fd), 1e-3)


def test_training_learns_a_copy_task():
    """Variable 1 copies variable 0 (3 states); the query is variable 1. After training, clamping
    variable 0 must make its state variable 1's most probable one (the pairwise coupling can
    represent it; monotonicity bounds |W_ij| by 1 - m, hence the logit gap and the confidence)."""
    targets = np.array([[s, s] for s in range(3)] * 4)
    ds = mdbm.create(2, 3, features=4, targets=targets, query=np.array([False, True]), evidence=targets * 0 - 1,
                     batch=6, learning_rate=0.1, members=2, margin=0.05, seed=2)
    h = eq.run(ds, "train", steps=60, store=None, progress=False, record={"batch_loss": 1})
    loss = h.batch_loss.values
    assert np.all(loss[-10:].mean(axis=0) < loss[1:11].mean(axis=0))
    final = eq.final_state(h)
    check = mdbm.create(weights=final.weights.values, bias=final.bias.values, members=2, margin=0.05,
                        evidence=np.array([[0, -1], [1, -1], [2, -1]]))
    q = eq.final_state(eq.run(check, "anderson", steps=200, store=None, progress=False,
                              stop=eq.stop.converged("residual", 1e-10))).marginals.values
    assert np.all(q[..., 1, :].argmax(-1) == np.arange(3))


def test_digits_problem():
    ds = mdbm.create(dataset="digits", hidden=3, features=4)
    assert dict(ds.marginals.sizes) == {"member": 1, "sample": 1797, "variable": 68, "state": 10}
    assert np.all(ds.targets.values[:, 65:] == -1) and list(np.flatnonzero(ds["query"].values)) == [64]
    assert np.all(ds.evidence.values[:, 64:] == -1) and np.all(ds.evidence.values[:, :64] >= 0)
    train = ds.targets.values[~ds.held_out.values]
    frequency = np.exp(ds.bias.values[0, 64])  # the label's prior: add-one smoothed class frequencies
    np.testing.assert_allclose(frequency, (np.bincount(train[:, 64], minlength=10) + 1) / (len(train) + 10))


BAD_CREATE = [
    ({"variables": 3, "states": 1}, "states: expected an integer k >= 2"),
    ({"variables": 3, "states": 2, "margin": 0.0}, "margin"),
    ({"variables": 3, "states": 2, "margin": 1.5}, "margin"),
    ({"variables": 3, "states": 2, "margin": float("nan")}, "margin: expected finite values"),
    ({"variables": 0, "states": 2}, "variables: expected a positive integer"),
    ({"variables": 3, "states": 2, "weights": np.ones((2, 3, 3))}, "weights: expected finite values of shape"),
    ({"variables": 3, "states": 2, "bias": np.full((3, 2), np.nan)}, "bias: expected finite values"),
    ({"variables": 3, "states": 2, "evidence": [[0, 1]]}, "evidence: expected an integer array of shape (S, 3)"),
    ({"variables": 3, "states": 2, "evidence": [[0, 1, 2]]}, "evidence: expected states in [-1, 1]"),
    ({"variables": 2, "states": 2, "marginals": [[[0.5, np.nan], [0.5, 0.5]]]}, "marginals: expected finite"),
    ({"variables": 2, "states": 2, "marginals": [[[0.7, 0.7], [0.5, 0.5]]]}, "summing to 1"),
    ({"variables": 2, "states": 2, "scaling": "sometimes"}, "scaling: expected one of"),
    ({"dataset": "digits", "states": 4}, "states: expected an integer >= 10"),
    ({"dataset": "digits", "hidden": -1}, "hidden: expected an integer >= 0"),
]


@pytest.mark.parametrize("kwargs,message", BAD_CREATE)
def test_bad_inputs_are_named_errors(kwargs, message):
    with pytest.raises(SchemaError) as info:
        mdbm.create(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("op,options,message", [
    ("forward_backward", {"alpha": 0.0}, "options['alpha']: expected a damping alpha in (0, 1], got 0.0"),
    ("forward_backward", {"alpha": 1.5}, "got 1.5"),
    ("anderson", {"alpha": -0.1}, "options['alpha']"),
    ("anderson", {"history": 0}, "options['history']"),
    ("forward_backward", {"alpha": float("nan")}, "options['alpha']"),
    ("train", {"alpha": 2.0}, "options['alpha']"),
    ("train", {"query_weight": -1.0}, "options['query_weight']: expected a value >= 0"),
    ("train", {"hide": "block"}, "options['hide']: expected one of ['scattered', 'band'], got 'block'"),
    ("train", {"hide_fraction": 1.0}, "options['hide_fraction']: expected 0 (drawn per sample) or a fraction in"),
    ("train", {"hide": "band"}, "options['hide_fraction']: expected a fraction in (0, 1) with hide='band'"),
])
def test_bad_options_fail_before_anything_is_written(op, options, message, tmp_path):
    ds = mdbm.create(2, 2, targets=[[0, 1]])
    store = tmp_path / "h.zarr"
    with pytest.raises(SchemaError) as info:
        eq.run(ds, op, steps=2, store=store, options=options, progress=False)
    assert message in str(info.value)
    assert not store.exists()


def test_train_needs_targets(tmp_path):
    with pytest.raises(SchemaError, match="targets: the train operator needs the true states"):
        eq.run(mdbm.create(2, 2), "train", steps=1, store=tmp_path / "t.zarr", progress=False)
    assert not (tmp_path / "t.zarr").exists()


def test_training_masks_scattered_and_band():
    """The masks of one minibatch: scattered hides v where its uniform < f (drawn, or the fixed hide_fraction);
    a band of round(f n) indices from floor(u (n - L + 1)); the query is never hidden, the hidden share the
    loss weight 1 / (number hidden) and the query gets query_weight."""
    n, batch = 9, 3
    targets = np.arange(2 * n).reshape(2, n) % 3
    query = np.zeros(n, bool)
    query[-1] = True
    picks = np.array([0.1, 0.7, 0.2])
    rows = targets[[0, 1, 0]]
    hides = np.random.default_rng(0).uniform(size=(batch, n))
    fractions = np.array([0.0, 0.5, 0.99])
    args = (picks, fractions, hides, np.array([0, 1]), targets, query)
    ev, t, w = training.minibatch(*args, 2.0)
    np.testing.assert_array_equal(t, rows)
    expect = (hides < fractions[:, None]) & ~query
    np.testing.assert_array_equal(ev < 0, expect | query)
    ev, _, w = training.minibatch(*args, 2.0, "scattered", 0.4)
    np.testing.assert_array_equal(ev < 0, ((hides < 0.4) & ~query) | query)
    ev, _, w = training.minibatch(*args, 0.5, "band", 0.5)  # L = round(4.5) = 4, start floor(u * 6) = 0, 3, 5
    hidden = np.zeros((batch, n), bool)
    for b, start in enumerate((0, 3, 5)):
        hidden[b, start:start + 4] = True
    hidden &= ~query
    np.testing.assert_array_equal(ev < 0, hidden | query)
    np.testing.assert_array_equal(ev[ev >= 0], rows[ev >= 0])
    np.testing.assert_allclose(w, hidden / hidden.sum(axis=1, keepdims=True) + 0.5 * query)


@pytest.mark.parametrize("margins,message", [([0.1, 0.0], "margin: expected values > 0 1, got [0.1, 0.0]"),
                                             ([1.5, 0.5], "margin: expected values <= 1 1, got [1.5, 0.5]")])
def test_edited_margin_is_named_at_run_before_anything_is_written(margins, message, tmp_path):
    ds = mdbm.create(3, 2, margin=[0.1, 0.5])
    bad = ds.assign_coords(margin=("margin", margins, ds.margin.attrs))
    with pytest.raises(SchemaError) as info:
        eq.run(bad, "mean_field", steps=2, store=tmp_path / "x.zarr", progress=False)
    assert message in str(info.value)
    assert not (tmp_path / "x.zarr").exists()
