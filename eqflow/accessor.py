"""The ``ds.eqflow`` accessor: the plain functions, reachable from any eqflow Dataset.

Light on purpose: it imports only xarray, and the functions it calls when they are used, so it
can be registered as soon as xarray is imported (see ``eqflow/__init__.py``).
"""
from __future__ import annotations

import xarray as xr


@xr.register_dataset_accessor("eqflow")
class EqflowAccessor:
    """``ds.eqflow.validate()``, ``ds.eqflow.run(operator, ...)``, ``hist.eqflow.final_state()``."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def kind(self) -> str:
        from . import dataset

        return self._ds.attrs[dataset.KIND_ATTR]

    @property
    def system(self):
        from . import registry

        return registry.get(self.kind)

    def validate(self) -> xr.Dataset:
        from . import dataset

        return dataset.validate(self._ds)

    def run(self, operator: str, **kwargs) -> xr.Dataset:
        from .runner import run

        return run(self._ds, operator, **kwargs)

    def final_state(self) -> xr.Dataset:
        from . import results

        return results.final_state(self._ds)

    def final_values(self, variables=None) -> xr.Dataset:
        from . import results

        return results.final_values(self._ds, variables)
