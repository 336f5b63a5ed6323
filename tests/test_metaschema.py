"""The meta-schema ``schemas/eqflow-system.schema.json`` that every ``schemas/<kind>.json`` must satisfy."""
import copy
import json
from pathlib import Path

import jsonschema
import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
META_PATH = ROOT / "schemas" / "eqflow-system.schema.json"
SYSTEM_FILES = sorted(p for p in (ROOT / "schemas").glob("*.json") if not p.name.endswith(".schema.json")) + sorted(
    (ROOT / "eqflow" / "testing" / "toy").glob("*.json"))


@pytest.fixture(scope="module")
def validator():
    with open(META_PATH, encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


MINIMAL = {
    "kind": "relax",
    "schema_version": 2,
    "description": "x <- (1 - rate) x",
    "member_dim": "member",
    "site_dims": {},
    "parameters": {},
    "variables": {},
    "observables": {},
    "operators": {},
}

RICH = {
    "$comment": "every optional key of format version 2",
    "kind": "rich_system",
    "schema_version": 2,
    "description": "a system that uses every optional key",
    "reference": ["A. Author, J. Phys. 1, 1 (2000)", "B. Author, J. Phys. 2, 2 (2001)"],
    "member_dim": "member",
    "backends": ["numpy", "torch"],
    "site_dims": {
        "y": {"minimum": 2, "multiple_of": 2, "description": "rows"},
        "orbital_": {"minimum": 1},
        "free": {},
    },
    "attributes": {
        "problem": {"allowed_values": ["hubbard", "molecule"], "default": "hubbard", "description": "problem family"},
        "bare": {"allowed_values": ["only"]},
        "recipe": {"format": "json", "default": "", "description": "how to rebuild large data"},
    },
    "parameters": {
        "temperature": {
            "units": "K",
            "also_accepts": {"k_B * K": "an energy E is read as T = E / k_B"},
            "exclusive_minimum": 0,
            "exclusive_maximum": 1e6,
            "sweepable": True,
            "required": True,
            "description": "heat-bath temperature",
        },
        "mixing": {"units": "1", "minimum": 0, "maximum": 1, "default": 0.5, "sweepable": True, "required": False},
        "geometry": {"units": "angstrom", "default": None},
        "elapsed": {"units": "s", "default": 0.0, "required": False, "description": "time since the start",
                    "standard_name": "time"},  # a genuine CF standard name
    },
    "constants": {
        "overlap": {"dims": ["orbital", "orbital_"], "units": "1", "dtype": "float64", "required": False,
                    "per_member": True, "description": "overlap matrix S"},
        "occupied": {"dims": [], "dtype": "int64", "required": True},
    },
    "variables": {
        "spin": {"dims": ["member", "*parameters", "y", "x"], "dtype": "int8", "allowed_values": [-1, 1],
                 "description": "spins"},
        "density": {"dims": ["member", "*parameters", "orbital", "orbital_"], "dtype": ["float64", "float32"],
                    "units": "1"},
        "wave": {"dims": ["member", "*parameters"], "dtype": ["complex128", "complex64"]},
    },
    "observables": {
        "energy": {"units": "hartree", "dtype": "float64", "description": "total energy",
                   "long_name": "total energy"},
        "spectrum": {"units": "hartree", "dtype": ["float64", "float32"], "dims": ["orbital"]},
        "residual": {"units": "1"},
    },
    "operators": {
        "diis": {
            "description": "Pulay DIIS",
            "reference": "P. Pulay, Chem. Phys. Lett. 73, 393 (1980)",
            "options": {
                "history": {"default": 8, "minimum": 1, "description": "history slots"},
                "variant": {"default": "commutator"},
                "restart": {"default": True},
                "tolerance": {"default": None},
                "damping": {"default": 0.25},
            },
            "state": {
                "error_history": {"dims": ["history", "spin", "orbital", "orbital_"], "dtype": "float64",
                                  "units": "hartree", "description": "past commutators"},
                "count": {"dims": [], "dtype": "int32"},
            },
            "diagnostics": {
                "converged": {"dims": [], "dtype": "bool", "units": "1", "description": "per member"},
                "subspace": {"dtype": "int64"},
            },
        },
        "metropolis": {"description": "Metropolis sweep", "reference": ["Metropolis et al. (1953)"], "options": {},
                       "state": {}, "diagnostics": {}},
    },
}


def _describe(error):
    """An error as reported: where, what, and the rule that failed (a ``contains`` message alone names no item)."""
    return f"{error.json_path}: {error.message} [{error.validator}: {json.dumps(error.validator_value)}]"


def _messages(validator, doc):
    """Every error (including those nested under anyOf/allOf), described."""
    def walk(errors):
        for e in errors:
            yield _describe(e)
            yield from walk(e.context)
    return list(walk(validator.iter_errors(doc)))


def _assert_error(validator, doc, path, *fragments):
    """``doc`` is invalid; the most relevant error points at ``path`` and names every fragment."""
    errors = list(validator.iter_errors(doc))
    assert errors, "document unexpectedly valid"
    best = jsonschema.exceptions.best_match(errors)
    text = _describe(best)
    assert best.json_path == path, (text, _messages(validator, doc))
    for fragment in fragments:
        assert fragment in text, (fragment, text, _messages(validator, doc))


def test_metaschema_is_valid_draft_2020_12():
    with open(META_PATH, encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(meta)


def test_minimal_document_validates(validator):
    assert _messages(validator, MINIMAL) == []


def test_rich_document_validates(validator):
    assert _messages(validator, RICH) == []


def test_rich_document_uses_every_key_of_the_metaschema(validator):
    """RICH is the showcase: each property the meta-schema names appears somewhere in it."""
    meta = validator.schema

    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)

    named = set(meta["properties"]) | {k for d in meta["$defs"].values() for k in d.get("properties", {})}
    assert named - set(keys(RICH)) == set()


@pytest.mark.parametrize("missing", MINIMAL)
def test_top_level_keys_are_required(validator, missing):
    doc = {k: v for k, v in MINIMAL.items() if k != missing}
    _assert_error(validator, doc, "$", f"'{missing}' is a required property")


def _edit(edit):
    doc = copy.deepcopy(RICH)
    edit(doc)
    return doc


TYPOS = {
    "sweepabel in a parameter": (
        lambda d: d["parameters"]["mixing"].update(sweepabel=True),
        "$.parameters.mixing", ["sweepabel"]),
    "dtyp in a variable": (
        lambda d: d["variables"]["density"].update(dtyp="float64"),
        "$.variables.density", ["dtyp"]),
    "unit instead of units": (
        lambda d: d["observables"]["energy"].update(unit=d["observables"]["energy"].pop("units")),
        "$.observables.energy", ["'unit' was unexpected"]),
    "unknown dtype float65": (
        lambda d: d["variables"]["spin"].update(dtype="float65"),
        "$.variables.spin.dtype", ["float65"]),
    "unknown dtype float65 in a dtype list": (
        lambda d: d["variables"]["density"].update(dtype=["float64", "float65"]),
        "$.variables.density.dtype[1]", ["float65"]),
    "unknown dtype float65 in operator state": (
        lambda d: d["operators"]["diis"]["state"]["count"].update(dtype="float65"),
        "$.operators.diis.state.count.dtype", ["float65"]),
    "schema_version 1": (
        lambda d: d.update(schema_version=1),
        "$.schema_version", ["2 was expected"]),
    "variable without *parameters": (
        lambda d: d["variables"]["spin"].update(dims=["member", "y", "x"]),
        "$.variables.spin.dims", ["*parameters"]),
    "variable without member": (
        lambda d: d["variables"]["spin"].update(dims=["*parameters", "y", "x"]),
        "$.variables.spin.dims", ["member"]),
    "operator state without dims": (
        lambda d: d["operators"]["diis"]["state"]["count"].pop("dims"),
        "$.operators.diis.state.count", ["'dims' is a required property"]),
    "attribute with neither allowed_values nor a format": (
        lambda d: d["attributes"]["problem"].pop("allowed_values"),
        "$.attributes.problem", ["is not valid under any of the given schemas"]),
    "attribute of an unknown format": (
        lambda d: d["attributes"]["recipe"].update(format="yaml"),
        "$.attributes.recipe.format", ["yaml"]),
    "unknown top-level key": (
        lambda d: d.update(paramters={}),
        "$", ["paramters"]),
    "operator without description": (
        lambda d: d["operators"]["metropolis"].pop("description"),
        "$.operators.metropolis", ["'description' is a required property"]),
    "option without default": (
        lambda d: d["operators"]["diis"]["options"]["history"].pop("default"),
        "$.operators.diis.options.history", ["'default' is a required property"]),
    "constant dtype outside its enum": (
        lambda d: d["constants"]["overlap"].update(dtype="complex128"),
        "$.constants.overlap.dtype", ["complex128"]),
    "site dim with an upper-case name": (
        lambda d: d["site_dims"].update(Y={}),
        "$.site_dims", ["Y"]),
    "negative site-dim minimum": (
        lambda d: d["site_dims"]["y"].update(minimum=-1),
        "$.site_dims.y.minimum", ["-1"]),
    "unknown backend": (
        lambda d: d.update(backends=["jax"]),
        "$.backends[0]", ["jax"]),
    "member_dim renamed": (
        lambda d: d.update(member_dim="sample"),
        "$.member_dim", ["'member' was expected"]),
    "bad kind": (
        lambda d: d.update(kind="Ising-2D"),
        "$.kind", ["Ising-2D"]),
}


@pytest.mark.parametrize("case", TYPOS)
def test_typos_are_errors_named_in_the_failure(validator, case):
    edit, path, fragments = TYPOS[case]
    _assert_error(validator, _edit(edit), path, *fragments)


@pytest.mark.parametrize("path", SYSTEM_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_system_schema_file_validates(validator, path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert _messages(validator, doc) == []


def test_system_schema_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SYSTEM_FILES}
    assert {"schemas/ising.json", "schemas/scf.json", "eqflow/testing/toy/relax.json"} <= names
