"""CF metadata on the way out: ``Conventions``, ``long_name`` and units that UDUNITS-2 parses.

Systems and histories follow the CF conventions (https://cfconventions.org) as far as they
apply: the root carries ``Conventions = "CF-1.11"``, every variable and coordinate a
``long_name`` (from its schema's ``long_name`` or ``description``) and ``units`` in a spelling
that UDUNITS-2 (cf-units, cfunits, ncview, CDO, Panoply) parses. Two of eqflow's canonical
units are not UDUNITS units, so they are written as the SI energy they stand for:

================  =============================  =====================================
canonical (pint)  written (UDUNITS-2)            meaning
================  =============================  =====================================
``k_B * K``       ``1.380649e-23 J``             the energy k_B x 1 K (exact, SI 2019)
``hartree``       ``4.3597447222071e-18 J``      the Hartree energy E_h (CODATA 2018)
``hartree**0.5``  ``(4.3597447222071e-18 J)^0.5``  its square root
================  =============================  =====================================

eqflow's pint registry reads each written spelling back as exactly its canonical unit (a pint
preprocessor, :mod:`eqflow.units`), so ``hist.pint.quantify()`` gives ``k_B * K`` and
``hartree`` quantities and values are never rescaled. No eqflow quantity has a CF standard
name (they are not geophysical), so none is written.
"""
from __future__ import annotations

from typing import Mapping

CONVENTIONS = "CF-1.11"

UDUNITS = {"k_B * K": "1.380649e-23 J", "hartree": "4.3597447222071e-18 J",
           "hartree**0.5": "(4.3597447222071e-18 J)^0.5"}
CANONICAL = {written: canonical for canonical, written in UDUNITS.items()}

GENERIC_NAMES = {  # long names of coordinates that every history or system has
    "member": "ensemble member (an independent replica)",
    "step": "steps done",
    "slot": "checkpoint slot",
}


def written_units(units: str) -> str:
    """The UDUNITS-2 spelling of a canonical unit (the unit itself where UDUNITS reads it)."""
    return UDUNITS.get(str(units).strip(), units)


def canonical_units(units: str) -> str:
    """The canonical (pint) unit of a written spelling: the inverse of :func:`written_units`."""
    return CANONICAL.get(str(units).strip(), units)


def long_name(description: str) -> str:
    """A long name from a schema description: its first clause (up to the first "; ")."""
    return description.split("; ", 1)[0].strip()


def complete(name: str, attrs: Mapping, names: Mapping[str, str] | None = None,
             standard_names: Mapping[str, str] | None = None) -> dict:
    """``attrs`` with units in their UDUNITS spelling, a ``long_name`` (from ``names``, the
    ``description`` attribute, or the generic names of ``member``/``step``) where it has none,
    and the schema's ``standard_name`` where it declares one."""
    out = dict(attrs)
    if (standard_names or {}).get(name):
        out.setdefault("standard_name", standard_names[name])
    if "units" in out and isinstance(out["units"], str):
        out["units"] = written_units(out["units"])
    if not out.get("long_name"):
        text = (names or {}).get(name) or out.get("description") or GENERIC_NAMES.get(name)
        if text is None and name.startswith("step_") and name[5:].isdigit():
            text = f"steps done (records every {name[5:]} steps)"
        if text:
            out["long_name"] = long_name(str(text))
    return out


def schema_standard_names(document: Mapping) -> dict[str, str]:
    """{name: CF standard name} of what a kind's schema declares one for (none of the built-in
    kinds does: the CF table names geophysical quantities, not these)."""
    out: dict[str, str] = {}
    sections = [document.get(s, {}) for s in ("site_dims", "parameters", "constants", "variables", "observables")]
    for operator in document.get("operators", {}).values():
        sections += [operator.get("diagnostics", {}), operator.get("state", {})]
    for section in sections:
        for key, spec in section.items():
            if spec.get("standard_name"):
                out.setdefault(key, spec["standard_name"])
    return out


def schema_long_names(document: Mapping) -> dict[str, str]:
    """{name: long name} of everything a kind's schema document describes: site dims, parameters,
    constants, variables, observables, and its operators' state and diagnostics (an explicit
    ``long_name`` wins over the ``description``)."""
    out: dict[str, str] = {}

    def take(section: Mapping) -> None:
        for key, spec in section.items():
            text = spec.get("long_name") or spec.get("description")
            if text and key not in out:
                out[key] = long_name(text)

    for section in ("site_dims", "parameters", "constants", "variables", "observables"):
        take(document.get(section, {}))
    for operator in document.get("operators", {}).values():
        take(operator.get("diagnostics", {}))
        take(operator.get("state", {}))
    return out
