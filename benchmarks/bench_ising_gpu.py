"""Ising on one GPU: flips per ns of the Triton kernel, and the fraction of the memory bandwidth it reaches.

    python benchmarks/bench_ising_gpu.py [--dry-run] [--bandwidth TB/s] [--out FILE]

1. Bit identity first: the Triton sweep (:mod:`eqflow.systems.ising.gpu`) against the array-API
   reference operator (NumPy, fed eqflow.random's words) on small ensembles, L_x = 0 and 2 mod 4,
   both operators, with a field; the script stops if one site differs.
2. Checkerboard Metropolis (and heat bath on two cases) at T_c: one lattice of L = 4096, 8192,
   16384, 32768, and ensembles of smaller lattices (4096 x 64^2, 16384 x 32^2, 256 x 256^2), in
   attempted flips per ns (L^2 per sweep per lattice), timed with CUDA events after a warm-up; the
   reference torch operator (words from eqflow.random.generate, then the array-API sweep) on the
   same device for L <= 8192 and the 64^2 ensemble, side by side.
3. Bandwidth: the kernel moves about 4 bytes per attempted flip from DRAM (each int8 spin read
   and written once per colour pass; the neighbours' reads hit the cache), so the bandwidth it
   uses is 4 B x flips/ns; the fraction is that over the device's peak (H100 SXM 3.35 TB/s,
   H200 4.8 TB/s, A100 80GB 2.04 TB/s; --bandwidth for any other) and 1 is the ceiling of one-byte
   spins: ~840 flips/ns on an H100, ~1,200 on an H200.

Runs in about 1-3 minutes on an H100/H200 (compile ~10 s, then ~0.3 s per case). Without a CUDA
device it says so and exits 0; ``--dry-run`` runs the whole script on tiny sizes in Triton's
interpreter on the CPU (proves the script end to end; its figures are not speeds).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import emit, machine  # noqa: E402

PEAK_TB_S = {"H200": 4.8, "H100": 3.35, "GH200": 4.0, "A100": 2.04, "L40S": 0.864}  # vendors' data sheets
BYTES_PER_FLIP = 4.0
T_C = 2.0 / np.log1p(np.sqrt(2.0))


def peak_bandwidth(name: str, given: float | None) -> float | None:
    """Peak DRAM bandwidth (bytes/s) of the device called ``name``, or ``given`` TB/s."""
    if given is not None:
        return given * 1e12
    for key in sorted(PEAK_TB_S, key=len, reverse=True):  # "GH200" before "H200"
        if key in name:
            return PEAK_TB_S[key] * 1e12
    return None


def tables(cells, ny, nx, heat_bath, field=0.0):
    """Thresholds (cells x 5 or 10) at T spread around T_c, J = 1, and the cells' keys (2, cells)."""
    from eqflow import random
    from eqflow.systems.ising import operators

    t = np.linspace(0.9, 1.1, cells) * T_C if cells > 1 else np.array([T_C])
    prepare = operators.heat_bath_probability if heat_bath else operators.metropolis_acceptance
    prepared = prepare(temperature=t, coupling=np.ones(cells), field=np.full(cells, field), sizes={"y": ny, "x": nx})
    keys = random.cell_keys(2026, np.arange(cells), np.zeros(1, np.uint64)).reshape(2, cells)
    return prepared, keys


def check_identity(device, lines):
    """The Triton sweep equals the NumPy reference operator, site for site, over a few sweeps."""
    import torch

    from eqflow import random
    from eqflow.systems.ising import gpu, operators

    for cells, ny, nx in ((3, 16, 12), (2, 6, 10), (1, 40, 36)):
        for heat_bath in (False, True):
            prepared, keys = tables(cells, ny, nx, heat_bath, field=0.3)
            name = "probability_up" if heat_bath else "acceptance"
            update = operators.heat_bath if heat_bath else operators.metropolis
            spin = np.where(np.random.default_rng(cells).random((cells, ny, nx)) < 0.5, 1, -1).astype(np.int8)
            got = torch.from_numpy(spin).to(device)
            table, k = torch.from_numpy(prepared[name]).to(device), torch.from_numpy(keys).to(device)
            for step in (0, 1, 2**32 + 5):
                words = random.generate(random.bits("y", "x"), keys, step=step, slot=0, sizes={"y": ny, "x": nx})
                spin = update(spin=spin, words=words, cell_offset=prepared["cell_offset"],
                              checkerboard=prepared["checkerboard"], **{name: prepared[name]})["spin"]
                got = gpu.sweep(got, k, table, heat_bath=heat_bath, slot=0, step=step)
            differ = int((got.cpu().numpy() != spin).sum())
            label = f"{'heat bath' if heat_bath else 'metropolis'} {cells} x {ny}x{nx}"
            lines.append(f"  identity {label:24s}: {'same' if differ == 0 else f'{differ} SITES DIFFER'}")
            if differ:
                emit(lines)
                sys.exit(f"the Triton kernel differs from the reference operator ({label})")


