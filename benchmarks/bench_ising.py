"""Ising benchmarks: eqflow vs a bare NumPy loop, side by side in one run.

    python benchmarks/bench_ising.py [overhead|same|throughput|memory|kernels|clusters [L ...]|all]

overhead   : 64x64, 1000 sweeps, energy + magnetization every sweep, spins every 10, to Zarr,
             vs the same updates in a bare NumPy loop (in memory, and saving once to Zarr).
same       : the same case, eq.run vs a bare loop calling the very same kernel (the reference
             operator with eqflow.random's words, or the numba kernel) and the same observables,
             in memory; 1,000 and 10,000 sweeps; the histories are checked equal first.
throughput : spin flips per ns at L = 256 and 1024, eqflow NumPy / torch CPU (and CUDA when
             present) vs a bare vectorised NumPy checkerboard (default_rng, float64 draws).
memory     : peak RSS of 1,000 vs 10,000 sweeps of the same run (a child process each).
kernels    : CPU flips per ns of eq.run(kernel="auto") (numba), eq.run(kernel="reference") and
             a bare vectorised NumPy loop, for one 1024^2 lattice and for 1,000 x 32^2 lattices;
             also the numba sweep called alone, and eqflow.random.generate alone (the ceiling of
             a kernel that would read pre-generated words instead of making them inline).
clusters   : tau_int(|m|) and tau_int(E) at T_c of checkerboard Metropolis, Wolff and Swendsen-Wang
             for L = 16, 32, 64, 128 (or the sizes given; 16 members each), in sweeps, the fitted
             dynamic exponents, and the wall time per independent |m| sample.
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eqflow as eq  # noqa: E402

from common import best_time, machine  # noqa: E402


def wrap_pad(spin):
    rows = np.concatenate([spin[-1:], spin, spin[:1]], axis=0)
    return np.concatenate([rows[:, -1:], rows, rows[:, :1]], axis=1)


def bare_numpy(spin, steps, temperature, record_spin_every=10, seed=0):
    """The same updates by hand: vectorised checkerboard Metropolis with a lookup table and the
    same periodic-padding neighbour sum as eqflow's operator (so the ratio measures overhead)."""
    rng = np.random.default_rng(seed)
    ny, nx = spin.shape
    parity = (np.arange(ny)[:, None] + np.arange(nx)[None, :]) % 2
    masks = (parity == 0, parity == 1)
    s = np.array([-1.0, 1.0])[:, None]
    n = np.arange(-4.0, 5.0, 2.0)[None, :]
    delta = 2 * s * n
    table = np.where(delta < 0, 1.0, np.where(delta == 0, 0.5, np.exp(-delta / temperature))).ravel()
    energy, magnetization, spins = np.empty(steps), np.empty(steps), []
    for step in range(steps):
        u = rng.random((ny, nx))
        for mask in masks:
            p = wrap_pad(spin)
            nsum = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
            flip = (u < table[(5 * spin + nsum + 9) // 2]) & mask
            spin = np.where(flip, -spin, spin)
        right = np.concatenate([spin[:, 1:], spin[:, :1]], axis=1)
        down = np.concatenate([spin[1:], spin[:1]], axis=0)
        bonds = np.sum(spin * (right + down), dtype=np.int64)
        energy[step] = -bonds / spin.size
        magnetization[step] = np.sum(spin, dtype=np.int64) / spin.size
        if (step + 1) % record_spin_every == 0:
            spins.append(spin.copy())
    return energy, magnetization, np.array(spins)


def overhead():
    size, t = 64, 2.5
    system = eq.create("ising", size=size, temperature=t, members=1, seed=1)
    spin0 = system.spin.values[0]
    tmp = Path(tempfile.mkdtemp())
    print("overhead  64x64, E and M every sweep, spins every 10, to Zarr (best of 5 / 3)")
    for steps, repeat in ((1000, 5), (10000, 3)):
        def with_eqflow():
            return eq.run(system, "metropolis", steps=steps, store=tmp / "eq.zarr", overwrite=True, progress=False,
                          record={"energy": 1, "magnetization": 1, "spin": 10})

        def bare_to_zarr():
            import xarray as xr
            e, m, s = bare_numpy(spin0, steps, t)
            xr.Dataset({"energy": ("step", e), "magnetization": ("step", m), "spin": (("rec", "y", "x"), s)}).to_zarr(
                tmp / "bare.zarr", mode="w", zarr_format=3, consolidated=False)

        t_bare, _ = best_time(lambda: bare_numpy(spin0, steps, t), repeat)
        t_bare_zarr, _ = best_time(bare_to_zarr, repeat)
        t_eq, _ = best_time(with_eqflow, repeat)
        print(f"  {steps:6d} sweeps: bare NumPy {t_bare * 1e3:7.1f} ms | "
              f"bare + one Zarr write {t_bare_zarr * 1e3:7.1f} ms | "
              f"eqflow {t_eq * 1e3:7.1f} ms | eqflow / bare {t_eq / t_bare:4.2f}x | "
              f"eqflow / (bare + Zarr) {t_eq / t_bare_zarr:4.2f}x")
    shutil.rmtree(tmp)


def same_kernel_loop(system, steps, kernel):
    """eq.run's updates and records by hand: the same operator function, draws and observables, no store."""
    from eqflow import random
    from eqflow.dataset import parameter_arrays
    from eqflow.systems import ising
    from eqflow.systems.ising import kernels as numba_kernels

    params = parameter_arrays(system, ising.SYSTEM.schema)
    sizes = {"y": system.sizes["y"], "x": system.sizes["x"]}
    tables = ising.metropolis_acceptance(**params, sizes=sizes)
    keys = random.cell_keys(int(system.attrs["eqflow_seed"]), system.member.values,
                            random.point_ids({k: v[0] for k, v in params.items()}, params["temperature"].shape[1:]))
    draw, spin = random.bits("y", "x"), system.spin.values
    energy, magnetization, spins = np.empty((steps + 1, *spin.shape[:-2])), np.empty((steps + 1, *spin.shape[:-2])), []
    energy[0] = ising.energy(spin=spin, coupling=params["coupling"], field=params["field"])
    magnetization[0] = ising.magnetization(spin=spin)
    for step in range(steps):
        if kernel == "reference":
            words = random.generate(draw, keys, step=step, slot=0, sizes=sizes)
            spin = ising.metropolis(spin=spin, words=words, **tables)["spin"]
        else:
            spin = numba_kernels.metropolis(spin=spin, keys=keys, slots={"words": 0}, step=step,
                                            acceptance=tables["acceptance"])["spin"]
        energy[step + 1] = ising.energy(spin=spin, coupling=params["coupling"], field=params["field"])
        magnetization[step + 1] = ising.magnetization(spin=spin)
        if (step + 1) % 10 == 0:
            spins.append(spin.copy())
    return energy, magnetization, spins


def same():
    import statistics
    import time

    system = eq.create("ising", size=64, temperature=2.5, members=1, seed=1)
    tmp = Path(tempfile.mkdtemp())
    record = {"energy": 1, "magnetization": 1, "spin": 10}
    print("same  64x64, E and M every sweep, spins every 10: eq.run to Zarr / a bare loop with the same kernel "
          "(median and range of alternating pairs)")
    for kernel in ("numba", "reference"):
        check = eq.run(system, "metropolis", steps=20, store=tmp / "c.zarr", overwrite=True, progress=False,
                       record=record, kernel=kernel)
        assert np.array_equal(check.energy.values, same_kernel_loop(system, 20, kernel)[0]), "not the same history"
        for steps, repeat in ((1000, 7), (10000, 3)):
            ratios, bare_times, eq_times = [], [], []
            for _ in range(repeat):
                start = time.perf_counter()
                same_kernel_loop(system, steps, kernel)
                bare_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                eq.run(system, "metropolis", steps=steps, store=tmp / "r.zarr", overwrite=True, progress=False,
                       record=record, kernel=kernel)
                eq_times.append(time.perf_counter() - start)
                ratios.append(eq_times[-1] / bare_times[-1])
            print(f"  {kernel:9s} {steps:6d} sweeps: bare {statistics.median(bare_times) * 1e3:7.1f} ms | eq.run "
                  f"{statistics.median(eq_times) * 1e3:7.1f} ms | ratio {statistics.median(ratios):4.2f}x "
                  f"({min(ratios):4.2f}-{max(ratios):4.2f}), of the best times {min(eq_times) / min(bare_times):4.2f}x "
                  f"| eq.run - bare per sweep "
                  f"{(statistics.median(eq_times) - statistics.median(bare_times)) / steps * 1e6:6.1f} us")
    shutil.rmtree(tmp)


def throughput():
    import torch

    devices = [("numpy", None), ("torch", "cpu")] + ([("torch", "cuda")] if torch.cuda.is_available() else [])
    print("throughput  spin flips per ns (one sweep = L^2 attempted flips), 1 member, T = 2.5")
    for size, steps in ((256, 300), (1024, 20)):
        system = eq.create("ising", size=size, temperature=2.5, members=1, seed=1)
        flips = size * size * steps
        t_bare, _ = best_time(lambda: bare_numpy(system.spin.values[0], steps, 2.5, record_spin_every=10**9), 3)
        line = f"  L={size:5d}  bare NumPy {flips / t_bare / 1e9:6.3f}"
        tmp = Path(tempfile.mkdtemp())
        for backend, device in devices:
            t_eq, _ = best_time(lambda: eq.run(system, "metropolis", steps=steps, store=tmp / "t.zarr", overwrite=True,
                                               progress=False, backend=backend, device=device, record={"energy": 1}), 3)
            line += (f" | eqflow {backend}{'/' + device if device else ''} {flips / t_eq / 1e9:6.3f} "
                     f"({t_bare / t_eq:4.2f}x bare)")
        shutil.rmtree(tmp)
        print(line)


MEMORY_CHILD = """
import sys, tempfile, psutil, eqflow as eq
system = eq.create("ising", size=64, temperature=2.5, members=4, seed=1)
base = psutil.Process().memory_info().rss / 2**20
eq.run(system, "metropolis", steps=int(sys.argv[1]), store=tempfile.mkdtemp() + "/m.zarr", progress=False,
       record={"energy": 1, "magnetization": 1, "spin": 10}, segment=1000)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(base, peak)  # VmHWM, unlike ru_maxrss, is not inherited from the parent across exec
"""


def memory():
    print("memory  peak RSS, 4 members of 64x64, E and M every sweep, spins every 10, segments of 1000 sweeps")
    print("        (child process each;")
    print("        'run' = peak minus the RSS after imports and create, i.e. what the run itself added)")
    peaks = {}
    for steps in (1000, 10000, 30000):
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(steps)], capture_output=True, text=True,
                             check=True)
        base, peak = map(float, out.stdout.split()[-2:])
        peaks[steps] = peak
        print(f"  {steps:6d} sweeps  peak {peak:7.1f} MiB  run {peak - base:6.1f} MiB  "
              "(history on disk grows with steps)")
    print(f"  ratio of peaks 10,000 / 1,000 sweeps {peaks[10000] / peaks[1000]:.2f} x, "
          f"30,000 / 10,000 {peaks[30000] / peaks[10000]:.2f} x")


