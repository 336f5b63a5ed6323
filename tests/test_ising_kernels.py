"""Operator kernels: every variant gives the reference's history bit for bit; selection and provenance.

The numba kernels make their Philox words inline; here they are run against the array-API
reference operators over lattice shapes (square, rectangular with L_x = 2 mod 4, so that
Philox blocks straddle rows, and the smallest 2 x 2), temperatures, fields, couplings of
either sign, member counts, chunkings and resume points. Lattices stay small: the kernels
compile once per process (and are cached on disk).
"""
import dask
import numpy as np
import pytest

import eqflow as eq
from eqflow import registry
from eqflow.errors import SchemaError
from eqflow.system import Kernel, Operator
from eqflow.systems import ising

from conftest import assert_same_history
from test_systems import crash_after_marks

pytest.importorskip("numba")


@pytest.fixture(autouse=True)
def every_core_free(monkeypatch):
    """A lone task takes the cores free as it starts (eqflow.backends.free_cores), which depends on what
    else the machine runs; here every CPU counts as free, so the loops each test expects are the ones
    that run (test_numba_threads.py checks the cap itself)."""
    from eqflow import backends

    monkeypatch.setattr(backends, "free_cores", lambda: 1 << 16)

LOCAL = ["metropolis", "heat_bath"]
CLUSTER = ["wolff", "swendsen_wang"]
RECORD = {"spin": 1, "energy": 1, "magnetization": 1}
CASES = [  # (size, temperatures, members, coupling, field)
    (4, [1.5, 2.269, 3.5], 3, 1.0, 0.0),
    ((6, 10), [2.0, 5.0], 2, 1.0, 0.0),
    ((2, 2), [0.7], 4, -1.0, 0.0),
    ((8, 6), [1.2, 2.269], 3, [0.5, -1.0], 0.0),
]
FIELD_CASES = [(4, [2.0, 3.0], 3, 1.0, [0.3, -0.7]), ((6, 10), [1.8], 2, -0.5, 0.2)]


def _run(ds, op, path, **kw):
    record = {**RECORD, "flipped": 1} if op in CLUSTER else RECORD
    return eq.run(ds, op, steps=kw.pop("steps", 12), store=path, record=record, progress=False, **kw)


def _systems(cases):
    for size, t, members, j, h in cases:
        yield pytest.param(size, t, members, j, h, id=f"L{size}-T{len(t)}-M{members}-J{j}-h{h}")


@pytest.mark.parametrize("op", LOCAL + CLUSTER)
@pytest.mark.parametrize("size,temperature,members,coupling,field",
                         list(_systems(CASES)))
def test_numba_equals_reference(op, size, temperature, members, coupling, field, tmp_path):
    ds = eq.create("ising", size=size, temperature=temperature, members=members, coupling=coupling, field=field,
                   seed=members * 7 + 1)
    reference = _run(ds, op, tmp_path / "ref.zarr", kernel="reference")
    fast = _run(ds, op, tmp_path / "numba.zarr", kernel="numba", chunks={"member": 1}, segment=5)
    assert reference.attrs["eqflow_kernel"] == "reference" and fast.attrs["eqflow_kernel"] == "numba"
    assert_same_history(reference, fast)
    assert np.any(reference.spin.values[1:] != reference.spin.values[:-1]), "nothing moved: the test proves nothing"


@pytest.mark.parametrize("op", LOCAL)
@pytest.mark.parametrize("size,temperature,members,coupling,field", list(_systems(FIELD_CASES)))
def test_numba_equals_reference_in_a_field(op, size, temperature, members, coupling, field, tmp_path):
    ds = eq.create("ising", size=size, temperature=temperature, members=members, coupling=coupling, field=field,
                   seed=3)
    assert_same_history(_run(ds, op, tmp_path / "ref.zarr", kernel="reference"),
                        _run(ds, op, tmp_path / "numba.zarr", kernel="numba", chunks={"temperature": 1}))


@pytest.mark.parametrize("op", LOCAL + CLUSTER)
def test_a_larger_lattice_at_tc_and_late_steps(op, tmp_path):
    """L = 32 at T_c (large clusters), starting at a step above 2^32 (the counter's high word)."""
    ds = eq.create("ising", size=32, temperature=ising.theory.critical_temperature(), members=2, seed=2**40 + 3)
    ds.attrs["eqflow_step"] = 2**32 - 3
    a = _run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=6)
    b = _run(ds, op, tmp_path / "numba.zarr", kernel="numba", steps=6)
    assert_same_history(a, b)


