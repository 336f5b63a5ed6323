"""The normal CDF and the scaled complementary error function for NumPy and torch (private).

ndtr(x) = Phi(x) = (1 + erf(x / sqrt 2)) / 2 and erfcx(x) = exp(x^2) erfc(x), from
``scipy.special`` for NumPy arrays and ``torch.special`` for tensors; both keep the input's
float dtype (float64 or float32). Kept private to this system until the backends module
offers such functions to every system.
"""
from __future__ import annotations

import numpy as np


def ndtr(x):
    """Phi(x), the standard normal CDF, elementwise; same backend and dtype as ``x``."""
    if isinstance(x, (np.ndarray, np.generic)):
        from scipy import special

        return special.ndtr(x)
    import torch

    return torch.special.ndtr(x)


def erfcx(x):
    """exp(x^2) erfc(x), elementwise; finite for every x >= 0 (about 1 / (x sqrt(pi)) for large x)."""
    if isinstance(x, (np.ndarray, np.generic)):
        from scipy import special

        return special.erfcx(x)
    import torch

    return torch.special.erfcx(x)
