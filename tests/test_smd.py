"""Spherical motion dynamics (kind "smd") against its theory (Wan, Zhu, Zhang & Sun, NeurIPS 2021).

Statistics of the noise-model tests. Members are independent trainings (own initial weights
and draws), so each member's time average over the equilibrium window is one independent
sample whose variance already holds the autocorrelation; the standard error of the ensemble
mean is s / sqrt(M), s the spread of the M member averages, and a comparison allows Z = 4.5
standard errors (two-sided false-alarm probability 7e-6 each under normality). On top of the
statistics each tolerance holds the bias terms that the formula leaves out, derived in
``eqflow.systems.smd.theory``:

- the order of the formula: ||w*||^2 to first order misses the relative eta lambda / (4 (1 + alpha)),
  Delta* = sqrt(2 eta lambda / (1 + alpha)) misses eta lambda / (12 (1 + alpha)) (next terms O((eta lambda)^2),
  allowed for by a factor 1.2);
- fluctuations: the closed forms are exact for the stationary second moments with E[1/||w||^2]
  replaced by 1/E||w||^2; the measured q = E||w||^2 E[1/||w||^2] - 1 (= Var ||w||^2 / E||w||^4 + ...)
  bounds what that does to ||w||^2 (it enters as sqrt(1 + q)) and to Delta;
- Jensen: the mean of the per-step angle lies below its root mean square by cv^2 / 2, cv the
  coefficient of variation of the angles, measured (for alpha = 0 it is the 1 / (4 (d - 1)) of
  E sqrt(chi^2_{d-1})).

Burn-in. From ||w_0|| = 1 below every equilibrium, ||w||^4 relaxes linearly by
(1 - eta lambda)^4 ~ 1 - 4 eta lambda per step (momentum relaxes at least as fast on these
grids), so after t0 >= 10 / (4 eta lambda_min) steps the start is forgotten to e^-10 = 5e-5.
"""
import numpy as np
import pytest
import torch

import eqflow as eq
from eqflow import random
from eqflow.inputs import RunInputs
from eqflow.systems import smd
from eqflow.systems.smd import network, theory

from conftest import assert_same_history

Z = 4.5


def _member_mean(values):
    """(mean, relative standard error) over members of the member time averages; values (step, member)."""
    averages = values.mean("step")
    mean = float(averages.mean())
    return mean, float(averages.std(ddof=1)) / np.sqrt(averages.sizes["member"]) / mean


def _equilibrium(n, delta):
    """Window statistics of one point: ||w||^2 and Delta (means), their tolerances' parts, see the module docstring.

    n, delta: (step, member) records of ||w||^2 and Delta. Returns (norm, angle, norm tolerance, angle tolerance)
    without the order term of a formula: Z standard errors + q (+ cv^2 / 2 for the angle).
    """
    norm, norm_se = _member_mean(n)
    angle, angle_se = _member_mean(delta)
    q = norm * float((1 / n).mean()) - 1
    jensen = float(delta.var() / delta.mean() ** 2) / 2
    return norm, angle, q + Z * norm_se, jensen + q + Z * angle_se


def _noise_grid_checks(hist, dim, window):
    """Every parameter point of a noise-model run against the closed forms and the first-order formulas."""
    n = (hist.weight_norm.isel(layer=0) ** 2).isel(step=window).load()
    delta = hist.angular_update.isel(layer=0).isel(step=window).load()
    rows = []
    for eta in hist.learning_rate.values:
        for lam in hist.weight_decay.values:
            for alpha in hist.momentum.values:
                kw = dict(learning_rate=eta, weight_decay=lam, momentum=alpha)
                x = eta * lam / (1 + alpha)
                norm, angle, norm_tol, angle_tol = _equilibrium(n.sel(kw), delta.sel(kw))
                rows += [(kw, name, float(deviation), float(tolerance)) for name, deviation, tolerance in [
                    ("||w||^2 closed form", norm / theory.equilibrium_norm_squared(**kw, dim=dim) - 1, norm_tol),
                    ("||w||^2 first order", norm / theory.first_order_norm_squared(**kw, dim=dim) - 1,
                     1.2 * x / 4 + norm_tol),
                    ("Delta closed form", angle / theory.equilibrium_angular_update(**kw) - 1, angle_tol),
                    ("Delta first order", angle / theory.first_order_angular_update(**kw) - 1,
                     1.2 * x / 12 + angle_tol)]]
    bad = [r for r in rows if not abs(r[2]) < r[3]]
    assert not bad, "\n".join(f"{p}: {name} off by {dev:+.5f}, tolerance {tol:.5f}" for p, name, dev, tol in bad)
    return rows


