"""Typed system schemas: each ``schemas/<kind>.json`` parsed once into a :class:`Schema`.

The JSON document is what non-Python tools read; it is checked against
``schemas/eqflow-system.schema.json`` (JSON Schema 2020-12) when it is loaded, so a typo
such as ``"sweepabel"`` is an error naming the place. Python code passes the typed
:class:`Schema` around; nothing looks a kind up by name inside the data model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import SchemaError

FORMAT_VERSION = 2
PARAMETER_PLACEHOLDER = "*parameters"
META_SCHEMA = "eqflow-system.schema.json"
MAX_SIZE = 2**31 - 1  # the largest size of one dimension (members, sites, slots): indexes stay exact in int32
MAX_INT_OPTION = 2**62  # integer options stay exact in int64 and float64, like step counts


@dataclass(frozen=True)
class SizeRule:
    """A site dimension's size rule: an integer >= ``minimum`` and a multiple of ``multiple_of``."""

    minimum: int = 1
    multiple_of: int = 1

    def check(self, dim: str, size: Any, problems: list[str]) -> None:
        ok = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
        if ok and self.minimum <= size <= MAX_SIZE and size % self.multiple_of == 0:
            return
        want = f"an integer >= {self.minimum}" + (f" and a multiple of {self.multiple_of}"
                                                   if self.multiple_of > 1 else "")
        if ok and size > MAX_SIZE:
            want += ", at most 2**31 - 1"
        problems.append(f"size of {dim!r}: expected {want}, got {size!r}")


@dataclass(frozen=True)
class Quantity:
    """Units of a value: the canonical unit and units read as it (e.g. an energy k_B T as T)."""

    units: str
    also_accepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Parameter(Quantity):
    """A physical parameter: a scalar coordinate, or a sweep dimension when 1-D and ``sweepable``."""

    default: float | None = None
    sweepable: bool = False
    required: bool = True
    bounds: Mapping[str, float] = field(default_factory=dict)  # minimum, exclusive_minimum, maximum, ...
    description: str = ""

    def check_range(self, name: str, values: np.ndarray, problems: list[str]) -> None:
        if not np.all(np.isfinite(values)):
            problems.append(f"{name}: expected finite values, got {values.tolist()} {self.units}")
            return
        tests = {"minimum": (np.less, ">="), "exclusive_minimum": (np.less_equal, ">"),
                 "maximum": (np.greater, "<="), "exclusive_maximum": (np.greater_equal, "<")}
        for key, bound in self.bounds.items():
            bad, sign = tests[key]
            if np.any(bad(values, bound)):
                problems.append(f"{name}: expected values {sign} {bound} {self.units}, "
                                f"got {values.tolist()} {self.units}")
                return


@dataclass(frozen=True)
class Constant(Quantity):
    """A static array kept as a coordinate: own ``dims``, optionally varying along sweeps or members."""

    dims: tuple[str, ...] = ()
    dtype: str | None = None
    required: bool = True
    per_member: bool = False
    has_units: bool = True
    description: str = ""


@dataclass(frozen=True)
class Variable:
    """A state variable: dims with ``member`` and ``*parameters``, allowed dtypes (default first)."""

    dims: tuple[str, ...]
    dtypes: tuple[str, ...]
    units: str | None = None
    allowed_values: tuple | None = None
    description: str = ""

    def dims_for(self, sweeps: list[str]) -> list[str]:
        i = self.dims.index(PARAMETER_PLACEHOLDER)
        return [*self.dims[:i], *sweeps, *self.dims[i + 1:]]


@dataclass(frozen=True)
class Observable:
    """A recorded function of the state: units, dtype (None: the state's float dtype), extra dims."""

    units: str
    dtype: str | None = None
    dims: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Field:
    """Operator-owned state or a per-step diagnostic: its own dims after the ensemble dims."""

    dims: tuple[str, ...]
    dtype: str
    units: str | None = None
    description: str = ""


@dataclass(frozen=True)
class OperatorSpec:
    """What the schema declares of an operator: options, owned state and diagnostics."""

    description: str
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    state: Mapping[str, Field] = field(default_factory=dict)
    diagnostics: Mapping[str, Field] = field(default_factory=dict)
    reference: Any = None


