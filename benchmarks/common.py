"""Helpers shared by the benchmark scripts: the machine, best-of-n wall times, busy processes."""
import os
import platform
import subprocess
import sys
import time

BURN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def best_time(fn, repeat=3):
    """Smallest wall time of ``repeat`` calls (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def emit(lines: list[str], out=None) -> None:
    """Print a result table; also write it to ``out`` (a path) when given."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n")


def busy(count: int, bound: float) -> list:
    """``count`` processes that each burn one core (a pure-Python loop) for at most ``bound`` seconds:
    a machine busy with other work. Kill them (``p.kill()``) when the measurement ends."""
    return [subprocess.Popen([sys.executable, "-c", BURN, str(bound)]) for _ in range(count)]
