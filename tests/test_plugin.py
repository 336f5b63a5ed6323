"""A third-party system, outside eqflow's tree, registered through the ``eqflow.systems``
entry-point group, passes eqflow.testing's conformance suite with one call.

The plug-in is a tiny package written into a temporary directory together with an installed
distribution's metadata (``.dist-info`` with ``entry_points.txt``), put on ``sys.path``: what
``pip install`` of a real plug-in leaves behind. Its system has no site dims (one coordinate per
member and parameter point, scalar draws): the built-in kinds and the toy cover site dims.
"""
import json
import sys
import textwrap

import pytest

from eqflow import registry
from eqflow.testing import check_system

SCHEMA = {
    "kind": "decay", "schema_version": 2, "member_dim": "member", "backends": ["numpy", "torch"],
    "description": "x <- (1 - r) x + sigma xi: one AR(1) coordinate per member",
    "site_dims": {},
    "parameters": {
        "rate": {"units": "1", "sweepable": True, "required": True, "description": "decay rate r per step"},
        "noise": {"units": "1", "minimum": 0, "default": 0.1, "sweepable": True, "description": "sigma"},
    },
    "variables": {"x": {"dims": ["member", "*parameters"], "dtype": "float64", "units": "1",
                        "description": "the coordinate"}},
    "observables": {"square": {"units": "1", "description": "x^2"}},
    "operators": {"step": {"description": "x <- (1 - r) x + sigma xi, xi standard normal"}},
}

MODULE = '''
"""decay: a plug-in system for eqflow (one AR(1) coordinate per member, no site dims)."""
from pathlib import Path

import numpy as np

import eqflow as eq
from eqflow.dataset import finish_system, system_coords


def create(rate=0.5, *, noise=0.1, members=2, seed=0):
    coords, dims, shape = system_coords(SYSTEM.schema, members=members, parameters={"rate": rate, "noise": noise},
                                        site_sizes={}, seed=seed)
    return finish_system(SYSTEM.schema, coords, {"x": (dims, np.ones(shape))}, seed=seed)


def step(*, x, rate, noise, kick):
    return {"x": (1 - rate) * x + noise * kick}


def square(*, x):
    return x * x


KICK = {"kick": eq.random.normal()}
SYSTEM = eq.System(kind="decay", create=create, operators={"step": eq.Operator(step, draws=KICK)},
                   observables={"square": square}, schema_path=Path(__file__).with_name("decay.json"),
                   example={"rate": [0.5, 0.25], "members": 2, "seed": 3})
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    package = tmp_path / "eqflow_decay"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(MODULE))
    (package / "decay.json").write_text(json.dumps(SCHEMA))
    info = tmp_path / "eqflow_decay-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eqflow-decay\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[eqflow.systems]\ndecay = eqflow_decay:SYSTEM\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_RUNTIME", dict(registry._RUNTIME))  # check_system(System) registers it
    registry.get.cache_clear()
    yield "decay"
    registry.get.cache_clear()
    sys.modules.pop("eqflow_decay", None)


def test_a_plugin_is_found_through_its_entry_point_and_passes_the_suite(plugin, tmp_path):
    assert "decay" in registry.available() and "decay" not in registry.builtin()
    system = registry.get("decay")
    assert type(system).__module__ == "eqflow.system" and sys.modules["eqflow_decay"].SYSTEM is system
    check_system("decay", directory=tmp_path / "checks")


def test_the_suite_fails_a_system_whose_schema_and_code_disagree(plugin, tmp_path):
    import dataclasses

    system = registry.get("decay")
    broken = dataclasses.replace(system, observables={})
    with pytest.raises(AssertionError, match="observables"):
        check_system(broken, backends=["numpy"], directory=tmp_path / "checks")
