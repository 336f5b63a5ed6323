"""Units at the edges: convert inputs once to the schema's canonical units with pint."""
from __future__ import annotations

from typing import Any

import numpy as np
import pint
import pint_xarray  # noqa: F401  (registers the .pint accessor)
import xarray as xr

from .cf import CANONICAL, canonical_units

ureg = pint_xarray.unit_registry


def _read_udunits_spelling(text: str) -> str:
    """pint preprocessor: the UDUNITS-2 spelling eqflow writes for a unit pint knows by name
    (``1.380649e-23 J`` for ``k_B * K``, ``4.3597447222071e-18 J`` for ``hartree``; see
    :mod:`eqflow.cf`) is read as exactly that unit, so no value is ever rescaled by a rounding."""
    return CANONICAL.get(text.strip(), text)


if _read_udunits_spelling not in ureg.preprocessors:
    ureg.preprocessors.append(_read_udunits_spelling)


def magnitude_in(name: str, value: Any, units: str, problems: list[str], also_accepts=()) -> np.ndarray | None:
    """Return ``value`` as float64 magnitudes in ``units``; append a problem if impossible.

    ``value`` may be a bare number (taken in the canonical unit), a string such as
    ``"2 meV"``, a pint Quantity, or a DataArray with a ``units`` attribute or pint data.
    Units listed in ``also_accepts`` are read as the canonical unit (e.g. an energy k_B T
    read as a temperature T). A DataArray whose ``units`` attribute is already the canonical
    unit (or its UDUNITS-2 spelling, :mod:`eqflow.cf`) is taken as it is, without pint.
    """
    canonical = units
    flags = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, (bool, np.bool_)) for v in flags):
        problems.append(f"{name}: expected a number or a quantity in {canonical!r}, got {value!r}")
        return None
    if (isinstance(value, xr.DataArray) and canonical_units(value.attrs.get("units", "")) == canonical
            and not hasattr(value.data, "units")):
        return np.asarray(value.values, dtype=np.float64)
    try:
        quantity = _as_quantity(value)
    except ValueError as exc:
        problems.append(f"{name}: expected a number or a quantity in {canonical!r}, got {exc}")
        return None
    if quantity is None:
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{name}: expected a number or a quantity in {canonical!r}, got {value!r}")
            return None
    for target in (canonical, *also_accepts):
        try:
            return np.asarray(quantity.to(target).magnitude, dtype=np.float64)
        except pint.DimensionalityError:
            continue
    accepted = [canonical, *also_accepts]
    problems.append(
        f"{name}: expected units compatible with {' or '.join(map(repr, accepted))}, "
        f"got {str(quantity.units)!r} (dimensionality {quantity.dimensionality})"
    )
    return None


def _as_quantity(value: Any) -> pint.Quantity | None:
    if isinstance(value, xr.DataArray):
        if isinstance(value.data, pint.Quantity):
            return ureg.Quantity(value.data.magnitude, str(value.data.units))
        units = value.attrs.get("units")
        return None if units is None else ureg.Quantity(np.asarray(value.values), units)
    if isinstance(value, pint.Quantity):
        return ureg.Quantity(value.magnitude, str(value.units))
    if isinstance(value, str):
        try:
            return ureg.Quantity(value)
        except Exception as exc:  # pint raises several types for unparsable text
            raise ValueError(f"{value!r}, which pint cannot read ({exc})") from None
    return None
