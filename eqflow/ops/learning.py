"""What the trained systems (smd, feedback_snn) share: the digits data set and cross-entropies.

scikit-learn is imported by :func:`digits` and torch by :func:`cross_entropy`, when called.
"""
from __future__ import annotations

import numpy as np

from ..backends import namespace

N_IMAGES, PIXELS, CLASSES = 1797, 64, 10


def digits() -> dict:
    """scikit-learn's bundled 8x8 digits (no download), as new arrays.

    Returns ``data`` (1797, 64) float64 pixels / 16 in [0, 1], ``labels`` (1797,) int64 in 0..9 and
    ``held_out`` (1797,) bool: every fifth image (index % 5 == 0, 360 images), the test split.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    x, y = np.asarray(raw.data, dtype=np.float64) / 16.0, np.asarray(raw.target, dtype=np.int64)
    if x.shape != (N_IMAGES, PIXELS):
        raise RuntimeError(f"digits: expected {N_IMAGES} images of {PIXELS} pixels, got {x.shape}")
    return {"data": x, "labels": y, "held_out": np.arange(N_IMAGES) % 5 == 0}


def cross_entropy(scores, labels):
    """Mean cross-entropy (nats) per network of torch ``scores`` (K, N, C) against int64 ``labels`` (K or 1, N).

    -(1/N) sum_n ln softmax(scores_n)[labels_n], by ``torch.nn.functional.cross_entropy``; (K,), differentiable.
    """
    import torch

    k, n, c = scores.shape
    each = torch.nn.functional.cross_entropy(scores.reshape(k * n, c), labels.expand(k, n).reshape(k * n),
                                             reduction="none")
    return each.reshape(k, n).mean(dim=-1)


def cross_entropy_and_gradient(scores, onehot):
    """(mean cross-entropy per cell (*E), dL/dscores (*E, S, C)) of ``scores`` (*E, S, C) against one-hot labels.

    NumPy or torch (array API): with p = softmax(scores) (the maximum subtracted first),
    L = -(1/S) sum_s sum_c onehot ln p and dL/dscores = (p - onehot) / S; no autograd.
    """
    xp = namespace(scores)
    top = xp.max(scores, axis=-1, keepdims=True)
    shifted = scores - top
    log_z = xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    log_p = shifted - log_z
    samples = scores.shape[-2]
    loss = -xp.sum(onehot * log_p, axis=(-2, -1)) / samples
    return loss, (xp.exp(log_p) - onehot) / samples
