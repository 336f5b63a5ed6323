"""What a store says about the run that wrote it, and the progress line on a terminal."""
from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from . import dataset
from ._version import __version__

log = logging.getLogger("eqflow")
PACKAGES = ("eqflow", "numpy", "xarray", "dask", "distributed", "zarr", "pint", "pint-xarray", "torch", "numba",
            "triton")
KERNEL_ATTR = "eqflow_kernel"  # the operator variant(s) that wrote the history, in order ("numba, reference")


def run_identity(system, contract, operator, plan, rules, options, schedule=None) -> dict:
    """The root attributes that identify a run: a resume must ask for the same values.

    contract : the kind's :class:`eqflow.System`; rules : the stop rules (:mod:`eqflow.stop`);
    schedule : inputs that change between segments (its ``text()``), or None.
    """
    return {"eqflow_kind": contract.kind, "eqflow_operator": operator,
            "eqflow_seed": int(system.attrs[dataset.SEED_ATTR]),
            "eqflow_record": json.dumps(plan.every, sort_keys=True),
            "eqflow_step_start": plan.first, "eqflow_step_end": plan.last, "eqflow_stop": rules_text(rules),
            "eqflow_options": json.dumps(options, sort_keys=True),
            "eqflow_schedule": schedule.text() if schedule is not None else None}


def provenance(system, contract, operator, plan, chunks, engine, segment, rules, options, kernel="reference",
               schedule=None) -> dict:
    """Root attributes of a new store: what ran, on what, from where, with which packages (the
    keys of :func:`run_identity` among them)."""
    identity = run_identity(system, contract, operator, plan, rules, options, schedule)
    return {
        KERNEL_ATTR: kernel,
        **{k: v for k, v in identity.items() if v is not None},
        "eqflow_operator_parameters": json.dumps(_parameter_summary(system, contract.schema)),
        "eqflow_attributes": json.dumps(dataset.attributes(system, contract.schema), sort_keys=True),
        "eqflow_segment": segment, "eqflow_chunks": json.dumps(chunks),
        "eqflow_backend": engine.name, "eqflow_device": engine.device or "cpu",
        "eqflow_parent": _parent_name(system.attrs.get("eqflow_parent", "")),
        "eqflow_parent_run": system.attrs.get("eqflow_parent_run", ""), "eqflow_run": uuid.uuid4().hex,
        "eqflow_system_digest": json.dumps(system_digest(system), sort_keys=True), "eqflow_started": now(),
        "eqflow_packages": json.dumps(versions()), "eqflow_version": versions()["eqflow"],
        "eqflow_python": sys.version.split()[0],
    }


def _parent_name(parent: str) -> str:
    """The parent store's last path component: a shared store names no local directories, nor a
    signed URL's token (its query string)."""
    from .location import short_name

    return short_name(str(parent)) if parent else ""


def system_digest(system) -> dict:
    """A short digest of every coordinate and state variable (dims, dtype, values): what a resume must match."""
    out = {}
    for name, var in {**system.coords, **system.data_vars}.items():
        h = hashlib.blake2b(digest_size=8)
        values = var.values
        h.update(json.dumps([list(var.dims), str(values.dtype), list(values.shape)]).encode())
        h.update(values.tobytes() if values.dtype.kind != "O" else repr(values.tolist()).encode())
        out[str(name)] = h.hexdigest()
    out["attrs"] = hashlib.blake2b(json.dumps({k: str(v) for k, v in sorted(system.attrs.items())
                                               if k not in ("eqflow_parent", "eqflow_parent_run")}).encode(),
                                   digest_size=8).hexdigest()
    return out


def digest_mismatch(stored: str | None, system) -> list[str]:
    """Names whose digest differs between a store's provenance and ``system`` (empty: the same system)."""
    if not stored:
        return ["the store records no system digest"]
    old, new = json.loads(stored), system_digest(system)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def rules_text(rules) -> str:
    """The stop rules as JSON (a resume must ask for the same ones): :func:`eqflow.stop.text`."""
    from .stop import text

    return text(rules)


def _parameter_summary(system, schema) -> dict:
    out = {}
    for name, spec in schema.parameters.items():
        if name in system.coords:
            values = np.atleast_1d(system[name].values).tolist()
            out[name] = {"units": system[name].attrs.get("units", spec.units), "values": values}
    return out


@cache
def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = __version__ if name == "eqflow" else version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Progress:
    """A progress bar (tqdm.auto: a text bar on a terminal, a widget in a Jupyter notebook) and, where
    no bar is shown by default (output to a pipe or a batch log), an INFO line on the ``eqflow``
    logger about every ``LOG_SECONDS`` and at the end; a DEBUG line per segment in every case.

    ``enabled``: True (a bar), False (neither bar nor periodic lines) or None: a bar where stderr is
    a terminal or in a notebook, else the periodic lines.

    It moves at every segment's end and, for tasks that run in this process (the threaded and
    synchronous schedulers), within a segment too: each task reports its steps through
    :func:`report_steps` about every ``REPORT_SECONDS``. Tasks on other processes or machines
    report nothing until their segment is written.
    """

    def __init__(self, done: int, total: int, enabled: bool | None, description: str = "eqflow",
                 key: str = "", chunks: int = 1):
        from tqdm.auto import tqdm

        self.last = self.shown = done
        self.chunks, self.partial, self.key = max(1, chunks), 0.0, key
        self.description, self.logs = description, enabled is None and not bar_by_default()
        enabled = bar_by_default() if enabled is None else bool(enabled)
        self.bar = tqdm(total=total, initial=done, unit="step", desc=description, disable=not enabled,
                        dynamic_ncols=True)
        self.logged = time.monotonic()
        self.lock = threading.Lock()
        if key and enabled:
            _LIVE[key] = self

    def within(self, steps: int) -> None:
        """``steps`` more steps done by one chunk's task: the bar moves by steps / chunks."""
        with self.lock:
            self.partial += steps / self.chunks
            self._show(self.last + int(self.partial))

    def update(self, done: int) -> None:
        with self.lock:
            self.last, self.partial = done, 0.0
            self._show(done)
        log.debug("segment done: step %d of %d", done, self.bar.total)
        if self.logs and (done >= self.bar.total or time.monotonic() - self.logged >= LOG_SECONDS):
            self.logged = time.monotonic()
            total = self.bar.total
            log.info("%s: step %d of %d (%.0f%%)", self.description, done, total, 100.0 * done / max(total, 1))

    def _show(self, position: int) -> None:
        position = min(position, self.bar.total)
        if position > self.shown:
            self.bar.update(position - self.shown)
            self.shown = position

    def close(self) -> None:
        _LIVE.pop(self.key, None)
        self.bar.close()


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), where tqdm.auto draws a widget."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # an IPython without a running shell
        return False
    return type(shell).__name__ == "ZMQInteractiveShell"


def bar_by_default() -> bool:
    """A progress bar unless asked otherwise: on a terminal (stderr) and in a notebook."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        terminal = False
    return terminal or in_notebook()


LOG_SECONDS = 30.0  # without a bar: an INFO line at most this often (and at the end)
REPORT_SECONDS = 0.5
_LIVE: dict[str, Progress] = {}  # the bars of runs in this process, by run token


def live_progress(key: str) -> Progress | None:
    """The bar a task of run ``key`` reports to, if that run shows one in this process."""
    return _LIVE.get(key) if key else None
