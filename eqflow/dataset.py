"""System Datasets: build them from a typed :class:`~eqflow.schema.Schema` and validate them.

A system Dataset holds its state as data variables, its parameters as coordinates with
``units`` attributes (1-D parameters are sweep dimensions), constants as coordinates (which
may vary along sweeps, or along ``member`` where the schema allows), a ``member`` dimension
for replicas, and attributes naming the kind, the seed, the step it is at and the system's
string attributes (e.g. an SCF ``problem``).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import xarray as xr

from . import cf
from .errors import SchemaError
from .schema import Constant, Parameter, Schema, Variable
from .units import magnitude_in

KIND_ATTR, SEED_ATTR, STEP_ATTR = "eqflow_kind", "eqflow_seed", "eqflow_step"


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_size(name: str, value: Any, problems: list[str], minimum: int = 1, maximum: int | None = None) -> bool:
    """A dimension's size: an integer in [minimum, maximum] (default :data:`~eqflow.schema.MAX_SIZE`);
    appends the problem, naming ``name``, and returns False otherwise."""
    from .schema import MAX_SIZE

    top = MAX_SIZE if maximum is None else maximum
    if is_int(value) and minimum <= value <= top:
        return True
    want = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if is_int(value) and value > top:
        want += f", at most {'2**31 - 1' if top == MAX_SIZE else top}"
    problems.append(f"{name}: expected {want}, got {value!r}")
    return False


def check_seed(seed: Any, problems: list[str]) -> None:
    if not is_int(seed) or not 0 <= seed < 2**64:
        problems.append(f"seed: expected an integer in [0, 2**64), got {seed!r}")


def system_coords(schema: Schema, *, members: int, parameters: Mapping[str, Any], site_sizes: Mapping[str, int],
                  constants: Mapping[str, tuple] | None = None, seed: Any = 0):
    """Coordinates of a new system; raises one SchemaError listing every bad input.

    Returns ``(coords, ensemble_dims, ensemble_shape)``. Each parameter is converted once
    to the schema's canonical unit; a bare number is taken in that unit. ``constants`` maps
    a name to ``(dims, value)``: static arrays (e.g. integrals) kept as coordinates. ``seed``
    is checked here too, so that a bad one is reported with the rest before any draw.
    """
    problems: list[str] = []
    check_seed(seed, problems)
    check_size("members", members, problems)
    for dim, rule in schema.site_dims.items():
        if dim in site_sizes or not _optional_dim(schema, dim):
            rule.check(dim, site_sizes.get(dim), problems)
    unknown = sorted(set(parameters) - set(schema.parameters))
    if unknown:
        problems.append(f"parameters: unknown {unknown}; expected some of {sorted(schema.parameters)}")
    coords: dict[str, Any] = {}
    _add_parameter_coords(coords, schema, parameters, problems)
    _add_constant_coords(coords, schema, constants or {}, problems)
    if problems:
        raise SchemaError(problems, kind=schema.kind)
    coords[schema.member_dim] = np.arange(members, dtype=np.int64)
    for dim, size in site_sizes.items():
        coords[dim] = np.arange(size, dtype=np.int64)
    sweeps = [n for n in schema.parameters if n in coords and len(coords[n][0])]
    dims = [schema.member_dim, *sweeps]
    shape = tuple(members if d == schema.member_dim else len(coords[d][1]) for d in dims)
    return coords, dims, shape


def _add_parameter_coords(coords: dict, schema: Schema, parameters: Mapping[str, Any], problems: list[str]) -> None:
    """Add each schema parameter (given or defaulted) to ``coords`` in its canonical unit."""
    for name, spec in schema.parameters.items():
        value = parameters.get(name, spec.default)
        if value is None and not spec.required:
            continue
        if value is None:
            problems.append(f"{name}: required parameter missing (units {spec.units!r})")
            continue
        values = _parameter_values(name, value, spec, problems)
        if values is not None:
            attrs = {"units": spec.units, "description": spec.description}
            coords[name] = ((name,) if values.ndim else (), values, attrs)


def _add_constant_coords(coords: dict, schema: Schema, constants: Mapping[str, tuple], problems: list[str]) -> None:
    """Add each given ``{name: (dims, value)}`` constant to ``coords``."""
    for name, (dims, value) in constants.items():
        spec = schema.constants.get(name)
        if spec is None:
            problems.append(f"{name}: unknown constant; expected some of {sorted(schema.constants)}")
            continue
        values = _constant_values(name, value, spec, problems)
        if values is not None:
            coords[name] = (tuple(dims), values, {"units": spec.units} if spec.has_units else {})


def _optional_dim(schema: Schema, dim: str) -> bool:
    """A site dim used only by optional constants may be absent."""
    used = [v.dims for v in schema.variables.values()] + [c.dims for c in schema.constants.values() if c.required]
    return not any(dim in dims for dims in used)


def _constant_values(name: str, value: Any, spec: Constant, problems: list[str]) -> np.ndarray | None:
    if spec.has_units:
        return magnitude_in(name, value, spec.units, problems)
    try:
        return np.asarray(value, dtype=spec.dtype or np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name}: expected an array of {spec.dtype or 'float64'}, got {type(value).__name__}")
        return None


def _parameter_values(name: str, value: Any, spec: Parameter, problems: list[str]) -> np.ndarray | None:
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) or hasattr(v, "units") for v in value):
        parts = [magnitude_in(name, v, spec.units, problems, spec.also_accepts) for v in value]
        values = None if any(p is None for p in parts) else np.array([float(p) for p in parts])
    else:
        values = magnitude_in(name, value, spec.units, problems, spec.also_accepts)
    if values is None:
        return None
    if values.ndim > 1 or (values.ndim == 1 and not spec.sweepable):
        sweep = " or a 1-D sweep" if spec.sweepable else ""
        problems.append(f"{name}: expected a scalar{sweep}, got shape {values.shape}")
        return None
    if values.ndim == 1 and (values.size == 0 or len(np.unique(values)) != values.size):
        problems.append(f"{name}: expected a non-empty sweep of distinct values, got {values.tolist()}")
        return None
    spec.check_range(name, values, problems)
    return values


def finish_system(schema: Schema, coords: dict, state: Mapping[str, tuple], *, seed: int, step: int = 0,
                  attributes: Mapping[str, str] | None = None) -> xr.Dataset:
    """Assemble and validate a new system Dataset from coords and ``{name: (dims, array)}``."""
    ds = xr.Dataset(dict(state), coords=coords)
    for name, spec in schema.variables.items():
        if name in ds:
            ds[name].attrs["description"] = spec.description
            if spec.units is not None:
                ds[name].attrs["units"] = spec.units
    ds = cf_metadata(ds, schema)
    ds.attrs.update({KIND_ATTR: schema.kind, SEED_ATTR: int(seed), STEP_ATTR: int(step), **(attributes or {})})
    validate_with(ds, schema)
    return ds


def cf_metadata(ds: xr.Dataset, schema: Schema) -> xr.Dataset:
    """``ds`` with CF metadata (:mod:`eqflow.cf`): ``Conventions``, a ``long_name`` on every variable
    and coordinate (from the schema), units in their UDUNITS-2 spelling. Values are untouched."""
    names, standard = cf.schema_long_names(schema.document), cf.schema_standard_names(schema.document)
    for name in list(ds.variables):
        ds[name].attrs = cf.complete(str(name), ds[name].attrs, names, standard)
    ds.attrs["Conventions"] = cf.CONVENTIONS
    return ds


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check ``ds`` against its kind's schema; raise one SchemaError naming every bad variable.

    Returns ``ds`` unchanged when it is valid, so it chains.
    """
    from . import registry

    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"system: expected an xarray.Dataset, got {type(ds).__name__}")
    kind = ds.attrs.get(KIND_ATTR)
    if kind is None:
        raise SchemaError(f"attrs[{KIND_ATTR!r}]: expected a system kind such as {registry.available()}, got nothing")
    return validate_with(ds, registry.get(kind).schema)