@pytest.mark.parametrize("op,first,then", [("metropolis", "numba", "reference"), ("heat_bath", "reference", "numba"),
                                           ("wolff", "numba", "reference"), ("swendsen_wang", "reference", "numba")])
def test_resume_with_the_other_kernel(op, first, then, tmp_path, monkeypatch, small_ising):
    reference = _run(small_ising, op, tmp_path / "ref.zarr", kernel="reference", segment=4)
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(small_ising, op, tmp_path / "r.zarr", kernel=first, segment=4)
    monkeypatch.undo()
    resumed = _run(small_ising, op, tmp_path / "r.zarr", kernel=then, segment=4, resume=True)
    assert_same_history(reference, resumed)
    assert resumed.attrs["eqflow_kernel"] == f"{first}, {then}"


def test_auto_picks_numba_on_numpy_and_the_reference_on_torch(small_ising, tmp_path):
    a = eq.run(small_ising, "metropolis", steps=3, store=tmp_path / "a.zarr", progress=False)
    b = eq.run(small_ising, "metropolis", steps=3, store=tmp_path / "b.zarr", progress=False, backend="torch")
    assert a.attrs["eqflow_kernel"] == "numba"
    assert b.attrs["eqflow_kernel"] == "reference"
    assert_same_history(a, b)


@pytest.mark.parametrize("kernel,expected", [
    ("fastest", r"kernel: expected 'auto', 'reference' or one of \['numba', 'triton'\] for this operator, "
                r"got 'fastest'"),
    (3, r"kernel: expected 'auto', 'reference' or one of \['numba', 'triton'\] for this operator, got 3"),
])
def test_unknown_kernel_is_named_before_anything_is_written(kernel, expected, small_ising, tmp_path):
    with pytest.raises(SchemaError, match=expected):
        eq.run(small_ising, "metropolis", steps=3, store=tmp_path / "h.zarr", progress=False, kernel=kernel)
    assert not (tmp_path / "h.zarr").exists()


def test_a_kernel_for_another_backend_is_refused(small_ising, tmp_path):
    with pytest.raises(SchemaError, match=r"kernel: 'numba' cannot run here: it serves backends \['numpy'\], "
                                          r"not 'torch'"):
        eq.run(small_ising, "heat_bath", steps=3, store=tmp_path / "h.zarr", progress=False, backend="torch",
               kernel="numba")
    assert not (tmp_path / "h.zarr").exists()


