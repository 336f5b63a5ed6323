"""The Triton kernel of the checkerboard sweeps: the reference operators' histories, bit for bit.

Without a GPU the kernel runs in Triton's interpreter on CPU tensors (``kernel="triton"`` on the
torch CPU backend): the same kernel source, its Philox rounds in uint32 arithmetic, its tiles and
masks, executed with NumPy. Histories are compared with the array-API reference (NumPy) and the
numba kernel over lattice shapes with L_x = 0 and 2 mod 4 (one Philox block per quad of sites,
or blocks straddling rows), tiles cut smaller than the lattice (partial tiles at the edges),
fields, couplings of either sign, ensembles, late steps (the counter's high word) and resume
across kernels. The compiled (GPU) path is compiled here to a cubin for sm_90 without a GPU;
it runs only where CUDA is present. Lattices stay tiny: the interpreter runs ~30 ms per tile.
"""
import os

import numpy as np
import pytest

import eqflow as eq
from eqflow import random
from eqflow.errors import SchemaError
from eqflow.systems import ising
from eqflow.systems.ising import operators

from conftest import assert_same_history
from test_systems import crash_after_marks

pytest.importorskip("triton", reason="triton is not installed (pip install eqflow-ensembles[gpu]): no Triton kernel")
torch = pytest.importorskip("torch")
gpu = pytest.importorskip("eqflow.systems.ising.gpu")

LOCAL = ["metropolis", "heat_bath"]
RECORD = {"spin": 1, "energy": 1, "magnetization": 1}
CASES = [  # (size, temperatures, members, coupling, field)
    (8, [2.269], 3, 1.0, 0.0),
    ((6, 10), [1.8, 4.0], 1, -1.0, 0.3),
    ((16, 12), [1.5], 2, 0.5, [0.0, -0.6]),
    ((2, 2), [0.9], 2, 1.0, 0.0),
]


def _run(ds, op, path, **kw):
    return eq.run(ds, op, steps=kw.pop("steps", 4), store=path, record=RECORD, progress=False, **kw)


def _system(size, temperature, members, coupling, field, seed=5):
    return eq.create("ising", size=size, temperature=temperature, members=members, coupling=coupling, field=field,
                     seed=seed)


@pytest.mark.parametrize("op", LOCAL)
@pytest.mark.parametrize("size,temperature,members,coupling,field",
                         [pytest.param(*c, id=f"L{c[0]}-T{len(c[1])}-M{c[2]}-J{c[3]}-h{c[4]}") for c in CASES])
def test_triton_equals_reference_and_numba(op, size, temperature, members, coupling, field, tmp_path):
    ds = _system(size, temperature, members, coupling, field, seed=members * 7 + 1)
    reference = _run(ds, op, tmp_path / "ref.zarr", kernel="reference")
    fast = _run(ds, op, tmp_path / "triton.zarr", kernel="triton", backend="torch", chunks={"member": 1}, segment=3)
    assert fast.attrs["eqflow_kernel"] == "triton"
    assert_same_history(reference, fast)
    assert np.any(reference.spin.values[1:] != reference.spin.values[:-1]), "nothing moved: the test proves nothing"
    if op == "metropolis":  # numba too (the three agree)
        assert_same_history(reference, _run(ds, op, tmp_path / "numba.zarr", kernel="numba"))


@pytest.mark.parametrize("op,size", [("metropolis", (6, 10)), ("heat_bath", (6, 24))])
def test_small_tiles_and_late_steps(op, size, monkeypatch, tmp_path):
    """Tiles of 2 x 4 columns (sites when L_x = 10, int32 quads when L_x = 24), several per row and
    per column with partial ones at the edges, from a step just below 2^32 (the counter's high
    word turns over)."""
    monkeypatch.setattr(gpu, "MAX_BLOCK_X", 4)
    monkeypatch.setattr(gpu, "TILE_COLUMNS", 8)
    assert gpu.tile(6, 10) == gpu.tile(6, 6) == (2, 4)
    ds = _system(size, [2.269, 3.0], 1, 1.0, 0.1, seed=2**40 + 3)
    ds.attrs["eqflow_step"] = 2**32 - 1
    assert_same_history(_run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=2),
                        _run(ds, op, tmp_path / "triton.zarr", kernel="triton", backend="torch", steps=2))