def bare_sweeps(spin, steps, temperature, seed=0):
    """Vectorised checkerboard Metropolis over (..., L_y, L_x), float64 PCG64 draws, no records:
    what a careful NumPy user writes (np.roll neighbour sums, a lookup table, two colour passes)."""
    rng = np.random.default_rng(seed)
    ny, nx = spin.shape[-2:]
    parity = (np.arange(ny)[:, None] + np.arange(nx)[None, :]) % 2
    s = np.array([-1.0, 1.0])[:, None]
    n = np.arange(-4.0, 5.0, 2.0)[None, :]
    delta = 2 * s * n
    table = np.where(delta < 0, 1.0, np.where(delta == 0, 0.5, np.exp(-delta / temperature))).ravel()
    for _ in range(steps):
        u = rng.random(spin.shape)
        for colour in (0, 1):
            nsum = (np.roll(spin, 1, -1) + np.roll(spin, -1, -1) + np.roll(spin, 1, -2) + np.roll(spin, -1, -2))
            flip = (u < table[(5 * spin + nsum + 9) // 2]) & (parity == colour)
            spin = np.where(flip, -spin, spin)
    return spin


def kernels():
    import time

    import numba

    from eqflow import random
    from eqflow.systems import ising
    from eqflow.systems.ising import kernels as numba_kernels

    t = 2.5
    print("kernels  CPU spin flips per ns (one sweep = L^2 attempted flips per lattice), T = 2.5, Metropolis;")
    print("         eq.run records the final spins (and, in '+E', the energy every sweep too); best of 3")
    tmp = Path(tempfile.mkdtemp())
    for label, size, members, steps in (("1 x 1024^2", 1024, 1, (10, 200)), ("1000 x 32^2", 32, 1000, (10, 200))):
        system = eq.create("ising", size=size, temperature=t, members=members, seed=1)
        flips = size * size * members

        def run(kernel, n, energy=False):
            return eq.run(system, "metropolis", steps=n, store=tmp / "k.zarr", overwrite=True, progress=False,
                          record={"spin": n, **({"energy": 1} if energy else {})}, kernel=kernel)

        run("auto", 2)  # compile (or load the cache) outside the timings
        t_auto, hist = best_time(lambda: run("auto", steps[1]), 3)
        assert hist.attrs["eqflow_kernel"] == "numba"
        t_energy, _ = best_time(lambda: run("auto", steps[1], energy=True), 3)
        t_ref, _ = best_time(lambda: run("reference", steps[0]), 3)
        spin = system.spin.values.reshape(-1, size, size)
        t_bare, _ = best_time(lambda: bare_sweeps(spin, steps[0], t), 3)
        keys = np.arange(2 * spin.shape[0], dtype=np.int64).reshape(2, -1)
        cells = np.full(spin.shape[0], t)  # the operator's own acceptance thresholds at T = 2.5
        table = ising.metropolis_acceptance(temperature=cells, coupling=np.ones_like(cells), field=0 * cells,
                                            sizes={"y": size, "x": size})["acceptance"].reshape(-1, 10)
        def alone(sweep, n=steps[1]):
            work = spin.copy()
            for step in range(n):
                sweep(work, keys, table, False, np.uint64(0), np.uint64(step), np.uint64(0))

        def chosen(work, *args):  # the loop the operator picks for these cells (split layout or full rows)
            numba_kernels._sweep(work)(work, *args)

        t_alone, _ = best_time(lambda: alone(chosen), 3)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # the operator then picks the one-thread loop
        t_serial, _ = best_time(lambda: alone(chosen), 3)
        numba.set_num_threads(threads)
        draw = random.bits("y", "x")
        keys_e = random.cell_keys(1, np.arange(members), np.zeros((1,), np.uint64))
        start = time.perf_counter()
        for step in range(steps[0]):
            random.generate(draw, keys_e, step=step, slot=0, sizes={"y": size, "x": size})
        t_gen = (time.perf_counter() - start) / steps[0]
        rate = {k: flips * n / v / 1e9 for k, v, n in (("auto", t_auto, steps[1]), ("reference", t_ref, steps[0]),
                                                        ("bare", t_bare, steps[0]), ("alone", t_alone, steps[1]),
                                                        ("energy", t_energy, steps[1]),
                                                        ("serial", t_serial, steps[1]))}
        print(f"  {label:12s} eq.run auto (numba) {rate['auto']:6.3f} (+E {rate['energy']:6.3f}) | eq.run reference "
              f"{rate['reference']:6.3f} "
              f"| bare NumPy {rate['bare']:6.3f} | auto / bare {rate['auto'] / rate['bare']:5.2f}x, auto / reference "
              f"{rate['auto'] / rate['reference']:5.1f}x | numba sweep alone {rate['alone']:6.3f} "
              f"(eq.run keeps {rate['auto'] / rate['alone']:4.0%}), on one thread {rate['serial']:6.3f} "
              f"| generate() words alone {flips / t_gen / 1e9:6.3f}")
    shutil.rmtree(tmp)


def clusters(sizes=(16, 32, 64, 128)):
    """tau_int of |m| and of E at T_c for the local and the cluster updates, and the wall time per
    independent sample. Metropolis runs max(20,000, 4,000 (L / 32)^2) sweeps per member (about 45
    tau at L = 128), the cluster updates 20,000 Wolff clusters or 4,000 Swendsen-Wang steps."""
    import time

    from eqflow.systems.ising import theory

    tc = theory.critical_temperature()
    print(f"clusters  tau_int of |m| and E at T_c = {tc:.4f}, 16 members, after 1/5 burn-in; tau in sweeps "
          "(Wolff: steps x <|C|> / L^2); wall time per independent |m| sample")
    tmp = Path(tempfile.mkdtemp())
    taus = {(op, q): [] for op in ("metropolis", "wolff", "swendsen_wang") for q in ("|m|", "E")}
    for size in sizes:
        steps = {"metropolis": max(20000, 4000 * (size // 32) ** 2), "wolff": 20000, "swendsen_wang": 4000}
        line = f"  L = {size:3d}"
        for op, n in steps.items():
            system = eq.create("ising", size=size, temperature=tc, members=16, seed=size)
            record = {"magnetization": 1, "energy": 1, **({"flipped": 1} if op == "wolff" else {})}
            start = time.perf_counter()
            hist = eq.run(system, op, steps=n, store=tmp / f"{op}{size}.zarr", progress=False, record=record)
            wall = time.perf_counter() - start
            window = hist.isel(step=slice(n // 5, None))
            per_step = 1.0
            if op == "wolff":
                per_step = float(window.flipped.mean()) / size**2  # sweep-equivalents per step
            tau = {q: per_step * float(eq.diagnostics.integrated_time(series.load(), dim="step", chain_dim="member"))
                   for q, series in (("|m|", abs(window.magnetization)), ("E", window.energy))}
            # seconds of one member per independent sample: tau steps (tau = 1 + 2 sum rho, N / tau independent)
            per_sample = wall / (n * 16) * tau["|m|"] / per_step
            for q in tau:
                taus[op, q].append(tau[q])
            line += (f" | {op} ({n} steps, {n * per_step / tau['|m|']:.0f} tau) tau |m| {tau['|m|']:8.2f} E "
                     f"{tau['E']:7.2f} sweeps, {per_sample * 1e3:.2f} ms per sample")
        print(line, flush=True)
    if len(sizes) > 1:  # tau ~ L^z: least squares in log-log
        fits = {key: np.polyfit(np.log(sizes), np.log(t), 1)[0] for key, t in taus.items()}
        print("  dynamic exponent z (tau_int ~ L^z, fitted over these L): "
              + ", ".join(f"{op} {q} {z:.2f}" for (op, q), z in fits.items()))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    print(f"machine: {machine()}; numpy {np.__version__}, eqflow {eq.__version__}")
    for name in ("memory", "overhead", "same", "throughput", "kernels", "clusters"):
        if which in (name, "all"):
            globals()[name](*[int(a) for a in sys.argv[2:]]) if name == "clusters" else globals()[name]()