def test_without_its_module_a_kernel_is_unavailable_and_auto_falls_back(monkeypatch, small_ising, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    op = ising.SYSTEM.operators["metropolis"]
    assert op.select_kernel("auto", "numpy") == ("reference", None)
    assert op.select_kernel("numba", "numpy")[1] == ("kernel: 'numba' cannot run here: it needs ['numba'], which is "
                                                     "not installed (pip install numba)")
    hist = eq.run(small_ising, "metropolis", steps=2, store=tmp_path / "h.zarr", progress=False)
    assert hist.attrs["eqflow_kernel"] == "reference"


def test_kernel_declarations_are_checked():
    with pytest.raises(TypeError, match=r"kernels\['reference'\]: expected a Kernel under a name other than"):
        Operator(ising.metropolis, kernels={"reference": Kernel(ising.metropolis)})
    with pytest.raises(TypeError, match=r"kernels\['fast'\]: expected a Kernel .* got function"):
        Operator(ising.metropolis, kernels={"fast": ising.metropolis})
    gpu = Kernel(ising.metropolis, backends=("torch",), devices=("cuda",))
    assert gpu.unavailable("torch", "cpu") == "serves devices ['cuda'], not 'cpu'"
    assert gpu.unavailable("torch", "cuda:1") is None
    op = Operator(ising.metropolis, kernels={"gpu": gpu, "cpu": Kernel(ising.metropolis)})
    assert op.select_kernel("auto", "numpy") == ("cpu", None)
    assert op.select_kernel("auto", "torch", "cuda") == ("gpu", None)


def test_the_run_file_takes_a_kernel(tmp_path):
    from eqflow.cli import load_config

    text = ('[system]\nkind = "ising"\nsize = 4\ntemperature = 2.0\n[run]\noperator = "wolff"\nsteps = 3\n'
            'store = "h.zarr"\nkernel = "{}"\n')
    (tmp_path / "ok.toml").write_text(text.format("reference"))
    assert load_config(tmp_path / "ok.toml")[1]["kernel"] == "reference"
    (tmp_path / "bad.toml").write_text(text.format("gpu"))
    with pytest.raises(SchemaError, match=r"kernel: expected 'auto', 'reference' or one of \['numba'\]"):
        load_config(tmp_path / "bad.toml")


def test_every_ising_operator_has_a_numba_kernel():
    for name, op in registry.get("ising").operators.items():
        assert list(op.kernels) == (["numba", "triton"] if name in LOCAL else ["numba"]), name
        assert all(kernel.inline_draws for kernel in op.kernels.values())


@pytest.mark.slow
@pytest.mark.parametrize("op", LOCAL + CLUSTER)
def test_the_parallel_loops_equal_the_reference(op, monkeypatch, tmp_path):
    """Small lattices run the one-thread loops; here every size takes the parallel ones (prange)."""
    from eqflow.systems.ising import kernels

    monkeypatch.setattr(kernels, "PARALLEL_SITES", 1)
    ds = eq.create("ising", size=(6, 10), temperature=[1.8, 2.269, 4.0], members=3, seed=17)
    assert_same_history(_run(ds, op, tmp_path / "ref.zarr", kernel="reference"),
                        _run(ds, op, tmp_path / "numba.zarr", kernel="numba"))


@pytest.mark.parametrize("op", LOCAL)
@pytest.mark.parametrize("size,members,field,parallel_sites", [
    (4, 32, 0.0, 2**40), ((2, 6), 24, 0.0, 1), ((8, 4), 100, [0.4, -0.2, 0.0], 1), (16, 30, 0.3, 2**40),
])
def test_many_small_cells_take_the_cell_major_loop(op, size, members, field, parallel_sites, monkeypatch, tmp_path):
    """Ensembles of small lattices (at least CELL_MAJOR_CELLS cells of at most CELL_MAJOR_SITES sites)
    run the cell-major loop (cells innermost), on one thread and in parallel over blocks of cells
    (8 x 4 sites: blocks of 512 cells, so 900 cells make two, the second partial), with the
    reference's history bit for bit."""
    from eqflow.systems.ising import kernels

    monkeypatch.setattr(kernels, "PARALLEL_SITES", parallel_sites)
    ran = []
    for name in ("cell_major_sweep", "cell_major_sweep_serial", "checkerboard_sweep", "checkerboard_sweep_serial"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, real=real, name=name: ran.append(name) or real(*a))
    ds = eq.create("ising", size=size, temperature=[1.5, 2.269, 3.5], members=members, field=field, seed=members)
    assert ds.spin.size // ds.spin.values.shape[-1] // ds.spin.values.shape[-2] >= kernels.CELL_MAJOR_CELLS
    assert_same_history(_run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=6),
                        _run(ds, op, tmp_path / "numba.zarr", kernel="numba", steps=6, segment=4))
    parallel = parallel_sites == 1 and kernels.numba.get_num_threads() > 1
    assert set(ran) == {"cell_major_sweep" if parallel else "cell_major_sweep_serial"}, set(ran)


def test_a_few_small_cells_keep_the_row_loop(monkeypatch, tmp_path):
    """Fewer cells than CELL_MAJOR_CELLS: the full-row loop (too few lanes for the cell-major one)."""
    from eqflow.systems.ising import kernels

    ran = []
    real = kernels.checkerboard_sweep_serial
    monkeypatch.setattr(kernels, "checkerboard_sweep_serial", lambda *a: ran.append(1) or real(*a))
    ds = eq.create("ising", size=8, temperature=[2.0, 3.0], members=3, seed=4)
    assert_same_history(_run(ds, "metropolis", tmp_path / "ref.zarr", kernel="reference", steps=4),
                        _run(ds, "metropolis", tmp_path / "numba.zarr", kernel="numba", steps=4))
    assert len(ran) == 4


