"""The shared suite: every registered system x operator x backend x chunking.

The checks are eqflow.testing's conformance suite (what a plug-in's own tests call through
``check_system``), one test per kind, operator and backend here so that failures stay readable:
create passes the schema; the schema and the code declare the same keys; a run keeps dims,
dtypes and units; the same seed gives the same history whatever the chunking or the backend
(within the system's declared tolerance for floats); a resumed run equals an uninterrupted one.
An import error in a system fails here: nothing is skipped.
"""
import pytest

import eqflow as eq
from eqflow import registry
from eqflow.testing import cases
from eqflow.testing import conformance as suite

import toy  # noqa: F401  (registers the template system 'relax')

KINDS = registry.available()


def _params(per):
    return [pytest.param(c, id=c.id) for kind in KINDS for c in cases(kind, per=per)]


SYSTEM_CASES, CASES, BACKEND_CASES = _params("system"), _params("operator"), _params("backend")


def test_builtins_are_discovered_from_the_folder():
    from pathlib import Path

    folder = Path(eq.systems.__file__).parent
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}
    assert packages == set(registry.builtin()) and {"ising", "scf"} <= packages
    assert "relax" in KINDS  # registered at run time


@pytest.mark.parametrize("case", SYSTEM_CASES)
def test_schema_and_code_declare_the_same_keys(case):
    suite.check_contract(case.kind)


@pytest.mark.parametrize("case", SYSTEM_CASES)
def test_create_passes_schema_and_quantifies(case):
    suite.check_create(case.kind)


@pytest.mark.parametrize("case", BACKEND_CASES)
def test_run_keeps_dims_dtypes_units(case, tmp_path):
    suite.check_run(case.kind, case.operator, case.backend, tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_same_seed_same_history_across_chunks(case, tmp_path):
    suite.check_chunking(case.kind, case.operator, tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_numpy_and_torch_agree(case, tmp_path):
    """Integer histories are bit-identical; float histories agree within the system's tolerance
    (NumPy and torch call different LAPACK routines; the random draws themselves are identical)."""
    suite.check_backends_agree(case.kind, case.operator, tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_resume_equals_uninterrupted(case, tmp_path):
    suite.check_resume(case.kind, case.operator, tmp_path)


def _draws(param) -> bool:
    case = param.values[0]
    return bool(registry.get(case.kind).operators[case.operator].draws)


@pytest.mark.parametrize("case", [c for c in CASES if _draws(c)])
def test_different_seed_different_history(case, tmp_path):
    suite.check_seed(case.kind, case.operator, tmp_path)


def crash_after_marks(monkeypatch, n):
    """Make the run die (like a crash) after its n-th steps-done marker (the other test modules use it)."""
    from eqflow.store import root

    monkeypatch.setattr(root, "mark", suite.crashing(root.mark, n))
