"""Metadata a collaborator's tools understand: CF attributes, UDUNITS-2 units, fill values, ArviZ.

Every system and history carries ``Conventions``, a ``long_name`` on every variable and
coordinate and units that UDUNITS-2 parses (checked with cf-units, which bundles the
UDUNITS-2 library) while eqflow's pint registry reads them back as the schema's unit. A
stopped member's integer records are masked by xarray through a declared ``_FillValue``.
"""
import keyword

import numpy as np
import pytest
import xarray as xr
import zarr

import eqflow as eq
from eqflow import cf, registry
from eqflow.testing.conformance import _create

cf_units = pytest.importorskip("cf_units")

GENERIC = {"dim", "dims", "dimension", "index", "axis", "class"}


def _check_cf(ds: xr.Dataset, schema, where: str) -> None:
    assert ds.attrs.get("Conventions") == cf.CONVENTIONS, where
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), f"{where}: {name} has no long_name"
        units = var.attrs.get("units")
        if units is None:
            continue
        cf_units.Unit(units)  # raises ValueError for a unit UDUNITS-2 cannot parse
        canonical = _canonical(schema, str(name))
        if canonical is not None:
            assert eq.ureg.parse_units(units) == eq.ureg.parse_units(canonical), f"{where}: {name} {units!r}"
    for dim in ds.dims:
        assert not keyword.iskeyword(dim) and dim not in GENERIC, f"{where}: dim {dim!r}"


def _canonical(schema, name: str):
    for section in (schema.parameters, schema.constants, schema.observables):
        if name in section and getattr(section[name], "units", None):
            return section[name].units
    if name in schema.variables:
        return schema.variables[name].units
    return None


@pytest.mark.parametrize("kind", sorted(k for k in registry.available() if k != "relax"))
def test_every_system_carries_cf_metadata(kind):
    system = registry.get(kind)
    _check_cf(_create(system), system.schema, kind)


def test_schema_dims_are_no_keywords_or_generic_words():
    for kind in registry.available():
        doc = registry.get(kind).schema.document
        names = set(doc.get("site_dims", {}))
        for section in ("variables", "observables", "constants"):
            for spec in doc.get(section, {}).values():
                names |= set(spec.get("dims", ()))
        bad = sorted(n for n in names if keyword.iskeyword(n) or n in GENERIC)
        assert not bad, f"{kind}: dims {bad}"


def test_the_units_that_were_not_udunits_are_read_by_both_parsers():
    for canonical, written in cf.UDUNITS.items():
        assert eq.ureg.parse_units(written) == eq.ureg.parse_units(canonical)
        with pytest.raises(ValueError):
            cf_units.Unit(canonical)  # why the written spelling exists
    joule = cf_units.Unit("J")
    assert cf_units.Unit(cf.UDUNITS["k_B * K"]).convert(1.0, joule) == pytest.approx(1.380649e-23, rel=1e-15)
    assert cf_units.Unit(cf.UDUNITS["hartree"]).convert(1.0, joule) == pytest.approx(
        eq.ureg.Quantity(1.0, "hartree").to("J").magnitude, rel=1e-12)


def test_a_history_carries_the_same_metadata_and_quantifies(tmp_path):
    system = eq.create("ising", size=4, temperature=[2.0, 3.0], members=2, seed=1)
    hist = eq.run(system, "metropolis", steps=6, store=tmp_path / "h.zarr", record={"energy": 1, "spin": 3},
                  progress=False)
    schema = registry.get("ising").schema
    _check_cf(hist, schema, "history")
    plain = xr.open_zarr(tmp_path / "h.zarr")
    _check_cf(plain, schema, "xr.open_zarr")
    quantity = hist.pint.quantify().energy.data
    assert str(quantity.units) == "boltzmann_constant * kelvin"
    # the written unit is read as exactly the canonical one: a parameter is never rescaled
    again = eq.validate(eq.final_state(hist))
    assert again.coupling.values.tobytes() == system.coupling.values.tobytes()


def test_scf_energies_are_written_in_a_udunits_spelling(tmp_path):
    system = eq.create("scf", problem="hubbard", sites=4, members=1)
    hist = eq.run(system, "damping", steps=3, store=tmp_path / "h.zarr", progress=False)
    _check_cf(hist, registry.get("scf").schema, "scf history")
    assert hist.energy.attrs["units"] == "4.3597447222071e-18 J"
    assert hist.pint.quantify().energy.data.units == eq.ureg.hartree


def test_a_stopped_members_integer_records_are_masked(tmp_path):
    system = eq.create("ising", size=4, temperature=0.2, members=6, seed=3)
    hist = eq.run(system, "metropolis", steps=40, store=tmp_path / "h.zarr", record={"energy": 1, "spin": 1},
                  stop=eq.stop.converged("energy", 1e-12), progress=False)
    stopped = hist.stopped_at.values
    assert (stopped < 40).any(), "expected a member to stop before the last step"
    raw = zarr.open_array(tmp_path / "h.zarr", path="spin", mode="r")
    fill = np.iinfo(np.int8).min
    assert raw.attrs["_FillValue"] == fill and raw.fill_value == fill
    spin = xr.open_zarr(tmp_path / "h.zarr").spin.load()  # plain xarray: masked
    values = raw[: spin.sizes["step"]]
    for m, last in enumerate(stopped):
        after = spin.step.values > last
        assert np.isnan(spin.isel(member=m).values[after]).all()
        assert (values[after, m] == fill).all()
        assert set(np.unique(spin.isel(member=m).values[~after])) <= {-1.0, 1.0}
        assert np.isnan(hist.energy.isel(member=m).values[after]).all()  # floats as before


def test_to_inference_data_chains_are_members(tmp_path):
    az = pytest.importorskip("arviz")
    system = eq.create("ising", size=4, temperature=[2.0, 3.5], members=4, seed=5)
    hist = eq.run(system, "metropolis", steps=60, store=tmp_path / "h.zarr", progress=False)
    data = eq.to_inference_data(hist, "energy")
    posterior = data.posterior
    assert posterior.sizes["chain"] == 4 and posterior.sizes["draw"] == 61
    assert "temperature" in posterior.dims
    np.testing.assert_array_equal(posterior.energy.isel(chain=2, temperature=1).values,
                                  hist.energy.isel(member=2, temperature=1).values)
    ours = az.rhat(data).energy.values
    for i in range(2):  # ArviZ's own R-hat of the plain (chain, draw) array of each point
        plain = hist.energy.isel(temperature=i).transpose("member", "step").values
        assert ours[i] == pytest.approx(float(az.rhat(az.convert_to_dataset(plain)).x), rel=1e-12)
    with pytest.raises(ValueError, match="var: expected a variable recorded along 'step'"):
        eq.to_inference_data(hist, "stop_reason")
