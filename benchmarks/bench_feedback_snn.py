"""Memory and time of one training step against T: implicit differentiation (IDE) vs backpropagation through time.

    python benchmarks/bench_feedback_snn.py [--times 5 30 100 300] [--neurons 128] [--batch 64] [--repeat 5]

The same feedback SNN (digits, n neurons, batch B, float64, IF, V_th = 2), the same minibatch and the
same loss (cross-entropy of the readout at the average rates a[T]). Contenders, side by side:

- IDE: eqflow's ``train`` operator (T steps forward without a graph, the adjoint fixed point by
  Broyden's method, analytic gradients, SGD update with spectral normalisation);
- BPTT: torch autograd through the T unrolled time steps of the same dynamics, the Heaviside spike
  replaced in the backward pass by the rectangular surrogate dH/du = 1/V_th on |u - V_th| < V_th / 2
  (forward identical), then the same SGD update.

Memory, two ways:
- graph bytes: the bytes of every tensor autograd saves for the backward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (exact; 0 for IDE, which builds no graph);
- peak RSS increase: each (method, T) in a fresh subprocess, after a warm-up step with T = 1 (one-off
  library set-up), the peak resident set size is reset (Linux ``/proc/self/clear_refs``), one step
  runs, and the peak (``VmHWM``) minus the resident size just before the step (psutil) is reported:
  the interpreter, torch and the data are not counted. Resolution about 0.1 MB.

Time: median of ``repeat`` steps after one warm-up, one torch thread.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import eqflow as eq
from eqflow.inputs import RunInputs
from eqflow.system import call_with
from eqflow.systems.feedback_snn import operators

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

GROUPS = operators.GROUPS


def setup(neurons, batch, time_steps):
    """(inputs for the train operator as torch tensors, the initial state) of one network on digits."""
    ds = eq.create("feedback_snn", neurons=neurons, dataset="digits", time_steps=time_steps, batch=batch, seed=1)
    system = eq.registry.get("feedback_snn")
    given = {**RunInputs.of(ds, system.schema, {}).flat(), "sizes": {"batch": batch}}
    spec = system.schema.operators["train"].options
    options = {k: v["default"] for k, v in spec.items()}
    given.update(options)
    given.update(call_with(operators.prepare_train, given))
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
              for k, v in given.items()}
    state = {k: torch.from_numpy(ds[k].values) for k in GROUPS}
    state.update({k: torch.from_numpy(v) for k, v in call_with(operators.init_train, state).items()})
    u = np.random.default_rng(0).uniform(size=(1, batch))
    inputs["uniforms"] = torch.from_numpy(u)
    return inputs, state


class Spike(torch.autograd.Function):
    """H(u - V) forward; rectangular surrogate 1/V on |u - V| < V/2 backward."""

    @staticmethod
    def forward(ctx, u, v):
        ctx.save_for_backward(u, v)
        return (u >= v).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        u, v = ctx.saved_tensors
        return grad * ((u - v).abs() < v / 2).to(u.dtype) / v, None


def bptt_step(inputs, state):
    """One SGD step with the gradient of the same loss by autograd through the T unrolled steps."""
    x, onehot = operators.minibatch(inputs["uniforms"], inputs["train_index"], inputs["data"], inputs["labels"],
                                    state["readout"].shape[-2])
    w = {k: state[k].detach().clone().requires_grad_(True) for k in GROUPS}
    v_th, t_max = inputs["threshold"][..., None, None], int(inputs["time_steps"].max())
    current = x @ w["input_weights"].mT + w["bias"][..., None, :]
    u = torch.zeros_like(current)
    s = torch.zeros_like(current)
    count = torch.zeros_like(current)
    for _ in range(t_max):
        u = u + s @ w["feedback"].mT + current
        s = Spike.apply(u, v_th)
        u = u - v_th * s
        count = count + s
    scores = (count / t_max) @ w["readout"].mT + w["readout_bias"][..., None, :]
    loss = -(onehot * torch.log_softmax(scores, dim=-1)).sum() / x.shape[-2]
    grads = torch.autograd.grad(loss, [w[k] for k in GROUPS])
    lr, mom, wd = (inputs[k] for k in ("learning_rate", "momentum", "weight_decay"))
    out = {}
    for k, g in zip(GROUPS, grads):
        cell = state[k].ndim - 1
        shape = (-1,) + (1,) * cell
        vel = mom.reshape(shape) * state[f"velocity_{k}"] + g + wd.reshape(shape) * state[k]
        new = state[k] - lr.reshape(shape) * vel
        out[k] = operators.project(new, inputs["spectral_bound"]) if k == "feedback" else new
    return out


def ide_step(inputs, state):
    return call_with(operators.train, {**inputs, **state})


STEPS = {"IDE": ide_step, "BPTT": bptt_step}


def graph_bytes(method, inputs, state):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        STEPS[method](inputs, state)
    return total[0]


def child(method, neurons, batch, time_steps):
    """In a fresh process: peak RSS increase (bytes) of one step."""
    import psutil

    torch.set_num_threads(1)
    warm_inputs, warm_state = setup(neurons, batch, 1)
    STEPS[method](warm_inputs, warm_state)  # libraries loaded, caches filled: a one-step graph is small
    inputs, state = setup(neurons, batch, time_steps)
    before = psutil.Process().memory_info().rss
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak (VmHWM) to the current RSS
        f.write("5")
    STEPS[method](inputs, state)
    print(json.dumps({"peak": max(0, _peak_rss() - before)}))


def _peak_rss():
    """VmHWM (bytes): the peak resident set size since the last reset; ru_maxrss where it is not available."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_rss(method, neurons, batch, time_steps):
    out = subprocess.run([sys.executable, __file__, "--child", method, str(neurons), str(batch), str(time_steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--times", type=int, nargs="+", default=[5, 30, 100, 300])
    parser.add_argument("--neurons", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        method, n, b, t = args.child
        return child(method, int(n), int(b), int(t))
    torch.set_num_threads(1)
    print(machine())
    print(f"n = {args.neurons} neurons, batch {args.batch}, digits (64 inputs, 10 classes), float64, IF, V_th = 2")
    print("| T | IDE ms/step | BPTT ms/step | BPTT/IDE time | IDE graph MB | BPTT graph MB | IDE peak RSS MB "
          "| BPTT peak RSS MB | BPTT/IDE RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    mb = 2.0 ** -20
    for t in args.times:
        inputs, state = setup(args.neurons, args.batch, t)
        times = {}
        for method in STEPS:
            STEPS[method](inputs, state)  # warm-up
        runs = {m: [] for m in STEPS}
        for _ in range(args.repeat):
            for method in STEPS:  # taking turns
                t0 = time.perf_counter()
                STEPS[method](inputs, state)
                runs[method].append(time.perf_counter() - t0)
        times = {m: statistics.median(r) for m, r in runs.items()}
        graph = {m: graph_bytes(m, inputs, state) for m in STEPS}
        rss = {m: measure_rss(m, args.neurons, args.batch, t) for m in STEPS}
        print(f"| {t} | {1e3 * times['IDE']:.1f} | {1e3 * times['BPTT']:.1f} | {times['BPTT'] / times['IDE']:.2f} "
              f"| {graph['IDE'] * mb:.1f} | {graph['BPTT'] * mb:.1f} | {rss['IDE'] * mb:.1f} | {rss['BPTT'] * mb:.1f} "
              f"| {rss['BPTT'] / max(rss['IDE'], 1):.1f} |", flush=True)


if __name__ == "__main__":
    main()
