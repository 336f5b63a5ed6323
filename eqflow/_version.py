"""eqflow's version, from the installed metadata (no other part of eqflow is imported).

The distribution is ``eqflow-ensembles`` (``pip install eqflow-ensembles``; the name ``eqflow`` on
the package index is an unrelated project); the import name is ``eqflow``.
"""
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "eqflow-ensembles"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
