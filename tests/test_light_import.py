"""``import eqflow`` stays light: the heavy libraries are imported where they are used.

Each check runs a fresh interpreter and reads its ``sys.modules`` (no timings here; the
figures are in benchmarks/bench_import.py).
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "sklearn", "networkx", "matplotlib", "scipy.stats", "triton")


def _loaded(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_import_eqflow_loads_no_heavy_module():
    assert _loaded("import eqflow") == []


def test_core_api_and_every_builtin_system_load_no_heavy_module():
    code = ("import eqflow as eq\n"
            "eq.create, eq.run, eq.open, eq.verify, eq.validate, eq.anneal, eq.write_samples\n"
            "for kind in eq.available():\n"
            "    eq.get_system(kind).operators\n")
    assert _loaded(code) == []


def test_bare_import_loads_neither_xarray_nor_zarr():
    done = subprocess.run([sys.executable, "-c", "import sys, eqflow; print('xarray' in sys.modules, "
                           "'zarr' in sys.modules, eqflow.__version__)"], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split()[:2] == ["False", "False"], done.stderr


@pytest.mark.parametrize("order", ["eqflow first", "xarray first"])
def test_accessor_registered_whichever_is_imported_first(order):
    first, second = ("eqflow as eq", "xarray as xr") if order == "eqflow first" else ("xarray as xr", "eqflow as eq")
    code = (f"import {first}\nimport {second}\n"
            "ds = eq.create('ising', size=4, temperature=[2.0], members=1, seed=1)\n"
            "print(xr.Dataset(attrs=ds.attrs).eqflow.kind)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "ising", done.stderr


def test_version_on_the_command_line_loads_nothing_heavy():
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom eqflow.__main__ import main\nmain(['--version'])\n"
                           "print([m for m in ('xarray', 'zarr', 'dask') if m in sys.modules])"],
                          capture_output=True, text=True, cwd=ROOT)
    import eqflow

    assert done.stdout.splitlines() == [f"eqflow {eqflow.__version__}", "[]"], done.stderr


def test_unknown_attribute_is_an_attribute_error():
    import eqflow

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        eqflow.nope
