"""Tests that ship with eqflow: the conformance suite every system must pass, and the template system.

- :func:`check_system` (:mod:`.conformance`): one call a plug-in's tests make;
- :mod:`.toy`: the template system ``relax`` (registered when imported), every feature of the
  contract in about a hundred lines, with its schema ``relax.json``.
"""
from .conformance import Case, assert_same_history, cases, check_system, histories_differ

__all__ = ["Case", "assert_same_history", "cases", "check_system", "histories_differ"]
