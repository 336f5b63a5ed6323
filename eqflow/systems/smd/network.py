"""The network model: an MLP with LayerNorm on scikit-learn's digits, every member trained at once.

Architecture (input 64 -> hidden ... -> 10 classes): each hidden layer is a bias-free linear
map followed by LayerNorm without affine parameters and a ReLU,

    h <- relu(LN(h W^T)),   LN(z) = (z - mean z) / sqrt(var z + eps),

so LN(h (k W)^T) = LN(h W^T) for every k > 0 (up to eps / var z, eps = 1e-8): the hidden
layer's weight matrix W is scale-invariant, its gradient is orthogonal to W
(<grad_W L, W> = d/dk L(kW) at k = 1 = 0) and its norm is set by weight decay alone.
The last layer is affine, logits = [h, 1] W^T, its bias the last column of W; it is not
scale-invariant. The loss is the mean cross-entropy of a minibatch.

Weights are one flat vector per ensemble cell (``weight(..., dim)``, float32); layer l is the
slice of fan_out_l * fan_in_l entries after the layers before it, a row-major (fan_out, fan_in)
matrix. All K cells of a chunk are trained at once with batched matrix products
(K, B, in) @ (K, in, out): one forward pass, one backward pass (torch autograd of the
sum of the cells' losses, whose gradient with respect to cell k's weights is the gradient of
cell k's own loss). Torch only: the backward pass is autograd's.

Data (:func:`digits`): the 1,797 8x8 images of ``sklearn.datasets.load_digits`` (bundled
with scikit-learn, no download), pixels / 16 in [0, 1]; every fifth image (index % 5 == 0,
360 images) is held out, the other 1,437 are the training split. Loaded once per process
in ``prepare``, not stored in the Dataset: the arrays (0.9 MB) are the same for every member,
run and store, and the stores stay small.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from ...errors import SchemaError
from ...ops import learning

LN_EPS = 1e-8  # LayerNorm's epsilon: scale invariance holds up to eps / var(pre-activations)
N_IMAGES, N_HELD_OUT = learning.N_IMAGES, 360
N_TRAIN = N_IMAGES - N_HELD_OUT  # 1,437 training images: the range of the minibatch draws
INPUTS, CLASSES = learning.PIXELS, learning.CLASSES


@cache
def digits() -> dict:
    """The digits split: ``train_x`` (1437, 64) float64 in [0, 1], ``train_y`` (1437,) int64, ``test_x``, ``test_y``.

    Held out: images with index % 5 == 0. Cached per process: callers copy before changing them.
    """
    data = learning.digits()
    x, y, held = data["data"], data["labels"], data["held_out"]
    return {"train_x": x[~held], "train_y": y[~held], "test_x": x[held], "test_y": y[held]}


def architecture(hidden) -> tuple[list[int], list[int], list[bool]]:
    """(fan_out, fan_in, normalized) per layer of the MLP 64 -> hidden... -> 10."""
    widths = [INPUTS, *hidden]
    fan_out = [*hidden, CLASSES]
    fan_in = [*widths[:-1], widths[-1] + 1]  # the last layer's bias is one more input fixed at 1
    return fan_out, fan_in, [True] * len(hidden) + [False]


def require_torch(array, what: str):
    """The torch module, or a SchemaError naming the backend when ``array`` is not a tensor."""
    if isinstance(array, np.ndarray):
        raise SchemaError(f"backend: model='network' of kind 'smd' runs on ['torch'] only (autograd), got 'numpy' "
                          f"({what}); pass backend='torch'", kind="smd")
    import torch

    return torch


def logits(weight, inputs, layers):
    """Class scores (K, N, 10) of K networks ``weight`` (K, P) on ``inputs`` (K or 1, N, 64)."""
    torch = require_torch(weight, "forward pass")
    functional = torch.nn.functional
    h = inputs
    for start, stop, rows, cols, normalized in layers:
        w = weight[:, start:stop].reshape(weight.shape[0], rows, cols)
        if not normalized:
            h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
        h = torch.matmul(h, w.transpose(-1, -2))
        if normalized:  # LN(z) = (z - mean z) / sqrt(var z + eps) over the features, no affine parameters
            h = torch.relu(functional.layer_norm(h, (rows,), eps=LN_EPS))
    return h


def cross_entropy(scores, labels):
    """Mean cross-entropy (nats) per network: ``scores`` (K, N, C), ``labels`` (K or 1, N) int64 -> (K,)."""
    require_torch(scores, "loss")
    return learning.cross_entropy(scores, labels)


def batch_gradient(weight, batch, train_x, train_y, layers):
    """Gradient of each network's minibatch loss, and the losses.

    weight (*E, P) float32, batch (*E, B) int64 indices into the training split. Returns
    (gradient (*E, P), loss (*E)). One forward and one backward pass for all cells.
    """
    torch = require_torch(weight, "sgd")
    ensemble, size = weight.shape[:-1], weight.shape[-1]
    index = batch.reshape(-1, batch.shape[-1])
    with torch.enable_grad():
        w = weight.detach().reshape(-1, size).requires_grad_(True)
        losses = cross_entropy(logits(w, train_x[index], layers), train_y[index])
        (gradient,) = torch.autograd.grad(losses.sum(), w)
    return gradient.reshape(*ensemble, size), losses.detach().reshape(ensemble)


def evaluate(weight, x, y, layers):
    """(mean cross-entropy, accuracy) of each network on the whole set (x, y), float64 arrays (*E)."""
    torch = require_torch(weight, "evaluation")
    ensemble = weight.shape[:-1]
    with torch.no_grad():
        scores = logits(weight.reshape(-1, weight.shape[-1]), x[None], layers)
        loss = cross_entropy(scores, y[None])
        correct = (scores.argmax(dim=-1) == y[None]).to(torch.float64).mean(dim=-1)
    return loss.to(torch.float64).reshape(ensemble), correct.reshape(ensemble)
