"""Array backends for the hot loop: NumPy on the CPU, PyTorch on the CPU or a GPU.

Special functions for operators that serve both backends, dispatched on the array's type
(NumPy through :mod:`scipy.special`, imported on first use; torch through
:mod:`torch.special`), so an operator needs no ``if torch`` switch of its own:
:func:`erf`, :func:`erfc`, :func:`erfcx`, :func:`ndtr`, :func:`log_ndtr`, :func:`logsumexp`,
:func:`log1p`.
Each keeps the argument's dtype (float32 stays float32) and device.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

BACKENDS = ("numpy", "torch")


def namespace(array):
    """The array-API namespace of ``array``: NumPy itself (>= 2 is compliant) or array_api_compat's torch.

    A fast path for NumPy keeps this out of the profile of small-array hot loops.
    """
    if isinstance(array, np.ndarray):
        return np
    from array_api_compat import array_namespace

    return array_namespace(array)


def as_float64(array):
    """``array`` in float64 on its backend and device (itself when it is float64 already: no copy)."""
    xp = namespace(array)
    return xp.astype(array, xp.float64, copy=False)


@dataclass(frozen=True)
class Backend:
    """Moves raw arrays in and out of one backend/device; xarray never enters the loop."""

    name: str = "numpy"
    device: str | None = None

    def asarray(self, array: np.ndarray):
        if self.name == "numpy":
            return array
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device or "cpu")

    def to_numpy(self, array) -> np.ndarray:
        return array if isinstance(array, np.ndarray) else array.detach().cpu().numpy()

    def empty(self, shape, dtype: np.dtype):
        if self.name == "numpy":
            return np.empty(shape, dtype=dtype)
        import torch

        return torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device=self.device or "cpu")

    def full(self, shape, value, dtype: np.dtype):
        return self.asarray(np.full(shape, value, dtype=dtype))


def dtype_of(array) -> np.dtype:
    """The NumPy dtype of a NumPy array or a torch tensor."""
    return array.dtype if isinstance(array, np.ndarray) else np.dtype(str(array.dtype).removeprefix("torch."))


def check_backend(name: str, device: str | None, problems: list[str]) -> None:
    """Append a problem if ``name``/``device`` cannot run here."""
    if name not in BACKENDS:
        problems.append(f"backend: expected one of {list(BACKENDS)}, got {name!r}")
        return
    if name == "numpy":
        if device not in (None, "cpu"):
            problems.append(f"device: the numpy backend runs on 'cpu' only, got {device!r}")
        return
    try:
        import torch
    except ImportError:
        problems.append("backend: 'torch' needs PyTorch, which is not installed (pip install torch)")
        return
    try:
        torch.empty(1, device=device or "cpu")
    except (RuntimeError, AssertionError) as exc:
        problems.append(f"device: expected a torch device available here such as 'cpu', got {device!r} ({exc})")


def set_torch_threads(backend: Backend, threads: int | None) -> None:
    """One torch thread per dask worker thread unless configured (no oversubscription)."""
    if backend.name == "torch":
        import torch

        torch.set_num_threads(threads or 1)


@contextlib.contextmanager
def numba_threads(kernel, alone: bool):
    """A numba kernel's parallel loops: as many numba threads as the calling thread has when its
    task runs alone (one ensemble chunk, local scheduler), one thread when tasks run side by side
    in dask threads or workers (they already fill the cores; more would oversubscribe them). The
    thread's own setting (numba's is per thread) is restored afterwards."""
    if kernel is None or alone or "numba" not in kernel.requires:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _is_torch(array) -> bool:
    return type(array).__module__.startswith("torch")


def _special(name: str, x):
    """``scipy.special.<name>(x)`` for NumPy arrays and scalars, ``torch.special.<name>(x)`` for tensors."""
    if _is_torch(x):
        import torch

        return getattr(torch.special, name)(x)
    import scipy.special

    return getattr(scipy.special, name)(x)


def erf(x):
    """The error function erf(x) = 2/sqrt(pi) int_0^x exp(-t^2) dt, elementwise.

    x : NumPy array/scalar or torch tensor, float32 or float64; the result has its dtype and device.

    >>> float(erf(np.float64(1.0)))
    0.8427007929497148
    """
    return _special("erf", x)


def erfc(x):
    """The complementary error function erfc(x) = 1 - erf(x), accurate in the upper tail (no cancellation).

    x : NumPy array/scalar or torch tensor, float32 or float64; the result has its dtype and device.
    """
    return _special("erfc", x)


def erfcx(x):
    """The scaled complementary error function exp(x^2) erfc(x): finite for every x >= 0 (about
    1 / (x sqrt(pi)) for large x), where erfc itself underflows.

    x : NumPy array/scalar or torch tensor, float32 or float64; the result has its dtype and device.
    """
    return _special("erfcx", x)


def ndtr(x):
    """The standard normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2, accurate in both tails.

    x : NumPy array/scalar or torch tensor, float32 or float64; the result has its dtype and device.
    With t = x / sqrt 2: (1 + erf t) / 2 for |t| < 1/sqrt 2, erfc(-t) / 2 below, 1 - erfc(t) / 2 above
    (Abramowitz & Stegun 7.1, 26.2.29); torch's own ``ndtr`` loses every digit below x = -8.
    """
    if not _is_torch(x):
        return _special("ndtr", x)
    import torch

    t = x * math.sqrt(0.5)
    z = torch.abs(t)
    tail = 0.5 * torch.special.erfc(z)
    return torch.where(z < math.sqrt(0.5), 0.5 + 0.5 * torch.special.erf(t), torch.where(x > 0, 1.0 - tail, tail))


def log_ndtr(x):
    """ln Phi(x), finite far into the lower tail (ln Phi(-40) = -804.6..., where Phi itself underflows).

    x : NumPy array/scalar or torch tensor, float32 or float64; the result has its dtype and device.
    Above 0 it is ln(1 - Phi(-x)) = log1p(-Phi(-x)) (accurate to x = 38, where it is -3e-316).
    """
    if not _is_torch(x):
        return _special("log_ndtr", x)
    import torch

    return torch.where(x > 0, torch.log1p(-ndtr(-x)), torch.special.log_ndtr(x))


def log1p(x):
    """ln(1 + x), accurate for tiny x.

    x : NumPy array/scalar or torch tensor; the result has its dtype and device.
    """
    if _is_torch(x):
        import torch

        return torch.log1p(x)
    return np.log1p(x)


def logsumexp(x, axis=None, keepdims: bool = False):
    """ln sum exp(x) over ``axis`` (all axes when None), without overflow (the maximum is factored out).

    x : NumPy array or torch tensor, float32 or float64.
    axis : int, tuple of ints or None (default: every axis).
    keepdims : keep the reduced axes with size 1 (default False).
    An all -inf slice gives -inf; a +inf entry gives +inf.

    >>> float(logsumexp(np.array([1000.0, 1000.0])))  # 1000 + ln 2
    1000.6931471805599
    """
    if _is_torch(x):
        import torch

        dims = tuple(range(x.ndim)) if axis is None else axis
        return torch.logsumexp(x, dim=dims, keepdim=keepdims)
    import scipy.special

    return scipy.special.logsumexp(x, axis=axis, keepdims=keepdims)