def validate_with(ds: xr.Dataset, schema: Schema) -> xr.Dataset:
    """:func:`validate` against a given schema."""
    problems: list[str] = []
    check_seed(ds.attrs.get(SEED_ATTR), problems)
    step = ds.attrs.get(STEP_ATTR, 0)
    if not is_int(step) or step < 0:
        problems.append(f"attrs[{STEP_ATTR!r}]: expected a non-negative integer, got {step!r}")
    for name, spec in schema.attributes.items():
        value = ds.attrs.get(name, spec.get("default"))
        if "allowed_values" in spec and value not in spec["allowed_values"]:
            problems.append(f"attrs[{name!r}]: expected one of {spec['allowed_values']}, got {value!r}")
        elif spec.get("format") == "json" and not _json_text(value):
            problems.append(f"attrs[{name!r}]: expected a JSON document (or an empty string), got {value!r:.80}")
    _check_members(ds, schema, problems)
    for dim, rule in schema.site_dims.items():
        if dim in ds.dims or not _optional_dim(schema, dim):
            rule.check(dim, ds.sizes.get(dim), problems)
    for name, spec in schema.parameters.items():
        _check_parameter(ds, name, spec, problems)
    sweeps = schema.sweeps(ds)
    for name, spec in schema.variables.items():
        _check_variable(ds, name, spec, spec.dims_for(sweeps), problems)
    for name, spec in schema.constants.items():
        _check_constant(ds, name, spec, schema.ensemble_dims(ds), problems)
    if problems:
        raise SchemaError(problems, kind=schema.kind)
    return ds


