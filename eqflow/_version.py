"""eqflow's version, from the installed metadata (no other part of eqflow is imported)."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eqflow")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
