"""Ising benchmarks: eqflow vs a bare NumPy loop, side by side in one run.

    python benchmarks/bench_ising.py [overhead|throughput|memory|all]

overhead   : 64x64, 1000 sweeps, energy + magnetization every sweep, spins every 10, to Zarr,
             vs the same updates in a bare NumPy loop (in memory, and saving once to Zarr).
throughput : spin flips per ns at L = 256 and 1024, eqflow NumPy / torch CPU (and CUDA when
             present) vs a bare vectorised NumPy checkerboard (default_rng, float64 draws).
memory     : peak RSS of 1,000 vs 10,000 sweeps of the same run (a child process each).
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


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    print(f"machine: {machine()}; numpy {np.__version__}, eqflow {eq.__version__}")
    for name in ("memory", "overhead", "throughput"):
        if which in (name, "all"):
            globals()[name]()
