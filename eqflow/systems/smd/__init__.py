"""Spherical motion dynamics: ensembles of scale-invariant weights trained by SGD to their equilibrium.

Wan, Zhu, Zhang & Sun, "Spherical Motion Dynamics: Learning Dynamics of Normalized Neural
Network using SGD and Weight Decay", NeurIPS 2021, arXiv:2006.08419. A scale-invariant weight w
trained by SGD with momentum alpha, learning rate eta and weight decay lambda reaches an
equilibrium of its norm and of the angular update Delta_t = angle(w_t, w_{t+1}),
Delta* ~ sqrt(2 eta lambda / (1 + alpha)), whatever the loss (see :mod:`.theory`).

Two models, the string attribute ``model``:

- ``"noise"``: one weight vector w in R^d with the loss -<w/||w||, x_t>, x_t ~ N(0, sigma^2 I)
  fresh per member and step; analytic gradient; NumPy or torch. The equilibrium is known in
  closed form. ``layer`` has one entry (the whole vector).
- ``"network"``: an MLP 64 -> hidden... -> 10 with LayerNorm (no affine) after each hidden
  linear layer, on scikit-learn's digits (:mod:`.network`); minibatches drawn per member and
  step; torch autograd, all members at once; torch only. Each hidden layer is scale-invariant;
  the last (affine) layer is not (``normalized`` is False there).

State: ``weight(member, *sweeps, weight_entry)``, every layer's matrix in one flat vector (float64 for the
noise model, float32 for the network); the constants ``fan_out``, ``fan_in`` and ``normalized``
(dim ``layer``) describe the layers. Sweepable parameters (dimensionless): ``learning_rate``,
``weight_decay``, ``momentum``, ``noise`` (noise model), ``initial_norm``. Operator: ``sgd``
(options ``lr_step``, ``lr_factor``; owned state ``velocity`` and ``previous_weight``;
diagnostic ``batch_loss``). Observables: ``weight_norm``, ``angular_update``,
``effective_learning_rate`` per layer, ``loss``, ``accuracy``.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import check_size, finish_system, point_values, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import network, observables, operators, theory
from .observables import accuracy, angular_update, effective_learning_rate, loss, weight_norm
from .operators import init_sgd, prepare_sgd, sgd

KIND = "smd"
MODEL_ARGS = {"noise": {"dim": 256, "noise": 1.0}, "network": {"hidden": (32, 32), "batch": 32}}
DTYPES = {"noise": np.float64, "network": np.float32}


def create(model="noise", *, learning_rate=0.1, weight_decay=5e-4, momentum=0.0, initial_norm=1.0, members=1, seed=0,
           **arguments):
    """A new ensemble of scale-invariant weights as an xarray Dataset.

    Parameters
    ----------
    model : "noise" or "network".
    learning_rate, weight_decay, momentum : float or 1-D sweep. eta > 0, lambda >= 0, 0 <= alpha < 1.
    initial_norm : float or 1-D sweep > 0. Frobenius norm of each normalized layer at creation.
    members : int. Independent trainings per parameter point (own initial weights and draws).
    seed : int in [0, 2**64). Keys every random stream of the ensemble.
    **arguments : the model's own, with defaults:
        noise: dim=256 (d), noise=1.0 (sigma, float or 1-D sweep);
        network: hidden=(32, 32) (widths of the normalized hidden layers), batch=32 (minibatch size).

    Member m starts from the same random directions at every parameter point (drawn from the
    seed's initial-state streams keyed by the member alone): each normalized layer a uniformly
    random direction of norm ``initial_norm``, the network's last layer N(0, 1/fan_in) weights
    and a zero bias. Floats: float64 (noise), float32 (network).

    Examples
    --------
    >>> ds = create(dim=16, learning_rate=[0.1, 1.0], members=3, seed=1)
    >>> dict(ds.weight.sizes)
    {'member': 3, 'learning_rate': 2, 'weight_entry': 16}
    >>> ds.attrs["model"], ds.fan_in.values.tolist(), ds.sizes["sample"], ds.sizes["batch"]
    ('noise', [16], 16, 0)
    """
    if model not in MODEL_ARGS:
        raise SchemaError(f"model: expected one of {sorted(MODEL_ARGS)}, got {model!r}", kind=KIND)
    unknown = sorted(set(arguments) - set(MODEL_ARGS[model]))
    if unknown:
        raise SchemaError(f"{', '.join(unknown)}: not argument(s) of model={model!r}; expected some of "
                          f"{sorted(MODEL_ARGS[model])}", kind=KIND)
    args = {**MODEL_ARGS[model], **arguments}
    fan_out, fan_in, normalized, sizes = _layers(model, args)
    parameters = {"learning_rate": learning_rate, "weight_decay": weight_decay, "momentum": momentum,
                  "initial_norm": initial_norm, "noise": args.get("noise")}
    constants = {"fan_out": (("layer",), np.asarray(fan_out, dtype=np.int64)),
                 "fan_in": (("layer",), np.asarray(fan_in, dtype=np.int64)),
                 "normalized": (("layer",), np.asarray(normalized, dtype=bool))}
    schema = SYSTEM.schema
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes=sizes,
                                        constants=constants, seed=seed)
    layers = operators.layer_slices(fan_out, fan_in, normalized)
    weight = _initial_weights(layers, coords, schema, shape, seed, sizes["weight_entry"]).astype(DTYPES[model])
    return finish_system(schema, coords, {"weight": ((*dims, "weight_entry"), weight)}, seed=seed,
                         attributes={"model": model})


def _layers(model, args):
    """(fan_out, fan_in, normalized, site sizes) of the model; a SchemaError for bad model arguments."""
    if model == "noise":
        d = args["dim"]
        problems = []
        if not check_size("dim", d, problems, minimum=2):
            raise SchemaError(problems, kind=KIND)
        return [1], [int(d)], [True], {"weight_entry": int(d), "layer": 1, "sample": int(d), "batch": 0}
    hidden, batch = args["hidden"], args["batch"]
    problems = []
    if not (isinstance(hidden, (tuple, list)) and hidden and all(
            isinstance(h, (int, np.integer)) and not isinstance(h, bool) and 2 <= h <= 2**15 for h in hidden)):
        problems.append(f"hidden: expected a non-empty sequence of integer widths >= 2, got {hidden!r} (each at most "
                        f"2**15)")
    if not (isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and 1 <= batch <= network.N_TRAIN):
        over = isinstance(batch, (int, np.integer)) and batch > network.N_TRAIN
        most = f", at most the {network.N_TRAIN} training samples" if over else ""
        problems.append(f"batch: expected a positive integer minibatch size{most}, got {batch!r}")
    if problems:
        raise SchemaError(problems, kind=KIND)
    fan_out, fan_in, normalized = network.architecture([int(h) for h in hidden])
    total = sum(r * c for r, c in zip(fan_out, fan_in))
    return fan_out, fan_in, normalized, {"weight_entry": total, "layer": len(fan_out), "sample": 0, "batch": int(batch)}


def _initial_weights(layers, coords, schema, shape, seed, size):
    """(members, *sweeps, weight_entry) float64: per member one standard normal vector, each normalized layer
    rescaled to ``initial_norm``, the unnormalized layer N(0, 1/fan_in) with a zero bias column."""
    z = random.initial(random.normal("weight_entry"), seed=seed, members=coords["member"], parameters={},
                       sizes={"weight_entry": size})
    norm = np.asarray(point_values(coords, schema)["initial_norm"], dtype=np.float64)
    norm = np.broadcast_to(norm, shape[1:]).reshape((1, *shape[1:], 1))
    z = z.reshape((shape[0],) + (1,) * (len(shape) - 1) + (size,))
    parts = []
    for start, stop, rows, cols, normalized in layers:
        block = z[..., start:stop]
        if normalized:
            block = norm * block / np.sqrt(np.sum(block * block, axis=-1, keepdims=True))
        else:
            matrix = block.reshape(*block.shape[:-1], rows, cols) / np.sqrt(cols - 1)
            matrix[..., -1] = 0.0  # the bias
            block = matrix.reshape(block.shape)
        parts.append(np.broadcast_to(block, (*shape, stop - start)))
    return np.concatenate(parts, axis=-1)


DRAWS = {"x": random.normal("sample"), "batch": random.integers(network.N_TRAIN, "batch")}
SYSTEM = System(
    kind=KIND,
    create=create,
    operators={"sgd": Operator(sgd, prepare=prepare_sgd, init=init_sgd, draws=DRAWS)},
    observables={"weight_norm": weight_norm, "angular_update": angular_update,
                 "effective_learning_rate": effective_learning_rate, "loss": loss, "accuracy": accuracy},
    theory=theory,
    example={"model": "noise", "dim": 8, "learning_rate": [0.1, 1.0], "weight_decay": 0.01, "momentum": [0.0, 0.5],
             "members": 3, "seed": 5},
    tolerance=(1e-9, 1e-12),
)

__all__ = ["SYSTEM", "accuracy", "angular_update", "create", "effective_learning_rate", "init_sgd", "loss", "network",
           "observables", "operators", "prepare_sgd", "sgd", "theory", "weight_norm"]
