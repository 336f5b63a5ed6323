"""Deprecated: moved to :mod:`eqflow.generators.fidelity` (this alias goes in the next release)."""
import warnings

from ...generators import fidelity as _moved
from ...generators.fidelity import *  # noqa: F401,F403

warnings.warn("eqflow.systems.ising.fidelity moved to eqflow.generators.fidelity; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name):  # the private names too, as before the move
    return getattr(_moved, name)
