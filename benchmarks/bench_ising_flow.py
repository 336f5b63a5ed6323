"""Flow-matching generator of Ising equilibria (eqflow.generators.ising_flow): fidelity and speed vs Monte Carlo.

For each L: an anneal store (Swendsen-Wang through the schedule) trains the generator; its
samples at every schedule temperature are compared
- at L = 4 with the exact Boltzmann distribution over all 2^16 states (KL, <E>, <|m|>),
- at L >= 8 with a long Swendsen-Wang run at the same temperatures (energy, |m|, C, chi,
  Binder cumulant, G(r) at r = L/4 and L/2, each +- its jackknife/member error, z-scores),
and timed: wall seconds per independent sample, generator (sampling only; training is
reported apart) vs MC = (seconds per SW sweep of one lattice) x tau_int, tau_int the larger
of energy's and |m|'s integrated autocorrelation times in sweeps at that T, tau = 1 + 2 sum rho
(emcee's convention, eq.diagnostics.integrated_time: the variance of a mean of N records is
var / (N / tau), so tau sweeps give one independent sample), at least 1.

    python benchmarks/bench_ising_flow.py [--sizes 4 8 16] [--iterations 600] [--samples 800]

Training budget (``--budgets``): at each L, one generator per budget (Adam iterations, 2 CPU
threads by ``--threads 2``), each compared at T = 3.0, T_c and 1.6 with the same Swendsen-Wang
reference (energy, |m|, C, chi: value, reference, z, relative deviation), the training seconds,
and the deviation's power law in the budget, extrapolated to the budget at which it would fall
below 3 combined standard errors of this sample count; with ``--cost-only`` just the sampling
cost per independent sample against Swendsen-Wang (a generator of the first budget: the cost
does not depend on training).

    python benchmarks/bench_ising_flow.py --sizes 16 --budgets 75 150 300 --samples 240 --threads 2
    python benchmarks/bench_ising_flow.py --sizes 32 --budgets 10 --samples 24 --threads 2 --cost-only
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

import eqflow as eq
from eqflow.generators import fidelity
from eqflow.generators import ising_flow as flow
from eqflow.systems.ising import theory

from common import machine

SCHEDULE = [3.0, 2.6, round(float(theory.critical_temperature()), 4), 2.0, 1.6]
TARGETS = [SCHEDULE[0], SCHEDULE[2], SCHEDULE[4]]  # T = 3.0, T_c, 1.6: the budget study's temperatures
MOMENTS = ("energy", "abs_magnetization", "specific_heat", "susceptibility")


def one_size(size, args, tmp):
    system = eq.create("ising", size=size, temperature=SCHEDULE[0], members=16, seed=size)
    started = time.perf_counter()
    anneal = eq.anneal(system, "swendsen_wang", schedule={"temperature": SCHEDULE}, stage_steps=args.stage_steps,
                       store=tmp / f"anneal{size}.zarr", record={"energy": 1, "spin": 2}, progress=False)
    anneal_s = time.perf_counter() - started
    started = time.perf_counter()
    gen = flow.train(anneal, iterations=args.iterations, batch=args.batch, hidden=32, layers=4, steps=args.steps,
                     seed=1, threads=args.threads)
    train_s = time.perf_counter() - started
    members = 8
    per_member = max(2, args.samples // members)
    started = time.perf_counter()
    samples = gen.sample(SCHEDULE, per_member, seed=2, members=members, store=tmp / f"gen{size}.zarr",
                         threads=args.threads)
    sample_s = time.perf_counter() - started
    per_t = {t: seconds / (members * per_member) for t, seconds in gen.sampling_seconds.items()}
    print(f"\nL = {size}: anneal {anneal_s:.1f} s (16 members x {len(SCHEDULE)} stages x {args.stage_steps} SW "
          f"sweeps), "
          f"training {train_s:.1f} s ({args.iterations} iterations, final loss {gen.log['final_loss']:.3g}, "
          f"{sum(gen.config['samples_per_stage'])} training configurations), sampling {sample_s:.1f} s "
          f"({members} x {per_member} per T)")
    if size * size <= 16:
        exact = fidelity.boltzmann(samples)
        print("     T   KL(gen||p)  KL(exact draws)  KL_E(gen)      <E> gen     exact    <|m|> gen    exact")
        for t in SCHEDULE:
            r = exact.sel(temperature=t)
            print(f"  {t:6.4f}  {float(r.kl):9.4f}  {float(r.kl_exact_samples):14.4f}  {float(r.kl_energy):9.4f}  "
                  f"{float(r.energy):11.4f} {float(r.energy_exact):9.4f}  {float(r.abs_magnetization):11.4f} "
                  f"{float(r.abs_magnetization_exact):8.4f}")
    mc, mc_s = _monte_carlo(size, args, tmp)
    if size * size > 16:
        table = fidelity.compare(samples, mc, reference_start=args.mc_steps // 5)
        names = [q for q in (*fidelity.QUANTITIES, *sorted(k for k in table if k.startswith("correlation_r")
                                                                and k.count("_") == 1))]
        print("     T  " + "".join(f"{n[:17]:>36}" for n in names))
        for t in SCHEDULE:
            r = table.sel(temperature=t)
            cells = [f"{float(r[n]):.3f}±{float(r[n + '_sem']):.3f} vs {float(r[n + '_reference']):.3f}"
                     f"±{float(r[n + '_reference_sem']):.3f} z{float(r[n + '_z']):+5.1f}" for n in names]
            print(f"  {t:6.4f}" + "".join(f"{c:>36}" for c in cells))
    summary = eq.summarize(mc.isel(step=slice(args.mc_steps // 5, None)), ["energy", "abs_magnetization"])
    sweep = mc_s / (args.mc_steps * 8 * len(SCHEDULE))  # seconds per SW sweep of one lattice
    print("     T   tau_int(E, |m|) sweeps   MC s/sample   generator s/sample   MC / generator")
    for t in SCHEDULE:
        tau = max(float(summary.energy_tau.sel(temperature=t)), float(summary.abs_magnetization_tau.sel(temperature=t)),
                  1.0)
        mc_sample = sweep * tau
        gen_sample = per_t[float(t)]
        print(f"  {t:6.4f}   {tau:20.2f}   {mc_sample:11.2e}   {gen_sample:18.2e}   {mc_sample / gen_sample:14.3g}")


def _monte_carlo(size, args, tmp):
    """8 members per T, Swendsen-Wang from a cold start, args.mc_steps sweeps (the first fifth dropped)."""
    system = eq.create("ising", size=size, temperature=SCHEDULE, members=8, seed=100 + size, start="up")
    started = time.perf_counter()
    hist = eq.run(system, "swendsen_wang", steps=args.mc_steps, store=tmp / f"mc{size}.zarr", progress=False,
                  record={"energy": 1, "magnetization": 1, "abs_magnetization": 1, "spin": 10})
    return hist, time.perf_counter() - started


def _anneal(size, args, tmp):
    system = eq.create("ising", size=size, temperature=SCHEDULE[0], members=16, seed=size)
    return eq.anneal(system, "swendsen_wang", schedule={"temperature": SCHEDULE}, stage_steps=args.stage_steps,
                     store=tmp / f"anneal{size}.zarr", record={"energy": 1, "spin": 2}, progress=False)


def _mc_cost(mc, mc_s, args):
    """{T: (tau_int in sweeps, MC seconds per independent sample of one lattice)} at the TARGETS."""
    summary = eq.summarize(mc.isel(step=slice(args.mc_steps // 5, None)), ["energy", "abs_magnetization"])
    sweep = mc_s / (args.mc_steps * 8 * len(SCHEDULE))  # seconds per SW sweep of one lattice
    out = {}
    for t in TARGETS:
        tau = max(float(summary.energy_tau.sel(temperature=t)), float(summary.abs_magnetization_tau.sel(temperature=t)),
                  1.0)
        out[t] = (tau, sweep * tau)
    return out


def budgets(size, args, tmp):
    """Fidelity vs training budget at T = 3.0, T_c, 1.6, and the cost per independent sample vs SW."""
    import numpy as np

    anneal = _anneal(size, args, tmp)
    mc, mc_s = _monte_carlo(size, args, tmp)
    cost = _mc_cost(mc, mc_s, args)
    reference = mc.sel(temperature=TARGETS)
    members, per_member = 8, max(2, args.samples // 8)
    rows, deviations = [], {}
    print(f"\nL = {size}: generator (4 layers x 32 channels, batch {args.batch}, {args.steps} Euler steps per segment)"
          f" vs Swendsen-Wang (8 chains x {args.mc_steps} sweeps per T, first fifth dropped); {members * per_member} "
          f"samples per T; {args.threads} torch thread(s)")
    for iterations in args.budgets:
        started = time.perf_counter()
        gen = flow.train(anneal, iterations=iterations, batch=args.batch, hidden=32, layers=4, steps=args.steps,
                         seed=1, threads=args.threads)
        train_s = time.perf_counter() - started
        samples = gen.sample(TARGETS, per_member, seed=2, members=members, store=tmp / f"gen{size}_{iterations}.zarr",
                             threads=args.threads)
        per_t = {t: seconds / (members * per_member) for t, seconds in gen.sampling_seconds.items()}
        if args.cost_only:
            _cost_table(cost, per_t)
            return
        table = fidelity.compare(samples, reference, reference_start=args.mc_steps // 5)
        print(f"  {iterations:5d} iterations: training {train_s:6.1f} s, final loss {gen.log['final_loss']:.3g}")
        for t in TARGETS:
            r = table.sel(temperature=t)
            cells = []
            for q in MOMENTS:
                value, ref = float(r[q]), float(r[q + "_reference"])
                se = float(np.hypot(r[q + "_sem"], r[q + "_reference_sem"]))
                deviations.setdefault((t, q), []).append((iterations, abs(value - ref), se))
                cells.append(f"{q[:8]} {value:7.3f} vs {ref:7.3f} z{float(r[q + '_z']):+6.1f} "
                             f"({(value - ref) / abs(ref):+6.1%})")
            rows.append((iterations, t))
            print(f"    T = {t:6.4f}  " + " | ".join(cells) + f" | {per_t[t]:.2e} s/sample")
    print("  extrapolated budget for |deviation| < 3 combined standard errors (of this sample count), from a power"
          " law |dev| = A n^-p fitted over the budgets:")
    for t in TARGETS:
        cells = []
        for q in MOMENTS:
            n, dev, se = (np.array(v, dtype=float) for v in zip(*deviations[(t, q)]))
            if (dev < 3 * se).all():
                cells.append(f"{q[:8]} within 3 SE at every budget")
                continue
            p, log_a = np.polyfit(np.log(n), np.log(dev), 1)
            need = np.exp((np.log(3 * se.mean()) - log_a) / p) if p < -0.05 else float("inf")
            cells.append(f"{q[:8]} slope {p:+.2f} -> {'not decreasing' if not np.isfinite(need) else f'{need:.3g} it'}")
        print(f"    T = {t:6.4f}  " + " | ".join(cells))
    _cost_table(cost, per_t)


def _cost_table(cost, per_t):
    print("     T   tau_int(E, |m|) SW sweeps   SW s/sample   generator s/sample   generator / SW")
    for t in TARGETS:
        tau, mc = cost[t]
        print(f"  {t:6.4f}   {tau:23.2f}   {mc:11.2e}   {per_t[t]:18.2e}   {per_t[t] / mc:14.0f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="Euler steps per schedule segment")
    parser.add_argument("--samples", type=int, default=800, help="generated samples per T")
    parser.add_argument("--stage-steps", type=int, default=200)
    parser.add_argument("--mc-steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budgets", type=int, nargs="+", help="training iterations to compare (budget study)")
    parser.add_argument("--cost-only", action="store_true", help="with --budgets: the sampling cost only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; torch {torch.__version__}, {args.threads} torch thread(s)")
    print(f"schedule T = {SCHEDULE} (T_c = {theory.critical_temperature():.4f}); J = 1, h = 0")
    tmp = Path(tempfile.mkdtemp())
    try:
        for size in args.sizes:
            (budgets if args.budgets else one_size)(size, args, tmp)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
