"""The ``ds.eqflow`` accessor: the plain functions, reachable from any eqflow Dataset."""
from __future__ import annotations

import xarray as xr

from . import dataset, registry, results
from .runner import run
from .system import System


@xr.register_dataset_accessor("eqflow")
class EqflowAccessor:
    """``ds.eqflow.validate()``, ``ds.eqflow.run(operator, ...)``, ``hist.eqflow.final_state()``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def kind(self) -> str:
        return self._ds.attrs[dataset.KIND_ATTR]

    @property
    def system(self) -> System:
        return registry.get(self.kind)

    def validate(self) -> xr.Dataset:
        return dataset.validate(self._ds)

    def run(self, operator: str, **kwargs) -> xr.Dataset:
        return run(self._ds, operator, **kwargs)

    def final_state(self) -> xr.Dataset:
        return results.final_state(self._ds)

    def final_values(self, variables=None) -> xr.Dataset:
        return results.final_values(self._ds, variables)