def _json_text(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return value == "" or json.loads(value) is not None
    except ValueError:
        return False


def _check_members(ds: xr.Dataset, schema: Schema, problems: list[str]) -> None:
    dim = schema.member_dim
    if dim not in ds.coords:
        problems.append(f"{dim}: expected an integer coordinate of member labels, got none")
        return
    labels = ds[dim].values
    if (labels.dtype.kind not in "iu" or labels.size == 0 or np.any(labels < 0)
            or len(np.unique(labels)) != labels.size):
        problems.append(f"{dim}: expected distinct non-negative integer labels, "
                        f"got {labels.dtype} {labels[:8].tolist()}")


def _check_parameter(ds: xr.Dataset, name: str, spec: Parameter, problems: list[str]) -> None:
    if name not in ds.coords and not spec.required and spec.default is None:
        return
    if name not in ds.coords:
        problems.append(f"{name}: expected a coordinate in {spec.units!r}, got none")
        return
    da = ds[name]
    if da.ndim > 1 or (da.ndim == 1 and da.dims != (name,)):
        problems.append(f"{name}: expected a scalar or 1-D coordinate along ({name!r},), got dims {da.dims}")
        return
    if "units" not in da.attrs and not hasattr(da.data, "units"):
        problems.append(f"{name}: expected a 'units' attribute compatible with {spec.units!r}, got none")
        return
    values = magnitude_in(name, da, spec.units, problems, spec.also_accepts)
    if values is not None and values.ndim == 1 and (values.size == 0 or len(np.unique(values)) != values.size):
        problems.append(f"{name}: expected a non-empty sweep of distinct values, got {values.tolist()}")
    elif values is not None:
        spec.check_range(name, np.atleast_1d(values), problems)


def _check_constant(ds: xr.Dataset, name: str, spec: Constant, ensemble: list[str], problems: list[str]) -> None:
    if name not in ds.coords:
        if spec.required:
            problems.append(f"{name}: expected a constant coordinate with dims (*sweeps, {', '.join(spec.dims)}), "
                            "got none")
        return
    da = ds[name]
    own = list(da.dims[len(da.dims) - len(spec.dims):]) if da.ndim >= len(spec.dims) else []
    lead = list(da.dims[: da.ndim - len(own)])
    allowed = ensemble if spec.per_member else ensemble[1:]
    if own != list(spec.dims) or [d for d in allowed if d in lead] != lead:
        problems.append(f"{name}: expected dims (<some of {allowed}>, {', '.join(spec.dims)}), got {da.dims}")
    if spec.has_units:
        if "units" not in da.attrs:
            problems.append(f"{name}: expected a 'units' attribute compatible with {spec.units!r}, got none")
        else:
            magnitude_in(name, da, spec.units, problems)
    if spec.dtype is not None and da.dtype != np.dtype(spec.dtype):
        problems.append(f"{name}: expected dtype {spec.dtype}, got {da.dtype}")
    elif da.dtype.kind not in "fiub" or (da.dtype.kind == "f" and not np.all(np.isfinite(da.values))):
        problems.append(f"{name}: expected finite real numbers, got dtype {da.dtype}")


def _check_variable(ds: xr.Dataset, name: str, spec: Variable, dims: list[str], problems: list[str]) -> None:
    if name not in ds.data_vars:
        problems.append(f"{name}: expected a data variable with dims {tuple(dims)}, got none")
        return
    da = ds[name]
    if list(da.dims) != dims:
        problems.append(f"{name}: expected dims {tuple(dims)}, got {da.dims}")
    if da.dtype.name not in spec.dtypes:
        want = spec.dtypes[0] if len(spec.dtypes) == 1 else f"one of {list(spec.dtypes)}"
        problems.append(f"{name}: expected dtype {want}, got {da.dtype}")
    if spec.allowed_values is not None and da.dtype.kind in "iub":
        bad = ~np.isin(da.values, spec.allowed_values)
        if bad.any():
            found = np.unique(da.values[bad])[:5].tolist()
            problems.append(f"{name}: expected values in {list(spec.allowed_values)}, got {int(bad.sum())} "
                            f"other value(s) such as {found}")


def parameter_arrays(ds: xr.Dataset, schema: Schema) -> dict[str, np.ndarray]:
    """Every parameter as float64 magnitudes in canonical units, broadcast to the ensemble shape."""
    dims = schema.ensemble_dims(ds)
    shape = tuple(ds.sizes[d] for d in dims)
    problems: list[str] = []
    out = {}
    for name, spec in schema.parameters.items():
        if name not in ds.coords:
            continue
        values = magnitude_in(name, ds[name], spec.units, problems, spec.also_accepts)
        if values is not None:
            index = tuple(slice(None) if d == name else np.newaxis for d in dims) if values.ndim else ()
            out[name] = np.broadcast_to(values[index] if values.ndim else values, shape).copy()
    if problems:
        raise SchemaError(problems, kind=schema.kind)
    return out


def constant_arrays(ds: xr.Dataset, schema: Schema) -> dict[str, np.ndarray]:
    """Every constant in canonical units, shaped (*ensemble dims or 1 where it does not vary, *own dims)."""
    dims = schema.ensemble_dims(ds)
    out, problems = {}, []
    for name, spec in schema.constants.items():
        if name not in ds.coords:
            continue
        da = ds[name]
        lead = [d for d in dims if d in da.dims]
        own = [d for d in da.dims if d not in dims]
        da = da.transpose(*lead, *own)
        values = _constant_values(name, da, spec, problems)
        if values is not None:
            shape = [ds.sizes[d] if d in lead else 1 for d in dims] + [da.sizes[d] for d in own]
            out[name] = values.reshape(shape)
    if problems:
        raise SchemaError(problems, kind=schema.kind)
    return out


def point_values(coords: Mapping[str, Any], schema: Schema) -> dict[str, np.ndarray]:
    """Each parameter's canonical value at every parameter point (arrays of the sweep shape).

    ``coords`` as :func:`system_coords` returns them. These values key the random streams of
    each point (:func:`eqflow.random.point_ids`), at ``create`` and at ``run`` alike.
    """
    skeleton = xr.Dataset(coords={k: v for k, v in coords.items() if k in schema.parameters or k == schema.member_dim})
    return {k: v[0] for k, v in parameter_arrays(skeleton, schema).items()}


def attributes(ds: xr.Dataset, schema: Schema) -> dict[str, str]:
    """The system's string attributes (with their defaults)."""
    return {name: ds.attrs.get(name, spec.get("default")) for name, spec in schema.attributes.items()}