@pytest.mark.parametrize("op,first,then", [("metropolis", "triton", "reference"), ("heat_bath", "numba", "triton")])
def test_resume_with_another_kernel(op, first, then, tmp_path, monkeypatch):
    ds = _system(8, [1.5, 3.0], 2, 1.0, 0.0, seed=11)
    backend = {"triton": "torch", "numba": "numpy", "reference": "numpy"}
    reference = _run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=6, segment=2)
    crash_after_marks(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(ds, op, tmp_path / "r.zarr", kernel=first, backend=backend[first], steps=6, segment=2)
    monkeypatch.undo()
    resumed = _run(ds, op, tmp_path / "r.zarr", kernel=then, backend=backend[then], steps=6, segment=2, resume=True)
    assert_same_history(reference, resumed)
    assert resumed.attrs["eqflow_kernel"] == f"{first}, {then}"


@pytest.mark.parametrize("heat_bath", [False, True])
@pytest.mark.parametrize("shape", [(4, 8), (5, 12), (5, 7), (3, 6)])
def test_one_sweep_equals_the_reference_operator_on_any_shape(heat_bath, shape):
    """The kernel alone against the reference operator fed eqflow.random's words, also on shapes
    eq.create refuses (odd sides: the two colours are then the reference's parity masks),
    at steps whose low word is >= 2^31 (passed to the kernel as a 64-bit integer)."""
    ny, nx = shape
    cells, sizes = 3, {"y": ny, "x": nx}
    keys = random.cell_keys(9, np.arange(cells), np.zeros(1, np.uint64)).reshape(2, cells)
    spin = np.where(np.random.default_rng(1).random((cells, ny, nx)) < 0.5, 1, -1).astype(np.int8)
    t, j, h = np.array([1.2, 2.269, 5.0]), np.array([1.0, -1.0, 0.7]), np.array([0.0, 0.5, -1.5])
    prepare = operators.heat_bath_probability if heat_bath else operators.metropolis_acceptance
    tables = prepare(temperature=t, coupling=j, field=h, sizes=sizes)
    name = "probability_up" if heat_bath else "acceptance"
    update = operators.heat_bath if heat_bath else operators.metropolis
    expected, got = spin, torch.from_numpy(spin.copy())
    for step in (0, 2**31 + 5, 2**63 + 2**40 + 3):
        words = random.generate(random.bits("y", "x"), keys, step=step, slot=2, sizes=sizes)
        expected = update(spin=expected, words=words, cell_offset=tables["cell_offset"],
                          checkerboard=tables["checkerboard"], **{name: tables[name]})["spin"]
        got = gpu.sweep(got, torch.from_numpy(keys), torch.from_numpy(tables[name]), heat_bath=heat_bath, slot=2,
                        step=step)
        np.testing.assert_array_equal(got.numpy(), expected)
    assert np.any(expected != spin)


def test_a_lattice_at_an_odd_address_is_read_whole():
    """The quad path reads int32 words: a view starting at an odd byte is copied first, not misread."""
    keys = torch.from_numpy(random.cell_keys(1, np.arange(2), np.zeros(1, np.uint64)).reshape(2, 2))
    table = torch.from_numpy(operators.metropolis_acceptance(temperature=np.array([1.0, 3.0]), coupling=np.ones(2),
                                                             field=np.zeros(2), sizes={"y": 4, "x": 8})["acceptance"])
    spin = torch.from_numpy(np.where(np.random.default_rng(3).random(2 * 4 * 8) < 0.5, 1, -1).astype(np.int8))
    shifted = torch.empty(spin.numel() + 1, dtype=torch.int8)
    shifted[1:] = spin
    odd = shifted[1:].view(2, 4, 8)
    assert odd.data_ptr() % 4 == 1
    expected = gpu.sweep(spin.view(2, 4, 8).clone(), keys, table, heat_bath=False, slot=0, step=7)
    assert torch.equal(gpu.sweep(odd, keys, table, heat_bath=False, slot=0, step=7), expected)
    assert torch.equal(odd, spin.view(2, 4, 8))  # the input is left as it was


def test_bad_tables_and_keys_are_named():
    spin = torch.ones((2, 4, 4), dtype=torch.int8)
    keys = torch.zeros((2, 2), dtype=torch.int64)
    with pytest.raises(ValueError, match=r"table: expected 2 x 10 thresholds for 2 cells, got 5"):
        gpu.sweep(spin, keys, torch.zeros(5, dtype=torch.int64), heat_bath=False, slot=0, step=0)
    with pytest.raises(ValueError, match=r"keys: expected shape \(2, 2\) for 2 cells, got \(2, 3\)"):
        gpu.sweep(spin, torch.zeros((2, 3), dtype=torch.int64), torch.zeros(10, dtype=torch.int64), heat_bath=True,
                  slot=0, step=0)


def test_auto_picks_triton_on_cuda_only(monkeypatch, tmp_path):
    op = ising.SYSTEM.operators["metropolis"]
    assert op.select_kernel("auto", "torch", "cuda") == ("triton", None)
    assert op.select_kernel("auto", "torch", "cuda:1") == ("triton", None)
    assert op.select_kernel("auto", "torch", "cpu") == ("reference", None)  # the interpreter: by name only
    assert op.select_kernel("auto", "numpy") == ("numba", None)
    assert op.select_kernel("triton", "torch", "cpu") == ("triton", None)
    assert op.select_kernel("triton", "torch", "mps")[1] == ("kernel: 'triton' cannot run here: it serves devices "
                                                             "['cuda', 'cpu'], not 'mps'")
    assert ising.SYSTEM.operators["wolff"].select_kernel("auto", "torch", "cuda") == ("reference", None)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    assert op.select_kernel("auto", "torch", "cuda") == ("reference", None)


def test_triton_on_the_numpy_backend_is_refused_before_anything_is_written(tmp_path):
    ds = _system(4, [2.0], 1, 1.0, 0.0)
    with pytest.raises(SchemaError, match=r"kernel: 'triton' cannot run here: it serves backends \['torch'\], "
                                          r"not 'numpy'"):
        _run(ds, "metropolis", tmp_path / "h.zarr", kernel="triton")
    assert not (tmp_path / "h.zarr").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the compiled kernel is checked on a GPU "
                                                          "by benchmarks/bench_ising_gpu.py and by this test there")