@pytest.mark.parametrize("op", LOCAL)
@pytest.mark.parametrize("parallel_sites", [1, 2**40])
def test_runs_of_rows_that_split_philox_blocks(op, parallel_sites, monkeypatch, tmp_path):
    """A lattice larger than one task's run of rows (kernels.SITES_PER_TASK), whose runs end inside a
    Philox block (109 rows x 150 sites = 16,350 words, 2 mod 4): each task makes only its own words,
    the partial blocks at its ends word by word, on one thread and in parallel. Such cells take the
    split layout (each colour's sites of a row packed contiguously; L is even by the schema)."""
    from eqflow.systems.ising import kernels

    per = kernels.SITES_PER_TASK // 150
    assert per < 120 and (per * 150) % 4, "the case no longer splits a block: choose another width"
    monkeypatch.setattr(kernels, "PARALLEL_SITES", parallel_sites)
    sweeps = []
    monkeypatch.setattr(kernels, "_sweep", lambda work, real=kernels._sweep: sweeps.append(real(work)) or sweeps[-1])
    ds = eq.create("ising", size=(120, 150), temperature=[2.269], members=2, seed=2**33 + 5)
    assert_same_history(_run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=3),
                        _run(ds, op, tmp_path / "numba.zarr", kernel="numba", steps=3))
    parallel = parallel_sites == 1 and kernels.numba.get_num_threads() > 1
    expected = kernels.split_sweep if parallel else kernels.split_sweep_serial
    assert sweeps and all(sweep is expected for sweep in sweeps)


def test_numba_threads_follow_the_number_of_tasks(monkeypatch, tmp_path):
    """A lone task's kernel keeps its thread's numba threads; tasks side by side use one each (no
    oversubscription) and give the thread its setting back; histories are the same either way."""
    import contextlib

    import numba

    from eqflow import backends, segment

    seen = []

    @contextlib.contextmanager
    def spy(kernel, alone):
        before = numba.get_num_threads()
        with backends.numba_threads(kernel, alone):
            seen.append((alone, numba.get_num_threads(), kernel is None))
            yield
        assert numba.get_num_threads() == before  # restored

    monkeypatch.setattr(segment, "numba_threads", spy)
    ds = eq.create("ising", size=8, temperature=[2.0, 3.0], members=4, seed=3)
    whole = _run(ds, "metropolis", tmp_path / "one.zarr", kernel="numba")
    assert seen == [(True, numba.config.NUMBA_NUM_THREADS, False)]
    seen.clear()
    split = _run(ds, "metropolis", tmp_path / "two.zarr", kernel="numba", chunks={"member": 2})
    assert seen == [(False, 1, False)] * 2  # two member chunks side by side
    assert_same_history(whole, split)
    seen.clear()
    _run(ds, "metropolis", tmp_path / "again.zarr", kernel="numba")  # a lone task again, maybe in the same thread
    assert seen == [(True, numba.config.NUMBA_NUM_THREADS, False)]
    with dask.config.set(scheduler="synchronous"):  # the caller's own thread keeps its setting
        numba.set_num_threads(1)
        try:
            _run(ds, "metropolis", tmp_path / "sync.zarr", kernel="numba")
            assert numba.get_num_threads() == 1
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("shape", [(1, 64, 64), (5, 3, 32, 64), (2, 9, 70), (600, 600), (3, 1, 65)])
def test_compiled_observables_equal_the_array_api_ones_bit_for_bit(shape, monkeypatch):
    """The numba sums give the observables the very values of the array-API code, whatever the
    shape and the ensemble dims."""
    from eqflow.systems.ising import observables

    rng = np.random.default_rng(7)
    spin = rng.choice(np.array([-1, 1], np.int8), size=shape)
    coupling, field = rng.uniform(0.5, 1.5, size=shape[:-2]), rng.uniform(-0.5, 0.5, size=shape[:-2])
    fast = observables.energy(spin=spin, coupling=coupling, field=field), observables.magnetization(spin=spin)
    assert observables.compiled_sums(spin) is not None
    assert observables.compiled_sums(spin.astype(np.float32)) is None  # only int8 NumPy spins
    assert observables.compiled_sums(spin[..., :32]) is None  # short rows: NumPy is faster
    monkeypatch.setattr(observables, "compiled_sums", lambda spin: None)
    reference = observables.energy(spin=spin, coupling=coupling, field=field), observables.magnetization(spin=spin)
    for a, b in zip(fast, reference):
        assert np.shape(a) == np.shape(b) and np.array_equal(a, b)
