"""The data model: build and validate system Datasets against their JSON schema.

A system Dataset holds its state as data variables, its parameters as coordinates with
``units`` attributes (1-D parameters are sweep dimensions), a ``member`` dimension for
replicas, and attributes naming the kind, the seed and the step it is at.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr

from . import registry
from .errors import SchemaError
from .units import magnitude_in

KIND_ATTR, SEED_ATTR, STEP_ATTR = "eqflow_kind", "eqflow_seed", "eqflow_step"
PARAMETER_PLACEHOLDER = "*parameters"


def parameter_dims(ds: xr.Dataset | xr.DataArray, schema: dict) -> list[str]:
    """Parameters that are swept (dimensions of ``ds``), in schema order."""
    return [p for p in schema["parameters"] if p in ds.dims]


def ensemble_dims(ds: xr.Dataset | xr.DataArray, schema: dict) -> list[str]:
    """Dimensions along which members and parameter points vary: member first, then sweeps."""
    return [schema["member_dim"], *parameter_dims(ds, schema)]


def variable_dims(name: str, schema: dict, sweeps: list[str]) -> list[str]:
    dims = schema["variables"][name]["dims"]
    i = dims.index(PARAMETER_PLACEHOLDER)
    return [*dims[:i], *sweeps, *dims[i + 1 :]]


def check_seed(seed: Any, problems: list[str]) -> None:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        problems.append(f"seed: expected an integer in [0, 2**64), got {seed!r}")


def system_coords(kind: str, *, members: int, parameters: Mapping[str, Any], site_sizes: Mapping[str, int],
                  constants: Mapping[str, tuple] | None = None):
    """Coordinates of a new system; raises one SchemaError listing every bad input.

    Returns ``(coords, ensemble_dims, ensemble_shape)``. Each parameter is converted once
    to the schema's canonical unit; a bare number is taken in that unit. ``constants`` maps
    a name to ``(dims, value)``: static arrays (e.g. integrals) kept as coordinates.
    """
    schema = registry.get(kind).schema
    problems: list[str] = []
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or members < 1:
        problems.append(f"members: expected a positive integer, got {members!r}")
    for dim, rule in schema["site_dims"].items():
        _check_size(dim, site_sizes.get(dim), rule, problems)
    unknown = sorted(set(parameters) - set(schema["parameters"]))
    if unknown:
        problems.append(f"parameters: unknown {unknown}; expected some of {sorted(schema['parameters'])}")
    coords: dict[str, Any] = {}
    for name, spec in schema["parameters"].items():
        value = parameters.get(name, spec.get("default"))
        if value is None and not spec.get("required", True):
            continue
        if value is None:
            problems.append(f"{name}: required parameter missing (units {spec['units']!r})")
            continue
        values = _parameter_values(name, value, spec, problems)
        if values is not None:
            attrs = {"units": spec["units"], "description": spec.get("description", "")}
            coords[name] = ((name,) if values.ndim else (), values, attrs)
    for name, (dims, value) in (constants or {}).items():
        spec = schema.get("constants", {}).get(name)
        if spec is None:
            problems.append(f"{name}: unknown constant; expected some of {sorted(schema.get('constants', {}))}")
            continue
        values = magnitude_in(name, value, spec, problems) if "units" in spec else np.asarray(value, dtype=np.float64)
        if values is not None:
            coords[name] = (tuple(dims), values, {"units": spec["units"]} if "units" in spec else {})
    if problems:
        raise SchemaError(problems, kind=kind)
    coords[schema["member_dim"]] = np.arange(members, dtype=np.int64)
    for dim, size in site_sizes.items():
        coords[dim] = np.arange(size, dtype=np.int64)
    sweeps = [n for n in schema["parameters"] if n in coords and len(coords[n][0])]
    dims = [schema["member_dim"], *sweeps]
    shape = tuple(len(coords[d]) if d == schema["member_dim"] else len(coords[d][1]) for d in dims)
    return coords, dims, shape


def _check_size(dim: str, size: Any, rule: dict, problems: list[str]) -> None:
    ok = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
    ok = ok and size >= rule.get("minimum", 1) and size % rule.get("multiple_of", 1) == 0
    if not ok:
        want = f"an integer >= {rule.get('minimum', 1)}"
        if rule.get("multiple_of", 1) > 1:
            want += f" and a multiple of {rule['multiple_of']}"
        problems.append(f"size of {dim!r}: expected {want}, got {size!r}")


def _parameter_values(name: str, value: Any, spec: dict, problems: list[str]) -> np.ndarray | None:
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) or hasattr(v, "units") for v in value):
        parts = [magnitude_in(name, v, spec, problems) for v in value]
        values = None if any(p is None for p in parts) else np.array([float(p) for p in parts])
    else:
        values = magnitude_in(name, value, spec, problems)
    if values is None:
        return None
    if values.ndim > 1 or (values.ndim == 1 and not spec.get("sweepable")):
        problems.append(f"{name}: expected a scalar{' or a 1-D sweep' if spec.get('sweepable') else ''}, got shape {values.shape}")
        return None
    if values.ndim == 1 and (values.size == 0 or len(np.unique(values)) != values.size):
        problems.append(f"{name}: expected a non-empty sweep of distinct values, got {values.tolist()}")
        return None
    _check_range(name, values, spec, problems)
    return values


def _check_range(name: str, values: np.ndarray, spec: dict, problems: list[str]) -> None:
    units = spec["units"]
    if not np.all(np.isfinite(values)):
        problems.append(f"{name}: expected finite values, got {values.tolist()} {units}")
    elif "exclusive_minimum" in spec and np.any(values <= spec["exclusive_minimum"]):
        problems.append(f"{name}: expected values > {spec['exclusive_minimum']} {units}, got {values.tolist()} {units}")
    elif "minimum" in spec and np.any(values < spec["minimum"]):
        problems.append(f"{name}: expected values >= {spec['minimum']} {units}, got {values.tolist()} {units}")


def finish_system(kind: str, coords: dict, state: Mapping[str, tuple], *, seed: int, step: int = 0) -> xr.Dataset:
    """Assemble and validate a new system Dataset from coords and ``{name: (dims, array)}``."""
    ds = xr.Dataset(dict(state), coords=coords)
    for name, spec in registry.get(kind).schema["variables"].items():
        ds[name].attrs["description"] = spec.get("description", "")
        if "units" in spec:
            ds[name].attrs["units"] = spec["units"]
    ds.attrs.update({KIND_ATTR: kind, SEED_ATTR: int(seed), STEP_ATTR: int(step)})
    validate(ds)
    return ds


def validate(ds: xr.Dataset) -> xr.Dataset:
    """Check ``ds`` against its kind's schema; raise one SchemaError naming every bad variable.

    Returns ``ds`` unchanged when it is valid, so it chains.
    """
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"system: expected an xarray.Dataset, got {type(ds).__name__}")
    kind = ds.attrs.get(KIND_ATTR)
    if kind is None:
        raise SchemaError(f"attrs[{KIND_ATTR!r}]: expected a system kind such as {registry.available()}, got nothing")
    schema = registry.get(kind).schema
    problems: list[str] = []
    check_seed(ds.attrs.get(SEED_ATTR), problems)
    step = ds.attrs.get(STEP_ATTR, 0)
    if not isinstance(step, (int, np.integer)) or step < 0:
        problems.append(f"attrs[{STEP_ATTR!r}]: expected a non-negative integer, got {step!r}")
    _check_members(ds, schema, problems)
    for dim, rule in schema["site_dims"].items():
        _check_size(dim, ds.sizes.get(dim), rule, problems)
    for name, spec in schema["parameters"].items():
        _check_parameter(ds, name, spec, problems)
    sweeps = parameter_dims(ds, schema)
    for name, spec in schema["variables"].items():
        _check_variable(ds, name, spec, variable_dims(name, schema, sweeps), problems)
    for name, spec in schema.get("constants", {}).items():
        _check_constant(ds, name, spec, sweeps, problems)
    if problems:
        raise SchemaError(problems, kind=kind)
    return ds


def _check_members(ds: xr.Dataset, schema: dict, problems: list[str]) -> None:
    dim = schema["member_dim"]
    if dim not in ds.coords:
        problems.append(f"{dim}: expected an integer coordinate of member labels, got none")
        return
    labels = ds[dim].values
    if labels.dtype.kind not in "iu" or labels.size == 0 or np.any(labels < 0) or len(np.unique(labels)) != labels.size:
        problems.append(f"{dim}: expected distinct non-negative integer labels, got {labels.dtype} {labels[:8].tolist()}")


def _check_parameter(ds: xr.Dataset, name: str, spec: dict, problems: list[str]) -> None:
    if name not in ds.coords and not spec.get("required", True) and spec.get("default") is None:
        return
    if name not in ds.coords:
        problems.append(f"{name}: expected a coordinate in {spec['units']!r}, got none")
        return
    da = ds[name]
    if da.ndim > 1 or (da.ndim == 1 and da.dims != (name,)):
        problems.append(f"{name}: expected a scalar or 1-D coordinate along ({name!r},), got dims {da.dims}")
        return
    if "units" not in da.attrs and not hasattr(da.data, "units"):
        problems.append(f"{name}: expected a 'units' attribute compatible with {spec['units']!r}, got none")
        return
    values = magnitude_in(name, da, spec, problems)
    if values is not None:
        _check_range(name, np.atleast_1d(values), spec, problems)


def _check_constant(ds: xr.Dataset, name: str, spec: dict, sweeps: list[str], problems: list[str]) -> None:
    if name not in ds.coords:
        if spec.get("required", True):
            problems.append(f"{name}: expected a constant coordinate with dims (*sweeps, {', '.join(spec['dims'])}), got none")
        return
    da = ds[name]
    own = list(da.dims[len(da.dims) - len(spec["dims"]):]) if da.ndim >= len(spec["dims"]) else []
    lead = list(da.dims[: da.ndim - len(own)])
    if own != spec["dims"] or [d for d in sweeps if d in lead] != lead:
        problems.append(f"{name}: expected dims (<sweep dims among {sweeps}>, {', '.join(spec['dims'])}), got {da.dims}")
    if "units" in spec:
        if "units" not in da.attrs:
            problems.append(f"{name}: expected a 'units' attribute compatible with {spec['units']!r}, got none")
        else:
            magnitude_in(name, da, spec, problems)
    if da.dtype.kind not in "fiu" or not np.all(np.isfinite(da.values)):
        problems.append(f"{name}: expected finite real numbers, got dtype {da.dtype}")


def _check_variable(ds: xr.Dataset, name: str, spec: dict, dims: list[str], problems: list[str]) -> None:
    if name not in ds.data_vars:
        problems.append(f"{name}: expected a data variable with dims {tuple(dims)}, got none")
        return
    da = ds[name]
    if list(da.dims) != dims:
        problems.append(f"{name}: expected dims {tuple(dims)}, got {da.dims}")
    if da.dtype != np.dtype(spec["dtype"]):
        problems.append(f"{name}: expected dtype {spec['dtype']}, got {da.dtype}")
    allowed = spec.get("allowed_values")
    if allowed is not None and da.dtype.kind in "iub":
        bad = ~np.isin(da.values, allowed)
        if bad.any():
            found = np.unique(da.values[bad])[:5].tolist()
            problems.append(f"{name}: expected values in {allowed}, got {int(bad.sum())} other value(s) such as {found}")


def parameter_arrays(ds: xr.Dataset, kind: str) -> dict[str, np.ndarray]:
    """Every parameter as float64 magnitudes in canonical units, broadcast to the ensemble shape."""
    schema = registry.get(kind).schema
    dims = ensemble_dims(ds, schema)
    shape = tuple(ds.sizes[d] for d in dims)
    problems: list[str] = []
    out = {}
    for name, spec in schema["parameters"].items():
        if name not in ds.coords:
            continue
        values = magnitude_in(name, ds[name], spec, problems)
        if values is not None:
            index = tuple(slice(None) if d == name else np.newaxis for d in dims) if values.ndim else ()
            out[name] = np.broadcast_to(values[index] if values.ndim else values, shape).copy()
    if problems:
        raise SchemaError(problems, kind=kind)
    return out


def constant_arrays(ds: xr.Dataset, kind: str) -> dict[str, np.ndarray]:
    """Every constant in canonical units, shaped (*ensemble dims or 1 where it does not vary, *own dims)."""
    schema = registry.get(kind).schema
    dims = ensemble_dims(ds, schema)
    out, problems = {}, []
    for name, spec in schema.get("constants", {}).items():
        if name not in ds.coords:
            continue
        da = ds[name]
        lead = [d for d in dims if d in da.dims]
        own = [d for d in da.dims if d not in dims]
        da = da.transpose(*lead, *own)
        values = magnitude_in(name, da, spec, problems) if "units" in spec else np.asarray(da.values, dtype=np.float64)
        if values is not None:
            shape = [ds.sizes[d] if d in lead else 1 for d in dims] + [da.sizes[d] for d in own]
            out[name] = values.reshape(shape)
    if problems:
        raise SchemaError(problems, kind=kind)
    return out
