"""Import cost: ``import eqflow`` and ``eqflow --version`` vs eqflow's base libraries, side by side.

    python benchmarks/bench_import.py [repeat] [checkout]

``checkout`` (default: this one) is the source tree whose eqflow is imported, e.g. another branch's
worktree to compare with.

Each case runs in a fresh interpreter; the cases take turns within each repeat (so drifts of
a shared machine hit them alike). The import cases time the import statement inside the
child (interpreter start-up excluded); the command-line case times the whole child, start-up
included, as a user waits for it. Printed: the median, the spread ((max - min) / median) and
the ratio of medians to the base (xarray, zarr, dask.array and pint-xarray imported at once).

- ``import eqflow``: the package itself (its API loads on first use);
- ``eqflow core API``: ``import eqflow`` and the names a run needs (create, run, open, verify,
  validate, the ``ds.eqflow`` accessor): every module of the core, no particular system;
- ``eqflow --version``: the console script's entry point (``[project.scripts]`` of the checkout's
  pyproject.toml) called with ``--version``, in a fresh interpreter.
"""
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMED = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
CASES = {
    "base (xarray, zarr, dask.array, pint_xarray)": "import xarray, zarr, dask.array, pint_xarray",
    "import eqflow": "import eqflow",
    "eqflow core API": "import eqflow; eqflow.create, eqflow.run, eqflow.open, eqflow.verify, eqflow.validate",
}
HEAVY = ("torch", "numba", "scipy.stats", "sklearn", "networkx", "matplotlib", "triton")


def timed_import(statement: str, root: Path) -> float:
    out = subprocess.run([sys.executable, "-c", TIMED.format(statement)], capture_output=True, text=True,
                         check=True, cwd=root)
    return float(out.stdout.strip().splitlines()[-1])


def version_command(root: Path) -> list[str]:
    """The console script ``eqflow --version`` as the checkout's pyproject declares it."""
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["eqflow"].partition(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}(['--version']))"]


def timed_version(command: list[str], root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, cwd=root)
    return time.perf_counter() - t0


def heavy_loaded(statement: str, root: Path) -> list[str]:
    probe = f"import sys; {statement}; print([m for m in {HEAVY!r} if m in sys.modules])"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=root).stdout.strip()


def main(repeat: int = 9, root: Path = ROOT) -> None:
    times = {name: [] for name in [*CASES, "eqflow --version (whole process)"]}
    command = version_command(root)
    for _ in range(repeat):
        for name, statement in CASES.items():
            times[name].append(timed_import(statement, root))
        times["eqflow --version (whole process)"].append(timed_version(command, root))
    base = statistics.median(times[next(iter(CASES))])
    print(f"machine: {machine()}; {repeat} repeats, alternating, fresh interpreters; checkout {root.name}")
    print(f"{'case':48s} {'median s':>9s} {'spread':>7s} {'/ base':>7s}")
    for name, values in times.items():
        med = statistics.median(values)
        spread = (max(values) - min(values)) / med
        print(f"{name:48s} {med:9.3f} {spread:7.0%} {med / base:7.2f}")
    for name, statement in CASES.items():
        print(f"heavy modules after {name!r}: {heavy_loaded(statement, root)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9, Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else ROOT)
