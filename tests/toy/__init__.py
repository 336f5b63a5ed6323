"""A tiny deterministic test system, registered at run time like a third-party plug-in."""
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.backends import namespace
from eqflow.schema import finish_system, system_coords


def create(rate=0.5, *, members=2, sites=3, seed=0):
    coords, dims, shape = system_coords("relax", members=members, parameters={"rate": rate}, site_sizes={"site": sites})
    x = np.ones((*shape, sites))
    return finish_system("relax", coords, {"x": ((*dims, "site"), x)}, seed=seed)


def relax(*, x, rate):
    return {"x": x * (1.0 - rate[..., None])}


def residual(*, x):
    xp = namespace(x)
    return xp.max(xp.abs(x), axis=-1)


SYSTEM = eq.register(eq.System(
    kind="relax", create=create, operators={"relax": eq.Operator(relax)}, observables={"residual": residual},
    schema_path=Path(__file__).with_name("relax.json"), example={"rate": [0.5, 0.25], "members": 2},
))