def test_noise_model_equilibrium_over_a_grid(tmp_path):
    """d = 256, 64 members, eta in {0.5, 1}, lambda in {0.01, 0.02}, alpha in {0, 0.5, 0.9}.

    Window: steps 500-700 (eta lambda >= 5e-3: 10 relaxation times of the slowest point). The
    tolerances (see the module docstring) come to 0.15-0.9 %; the measured deviations are
    mostly below 0.1 % (||w||^2) and at the -0.1 % Jensen bias (Delta).
    """
    system = eq.create("smd", dim=256, learning_rate=[0.5, 1.0], weight_decay=[0.01, 0.02], momentum=[0.0, 0.5, 0.9],
                       members=64, seed=7)
    hist = eq.run(system, "sgd", steps=700, store=tmp_path / "h.zarr", record={"weight_norm": 1, "angular_update": 1},
                  chunks={"member": 32}, progress=False)
    rows = _noise_grid_checks(hist, 256, slice(500, None))
    assert len(rows) == 12 * 4


@pytest.mark.slow
def test_noise_model_equilibrium_at_d_512_and_smaller_steps(tmp_path):
    """d = 512, 64 members, eta in {0.1, 1}, lambda in {0.02, 0.05}, alpha in {0, 0.5, 0.9}:
    eta lambda from 2e-3 to 5e-2; window 1300-1500 (10.4 relaxation times at eta lambda = 2e-3)."""
    system = eq.create("smd", dim=512, learning_rate=[0.1, 1.0], weight_decay=[0.02, 0.05], momentum=[0.0, 0.5, 0.9],
                       members=64, seed=8)
    hist = eq.run(system, "sgd", steps=1500, store=tmp_path / "h.zarr",
                  record={"weight_norm": 1, "angular_update": 1}, chunks={"member": 32}, progress=False)
    _noise_grid_checks(hist, 512, slice(1300, None))


def _weighted_log_slope(values):
    """Slope of log|values| against the step, least squares weighted by |values|^2 (var log y ~ 1/y^2)."""
    steps = np.arange(values.size)
    return np.polyfit(steps, np.log(np.abs(values)), 1, w=np.abs(values))[0]


@pytest.mark.parametrize("eta,lam", [(1.0, 0.01), (0.5, 0.01)])
def test_norm_relaxes_at_the_predicted_rate(eta, lam, tmp_path):
    """SGD: ||w||^2 - ||w*||^2 contracts by r = 2 (1 - eta lambda)^2 - 1 ~ 1 - 4 eta lambda per step.

    Two starts, ||w_0||^2 = (1 +- 0.2) ||w*||^2 (an initial_norm sweep), 256 members each, for
    3 relaxation times. Their half-difference s_t of the member-mean ||w||^2 / ||w*||^2 decays as r^t:
    the quadratic term of the recursion (1 - a) s^2 has the same sign for both starts and cancels,
    leaving a relative rate error s^2 / 2 at the start. Fitted rate 1 - exp(slope of log s_t),
    weighted by s_t^2. Tolerance 5 % of 1 - r; its parts: the estimator's bias on the noiseless
    recursion (computed here, 0.2 %) and Z standard errors from 8 disjoint member groups (0.3 % each).
    """
    dim, s0 = 256, 0.2
    star = float(theory.equilibrium_norm_squared(learning_rate=eta, weight_decay=lam, dim=dim))
    r = float(theory.relaxation_factor(learning_rate=eta, weight_decay=lam))
    steps = int(3 / (1 - r))
    system = eq.create("smd", dim=dim, learning_rate=eta, weight_decay=lam, members=256, seed=11,
                       initial_norm=[np.sqrt(star * (1 + s0)), np.sqrt(star * (1 - s0))])
    hist = eq.run(system, "sgd", steps=steps, store=tmp_path / "h.zarr", record={"weight_norm": 1},
                  chunks={"member": 128}, progress=False)
    n = (hist.weight_norm.isel(layer=0) ** 2).load()
    s = (n.isel(initial_norm=0) - n.isel(initial_norm=1)) / (2 * star)

    def rate(values):
        return 1 - np.exp(_weighted_log_slope(values))

    fitted = rate(s.mean("member").values)
    groups = [rate(s.isel(member=slice(g, None, 8)).mean("member").values) for g in range(8)]
    se = np.std(groups, ddof=1) / np.sqrt(8)
    paths = [np.array([star * (1 + s0), star * (1 - s0)])]  # the noiseless recursion, through the same estimator
    for _ in range(steps):
        paths.append((1 - eta * lam) ** 2 * paths[-1] + eta**2 * theory.gradient_scale(dim=dim) / paths[-1])
    paths = np.array(paths)
    bias = rate((paths[:, 0] - paths[:, 1]) / (2 * star)) / (1 - r) - 1
    assert abs(bias) + Z * se / (1 - r) < 0.05, (bias, se)  # the test can tell 5 %
    assert abs(fitted / (1 - r) - 1) < 0.05, (fitted, 1 - r, se)
    assert abs(fitted / (4 * eta * lam) - 1) < 0.05, (fitted, 4 * eta * lam)


