"""The operators' numba and Triton kernels as :class:`eqflow.Kernel` variants, named as
``"module:function"``: numba, triton and torch are imported on first use only, so that the system
loads (and ``kernel="auto"`` falls back to the reference) without them."""
from __future__ import annotations

from ...system import Kernel


def triton(name: str) -> dict:
    """{"triton": the Kernel of operator ``name``} (torch backend): compiled on CUDA, where ``kernel="auto"``
    picks it; on the CPU it runs in Triton's interpreter (exact, slow) only when asked for by name."""
    return {"triton": Kernel(f"{__package__}.gpu:{name}", backends=("torch",), devices=("cuda", "cpu"),
                             auto_devices=("cuda",), requires=("triton",), install="eqflow-ensembles[gpu]",
                             inline_draws=True)}


def numba(name: str) -> dict:
    """{"numba": the Kernel of operator ``name``} (NumPy backend, draws made inline)."""
    return {"numba": Kernel(f"{__package__}.kernels:{name}", backends=("numpy",), requires=("numba",),
                            inline_draws=True)}
