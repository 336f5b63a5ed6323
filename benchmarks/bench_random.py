"""Random-number throughput: eqflow's Philox4x32-10 (eqflow.random) vs NumPy's PCG64, side by side in one run.

    python benchmarks/bench_random.py [repeat]

For each request size (cells x values per cell) and each output (raw uint32 words, float64
uniforms, float64 normals) it times eqflow.random.generate on NumPy, on torch CPU with one
thread and with torch's default thread count (and on CUDA when present), and the matching
PCG64 call of one numpy.random.Generator: random_raw (two 32-bit words per 64-bit output),
random and standard_normal. The contenders take turns within each repeat, so drifts of a
shared machine hit them alike; the table gives the best rate, the spread over the repeats
((worst - best) / best) and the ratio eqflow / PCG64 of best rates.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eqflow as eq  # noqa: E402
from eqflow import random as philox  # noqa: E402

from common import machine  # noqa: E402

SIZES = [(1, 10**5), (1, 10**7), (1000, 10**4)]  # (cells, values per cell)
OUTPUTS = {
    "uint32 words": (philox.bits, lambda g, n: g.bit_generator.random_raw(n // 2)),
    "float64 uniforms": (philox.uniform, lambda g, n: g.random(n)),
    "float64 normals": (philox.normal, lambda g, n: g.standard_normal(n)),
}


def contenders(keys):
    """(name, call(draw) -> None) for every backend present; torch CPU at 1 thread and by default."""
    import torch

    default_threads = torch.get_num_threads()
    tkeys = torch.from_numpy(keys)

    def numpy_call(draw):
        philox.generate(draw, keys, step=0, slot=0, sizes={})

    def torch_call(threads):
        def call(draw):
            torch.set_num_threads(threads)
            philox.generate(draw, tkeys, step=0, slot=0, sizes={})
        return call

    found = [("eqflow numpy", numpy_call), ("eqflow torch cpu, 1 thread", torch_call(1)),
             (f"eqflow torch cpu, {default_threads} threads", torch_call(default_threads))]
    if torch.cuda.is_available():
        ckeys = tkeys.cuda()

        def cuda_call(draw):
            philox.generate(draw, ckeys, step=0, slot=0, sizes={})
            torch.cuda.synchronize()

        found.append(("eqflow torch cuda", cuda_call))
    return found, lambda: torch.set_num_threads(default_threads)


def measure(calls, repeat):
    """Wall times of each call, taking turns within each repeat: {name: [seconds, ...]}."""
    times = {name: [] for name, _ in calls}
    for name, call in calls:  # warm-up (imports, allocator, kernels)
        call()
    for _ in range(repeat):
        for name, call in calls:
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return times


def table(repeat):
    print(f"{'cells x per cell':>19}  {'output':<17} {'contender':<30} {'per ns':>7} {'spread':>7} {'/ PCG64':>8}")
    for cells, per_cell in SIZES:
        keys = philox.cell_keys(1, np.arange(cells), np.zeros((), dtype=np.uint64))
        total = cells * per_cell
        found, restore = contenders(keys)
        for output, (make_draw, pcg) in OUTPUTS.items():
            draw = make_draw(per_cell)
            generator = np.random.Generator(np.random.PCG64(1))
            calls = [("numpy PCG64 (one stream)", lambda: pcg(generator, total))]
            calls += [(name, lambda call=call: call(draw)) for name, call in found]
            times = measure(calls, repeat)
            restore()
            reference = min(times[calls[0][0]])
            for name, _ in calls:
                best, worst = min(times[name]), max(times[name])
                ratio = "" if name == calls[0][0] else f"{reference / best:7.3f}x"
                print(f"{cells:>6} x {per_cell:<10,d}  {output:<17} {name:<30} {total / best / 1e9:7.3f} "
                      f"{(worst - best) / best:6.0%} {ratio:>8}")
        print()


def agreement():
    """NumPy and torch give the same numbers (shown, not asserted: the tests assert it)."""
    import torch

    keys = philox.cell_keys(1, np.arange(4), np.zeros((), dtype=np.uint64))
    same = all(np.array_equal(philox.generate(d, keys, step=5, slot=0, sizes={}),
                              philox.generate(d, torch.from_numpy(keys), step=5, slot=0, sizes={}).numpy())
               for d in (philox.bits(10**5), philox.uniform(10**5), philox.normal(10**5)))
    print(f"numpy and torch cpu bit-identical on 4 x 10^5 words, uniforms and normals: {same}")


if __name__ == "__main__":
    import torch

    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"machine: {machine()}; numpy {np.__version__}, torch {torch.__version__} "
          f"(default {torch.get_num_threads()} threads), eqflow {eq.__version__}")
    print(f"random numbers per ns, best of {repeat} (contenders take turns); spread = (worst - best) / best;")
    print("/ PCG64 = eqflow rate / PCG64 rate for the same output (PCG64: one Generator, one stream)\n")
    agreement()
    print()
    table(repeat)
