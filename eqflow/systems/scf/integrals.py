"""A molecule's two-electron integrals by recipe: how to rebuild them, not the integrals themselves.

A molecule made from a PySCF ``Mole`` records, in the system attribute ``integrals``, the
Mole as PySCF's own JSON (``Mole.dumps``: atoms, coordinates, basis, charge, spin), whether
and on which auxiliary basis its integrals are density-fitted, the number of orbitals and a
checksum of the integrals. The (ij|kl) (up to ~1 GB for 100 basis functions) are then neither
held in the Dataset nor written into every history: each process rebuilds them once from the
recipe (:func:`recipe_integrals`, kept for the last ``KEPT`` recipes) and checks the checksum,
so a history stays self-describing and a different PySCF cannot silently change a run.
PySCF is needed wherever such a system runs (``pip install eqflow-ensembles[chem]``).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict

import numpy as np

FORMAT = "pyscf-mole"
KEPT = 2  # recipes whose integrals a process keeps (each up to n^4 / 8 float64)
CHECKSUM_RTOL = 1e-9  # a rebuilt checksum may differ by this much (BLAS and compiler rounding), relative
_kept: OrderedDict = OrderedDict()
_lock = threading.Lock()


def checksum(array) -> list:
    """[sum a_i, sum a_i^2, sum of every 7th a_i] over the flattened array: three numbers that another
    basis, geometry or integral code moves (cheap: two passes over the integrals)."""
    flat = np.asarray(array, dtype=np.float64).ravel()
    return [float(np.sum(flat)), float(np.dot(flat, flat)), float(np.sum(flat[::7]))]


def make_recipe(mol, density_fit: bool, auxbasis=None) -> tuple[str, dict]:
    """(the recipe as JSON text, its integrals {"packed_eri" | "cderi": array}) for a built PySCF Mole."""
    from pyscf import df

    aux = None
    if density_fit:
        aux = auxbasis if auxbasis is not None else df.make_auxbasis(mol)
        if not isinstance(aux, (str, dict)):
            raise TypeError(f"auxbasis: expected a basis name or dict, got {type(aux).__name__}")
    recipe = {"format": FORMAT, "mole": mol.dumps(), "density_fit": bool(density_fit), "auxbasis": aux,
              "orbitals": int(mol.nao)}
    arrays = _build(recipe)
    recipe["checksum"] = checksum(next(iter(arrays.values())))
    text = json.dumps(recipe, sort_keys=True)
    _keep(text, arrays)
    return text, arrays


def recipe_integrals(text: str) -> dict:
    """The integrals a recipe names, built once per process (the last ``KEPT`` recipes are kept):
    ``{"packed_eri": (ij|kl) in PySCF's 8-fold packing}`` or ``{"cderi": B[P, i, j]}``."""
    with _lock:
        if text in _kept:
            _kept.move_to_end(text)
            return _kept[text]
    try:
        recipe = json.loads(text)
    except ValueError:
        raise ValueError(f"integrals: expected the JSON recipe of a molecule, got {text!r:.80}") from None
    if not isinstance(recipe, dict) or recipe.get("format") != FORMAT:
        raise ValueError(f"integrals: expected a recipe of format {FORMAT!r}, got {text!r:.80}")
    arrays = _build(recipe)
    found, recorded = checksum(next(iter(arrays.values()))), recipe["checksum"]
    if len(found) != len(recorded) or any(abs(f - r) > CHECKSUM_RTOL * max(abs(r), 1.0)
                                          for f, r in zip(found, recorded)):
        raise ValueError(f"integrals: the rebuilt integrals have checksum {found!r}, the recipe recorded "
                         f"{recorded!r} (another PySCF or basis data?); rebuild the system")
    _keep(text, arrays)
    return arrays


def _keep(text: str, arrays: dict) -> None:
    with _lock:
        _kept[text] = arrays
        _kept.move_to_end(text)
        while len(_kept) > KEPT:
            _kept.popitem(last=False)


def _build(recipe: dict) -> dict:
    try:
        from pyscf import df, gto, lib
    except ImportError:
        raise ImportError("integrals: this molecule's integrals are rebuilt from its PySCF Mole, which needs PySCF: "
                          "pip install eqflow-ensembles[chem]") from None
    mol = gto.loads(recipe["mole"])
    if mol.nao != recipe["orbitals"]:
        raise ValueError(f"integrals: the recipe's Mole has {mol.nao} orbitals, it recorded {recipe['orbitals']}")
    if recipe["density_fit"]:
        return {"cderi": lib.unpack_tril(df.incore.cholesky_eri(mol, auxbasis=recipe["auxbasis"]))}
    return {"packed_eri": mol.intor("int2e", aosym="s8")}