class Clock:
    """Wall time of a call: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"

    def __call__(self, fn, repeat):
        if not self.cuda:
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            return (time.perf_counter() - t0) / repeat
        start, stop = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
        self.torch.cuda.synchronize()
        start.record()
        for _ in range(repeat):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3 / repeat


def flips_per_ns(device, cells, size, heat_bath, kernel, clock, budget_s):
    """Attempted flips per ns of ``kernel`` ("triton" or "reference") on ``cells`` lattices of ``size``^2."""
    import torch

    from eqflow import random
    from eqflow.systems.ising import gpu, operators

    prepared, keys = tables(cells, size, size, heat_bath)
    name = "probability_up" if heat_bath else "acceptance"
    table, k = torch.from_numpy(prepared[name]).to(device), torch.from_numpy(keys).to(device)
    spin = (torch.randint(0, 2, (cells, size, size), dtype=torch.int8, device=device) * 2 - 1).to(torch.int8)
    state = {"spin": spin, "step": 0}
    if kernel == "triton":
        def one():
            state["spin"] = gpu.sweep(state["spin"], k, table, heat_bath=heat_bath, slot=0, step=state["step"])
            state["step"] += 1
    else:
        update = operators.heat_bath if heat_bath else operators.metropolis
        fixed = {name: table, "cell_offset": torch.from_numpy(np.asarray(prepared["cell_offset"])).to(device),
                 "checkerboard": torch.from_numpy(prepared["checkerboard"]).to(device)}
        draw, sizes = random.bits("y", "x"), {"y": size, "x": size}

        def one():
            words = random.generate(draw, k, step=state["step"], slot=0, sizes=sizes)
            state["spin"] = update(spin=state["spin"], words=words, **fixed)["spin"]
            state["step"] += 1
    one()  # compile / warm up
    first = clock(one, 1)
    repeat = int(max(1, min(200, budget_s / max(first, 1e-6))))
    seconds = clock(one, repeat)
    return cells * size * size / seconds / 1e9, repeat


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes in Triton's interpreter on the CPU")
    parser.add_argument("--bandwidth", type=float, default=None, help="the device's peak bandwidth, TB/s")
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as exc:
        print(f"bench_ising_gpu: needs torch and triton (pip install eqflow-ensembles[gpu]): {exc}")
        return
    if not args.dry_run and not torch.cuda.is_available():
        print("bench_ising_gpu: no CUDA device here: nothing to measure (--dry-run runs the script on tiny sizes "
              "in Triton's interpreter on the CPU)")
        return
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:
        name, singles, ensembles, budget = "CPU (Triton interpreter: not a speed figure)", (8, 16), ((4, 8),), 0.05
        reference_for = {8, (4, 8)}
    else:
        name = torch.cuda.get_device_name(0)
        singles, ensembles, budget = (4096, 8192, 16384, 32768), ((4096, 64), (16384, 32), (256, 256)), 0.3
        reference_for = {4096, 8192, (4096, 64)}
    peak = peak_bandwidth(name, args.bandwidth)
    started = time.perf_counter()
    lines = [f"bench_ising_gpu  host: {machine()}", f"  device: {name}; peak bandwidth "
             f"{'unknown (--bandwidth)' if peak is None else f'{peak / 1e12:.2f} TB/s'}; torch {torch.__version__}, "
             f"triton {triton.__version__}"]
    check_identity(device, lines)
    clock = Clock(device)
    lines.append(f"  {'case':22s} {'operator':10s} {'triton flips/ns':>15s} {'GB/s':>8s} {'of peak':>8s} "
                 f"{'reference flips/ns':>19s} {'triton/ref':>10s}  sweeps timed")
    cases = [(1, size) for size in singles] + list(ensembles)
    for cells, size in cases:
        key = size if cells == 1 else (cells, size)
        for heat_bath in (False, True) if key in (singles[-2], ensembles[0]) else (False,):
            rate, repeat = flips_per_ns(device, cells, size, heat_bath, "triton", clock, budget)
            used = rate * 1e9 * BYTES_PER_FLIP
            fraction = f"{used / peak:8.2f}" if peak else f"{'?':>8s}"
            ref = ratio = ""
            if key in reference_for:
                ref_rate, _ = flips_per_ns(device, cells, size, heat_bath, "reference", clock, budget)
                ref, ratio = f"{ref_rate:19.4g}", f"{rate / ref_rate:10.3g}"
            label = f"L = {size}" if cells == 1 else f"{cells} x {size}^2"
            lines.append(f"  {label:22s} {'heat bath' if heat_bath else 'metropolis':10s} {rate:15.4g} "
                         f"{used / 1e9:8.1f} {fraction} {ref:>19s} {ratio:>10s}  {repeat}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    lines.append(f"  ({BYTES_PER_FLIP:.0f} B moved per attempted flip; total {time.perf_counter() - started:.0f} s)")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
