"""Writes ``docs/api/systems/<kind>.rst`` for every built-in system before Sphinx reads the sources.

One page per system: its package docstring, ``create``, and each public module (operators,
observables, theory, ...) with its members. The set of systems comes from the folder, as
``eq.available()`` finds them, so a new system gets its API page without an edit here.
"""
from __future__ import annotations

import pkgutil
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
OUT = HERE / "api" / "systems"
# modules left out of the API pages: deprecated aliases (they warn on import) and compiled kernels'
# internals (reached through the operators' ``kernels``)
SKIP = {"ising": {"flow", "fidelity", "gpu", "kernels", "variants"}, "dense_hopfield": {"kernels", "variants"}}
FIRST = ("operators", "observables", "theory")


def kinds() -> list[str]:
    import eqflow.systems

    return sorted(m.name for m in pkgutil.iter_modules(eqflow.systems.__path__) if m.ispkg)


def modules(kind: str) -> list[str]:
    import importlib

    package = importlib.import_module(f"eqflow.systems.{kind}")
    names = [m.name for m in pkgutil.iter_modules(package.__path__)
             if not m.name.startswith("_") and m.name not in SKIP.get(kind, ())]
    return [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)


def page(kind: str) -> str:
    title = f"eqflow.systems.{kind}"
    lines = [title, "=" * len(title), "",
             f"The user guide's page: :doc:`/systems/{kind}`. Parameters: the schema tables there.", "",
             f".. automodule:: eqflow.systems.{kind}", "   :no-members:", "",
             f".. autofunction:: eqflow.systems.{kind}.create", ""]
    for name in modules(kind):
        heading = f"{name}"
        lines += [heading, "-" * len(heading), "", f".. automodule:: eqflow.systems.{kind}.{name}",
                  "   :members:", ""]
    return "\n".join(lines)


def write() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index = ["Systems", "=======", "", "One page per built-in system (generated from the package folder).", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    for kind in kinds():
        text = page(kind)
        path = OUT / f"{kind}.rst"
        if not path.exists() or path.read_text() != text:  # unchanged pages keep Sphinx's cache
            path.write_text(text)
        index.append(f"   {kind}")
    text = "\n".join(index) + "\n"
    path = OUT / "index.rst"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