@pytest.mark.parametrize("op", LOCAL)
def test_on_cuda_auto_runs_the_compiled_kernel_with_the_reference_history(op, tmp_path):
    ds = _system((32, 24), [1.8, 2.269, 3.0], 2, 1.0, [0.0, 0.2], seed=21)
    reference = _run(ds, op, tmp_path / "ref.zarr", kernel="reference", steps=20)
    fast = _run(ds, op, tmp_path / "cuda.zarr", backend="torch", device="cuda", steps=20)
    assert fast.attrs["eqflow_kernel"] == "triton"
    assert_same_history(reference, fast)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="TRITON_INTERPRET=1: triton.jit interprets")
@pytest.mark.parametrize("heat_bath", [False, True])
def test_the_gpu_kernel_compiles_for_sm90_without_a_gpu(heat_bath, monkeypatch):
    """The compiled path (which the interpreter does not exercise: typing of the 64-bit step word,
    uint32 products, constexpr globals) goes through Triton's compiler down to a cubin for an
    H100/H200 (sm_90). Its design, read from the PTX: with L_x = 0 mod 4 every load and store is a
    32-bit word (a quad of spins), no layout conversion or shared memory, and a Philox block (10
    rounds, two 32-bit high products each) per 4 sites; with L_x = 2 mod 4 one block per site."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")  # no floats here; silences 3.9's warning about its default
    blocks_per_site = {}
    for quad in (True, False):
        spins = "*i32" if quad else "*i8"
        signature = {"src": spins, "dst": spins, "keys": "*i64", "table": "*i64", "ncells": "i32", "ny": "i32",
                     "width": "i32", "slot": "i32", "step_lo": "i64", "step_hi": "i32", "colour": "i32",
                     **dict.fromkeys(["HEAT_BATH", "QUAD", "STORE_ALL", "BLOCK_Y", "BLOCK_X"], "constexpr")}
        constants = {"HEAT_BATH": heat_bath, "QUAD": quad, "STORE_ALL": False, "BLOCK_Y": 8, "BLOCK_X": 128}
        kernel = compile(ASTSource(gpu.compiled, signature, constexprs=constants), target=GPUTarget("cuda", 90, 32))
        ptx = kernel.asm["ptx"]
        assert kernel.asm["cubin"] and kernel.metadata.num_warps == 4
        assert "convert_layout" not in kernel.asm["ttgir"] and kernel.metadata.shared == 0
        sites_per_thread = 8 * 128 * (4 if quad else 1) / 128
        blocks_per_site[quad] = ptx.count("mul.hi.u32") / 20 / sites_per_thread
        if quad:
            assert "ld.global.b8" not in ptx and "st.global.b8" not in ptx and "st.global.b32" in ptx
    # a few products of values shared by the whole tile are made once, hence <=
    assert 0.2 < blocks_per_site[True] <= 0.25 and 0.8 < blocks_per_site[False] <= 1
