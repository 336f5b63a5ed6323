"""eqflow.backends' special functions: one call for NumPy and torch arrays, float32 and float64.

References: scipy.special on float64 arguments. Tolerances: the NumPy path *is* scipy.special,
so it must agree exactly. The torch path uses torch.special's erf/erfc and the textbook tail
formulas (A&S 7.1, 26.2.29); where a function is well conditioned it must agree within 4 ulp
of the result's dtype, and in the tails within 4 ulp x (1 + 2 x^2): there a relative error e
in the argument (x / sqrt 2 is rounded, eps / 2) moves erfc, Phi and ln Phi by about 2 x^2 e
relative, and both libraries round it (scipy's own erfc is 500 ulp off at x = 24.6 against
mpmath, torch's within 1 ulp, so the reference itself needs this margin). Below the smallest
normal number scipy flushes to 0 and torch keeps subnormals: there both must be below it.
"""
import numpy as np
import pytest
import scipy.special as sp

from eqflow import backends as b

torch = pytest.importorskip("torch")

X = np.concatenate([np.linspace(-38.0, 38.0, 1521), [-1e5, -1e3, -40.0, -1e-300, 0.0, 1e-300, 1e-8]])
FUNCTIONS = ["erf", "erfc", "erfcx", "ndtr", "log_ndtr"]


def _ulps(got, ref, dtype):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, dtype).astype(np.float64)
    spacing = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
    diff = np.where(got == ref, 0.0, np.abs(got - ref))
    return diff / np.maximum(spacing, np.finfo(dtype).smallest_subnormal)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_path_is_scipy_and_keeps_the_dtype(name, dtype):
    x = X.astype(dtype)
    got = getattr(b, name)(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, getattr(sp, name)(x))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_path_agrees_with_scipy_float64(name, dtype):
    x = X.astype(dtype)
    got = getattr(b, name)(torch.from_numpy(x))
    assert got.dtype == getattr(torch, np.dtype(dtype).name)
    ref = getattr(sp, name)(x.astype(np.float64))
    with np.errstate(over="ignore"):  # erfcx(-10) overflows float32, not float64
        ref_in_dtype = ref.astype(dtype)
    finite = np.isfinite(ref_in_dtype)
    assert np.array_equal(np.isfinite(got.numpy()), finite), name
    # scipy flushes results below the smallest normal number to 0, torch keeps them subnormal
    tiny = np.finfo(dtype).tiny
    flushed = finite & (np.abs(ref_in_dtype) < tiny)
    assert np.all(np.abs(got.numpy()[flushed]) < tiny), name
    finite &= ~flushed
    ulps = _ulps(got.numpy()[finite], ref[finite], dtype)
    xf = x.astype(np.float64)[finite]
    allowed = np.where(np.abs(xf) < 1.0, 4.0, 4.0 * (1.0 + 2.0 * xf**2))
    worst = np.argmax(ulps / allowed)
    assert np.all(ulps <= allowed), f"{name}({xf[worst]}): {ulps[worst]:.0f} ulp, allowed {allowed[worst]:.0f}"


@pytest.mark.parametrize("array", [np.asarray, lambda v: torch.tensor(v, dtype=torch.float64)], ids=["numpy", "torch"])
def test_tails_stay_finite_and_right(array):
    x = array([-1e5, -40.0, 40.0, 38.0])
    log_phi = np.asarray(b.log_ndtr(x), dtype=np.float64)
    # ln Phi(x) = -x^2/2 - ln(-x sqrt(2 pi)) - 1/x^2 + O(x^-4) for x -> -inf
    asymptotic = -0.5e10 - np.log(1e5 * np.sqrt(2 * np.pi)) - 1e-10
    assert log_phi[0] == pytest.approx(asymptotic, rel=1e-15)
    assert log_phi[1] == pytest.approx(sp.log_ndtr(-40.0), rel=1e-14)
    assert log_phi[2] == 0.0 and -1e-300 < log_phi[3] <= 0  # -Phi(-38) = -2.9e-316 (scipy: -0)
    erfc = np.asarray(b.erfc(array([26.0])), dtype=np.float64)
    assert erfc[0] == pytest.approx(5.663192408856143e-296, rel=1e-13)  # mpmath, 50 digits
    assert float(b.ndtr(array(-37.5))) == pytest.approx(4.605353e-308, rel=1e-6)


def test_torch_ndtr_lower_tail_fixes_cancellation():
    """torch.special.ndtr computes (1 + erf) / 2 and gives 0 at x = -10; ours is erfc / 2."""
    got = b.ndtr(torch.tensor([-10.0, -8.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, sp.ndtr([-10.0, -8.0]), rtol=4 * np.finfo(float).eps * (1 + 2 * 100))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True), ((0, 2), False)])
def test_logsumexp_matches_scipy(dtype, axis, keepdims):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(3, 4, 5)) * 300).astype(dtype)
    x[0, 1, :] = -np.inf  # an empty slice: ln 0 = -inf
    ref = sp.logsumexp(x.astype(np.float64), axis=axis, keepdims=keepdims)
    for array in (x, torch.from_numpy(x)):
        got = np.asarray(b.logsumexp(array, axis=axis, keepdims=keepdims))
        assert got.dtype == dtype and got.shape == np.shape(ref)
        np.testing.assert_allclose(got, ref, rtol=8 * np.finfo(dtype).eps)


def test_logsumexp_does_not_overflow():
    for array in (np.array([1000.0, 1000.0]), torch.tensor([1000.0, 1000.0], dtype=torch.float64)):
        assert float(b.logsumexp(array)) == pytest.approx(1000.0 + np.log(2.0), rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_keeps_tiny_values(dtype):
    x = np.array([1e-30, -0.5, 3.0], dtype=dtype)
    np.testing.assert_array_equal(b.log1p(x), np.log1p(x))
    got = b.log1p(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.log1p(x.astype(np.float64)), rtol=2 * np.finfo(dtype).eps)
    assert got.dtype == dtype