def test_a_learning_rate_step_moves_delta_to_its_new_equilibrium(tmp_path):
    """eta = 1 -> 0.1 at step 200 (lambda = 0.05; alpha in {0, 0.9}; d = 256, 64 members).

    Before: Delta*(eta). The first update after the step: v and w are continuous, so Delta drops
    to Delta*(eta) / 10 (to O(eta lambda): tan Delta scales by (1 - eta lambda) / (10 - eta lambda),
    0.0955 at alpha = 0; within 10 %). Then ||w||^2 relaxes at 4 eta lambda / 10 = 0.02 per step
    from sqrt(10) times its new equilibrium: after 600 steps its ||w||^4 has forgotten the start
    to 9 e^-12 = 6e-5, and Delta sits at Delta*(eta / 10) (window 800-1000; tolerances as in the grid
    test, the closed forms being exact for alpha = 0 and second-moment exact for alpha = 0.9).
    """
    system = eq.create("smd", dim=256, learning_rate=1.0, weight_decay=0.05, momentum=[0.0, 0.9], members=64, seed=3)
    hist = eq.run(system, "sgd", steps=1000, store=tmp_path / "h.zarr", options={"lr_step": 200, "lr_factor": 10.0},
                  record={"weight_norm": 1, "angular_update": 1, "effective_learning_rate": 1}, progress=False)
    delta, n = hist.angular_update.isel(layer=0).load(), (hist.weight_norm.isel(layer=0) ** 2).load()
    for alpha in (0.0, 0.9):
        d = delta.sel(momentum=alpha)
        before = theory.equilibrium_angular_update(learning_rate=1.0, weight_decay=0.05, momentum=alpha)
        after = theory.equilibrium_angular_update(learning_rate=0.1, weight_decay=0.05, momentum=alpha)
        for window, expected in ((slice(100, 201), before), (slice(800, None), after)):
            _, angle, _, tolerance = _equilibrium(n.sel(momentum=alpha).isel(step=window), d.isel(step=window))
            assert abs(angle / expected - 1) < tolerance, (alpha, window, angle, expected, tolerance)
        assert abs(float(d.sel(step=201).mean()) / (before / 10) - 1) < 0.1, alpha
        assert float(d.sel(step=200).mean()) > 0.9 * before  # the step before still used eta
    lr = hist.effective_learning_rate.isel(layer=0, member=0, momentum=0)
    ratio = float(lr.sel(step=200) / lr.sel(step=199))
    assert 0.09 < ratio < 0.11  # eta_t / ||w||^2 reports the learning rate of the next update


