"""Data model: units at the edges, schema validation, and the errors users see."""
import re

import numpy as np
import pytest
import xarray as xr

import eqflow as eq
from eqflow.systems import ising


def test_create_shape_dtype_units_attrs():
    ds = eq.create("ising", size=16, temperature=[1.8, 2.269, 3.0], members=4, seed=1)
    assert ds.spin.dims == ("member", "temperature", "y", "x")
    assert ds.spin.dtype == np.int8 and set(np.unique(ds.spin.values)) == {-1, 1}
    assert ds.temperature.attrs["units"] == "K" and ds.coupling.attrs["units"] == "1.380649e-23 J"  # k_B * K
    assert ds.attrs == {"Conventions": "CF-1.11", "eqflow_kind": "ising", "eqflow_seed": 1, "eqflow_step": 0}
    assert ds.spin.isel(member=0, temperature=0).values.mean() != ds.spin.isel(member=1, temperature=0).values.mean()


def test_module_create_and_registry_create_agree():
    a = eq.create("ising", size=8, temperature=2.0, members=2, seed=7)
    b = eq.systems.ising.create(size=8, temperature=2.0, members=2, seed=7)
    xr.testing.assert_identical(a, b)
    assert "temperature" not in a.spin.dims  # a scalar parameter is a scalar coordinate


def test_units_are_converted_once_to_canonical():
    k_b_mev = float(eq.ureg.Quantity(1, "k_B * K").to("meV").magnitude)
    ds = eq.create("ising", size=4, temperature=["0.2 meV", eq.ureg.Quantity(300, "K")],
                   coupling=eq.ureg.Quantity(2, "meV"), members=1, seed=0)
    np.testing.assert_allclose(ds.temperature.values, [0.2 / k_b_mev, 300.0])
    np.testing.assert_allclose(ds.coupling.values, 2 / k_b_mev)
    celsius = eq.create("ising", size=4, temperature=xr.DataArray(26.85, attrs={"units": "degC"}), members=1, seed=0)
    np.testing.assert_allclose(celsius.temperature.values, 300.0)
    q = ds.pint.quantify()
    assert str(q.temperature.data.units) == "kelvin"


def test_incompatible_units_name_variable_and_both_units():
    with pytest.raises(eq.SchemaError) as err:
        eq.create("ising", size=4, temperature="3 m", members=1)
    message = str(err.value)
    assert "temperature" in message and "'K'" in message and "meter" in message


def test_unreadable_quantity_is_a_schema_error():
    with pytest.raises(eq.SchemaError, match=r"temperature: expected a number or a quantity in 'K', got 'hot'"):
        eq.create("ising", size=4, temperature="hot", members=1)


def test_every_bad_input_reported_at_once():
    with pytest.raises(eq.SchemaError) as err:
        eq.create("ising", size=-4, temperature=[-1.0, 2.0], members=0, seed=1)
    problems = err.value.problems
    assert any("members" in p and "positive integer" in p and "0" in p for p in problems)
    assert any("'y'" in p and "-4" in p for p in problems)
    assert any("temperature" in p and "> 0" in p and "-1.0" in p for p in problems)


@pytest.mark.parametrize("size", [3, 0, 2.5, True])
def test_bad_sizes(size):
    with pytest.raises(eq.SchemaError, match="size of 'y'"):
        eq.create("ising", size=size, temperature=2.0)


def test_unknown_kind_and_parameter():
    with pytest.raises(eq.SchemaError, match=r"kind: expected one of .*'ising'.*got 'potts'"):
        eq.create("potts", size=4)
    with pytest.raises(TypeError, match="magnetic_field"):
        eq.create("ising", size=4, magnetic_field=1.0)


def test_validate_names_every_bad_variable():
    ds = eq.create("ising", size=4, temperature=[1.5, 3.0], members=2, seed=0)
    bad = ds.copy(deep=True)
    bad["spin"][0, 0, 0, 0] = 3
    bad = bad.assign_coords(temperature=("temperature", [1.5, -2.0], {"units": "K"}))
    with pytest.raises(eq.SchemaError) as err:
        eq.validate(bad)
    text = str(err.value)
    assert "spin: expected values in [-1, 1], got 1 other value(s) such as [3]" in text
    assert "temperature: expected values > 0 K, got [1.5, -2.0] K" in text


def test_validate_dims_dtype_units_attrs():
    ds = eq.create("ising", size=4, temperature=2.0, members=2, seed=0)
    cases = {
        "spin: expected dtype int8, got float64": ds.assign(spin=ds.spin.astype(float)),
        "spin: expected dims ('member', 'y', 'x'), got ('y', 'x', 'member')":
            ds.assign(spin=ds.spin.transpose("y", "x", "member")),
        "coupling: expected a 'units' attribute": ds.assign_coords(coupling=((), 1.0)),
        "coupling: expected units compatible with 'k_B * K', got 'second'":
            ds.assign_coords(coupling=((), 1.0, {"units": "s"})),
        "attrs['eqflow_kind']": ds.drop_attrs(),
        "seed: expected an integer": ds.assign_attrs(eqflow_seed=-1),
        "member: expected distinct non-negative integer labels": ds.assign_coords(member=[1, 1]),
    }
    for expected, bad in cases.items():
        with pytest.raises(eq.SchemaError, match=re.escape(expected)):
            eq.validate(bad)
    with pytest.raises(eq.SchemaError, match="expected an xarray.Dataset, got DataArray"):
        eq.validate(ds.spin)


def test_schema_json_is_plain_and_complete():
    import json

    from eqflow.schema import schema_dir

    schema = json.loads((schema_dir() / "ising.json").read_text())
    assert set(schema["operators"]) == set(ising.SYSTEM.operators)
    assert set(schema["observables"]) == set(ising.SYSTEM.observables)
    for spec in schema["parameters"].values():
        eq.ureg.Unit(spec["units"])  # every unit parses with pint


def test_accessor():
    ds = eq.create("ising", size=4, temperature=2.0, members=1, seed=0)
    assert ds.eqflow.kind == "ising" and ds.eqflow.validate() is ds
    assert ds.eqflow.system is ising.SYSTEM
