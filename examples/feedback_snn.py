"""Feedback spiking networks (Xiao et al., NeurIPS 2021): rates converging to a*, and training by IDE on digits
============================================================================================================

    python examples/feedback_snn.py [--out feedback_snn.png] [--store feedback_snn.zarr] [--steps 225]

1. A random network (n = 200 IF neurons, ``||W||_2 = 1``, V_th = 2, 4 inputs) simulated with the
   ``integrate`` operator for 2,000 time steps, IF and LIF (leak 0.99) side by side as a sweep:
   ``max |a_t - a*|`` against t, a* from ``eq.systems.feedback_snn.theory.fixed_point``, with the 1/t
   line (IF) and the O(1 - lambda) plateau (LIF). Left panel of the PNG.
2. Training by implicit differentiation (``train``): 128 IF neurons, T = 30, batch 64, lr 0.1,
   momentum 0.9, on scikit-learn's digits, 2 members; loss and held-out accuracy recorded about
   once per epoch into a Zarr store, which is then reopened with plain xarray (no eqflow) for the
   accuracy-vs-epoch table and the right panel. About 30 s on a 2-core CPU.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

import eqflow as eq
from eqflow.systems.feedback_snn import theory


def rates_converging(store, steps=2000):
    """(t, max|a_t - a*| for IF, for LIF 0.99) from one integrate run swept over the leak."""
    x = np.random.default_rng(0).uniform(0, 1, (4, 10))
    system = eq.create("feedback_snn", neurons=200, data=x, leak=[0.99, 1.0], spectral_bound=1.0, seed=0)
    hist = eq.run(system, "integrate", steps=steps, store=store, overwrite=True, progress=False,
                  record={"firing_rate": 10, "equilibrium_residual": 1})
    w = {k: system[k].isel(member=0, leak=0).values for k in ("feedback", "input_weights", "bias")}
    star = theory.fixed_point(w["feedback"], w["input_weights"], w["bias"], x, 2.0)
    rates = hist.firing_rate.isel(member=0).load()
    error = abs(rates - star).max(["sample", "neuron"])
    t = rates.step_10.values
    return t[1:], error.sel(leak=1.0).values[1:], error.sel(leak=0.99).values[1:]


def train(store, steps):
    system = eq.create("feedback_snn", neurons=128, dataset="digits", time_steps=30, batch=64, learning_rate=0.1,
                       momentum=0.9, members=2, seed=1)
    t0 = time.perf_counter()
    eq.run(system, "train", steps=steps, store=store, overwrite=True, progress=False, backend="torch",
           record={"accuracy": 22, "loss": 22, "batch_loss": 1, "adjoint_iterations": 1})
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="feedback_snn.png", help="PNG: rates converging, accuracy per epoch")
    parser.add_argument("--store", default="feedback_snn.zarr", help="the training run's Zarr store")
    parser.add_argument("--steps", type=int, default=225, help="train steps (22.5 steps of 64 images = 1 epoch)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        t, if_error, lif_error = rates_converging(Path(tmp) / "rates.zarr")
    slope = np.polyfit(np.log(t[t >= 30]), np.log(if_error[t >= 30]), 1)[0]
    print(f"IF: max|a_t - a*| = {if_error[2]:.2e} at t = {t[2]}, {if_error[-1]:.2e} at t = {t[-1]}; "
          f"log-log slope over t >= 30: {slope:.3f} (theory -1)")
    print(f"LIF (leak 0.99): {lif_error[-1]:.2e} at t = {t[-1]} (plateau O(1 - lambda))")

    seconds = train(args.store, args.steps)
    hist = xr.open_zarr(args.store)  # plain xarray: what a collaborator without eqflow sees
    epochs = hist.step_22.values * 64 / 1437
    acc, loss = hist.accuracy.values, hist.loss.values
    print(f"training: {args.steps} steps in {seconds:.1f} s; held-out accuracy (360 digits) per member")
    print(f"{'epoch':>6} | " + " | ".join(f"member {m}: loss, accuracy" for m in hist.member.values))
    for i, e in enumerate(epochs):
        print(f"{e:6.2f} | " + " | ".join(f"{loss[i, m]:.3f}, {acc[i, m]:.4f}" for m in range(acc.shape[1])))
    print(f"adjoint iterations (Broyden): mean {float(hist.adjoint_iterations[1:].mean()):.1f}, "
          f"max {int(hist.adjoint_iterations.max())}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(t, if_error, label="IF (leak 1)")
    left.loglog(t, lif_error, label="LIF (leak 0.99)")
    left.loglog(t, if_error[2] * t[2] / t, "k--", lw=0.8, label="1/t")
    left.set(xlabel="time step t", ylabel="max |a_t - a*|", title="n = 200, ||W||_2 = 1, V_th = 2")
    left.legend()
    for m in range(acc.shape[1]):
        right.plot(epochs, acc[:, m], "o-", label=f"member {m}")
    right.axhline(0.95, color="k", lw=0.8, ls="--")
    right.set(xlabel="epoch", ylabel="held-out accuracy", ylim=(0.8, 1.0), title="digits, 128 IF neurons, T = 30, IDE")
    right.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out} and {args.store}")


if __name__ == "__main__":
    main()
