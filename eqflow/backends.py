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


# OpenMP's wait policy for numba's thread pool, unless the user chose one (any of these set):
# threads that wait at a fork-join barrier sleep instead of spinning (see configure_numba)
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
_USER_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")


def configure_numba() -> dict:
    """Set up numba's thread pool for a machine that others share, before its first parallel loop.

    numba fixes its threading layer and thread count, and OpenMP its wait policy, when the pool
    starts (the first call of a parallel kernel in the process); called before that, this sets
    ``OMP_WAIT_POLICY=PASSIVE`` and ``KMP_BLOCKTIME=0`` in ``os.environ`` (GNU and Intel OpenMP
    read them then), so that a thread that finishes its share of a parallel loop sleeps at the
    barrier instead of spinning: spinning threads take the cores that the other threads of the
    same loop, or other processes, are waiting for, and a 1024^2 sweep on a busy 2-core machine
    ran 4x slower on two spinning threads than on one. The threading layer (numba's default
    order: tbb, omp, workqueue) and the thread count (numba's default: the CPUs this process may
    run on) are left to numba. Nothing is changed when the user set any of ``OMP_WAIT_POLICY``,
    ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME`` or ``KMP_LIBRARY`` (their choice wins), nor once the pool
    has started (too late to matter). Measured in ``benchmarks/bench_contention.py``.

    Returns the settings in force: {"layer": the threading layer or None if the pool has not
    started, "threads": numba's thread count, "wait": {variable: value} eqflow set, "user": the
    wait variables the user set}.
    """
    import os

    import numba

    user = {k: os.environ[k] for k in _USER_WAIT if k in os.environ}
    set_here = {}
    try:
        layer = numba.threading_layer()  # the pool has started: its settings are fixed
    except ValueError:
        layer = None
        if not user:
            for name, value in WAIT_POLICY.items():
                os.environ[name] = set_here[name] = value
    return {"layer": layer, "threads": numba.config.NUMBA_NUM_THREADS, "wait": set_here, "user": user}


def free_cores(loadavg: str | None = None, cpus: int | None = None) -> int:
    """The CPUs this process may run on that no other thread is running on now, at least 1.

    ``loadavg``: the text of ``/proc/loadavg`` (read when None), whose fourth field is
    "running/total" threads of the whole machine at this instant (the reading thread among them);
    ``cpus``: the CPUs this process may use (``os.sched_getaffinity``, else ``os.cpu_count``).
    Where the machine does not say (no ``/proc/loadavg``), every CPU is taken as free.
    """
    import os

    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if loadavg is None:
        try:
            with open("/proc/loadavg") as f:
                loadavg = f.read()
        except OSError:
            return max(1, cpus)
    try:
        running = int(loadavg.split()[3].split("/")[0])
    except (IndexError, ValueError):
        return max(1, cpus)
    return max(1, min(cpus, cpus - (running - 1)))


@contextlib.contextmanager
def numba_threads(kernel, alone: bool):
    """A numba kernel's parallel loops: when its task runs alone (one ensemble chunk, local
    scheduler), as many numba threads as the calling thread has, but no more than the cores that
    no other process is running on as the task starts (:func:`free_cores`: on a busy machine
    one thread, which the parallel loops cannot beat there, since their threads wait for each other);
    one thread when tasks run side by side in dask threads or workers (they already fill the
    cores; more would oversubscribe them). ``NUMBA_NUM_THREADS`` set by the user is taken as it is
    for a lone task. The thread's own setting (numba's is per thread) is restored afterwards.
    The pool is set up by :func:`configure_numba` first. Histories do not depend on the thread
    count (the kernels' serial and parallel loops agree bit for bit)."""
    if kernel is None or "numba" not in kernel.requires:
        yield
        return
    import os

    configure_numba()
    import numba

    before = numba.get_num_threads()
    # alone: the cores no other process is running on now (the user's NUMBA_NUM_THREADS wins)
    wanted = (before if "NUMBA_NUM_THREADS" in os.environ else min(before, free_cores())) if alone else 1
    if wanted == before:
        yield
        return
    numba.set_num_threads(wanted)
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