def test_noise_gradient_is_tangent_with_the_predicted_size():
    """g = -(I - w^ w^T) x / ||w||: <g, w> = 0 and E||g||^2 = (d - 1) sigma^2 / ||w||^2 (chi^2, 4.5 SE)."""
    rng = np.random.default_rng(0)
    d, n, sigma = 64, 20_000, 1.5
    w = rng.normal(size=(n, d)) * 3.0
    g, loss = smd.operators.noise_gradient(w, sigma * rng.normal(size=(n, d)))
    assert np.max(np.abs(np.sum(g * w, axis=-1))) < 1e-12 * np.max(np.sum(w * w, axis=-1))
    ratio = np.sum(g * g, axis=-1) * np.sum(w * w, axis=-1) / theory.gradient_scale(dim=d, noise=sigma)
    assert abs(ratio.mean() - 1) < Z * np.sqrt(2 / (d - 1) / n)
    assert abs(loss.mean()) < Z * sigma / np.sqrt(n)


def test_theory_closed_forms():
    """The alpha = 0 closed form is the fixed point of the iterated recursion; first-order forms agree to
    their stated order."""
    eta, lam, d = 0.5, 0.02, 100
    n = 1.0
    for _ in range(20_000):
        n = (1 - eta * lam) ** 2 * n + eta**2 * (d - 1) / n
    assert theory.equilibrium_norm_squared(learning_rate=eta, weight_decay=lam, dim=d) == pytest.approx(n, rel=1e-12)
    for alpha in (0.0, 0.5, 0.9):
        for x in (1e-4, 1e-2):
            kw = dict(learning_rate=1.0, weight_decay=x, momentum=alpha)
            exact, first = theory.equilibrium_angular_update(**kw), theory.first_order_angular_update(**kw)
            assert first / exact - 1 == pytest.approx(-x / (12 * (1 + alpha)), rel=0.05)
            exact, first = theory.equilibrium_norm_squared(**kw, dim=d), theory.first_order_norm_squared(**kw, dim=d)
            assert first / exact - 1 == pytest.approx(-x / (4 * (1 + alpha)), rel=0.05)
    assert np.cos(theory.equilibrium_angular_update(learning_rate=0.5, weight_decay=0.02)) == pytest.approx(0.99)
    assert theory.relaxation_factor(learning_rate=1.0, weight_decay=1e-3) == pytest.approx(1 - 4e-3, abs=3e-6)


def test_network_layers_reach_the_angular_update_and_learn_digits(tmp_path):
    """LayerNorm MLP 64-32-32-10 on digits, 8 members at eta in {0.25, 0.5} x alpha in {0, 0.5, 0.9}, lambda = 0.01.

    The theory is a statement about second moments: at a stationary norm, with <g, w> = 0, exactly
    E||w_{t+1} - w_t||^2 = 2 eta lambda E||w||^2 / (1 + alpha) (theory module), i.e. the root mean
    square angle is Delta* = sqrt(2 eta lambda / (1 + alpha)) up to O(eta lambda) (eta lambda / 12 < 0.05 %).
    Each normalized layer's rms angle over steps 400-800 (norms settle within ~200 steps) must be
    within 10 % of it; the statistical part (Z standard errors over members, 2-6 %) is checked to
    stay below 8 %. The plain mean angle is lower by 1 / sqrt(1 + cv^2): a minibatch gradient's norm
    varies from step to step (cv = 0.6 at alpha = 0), so it is not compared. The last layer is
    affine, not scale-invariant, and is not required to follow (it does not: 35-120 % of Delta*).
    Then eta drops tenfold at step 800; after 300 more steps the held-out accuracy is >= 90 %
    (member mean) at every point and >= 85 % for every member.
    """
    system = eq.create("smd", model="network", learning_rate=[0.25, 0.5], weight_decay=0.01,
                       momentum=[0.0, 0.5, 0.9], members=8, seed=1)
    assert system.normalized.values.tolist() == [True, True, False]
    hist = eq.run(system, "sgd", steps=1100, store=tmp_path / "h.zarr", backend="torch",
                  options={"lr_step": 800}, record={"angular_update": 1, "accuracy": 1100}, progress=False)
    squared = (hist.angular_update.isel(step=slice(400, 801)) ** 2).load()
    for eta in (0.25, 0.5):
        for alpha in (0.0, 0.5, 0.9):
            expected = theory.first_order_angular_update(learning_rate=eta, weight_decay=0.01, momentum=alpha)
            for layer in (0, 1):
                per_member = squared.sel(learning_rate=eta, momentum=alpha, layer=layer).mean("step")
                rms = np.sqrt(float(per_member.mean()))
                se = float(per_member.std(ddof=1)) / np.sqrt(per_member.size) / (2 * rms**2)  # relative, of the rms
                assert Z * se < 0.08, (eta, alpha, layer, se)  # leaves >= 2 % for the O(eta lambda) and drift terms
                assert abs(rms / expected - 1) < 0.10, (eta, alpha, layer, rms, expected)
            final = hist.accuracy.sel(learning_rate=eta, momentum=alpha).isel(step_1100=-1)
            assert float(final.mean()) >= 0.90 and float(final.min()) >= 0.85, (eta, alpha, final.values)


