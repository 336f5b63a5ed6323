"""Applications live beside the systems: no module under eqflow/systems imports the top-level
``eqflow`` package (its public API, ``import eqflow as eq``) or the generators built on it.

Imports of eqflow's own modules (``from ...dataset import ...``, ``from ... import random``)
are the core a system is written against and stay allowed. The two deprecated aliases of the
moved generator modules are the only exception, and they warn.
"""
import ast
import importlib
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "eqflow"
SYSTEMS = PACKAGE / "systems"
DEPRECATED_ALIASES = {SYSTEMS / "ising" / "flow.py", SYSTEMS / "ising" / "fidelity.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, package: str):
    """(imported module, imported name or None) of every import in ``source``, relative ones resolved
    against ``package`` (the package the module is in)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield from ((base, alias.name) for alias in node.names)


def _is_submodule(module: str, name: str) -> bool:
    folder = PACKAGE.parent.joinpath(*module.split("."))
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def _offences(path: Path, source: str | None = None) -> list[str]:
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for module, name in _imports(path.read_text() if source is None else source, package):
        if module == "eqflow" and (name is None or not _is_submodule(module, name)):
            found.append(f"imports the top-level package ({'import eqflow' if name is None else name})")
        target = module if name is None else f"{module}.{name}"
        if module.startswith("eqflow.generators") or target.startswith("eqflow.generators"):
            found.append(f"imports {target}")
    return found


@pytest.mark.parametrize("path", sorted(p for p in SYSTEMS.rglob("*.py") if p not in DEPRECATED_ALIASES),
                         ids=lambda p: str(p.relative_to(SYSTEMS)))
def test_no_system_module_imports_the_top_level_package(path):
    assert _offences(path) == []


def test_the_check_catches_the_forms_it_forbids():
    source = ("import eqflow as eq\nfrom eqflow import run\nfrom ... import create\n"
              "from ...generators import ising_flow\nfrom ... import random\nfrom ...dataset import validate\n")
    assert len(_offences(SYSTEMS / "ising" / "probe.py", source)) == 4


@pytest.mark.parametrize("old,new", [("flow", "ising_flow"), ("fidelity", "fidelity")])
def test_old_generator_paths_still_import_with_a_warning(old, new):
    sys.modules.pop(f"eqflow.systems.ising.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"moved to eqflow.generators.{new}"):
        alias = importlib.import_module(f"eqflow.systems.ising.{old}")
    moved = importlib.import_module(f"eqflow.generators.{new}")
    public = [n for n in vars(moved) if not n.startswith("_") and callable(getattr(moved, n))]
    assert public and all(getattr(alias, n) is getattr(moved, n) for n in public)
    from eqflow.systems import ising

    assert getattr(ising, old) is alias