@dataclass(frozen=True)
class Schema:
    """One kind's schema, parsed; ``document`` is the JSON it came from."""

    kind: str
    description: str
    member_dim: str
    site_dims: Mapping[str, SizeRule]
    parameters: Mapping[str, Parameter]
    variables: Mapping[str, Variable]
    observables: Mapping[str, Observable]
    operators: Mapping[str, OperatorSpec]
    constants: Mapping[str, Constant] = field(default_factory=dict)
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    backends: tuple[str, ...] = ("numpy", "torch")
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], source: str = "schema") -> "Schema":
        """Check ``doc`` against the meta-schema, then parse it."""
        check_document(doc, source)
        return cls(
            kind=doc["kind"], description=doc["description"], member_dim=doc["member_dim"],
            site_dims={k: SizeRule(v.get("minimum", 1), v.get("multiple_of", 1)) for k, v in doc["site_dims"].items()},
            parameters={k: _parameter(v) for k, v in doc["parameters"].items()},
            variables={k: _variable(v) for k, v in doc["variables"].items()},
            observables={k: Observable(v["units"], v.get("dtype"), tuple(v.get("dims", ())), v.get("description", ""))
                         for k, v in doc["observables"].items()},
            operators={k: _operator(v) for k, v in doc["operators"].items()},
            constants={k: _constant(v) for k, v in doc.get("constants", {}).items()},
            attributes=dict(doc.get("attributes", {})), backends=tuple(doc.get("backends", ("numpy", "torch"))),
            document=doc,
        )

    def sweeps(self, ds) -> list[str]:
        """Parameters that are swept (dimensions of ``ds``), in schema order."""
        return [p for p in self.parameters if p in ds.dims]

    def ensemble_dims(self, ds) -> list[str]:
        """Dimensions along which members and parameter points vary: member first, then sweeps."""
        return [self.member_dim, *self.sweeps(ds)]


def _parameter(spec: Mapping) -> Parameter:
    bounds = {k: spec[k] for k in ("minimum", "exclusive_minimum", "maximum", "exclusive_maximum") if k in spec}
    return Parameter(spec["units"], tuple(spec.get("also_accepts", {})), spec.get("default"),
                     spec.get("sweepable", False), spec.get("required", True), bounds, spec.get("description", ""))


def _constant(spec: Mapping) -> Constant:
    return Constant(spec.get("units", "1"), (), tuple(spec["dims"]), spec.get("dtype"), spec.get("required", True),
                    spec.get("per_member", False), "units" in spec, spec.get("description", ""))


def _variable(spec: Mapping) -> Variable:
    dtypes = spec["dtype"] if isinstance(spec["dtype"], list) else [spec["dtype"]]
    allowed = spec.get("allowed_values")
    return Variable(tuple(spec["dims"]), tuple(dtypes), spec.get("units"), None if allowed is None else tuple(allowed),
                    spec.get("description", ""))


def _operator(spec: Mapping) -> OperatorSpec:
    fields = {key: {k: Field(tuple(v.get("dims", ())), v["dtype"], v.get("units"), v.get("description", ""))
                    for k, v in spec.get(key, {}).items()} for key in ("state", "diagnostics")}
    return OperatorSpec(spec["description"], dict(spec.get("options", {})), fields["state"], fields["diagnostics"],
                        spec.get("reference"))


def schema_dir() -> Path:
    """The folder of JSON schemas: inside the installed package, or at the repository top."""
    packaged = Path(__file__).parent / "schemas"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "schemas"


@cache
def _meta_validator():
    import jsonschema

    with open(schema_dir() / META_SCHEMA, encoding="utf-8") as f:
        meta = json.load(f)
    return jsonschema.Draft202012Validator(meta)


def check_document(doc: Mapping[str, Any], source: str = "schema") -> None:
    """Raise one SchemaError listing every place where ``doc`` breaks the meta-schema."""
    errors = sorted(_meta_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [f"{source} at /{'/'.join(map(str, e.absolute_path))}: {_message(e)}" for e in errors]
        raise SchemaError(problems)


def _message(error) -> str:
    """jsonschema's message, with the rule that failed where the message alone does not say it."""
    if error.validator == "contains":
        return f"{error.message} ({json.dumps(error.validator_value)})"
    return error.message


@cache
def load(path: Path) -> Schema:
    """Read, check and parse the schema document at ``path`` (once per process)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return Schema.from_document(doc, source=Path(path).name)
