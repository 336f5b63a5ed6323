"""The kernel kit's Philox4x32-10 (eqflow.random.numba_philox, eqflow.random.triton_philox) makes
exactly the words of the reference generator eqflow.random.generate, bit for bit.

Keys from eqflow.random.cell_keys; steps below and above 2^32 (the counter's high word); slots
with the high bit set; draws not a multiple of 4 words (a partial last block). The Triton
function runs in Triton's interpreter on CPU tensors (compiled where CUDA is present).
"""
import numpy as np
import pytest

from eqflow import random

try:
    import triton.language as tl

    from eqflow.random.triton_philox import philox
    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False

KEYS = random.cell_keys(7, np.arange(3), np.array([11, 2**63 + 5], dtype=np.uint64)).reshape(2, -1)
STEPS = [0, 5, 2**32 + 3, 2**64 - 1]
WORDS = 13


def _reference(step, slot, draw=None):
    return random.generate(draw or random.bits(WORDS), KEYS, step=step, slot=slot, sizes={})


@pytest.fixture(scope="module")
def numba_words():
    """An @njit function that makes the words and an integers(high) draw of every cell with the kit."""
    numba = pytest.importorskip("numba")

    from eqflow.random import numba_philox as nph

    @numba.njit(cache=False)
    def words(keys, slot, step_lo, step_hi, n, high):
        out = np.empty((keys.shape[1], n), np.int64)
        below = np.empty(keys.shape[1], np.int64)
        for c in range(keys.shape[1]):
            k0, k1 = np.uint64(keys[0, c]), np.uint64(keys[1, c])
            for j in range(n):
                out[c, j] = nph.word(j, slot, step_lo, step_hi, k0, k1)
            below[c] = nph.below(high, slot, step_lo, step_hi, k0, k1)
        return out, below

    return words


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("slot", [0, 3, 2**15 + 1])
def test_numba_words_equal_the_reference(numba_words, step, slot):
    got, below = numba_words(KEYS, np.uint64(slot), np.uint64(step & 0xFFFFFFFF), np.uint64(step >> 32), WORDS,
                             1000003)
    np.testing.assert_array_equal(got, _reference(step, slot))
    np.testing.assert_array_equal(below, _reference(step, slot, random.integers(1000003)))


def test_numba_philox_equals_philox4x32():
    pytest.importorskip("numba")
    from eqflow.random.numba_philox import philox
    from eqflow.random.philox import philox4x32

    rng = np.random.default_rng(0)
    for c0, c1, c2, c3, k0, k1 in rng.integers(0, 2**32, size=(20, 6)):
        assert [int(w) for w in philox(c0, c1, c2, c3, k0, k1)] == [
            int(w) for w in philox4x32((c0, c1, c2, c3), (k0, k1))]


if HAVE_TRITON:
    def _words_kernel(out, keys, ncells, slot, step_lo, step_hi, n, BLOCK: tl.constexpr):
        """Words 0..n-1 of each cell's draw, as a kernel makes them with the kit's ``philox``."""
        cell = tl.program_id(0)
        k0 = tl.load(keys + cell).to(tl.uint32)
        k1 = tl.load(keys + ncells + cell).to(tl.uint32)
        j = tl.arange(0, BLOCK).to(tl.int64)
        zero = tl.full([BLOCK], 0, tl.uint32)
        c0, c1, c2, c3 = philox((j >> 2).to(tl.uint32) + zero, zero + slot.to(tl.uint32),
                                zero + step_lo.to(tl.uint32), zero + step_hi.to(tl.uint32), k0, k1)
        lane = j & 3
        w = tl.where(lane == 0, c0, tl.where(lane == 1, c1, tl.where(lane == 2, c2, c3))).to(tl.int64)
        tl.store(out + cell * n + j, w, mask=j < n)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed (pip install eqflow-ensembles[gpu])")
def test_triton_words_equal_the_reference(step):
    torch = pytest.importorskip("torch")
    import triton

    from eqflow.random.triton_philox import interpreted

    kernel = _words_kernel
    slot = 2**15 + 1
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    keys = torch.from_numpy(KEYS.copy()).to(device)
    out = torch.empty((KEYS.shape[1], WORDS), dtype=torch.int64, device=device)
    launch = triton.jit(kernel) if cuda else interpreted(kernel)
    launch[(KEYS.shape[1],)](out, keys, KEYS.shape[1], slot, step & 0xFFFFFFFF, step >> 32, WORDS, BLOCK=16)
    np.testing.assert_array_equal(out.cpu().numpy(), _reference(step, slot))
