"""Array backends for the hot loop: NumPy on the CPU, PyTorch on the CPU or a GPU."""
from __future__ import annotations

import contextlib
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
