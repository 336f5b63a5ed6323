"""Spherical motion dynamics (Wan, Zhu, Zhang & Sun, NeurIPS 2021): theory against eqflow ensembles
================================================================================================

    python examples/smd.py [--out smd.png] [--quick]

1. The noise model over a grid (d = 256, 64 members, eta x lambda x alpha): the equilibrium
   ``||w||^2`` and angular update Delta, measured over steps 500-700, against the closed forms
   and the first-order formulas of ``eq.systems.smd.theory``; one table row per grid point.
2. The LayerNorm MLP on scikit-learn's digits (16 members per momentum): the angular update of
   each layer against step, through a tenfold learning-rate step, with the theory line
   sqrt(2 eta_t lambda / (1 + alpha)); saved as a PNG. The hidden (normalized) layers follow
   it, the affine last layer does not. Measured 2026-12-07 on a shared 2-core VM: 46 s of CPU,
   195 s of wall time with the machine loaded (load average about 14); ``--quick`` does half.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.systems.smd import theory


def noise_table(store, steps=700, window=200, dim=256):
    system = eq.create("smd", dim=dim, learning_rate=[0.5, 1.0], weight_decay=[0.01, 0.02], momentum=[0.0, 0.5, 0.9],
                       members=64, seed=7)
    hist = eq.run(system, "sgd", steps=steps, store=store, record={"weight_norm": 1, "angular_update": 1},
                  chunks={"member": 32}, overwrite=True, progress=False)
    n = (hist.weight_norm.isel(layer=0, step=slice(steps - window, None)) ** 2).load()
    delta = hist.angular_update.isel(layer=0, step=slice(steps - window, None)).load()
    print(f"noise model, d = {dim}, sigma = 1, 64 members, steps {steps - window}-{steps}: measured / theory - 1")
    print(f"{'eta':>5} {'lambda':>7} {'alpha':>5} | {'||w||^2':>9} {'closed':>8} {'1st ord':>8} | "
          f"{'Delta':>8} {'closed':>8} {'1st ord':>8} {'Delta*':>8}")
    for eta in system.learning_rate.values:
        for lam in system.weight_decay.values:
            for alpha in system.momentum.values:
                point = dict(learning_rate=eta, weight_decay=lam, momentum=alpha)
                kw = dict(learning_rate=eta, weight_decay=lam, momentum=alpha)
                norm, angle = float(n.sel(point).mean()), float(delta.sel(point).mean())
                closed_n = theory.equilibrium_norm_squared(**kw, dim=dim)
                first_n = theory.first_order_norm_squared(**kw, dim=dim)
                closed_d, first_d = theory.equilibrium_angular_update(**kw), theory.first_order_angular_update(**kw)
                print(f"{eta:5g} {lam:7g} {alpha:5g} | {norm:9.2f} {norm / closed_n - 1:+8.4%} "
                      f"{norm / first_n - 1:+8.4%} | {angle:8.5f} {angle / closed_d - 1:+8.4%} "
                      f"{angle / first_d - 1:+8.4%} {closed_d:8.5f}")


def network_figure(store, out, steps=3000, lr_step=1000, members=16):
    eta, lam, alphas = 0.5, 0.01, [0.0, 0.9]
    system = eq.create("smd", model="network", learning_rate=eta, weight_decay=lam, momentum=alphas, members=members,
                       seed=1)
    start = time.perf_counter()
    hist = eq.run(system, "sgd", steps=steps, store=store, backend="torch", options={"lr_step": lr_step},
                  record={"angular_update": 1, "accuracy": 100}, overwrite=True, progress=False)
    print(f"\nnetwork: {members} members x {len(alphas)} momenta, {steps} steps in {time.perf_counter() - start:.1f} s")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(alphas), figsize=(6 * len(alphas), 4), sharey=True, squeeze=False)
    rms = np.sqrt((hist.angular_update ** 2).mean("member").load().rolling(step=20, center=True).mean())
    steps_axis = hist.step.values
    names = ["hidden 1 (LayerNorm)", "hidden 2 (LayerNorm)", "output (affine)"]
    for ax, alpha in zip(axes[0], alphas):
        for layer, name in enumerate(names):
            ax.plot(steps_axis, rms.sel(momentum=alpha, layer=layer), lw=1, label=name)
        eta_t = np.where(steps_axis >= lr_step, eta / 10, eta)
        line = theory.first_order_angular_update(learning_rate=eta_t, weight_decay=lam, momentum=alpha)
        ax.plot(steps_axis, line, "k--", lw=1, label="theory sqrt(2 eta_t lambda / (1 + alpha))")
        accuracy = hist.accuracy.sel(momentum=alpha).mean("member")
        ax.set_title(f"alpha = {alpha:g}: held-out accuracy {float(accuracy.isel(step_100=lr_step // 100)):.3f} "
                     f"-> {float(accuracy.isel(step_100=-1)):.3f}", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        before = rms.sel(momentum=alpha, step=slice(lr_step - 400, lr_step - 10)).mean("step") / line[0]
        print(f"alpha = {alpha:g}: rms Delta / theory over the 400 steps before the lr step: "
              + ", ".join(f"{name} {float(before.sel(layer=k)):.3f}" for k, name in enumerate(names)))
    axes[0, 0].set_ylabel("angular update (rad)\nrms over members, 20-step mean")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"LayerNorm MLP on digits, {members} members: eta = {eta} -> {eta / 10} at step {lr_step}, "
                 f"lambda = {lam}\nafter the step ||w||^2 relaxes in ~1/(4 eta_t lambda) = "
                 f"{1 / (4 * eta / 10 * lam):.0f} steps (alpha = 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"saved {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="smd.png", help="PNG of the network's angular updates")
    parser.add_argument("--quick", action="store_true", help="shorter runs (the table and a 900-step figure)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    noise_table(tmp / "noise.zarr")
    steps, lr_step = (900, 500) if args.quick else (3000, 1000)
    network_figure(tmp / "network.zarr", args.out, steps=steps, lr_step=lr_step)


if __name__ == "__main__":
    main()
