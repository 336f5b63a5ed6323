"""The template system: a tiny, exactly solvable system that shows every feature of the contract.

Registered at run time (``eq.register``) when imported, like a third-party plug-in would be through the
``eqflow.systems`` entry-point group. Read it with ``relax.json`` beside it; the guide in
``docs/adding-a-system.md`` walks through both.

- parameters ``rate`` and ``noise`` (sweepable), a per-member constant ``target``;
- a state ``x`` that may be float64 or float32 (``create(dtype=...)``): it stays in its dtype;
- ``anneal`` reads the current ``step`` (a schedule), ``clock`` observes it;
- ``momentum`` owns state (``velocity``, from ``init``), takes an option (``beta``) and
  returns a per-step diagnostic (``speed``);
- ``noisy`` declares its random draws (a standard normal per site and step);
- ``deviation`` is an observable with a dim of its own; ``flip`` ends in a cycle.
"""
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.backends import namespace
from eqflow.dataset import finish_system, system_coords

SCHEMA_PATH = Path(__file__).with_name("relax.json")


def create(rate=0.5, *, members=2, sites=3, seed=0, noise=0.0, target=None, dtype="float64"):
    """Members start at x = 1 and relax towards ``target`` (members, sites), default 0."""
    schema = SYSTEM.schema
    target = np.zeros((members, sites)) if target is None else np.asarray(target)
    coords, dims, shape = system_coords(schema, members=members, parameters={"rate": rate, "noise": noise},
                                        site_sizes={"site": sites}, constants={"target": (("member", "site"), target)},
                                        seed=seed)
    x = np.ones((*shape, sites), dtype=dtype)
    return finish_system(schema, coords, {"x": ((*dims, "site"), x)}, seed=seed)


def _target(target, x):
    """The per-member target (member, site) broadcast over the sweep dims of x (member, *sweeps, site)."""
    return target.reshape(target.shape[:1] + (1,) * (x.ndim - 2) + target.shape[-1:])


def relax(*, x, rate, target):
    return {"x": x + rate[..., None] * (_target(target, x) - x)}


def anneal(*, x, rate, target, step):
    return {"x": x + (rate[..., None] / (1.0 + step)) * (_target(target, x) - x)}


def init_momentum(*, x):
    return {"velocity": np.zeros(x.shape, dtype=np.float64)}


def momentum(*, x, velocity, rate, target, beta):
    xp = namespace(x)
    velocity = beta * velocity + xp.astype(rate[..., None] * (_target(target, x) - x), velocity.dtype)
    return {"x": x + xp.astype(velocity, x.dtype), "velocity": velocity,
            "speed": xp.max(xp.abs(velocity), axis=-1)}


def noisy(*, x, rate, noise, target, kick):
    return {"x": x + rate[..., None] * (_target(target, x) - x) + noise[..., None] * kick}


def flip(*, x, target):
    return {"x": 2 * _target(target, x) - x}


def residual(*, x, target):
    xp = namespace(x)
    return xp.max(xp.abs(x - _target(target, x)), axis=-1)


def deviation(*, x, target):
    return x - _target(target, x)


def clock(*, x, step):
    xp = namespace(x)
    return xp.zeros_like(x[..., 0], dtype=xp.int64) + step


SYSTEM = eq.register(eq.System(
    kind="relax", create=create,
    operators={"relax": eq.Operator(relax), "anneal": eq.Operator(anneal),
               "momentum": eq.Operator(momentum, init=init_momentum),
               "noisy": eq.Operator(noisy, draws={"kick": eq.random.normal("site")}),
               "flip": eq.Operator(flip)},
    observables={"residual": residual, "deviation": deviation, "clock": clock},
    schema_path=SCHEMA_PATH, example={"rate": [0.5, 0.25], "members": 2, "noise": 0.1},
))