def _reference_training(weight, batches, layers, *, lr, wd, momentum, lr_step, lr_factor):
    """One network trained alone by a plain PyTorch loop: nn.Linear layers, F.layer_norm, torch.optim.SGD."""
    import torch.nn.functional as F
    from torch import nn

    data = network.digits()
    x, y = torch.tensor(data["train_x"], dtype=torch.float32), torch.tensor(data["train_y"])
    linears = []
    for start, stop, rows, cols, normalized in layers:  # the last layer's bias is its last column
        matrix = torch.tensor(weight[start:stop].reshape(rows, cols))
        linear = nn.Linear(cols - (not normalized), rows, bias=not normalized)
        with torch.no_grad():
            linear.weight.copy_(matrix[:, :linear.in_features])
            if not normalized:
                linear.bias.copy_(matrix[:, -1])
        linears.append((linear, rows, normalized))
    optimizer = torch.optim.SGD([p for lin, _, _ in linears for p in lin.parameters()], lr=lr, momentum=momentum,
                                weight_decay=wd)
    for step, batch in enumerate(batches):
        if step == lr_step:
            optimizer.param_groups[0]["lr"] = lr / lr_factor
        h = x[batch]
        for linear, rows, normalized in linears:
            h = F.relu(F.layer_norm(linear(h), (rows,), eps=network.LN_EPS)) if normalized else linear(h)
        optimizer.zero_grad()
        F.cross_entropy(h, y[batch]).backward()
        optimizer.step()
    flat = [lin.weight if normal else torch.cat([lin.weight, lin.bias[:, None]], 1) for lin, _, normal in linears]
    return torch.cat([f.detach().reshape(-1) for f in flat]).numpy()


def test_batched_network_training_equals_each_member_trained_alone(tmp_path):
    """All members at once (batched matrix products, one autograd pass) = each member by a plain
    PyTorch loop (torch.optim.SGD with momentum and weight decay, lr step at 20), on the same
    minibatches: float32 agreement (the momentum buffer is float64 here, float32 in torch.optim)."""
    steps, options = 30, {"lr_step": 20, "lr_factor": 10.0}
    system = eq.create("smd", model="network", learning_rate=0.5, weight_decay=0.01, momentum=0.9, members=3, seed=2)
    hist = eq.run(system, "sgd", steps=steps, store=tmp_path / "h.zarr", backend="torch", options=options,
                  record={"weight": steps}, progress=False)
    inputs = RunInputs.of(system, smd.SYSTEM.schema, {})
    keys = random.cell_keys(2, system.member.values, inputs.point_ids)
    slot = list(smd.SYSTEM.operators["sgd"].draws).index("batch")
    draws = [random.generate(smd.SYSTEM.operators["sgd"].draws["batch"], keys, step=t, slot=slot,
                             sizes={"batch": system.sizes["batch"]}) for t in range(steps)]
    layers = smd.operators.layer_slices(system.fan_out.values, system.fan_in.values, system.normalized.values)
    for m in range(3):
        alone = _reference_training(system.weight.values[m], [torch.tensor(d[m]) for d in draws], layers,
                                    lr=0.5, wd=0.01, momentum=0.9, **options)
        np.testing.assert_allclose(hist.weight.isel(step=-1, member=m).values, alone, rtol=1e-4, atol=1e-5)
    assert not np.allclose(hist.weight.isel(step=-1, member=0), hist.weight.isel(step=-1, member=1))


