"""Training throughput of the smd network ensemble against a plain PyTorch loop, side by side.

    python benchmarks/bench_smd.py [--members 16 64 256] [--steps 100] [--repeat 3] [--device cpu]

The case: M LayerNorm MLPs 64-32-32-10 on digits (batch 32, eta = 0.5, lambda = 0.01,
alpha = 0.9), trained for the same number of steps. Contenders, taking turns in each repeat:

- plain loop: PyTorch as one would write it, training the M networks one after another
  (nn.Linear, F.layer_norm, F.cross_entropy, torch.optim.SGD with momentum and weight decay),
  from the same initial weights on the same minibatches (drawn beforehand, not timed);
- batched operator: eqflow's ``sgd`` on all M networks at once in a bare Python loop (the
  Philox minibatch draws included, no store);
- eq.run: the same through eq.run (draws, records of the angular update every 10 steps,
  Zarr store and checkpoint), one chunk, and two member chunks (2 dask tasks).

Throughput is member-steps per second; each repeat gives the ratio of every contender to the
plain loop of that repeat, reported as the median and range over repeats. One torch thread
everywhere (eq.run's default per task). First checks that eq.run trains the same networks as
the plain loop (float32 agreement after 20 steps).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import eqflow as eq
from eqflow import random
from eqflow.inputs import RunInputs
from eqflow.systems import smd

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

ETA, LAM, ALPHA = 0.5, 0.01, 0.9


def minibatches(system, steps):
    """The minibatch indices eq.run draws: (steps, members, batch) int64 (Philox, the sgd draw slot)."""
    draws = smd.SYSTEM.operators["sgd"].draws
    keys = random.cell_keys(int(system.attrs["eqflow_seed"]), system.member.values,
                            RunInputs.of(system, smd.SYSTEM.schema, {}).point_ids)
    slot = list(draws).index("batch")
    return np.stack([random.generate(draws["batch"], keys, step=t, slot=slot, sizes={"batch": system.sizes["batch"]})
                     for t in range(steps)])


def plain_loop(system, batches, device):
    """Train each member alone with torch.optim.SGD; returns the final flat weights (members, dim)."""
    data = smd.network.digits()
    x = torch.tensor(data["train_x"], dtype=torch.float32, device=device)
    y = torch.tensor(data["train_y"], device=device)
    layers = smd.operators.layer_slices(system.fan_out.values, system.fan_in.values, system.normalized.values)
    index = torch.tensor(batches, device=device)
    out = []
    for m in range(system.sizes["member"]):
        weight = torch.tensor(system.weight.values[m], device=device)
        linears = []
        for start, stop, rows, cols, normalized in layers:
            matrix = weight[start:stop].reshape(rows, cols)
            linear = nn.Linear(cols - (not normalized), rows, bias=not normalized).to(device)
            with torch.no_grad():
                linear.weight.copy_(matrix if normalized else matrix[:, :-1])
                if not normalized:
                    linear.bias.copy_(matrix[:, -1])
            linears.append((linear, rows, normalized))
        optimizer = torch.optim.SGD([p for lin, _, _ in linears for p in lin.parameters()], lr=ETA, momentum=ALPHA,
                                    weight_decay=LAM)
        for step in range(index.shape[0]):
            h, batch = x[index[step, m]], index[step, m]
            for linear, rows, normalized in linears:
                h = linear(h)
                if normalized:
                    h = F.relu(F.layer_norm(h, (rows,), eps=smd.network.LN_EPS))
            loss = F.cross_entropy(h, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flat = [lin.weight if normalized else torch.cat([lin.weight, lin.bias[:, None]], 1)
                for lin, _, normalized in linears]
        out.append(torch.cat([f.detach().reshape(-1) for f in flat]).cpu().numpy())
    return np.stack(out)


def batched_operator(system, steps, device):
    """eqflow's sgd on all members at once in a bare loop (draws included, no store); final weights."""
    inputs = RunInputs.of(system, smd.SYSTEM.schema, {"lr_step": -1, "lr_factor": 10.0})
    flat = inputs.flat()
    prepared = smd.prepare_sgd(**{k: flat[k] for k in ("model", "fan_out", "fan_in", "normalized", "lr_factor")})
    to = {"train_x": torch.tensor(prepared["train_x"], dtype=torch.float32, device=device),
          "train_y": torch.tensor(prepared["train_y"], device=device)}
    params = {k: torch.tensor(inputs.parameters[k], dtype=torch.float32, device=device)
              for k in ("learning_rate", "weight_decay", "momentum")}
    keys = torch.tensor(random.cell_keys(int(system.attrs["eqflow_seed"]), system.member.values, inputs.point_ids),
                        device=device)
    draws, sizes = smd.SYSTEM.operators["sgd"].draws, {k: system.sizes[k] for k in ("sample", "batch")}
    weight = torch.tensor(system.weight.values, device=device)
    velocity = torch.zeros(weight.shape, dtype=torch.float64, device=device)
    for step in range(steps):
        x, batch = (random.generate(draws[k], keys, step=step, slot=i, sizes=sizes) for i, k in enumerate(draws))
        out = smd.sgd(weight=weight, velocity=velocity, **params, step=step, lr_step=-1, lr_factor=10.0,
                      model="network", x=x.float(), batch=batch, layers=prepared["layers"], **to)
        weight, velocity = out["weight"], out["velocity"]
    return weight.cpu().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    print(f"machine: {machine()}; torch {torch.__version__}, 1 thread, device {args.device}")
    print(f"case: LayerNorm MLP 64-32-32-10 on digits, batch 32, eta {ETA}, lambda {LAM}, alpha {ALPHA}, "
          f"{args.steps} steps")
    check = eq.create("smd", model="network", learning_rate=ETA, weight_decay=LAM, momentum=ALPHA, members=4, seed=1)
    ran = eq.run(check, "sgd", steps=20, store=tmp / "check.zarr", record={"weight": 20}, backend="torch",
                 device=args.device, progress=False)
    np.testing.assert_allclose(ran.weight.isel(step=-1).values, plain_loop(check, minibatches(check, 20), args.device),
                               rtol=1e-4, atol=1e-5, err_msg="eq.run and the plain loop must train the same networks")
    record = {"angular_update": 10}
    for members in args.members:
        system = eq.create("smd", model="network", learning_rate=ETA, weight_decay=LAM, momentum=ALPHA,
                           members=members, seed=1)
        batches = minibatches(system, args.steps)
        contenders = {
            "batched operator": lambda: batched_operator(system, args.steps, args.device),
            "eq.run, one chunk": lambda: eq.run(system, "sgd", steps=args.steps, store=tmp / "a.zarr", record=record,
                                                backend="torch", device=args.device, overwrite=True, progress=False),
            "eq.run, 2 member chunks": lambda: eq.run(system, "sgd", steps=args.steps, store=tmp / "b.zarr",
                                                      record=record, backend="torch", device=args.device,
                                                      chunks={"member": -(-members // 2)}, overwrite=True,
                                                      progress=False),
        }
        plain_times, ratios = [], {k: [] for k in contenders}
        for _ in range(args.repeat):
            start = time.perf_counter()
            plain_loop(system, batches, args.device)
            plain_times.append(time.perf_counter() - start)
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn()
                ratios[name].append(plain_times[-1] / (time.perf_counter() - start))
        rate = members * args.steps / statistics.median(plain_times)
        print(f"  {members} members: plain loop {rate:,.0f} member-steps/s (median of {args.repeat})")
        for name, values in ratios.items():
            print(f"    {name:<24} {statistics.median(values) * rate:>9,.0f} member-steps/s: "
                  f"{statistics.median(values):.2f}x the plain loop (range {min(values):.2f}-{max(values):.2f}x)")


if __name__ == "__main__":
    main()
