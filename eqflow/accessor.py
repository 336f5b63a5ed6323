"""The ``ds.eqflow`` accessor: the plain functions, reachable from any eqflow Dataset."""
from __future__ import annotations

import xarray as xr

from . import registry, results, schema
from .runner import run


@xr.register_dataset_accessor("eqflow")
class EqflowAccessor:
    """``ds.eqflow.validate()``, ``ds.eqflow.run(operator, ...)``, ``hist.eqflow.final_state()``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def kind(self) -> str:
        return self._ds.attrs[schema.KIND_ATTR]

    @property
    def system(self) -> registry.System:
        return registry.get(self.kind)

    def validate(self) -> xr.Dataset:
        return schema.validate(self._ds)

    def run(self, operator: str, **kwargs) -> xr.Dataset:
        return run(self._ds, operator, **kwargs)

    def final_state(self) -> xr.Dataset:
        return results.final_state(self._ds)