def test_network_history_is_the_same_across_chunks_and_resume(tmp_path, monkeypatch):
    from test_systems import crash_after_marks

    system = eq.create("smd", model="network", learning_rate=[0.25, 0.5], momentum=0.5, members=4, seed=4)
    kw = dict(steps=6, segment=2, backend="torch", progress=False, options={"lr_step": 3},
              record={"weight": 2, "angular_update": 1, "loss": 3, "batch_loss": 1})
    one = eq.run(system, "sgd", store=tmp_path / "one.zarr", **kw).load()
    split = eq.run(system, "sgd", store=tmp_path / "split.zarr", chunks={"member": 1, "learning_rate": 1}, **kw).load()
    for name, var in one.data_vars.items():
        if var.dtype.kind == "f":  # batched float32 products may round differently with the batch size
            np.testing.assert_allclose(split[name].values, var.values, rtol=2e-5, atol=2e-6, err_msg=name)
    assert one.weight.dtype == np.float32 and eq.final_state(one).weight.dtype == np.float32
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        eq.run(system, "sgd", store=tmp_path / "r.zarr", **kw)
    monkeypatch.undo()
    assert_same_history(one, eq.run(system, "sgd", store=tmp_path / "r.zarr", resume=True, **kw))


def test_bad_inputs_are_named(tmp_path):
    cases = [
        (dict(model="cnn"), r"model: expected one of \['network', 'noise'\], got 'cnn'"),
        (dict(learning_rate=[0.1, -1.0]), r"learning_rate: expected values > 0 1, got \[0.1, -1.0\] 1"),
        (dict(momentum=1.0), r"momentum: expected values < 1 1, got 1.0 1"),
        (dict(weight_decay="0.1 m"), r"weight_decay: expected units compatible with '1', got 'meter'"),
        (dict(dim=1), r"dim: expected an integer >= 2, got 1"),
        (dict(model="network", noise=1.0), r"noise: not argument\(s\) of model='network'; expected some of "
                                            r"\['batch', 'hidden'\]"),
        (dict(model="network", hidden=(32, 1)), r"hidden: expected a non-empty sequence of integer widths >= 2, "
                                                 r"got \(32, 1\)"),
        (dict(model="network", batch=0), r"batch: expected a positive integer minibatch size, got 0"),
        (dict(initial_norm=0.0), r"initial_norm: expected values > 0 1, got 0.0 1"),
        (dict(seed=-1), r"seed: expected an integer in \[0, 2\*\*64\), got -1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(eq.SchemaError, match=message):
            eq.create("smd", **kwargs)
    system = eq.create("smd", dim=8)
    for options, message in [({"lr_factor": 0.0}, r"options\['lr_factor'\]: expected a value > 0, got 0.0"),
                             ({"lr_step": -2}, r"options\['lr_step'\]: expected a value >= -1, got -2"),
                             ({"lr_step": 1.5}, r"options\['lr_step'\]: expected a int like the default -1, got 1.5")]:
        with pytest.raises(eq.SchemaError, match=message):
            eq.run(system, "sgd", steps=2, store=tmp_path / "h.zarr", options=options, progress=False)
        assert not (tmp_path / "h.zarr").exists()
    with pytest.raises(eq.SchemaError, match=r"weight: expected dtype one of \['float64', 'float32'\], got float16"):
        eq.validate(system.assign(weight=system.weight.astype(np.float16)))
    with pytest.raises(eq.SchemaError, match=r"attrs\['model'\]: expected one of \['noise', 'network'\], got 'mlp'"):
        eq.validate(system.assign_attrs(model="mlp"))
    with pytest.raises(eq.SchemaError, match=r"backend: model='network' of kind 'smd' runs on \['torch'\] only.*"
                                             r"got 'numpy'"):  # raised by prepare, before anything is written
        eq.run(eq.create("smd", model="network"), "sgd", steps=2, store=tmp_path / "n.zarr", progress=False)
    assert not (tmp_path / "n.zarr").exists()
