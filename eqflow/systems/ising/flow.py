"""Deprecated: moved to :mod:`eqflow.generators.ising_flow` (this alias goes in the next release)."""
import warnings

from ...generators import ising_flow as _moved
from ...generators.ising_flow import *  # noqa: F401,F403

warnings.warn("eqflow.systems.ising.flow moved to eqflow.generators.ising_flow; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):  # the private names too, as before the move
    return getattr(_moved, name)
