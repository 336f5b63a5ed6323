"""Command line: ``eqflow run CONFIG.toml``, ``eqflow info STORE``, ``eqflow validate FILE``,
``eqflow report STORE``, ``eqflow verify STORE``.

A run file has a ``[system]`` table (``kind`` and that kind's create() arguments, or ``file`` = a
system saved with to_netcdf / to_zarr) and a ``[run]`` table (eq.run's arguments, or eq.anneal's
with a ``schedule``; ``scheduler`` names a dask cluster). Its format is published as the JSON
Schema ``schemas/run-file.schema.json``; ``eqflow validate`` makes every check of ``eqflow run``
short of running, and reports every problem of both tables at once.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import xarray as xr

from . import dataset, registry, results, runner
from .cf import canonical_units
from .errors import SchemaError, StoreError
from .inputs import check_run_inputs
from .provenance import LOG_SECONDS
from .schedule import anneal, check_schedule
from .store import STEPS_DONE, read_attrs

RUN_KEYS = {"operator", "steps", "store", "record", "chunks", "backend", "device", "segment", "torch_threads",
            "options", "stop", "storage_options", "schedule", "stage_steps", "equilibrium", "kernel", "scheduler"}
SYSTEM_FILE_KEYS = {"file", "storage_options"}  # [system] file = "system.nc" (or a Zarr system): nothing else
FLAG_WORDS = {"resume=True": "--resume", "overwrite=True": "--overwrite"}  # what a command line calls them
log = logging.getLogger("eqflow")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler, level = _Stderr(), log.level
    log.addHandler(handler)
    log.setLevel(_level(args.verbose - args.quiet))
    try:
        commands = {"run": _run, "info": _info, "validate": _validate, "report": _report, "verify": _verify}
        return commands[args.command](args)
    except (SchemaError, StoreError, OSError, tomllib.TOMLDecodeError) as exc:
        text = str(exc) if not isinstance(exc, OSError) or not exc.filename else \
            f"{exc.strerror or type(exc).__name__}: {str(exc.filename)!r}"
        for words, flag in FLAG_WORDS.items():  # the user typed a command line, not a Python call
            text = text.replace(words, flag)
        print(f"eqflow {args.command}: error: {text}", file=sys.stderr)
        return 1
    finally:  # main() called from Python (tests, notebooks) leaves the logger as it found it
        log.removeHandler(handler)
        log.setLevel(level)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines on stderr (-v: every segment, as DEBUG)")
    common.add_argument("-q", "--quiet", action="count", default=0, help="fewer log lines (-q: warnings only)")
    parser = argparse.ArgumentParser(prog="eqflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"eqflow {_version()}")
    parser.set_defaults(verbose=0, quiet=0)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", parents=[common], help="create a system from a TOML file and run it to a Zarr store")
    p_run.add_argument("config", type=Path, help="a TOML run file: [system] and [run] tables (the format is "
                                                 "published as schemas/run-file.schema.json)")
    p_run.add_argument("--store", help="override [run] store (a path or an fsspec URL)")
    p_run.add_argument("--storage-options", type=_json_table, help="override [run] storage_options (JSON)")
    p_run.add_argument("--scheduler", metavar="ADDRESS",
                       help="override [run] scheduler: a dask.distributed scheduler to run on (tcp://host:8786)")
    mode = p_run.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing store")
    mode.add_argument("--resume", action="store_true", help="continue an interrupted store")
    p_run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar (default: on a terminal; otherwise a log line about every "
                            f"{LOG_SECONDS:g} s, see -v/-q)")
    p_info = sub.add_parser("info", parents=[common], help="summarize a history store")
    p_rep = sub.add_parser("report", parents=[common], help="write a self-contained HTML report of a history store")
    p_rep.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    p_ver = sub.add_parser("verify", parents=[common],
                           help="check that every chunk of a history store is present and intact")
    for p in (p_info, p_rep, p_ver):
        p.add_argument("store", help="a local path or an fsspec URL (s3://bucket/run.zarr)")
        p.add_argument("--storage-options", type=_json_table, default=None,
                       help='fsspec options as JSON, e.g. \'{"anon": true}\' or an endpoint_url in client_kwargs')
    p_val = sub.add_parser("validate", parents=[common],
                           help="check a TOML run file (every check of `run`, short of running), a system file "
                                "(Zarr/netCDF) or a history store")
    p_val.add_argument("file", type=Path)
    return parser


class _Stderr(logging.StreamHandler):
    """A handler that writes to the ``sys.stderr`` of the moment (tests and notebooks replace it)."""

    _eqflow_cli = True

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s eqflow: %(message)s", "%H:%M:%S"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it
        pass


def _level(verbosity: int) -> int:
    """The ``eqflow`` logger's level: INFO by default (periodic progress lines where no bar is shown),
    DEBUG with -v, WARNING with -q, ERROR with -qq."""
    return {1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}.get(max(-2, min(1, verbosity)), logging.ERROR)


def _version() -> str:
    from . import __version__

    return __version__


def _json_table(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


RUN_FILE_SCHEMA = "run-file.schema.json"


def run_file_problems(config: dict) -> list[str]:
    """Where a run file breaks the published JSON Schema ``schemas/run-file.schema.json`` (the
    structure: tables, key names, value types); the values themselves are checked by eq.run."""
    import jsonschema

    from .schema import schema_dir

    with open(schema_dir() / RUN_FILE_SCHEMA, encoding="utf-8") as f:
        validator = jsonschema.Draft202012Validator(json.load(f))
    out = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = list(error.absolute_path)
        place = f"[{where[0]}]" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in where[1:]) \
            if where else "run file"
        out.append(f"{place}: {error.message} (run-file schema: {'/'.join(map(str, error.absolute_schema_path))})")
    return out


def _said(problem: str, problems: list) -> bool:
    """Whether a JSON Schema problem is about a table or key that eqflow's own checks already named."""
    where = problem.split(":", 1)[0]  # "[run]['steps']" or "[run]"
    keys = re.findall(r"\['([^']+)'\]", where)
    if not keys:
        return any(p.startswith(where) for p in problems)
    return any(f"{keys[0]}" in p.split(":", 1)[0] or f"[{keys[0]!r}]" in p for p in problems)


def read_run_file(path: Path) -> dict:
    """The TOML document at ``path``; a SchemaError naming the file when it is not one."""
    path = Path(path)
    if path.is_dir():
        what = " (a Zarr store: `eqflow info` summarizes it)" if (path / "zarr.json").exists() else ""
        raise SchemaError(f"config: expected a TOML run file, got the directory {str(path)!r}{what}")
    data = path.read_bytes()  # FileNotFoundError: named by main
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"config: expected a UTF-8 TOML file, got {str(path)!r} with bytes that are not UTF-8 "
                          f"at offset {exc.start} ({data[exc.start:exc.start + 4]!r})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SchemaError(f"config: expected TOML, got {str(path)!r}: {exc}") from None


def load_config(path: Path, store=None, storage_options=None) -> tuple[xr.Dataset, dict]:
    """Read a run file: ``[system]`` (kind and create arguments, or ``file`` = a saved system) and
    ``[run]`` (eq.run arguments, including ``options`` and ``stop`` rules); raise one SchemaError
    listing every problem of both tables: every check ``eqflow run`` makes before it writes.
    ``store``/``storage_options``: the command line's overrides of ``[run]``."""
    config = read_run_file(path)
    problems = []
    tables = {s: config.get(s) for s in ("system", "run")}
    for section, table in tables.items():
        if table is None:
            problems.append(f"[{section}]: expected a table in {str(path)!r}, got none")
        elif isinstance(table, list):
            problems.append(f"[{section}]: expected one [{section}] table, got [[{section}]] (an array of "
                            f"{len(table)} tables); write [{section}] once")
        elif not isinstance(table, dict):
            problems.append(f"[{section}]: expected a table ([{section}] and its keys below it), got "
                            f"{section} = {table!r}")
    run_args = dict(tables["run"]) if isinstance(tables["run"], dict) else {}
    if store is not None:
        run_args["store"] = store
    if storage_options is not None:
        run_args["storage_options"] = storage_options
    unknown = sorted(set(run_args) - RUN_KEYS)
    if unknown:
        problems.append(f"[run]: unknown keys {unknown}; expected some of {sorted(RUN_KEYS)}")
    if "stop" in run_args:
        run_args["stop"] = _stop_rules(run_args["stop"], problems)
    system = _system(dict(tables["system"]), problems) if isinstance(tables["system"], dict) else None
    if isinstance(tables["run"], dict):
        _check_run(system, run_args, problems, kind=_kind_of(tables["system"], system))
    problems += [p for p in run_file_problems(config) if not _said(p, problems)]
    if problems:
        raise SchemaError(problems)
    return system, run_args


def _kind_of(table, system) -> str | None:
    if system is not None:
        return system.attrs.get(dataset.KIND_ATTR)
    kind = table.get("kind") if isinstance(table, dict) else None
    return kind if isinstance(kind, str) and kind in registry.available() else None


def _check_run(system, run_args: dict, problems: list, kind: str | None) -> None:
    """Every check of ``eq.run``/``eq.anneal`` on the [run] table, short of running: the store and its
    options, the schedule, the stop rules' variables and, with a system, every input at once. Without a
    system (its table is bad) the checks that need only its kind still run."""
    from .runner import _check_rules

    _check_store(run_args, problems)
    _check_schedule_keys(run_args, problems)
    if kind is None:
        return
    contract = registry.get(kind)
    scheduled = "schedule" in run_args
    steps = run_args.get("stage_steps") if scheduled else run_args.get("steps")
    if system is None:  # the checks that need only the kind
        operator = run_args.get("operator")
        if operator not in contract.operators:
            problems.append(f"[run] operator: expected one of {sorted(contract.operators)} for kind {kind!r}, "
                            f"got {operator!r}")
        if not (dataset.is_int(steps) and steps > 0):
            problems.append(f"[run] {'stage_steps' if scheduled else 'steps'}: expected a positive integer, "
                            f"got {steps!r}")
        return
    arguments = {k: run_args.get(k) for k in ("record", "chunks", "device", "segment", "options", "torch_threads")}
    checked = check_run_inputs(system, contract, run_args.get("operator"), steps=steps,
                               backend=run_args.get("backend", "numpy"), kernel=run_args.get("kernel", "auto"),
                               **arguments)
    problems += [f"[run] {p.replace('steps:', 'stage_steps:', 1) if scheduled else p}" for p in checked.problems]
    _check_rules(run_args.get("stop"), contract, run_args.get("operator"), checked.record, problems)
    if scheduled:
        check_schedule(system, contract, run_args["schedule"], run_args.get("stage_steps", 1),
                       run_args.get("equilibrium", "auto"), problems)


def _check_store(run_args: dict, problems: list) -> None:
    """[run] store (required), storage_options (a table, only with a URL) and scheduler (an address)."""
    from .location import Location

    store, options = run_args.get("store"), run_args.get("storage_options", {})
    if store is None:
        problems.append("[run] store: expected a path or an fsspec URL (or --store on the command line), got none")
    elif not isinstance(store, str) or not store:
        problems.append(f"[run] store: expected a path or an fsspec URL, got {store!r}")
    elif isinstance(options, dict):
        try:
            Location(store, options or None)
        except TypeError as exc:
            problems.append(f"[run] {exc}")
    if not isinstance(options, dict):
        problems.append(f"[run] storage_options: expected a table, e.g. {{anon = true}}, got {options!r}")
    if not isinstance(run_args.get("scheduler", ""), str):
        problems.append(f"[run] scheduler: expected a dask scheduler address such as \"tcp://host:8786\", got "
                        f"{run_args['scheduler']!r}")


def _check_schedule_keys(run_args: dict, problems: list) -> None:
    """A schedule takes stage_steps (required) and equilibrium, not steps or stop; they need a schedule."""
    scheduled = "schedule" in run_args
    if scheduled:
        if "steps" in run_args:
            problems.append("[run] steps: not taken with a schedule (stage_steps x the number of stages)")
        if "stage_steps" not in run_args:
            problems.append("[run] stage_steps: required with a schedule (steps per stage), got none")
        if "stop" in run_args:
            problems.append("[run] stop: not taken with a schedule (stop rules would end stages early)")
    for key in ("stage_steps", "equilibrium"):
        if key in run_args and not scheduled:
            problems.append(f"[run] {key}: only taken with a schedule, got {key} = {run_args[key]!r} without one")


def _system(table: dict, problems: list):
    """The [system] table's Dataset: created from ``kind`` and its arguments, or read from ``file``."""
    if "file" not in table:
        return _create(table, problems)
    extra = sorted(set(table) - SYSTEM_FILE_KEYS)
    if extra:
        problems.append(f"[system]: with file = ..., expected no other keys than {sorted(SYSTEM_FILE_KEYS)}, got "
                        f"{extra}")
        return None
    try:
        return open_system(table["file"], table.get("storage_options"))
    except (SchemaError, StoreError, OSError, ValueError, TypeError) as exc:
        problems.append(f"[system] file: {exc}")
    return None


def open_system(path, storage_options=None) -> xr.Dataset:
    """A system saved with ``to_netcdf`` or ``to_zarr`` (a path, or a URL with storage_options), validated."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"expected the path of a system saved with to_netcdf or to_zarr, got {path!r}")
    zarr_like = "://" in path or Path(path).is_dir()
    if zarr_like:
        ds = xr.open_zarr(path, storage_options=storage_options, consolidated=None)
    elif storage_options:
        raise ValueError("storage_options: only taken with a Zarr system at a URL")
    elif not Path(path).exists():
        raise FileNotFoundError(2, "no such file", path)
    else:
        ds = xr.open_dataset(path)
    if "eqflow_operator" in ds.attrs:
        raise ValueError(f"{path!r} is a history store, not a system: take its last state with "
                         f"eq.final_state({path!r}) and save that")
    ds = ds.load()
    dataset.validate(ds)
    return ds


def _create(system_args: dict, problems: list):
    """The [system] table's Dataset; its problems join the run file's, all reported at once."""
    kind = system_args.pop("kind", None)
    if kind not in registry.available():
        problems.append(f"[system] kind: expected one of {registry.available()}, got {kind!r}")
        return None
    try:
        return registry.get(kind).create(**system_args)
    except SchemaError as exc:
        problems.extend(f"[system] {p}" for p in exc.problems)
    except (TypeError, ValueError) as exc:
        problems.append(f"[system] {exc}")
    return None


def _stop_rules(tables, problems: list) -> list:
    """``stop = [{rule = "converged", var = "residual", tol = 1e-8}, ...]`` (or one table) as eq.stop rules."""
    from . import stop as rules

    tables = [tables] if isinstance(tables, dict) else tables
    out = []
    for i, table in enumerate(tables if isinstance(tables, list) else [tables]):
        if not isinstance(table, dict) or table.get("rule") not in rules.names():
            problems.append(f"[run] stop[{i}]: expected a table with rule one of {rules.names()} and its "
                            f"arguments, e.g. {{rule = \"converged\", var = \"residual\", tol = 1e-8}}, got {table!r}")
            continue
        arguments = {k: v for k, v in table.items() if k != "rule"}
        try:
            out.append(rules.make(table["rule"], **arguments))
        except (TypeError, ValueError) as exc:
            problems.append(f"[run] stop[{i}] ({table['rule']}): {exc}")
    return out


def _run(args) -> int:
    system, options = load_config(args.config, args.store, args.storage_options)
    operator = options.pop("operator", None)
    address = args.scheduler or options.pop("scheduler", None)
    options.pop("scheduler", None)
    go = anneal if "schedule" in options else runner.run  # a schedule: stage by stage, in one store
    client = _client(address) if address else None
    try:
        hist = go(system, operator, **options, overwrite=args.overwrite, resume=args.resume, progress=args.progress,
                  **({"client": client} if client is not None else {}))
    finally:
        if client is not None:
            client.close()
    print(clean(summary(hist)))
    return 0


def _client(address: str):
    """A dask.distributed Client of the scheduler at ``address``; a StoreError-like message when unreachable."""
    from distributed import Client

    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchemaError(f"scheduler: expected a reachable dask.distributed scheduler, got {address!r} "
                          f"({type(exc).__name__}: {exc})") from None


def _info(args) -> int:
    hist = results.open(args.store, args.storage_options)
    print(clean(summary(hist)))
    print(clean(diagnosis(hist)))
    return 0


def diagnosis(hist: xr.Dataset) -> str:
    """Per parameter point (per stage of an anneal) and scalar record: the equilibrium estimate ± its
    standard error, R-hat (flagged above 1.01), bulk and tail ESS, the z-score against the kind's exact
    value (flagged where |z| > 3) and the members whose own means disagree with the others' (|z| > 4),
    from :func:`eqflow.summarize`."""
    from .summary import MEMBER_Z_THRESHOLD, RHAT_THRESHOLD, Z_THRESHOLD, members_off, summarize

    found = summarize(hist)
    lines = [f"equilibrium (eq.summarize): R-hat > {RHAT_THRESHOLD} not mixed; |z| > {Z_THRESHOLD:g} against the "
             f"exact value DISAGREES; members > {MEMBER_Z_THRESHOLD:g} SE from the others are named"]
    for var in [v for v in found.data_vars if f"{v}_rhat" in found]:
        points = [d for d in found[var].dims]
        stacked = found.stack(point=points) if points else found.expand_dims(point=[0])
        for i in range(stacked.sizes["point"]):
            at = stacked.isel(point=i)
            where = ", ".join(f"{d}={_short(at[d].item())}" for d in points) or "-"
            if not np.isfinite(float(at[var])):
                lines.append(f"  {var} [{where}] no estimate: no member has records in an equilibrium window "
                             f"(e.g. every member stopped early)")
                continue
            text = (f"  {var} [{where}] {float(at[var]):.6g} ± {float(at[f'{var}_sem']):.2g}  "
                    f"R-hat {float(at[f'{var}_rhat']):.3f}{' NOT MIXED' if bool(at[f'{var}_unmixed']) else ''}  "
                    f"ESS bulk {float(at[f'{var}_ess_bulk']):.0f} tail {float(at[f'{var}_ess_tail']):.0f}")
            if f"{var}_z" in found and np.isfinite(float(at[f"{var}_z"])):
                text += (f"  exact {float(at[f'{var}_exact']):.6g} z {float(at[f'{var}_z']):+.1f}"
                         f"{' DISAGREES' if bool(at[f'{var}_disagrees']) else ''}")
            if bool(at[f"{var}_stuck"].any()):
                text += f"  members off the others: {members_off(at[f'{var}_stuck'])}"
            lines.append(text)
    return "\n".join(lines)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _verify(args) -> int:
    from .store.verify import verify

    verify(args.store, args.storage_options)
    print(f"{args.store}: every chunk present and its checksum intact")
    return 0


def _report(args) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.store, args.output, args.storage_options)}")
    return 0


def _validate(args) -> int:
    path = args.file
    if path.suffix == ".toml":
        system, _ = load_config(path)  # every problem of the file, at once
        what = f"run file ({system.attrs[dataset.KIND_ATTR]}, {dict(system.sizes)})"
    elif path.is_dir() and (path / "zarr.json").exists() and STEPS_DONE in read_attrs(path):
        state = results.final_state(path)
        what = f"history store ({state.attrs[dataset.KIND_ATTR]}, {state.attrs[dataset.STEP_ATTR]} steps done)"
    elif path.is_dir() or path.suffix in (".nc", ".nc4", ".netcdf", ".h5", ".zarr"):
        ds = open_system(str(path))
        what = f"system ({ds.attrs[dataset.KIND_ATTR]}, {dict(ds.sizes)})"
    elif not path.exists():
        raise FileNotFoundError(2, "no such file or directory", str(path))
    else:
        raise SchemaError(f"file: expected a TOML run file (.toml), a system saved with to_netcdf (.nc) or "
                          f"to_zarr (a directory), or a history store, got {str(path)!r}")
    print(f"{path}: valid {what}")
    return 0


_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
                      r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
                      r"|\x1b.?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # other escapes and control characters


def clean(text: str) -> str:
    """``text`` without terminal escape sequences or control characters (a store's attributes are
    data: printed, they must not move the cursor, retitle the window or hide lines)."""
    return _ESCAPES.sub("", text)


def summary(hist: xr.Dataset) -> str:
    """Provenance and, per parameter point, the mean of each scalar record over its second half."""
    a = hist.attrs
    lines = [f"store      {a.get('eqflow_store')}",
             f"kind       {a['eqflow_kind']}  operator {a['eqflow_operator']}  "
             f"backend {a['eqflow_backend']} ({a['eqflow_device']})  kernel {a.get('eqflow_kernel', 'reference')}",
             f"steps      {a['eqflow_steps_done']} done of {a['eqflow_step_start']} -> {a['eqflow_step_end']}  "
             f"status {a['eqflow_status']}",
             f"seed       {a['eqflow_seed']}  chunks {a['eqflow_chunks']}  started {a['eqflow_started']}",
             f"parameters {a['eqflow_operator_parameters']}"]
    if a["eqflow_status"] != "complete":
        lines.append("           (interrupted: continue with `eqflow run CONFIG --resume` or eq.run(..., resume=True))")
    scalars = [n for n, da in hist.data_vars.items()
               if da.dims[0] == "step"
               and da.ndim == 1 + len([d for d in da.dims if d in hist.indexes and d != "step"])]
    stopped = "stop_reason" in hist and bool((hist.stop_reason != "max_steps").any())
    if stopped:
        counts = dict(zip(*np.unique(hist.stop_reason.values, return_counts=True)))
        lines.append("outcomes   " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    final = results.final_values(hist, scalars) if stopped and scalars else None
    for name in scalars:
        da = hist[name]
        tail = da.isel(step=slice(da.sizes["step"] // 2, None)).mean("step").load()
        units = canonical_units(da.attrs.get("units", ""))  # k_B * K, not its UDUNITS spelling
        lines.append(f"{name:<10} [{units}] second-half mean over members: {_points(tail)}")
        if final is not None:  # each member's value where it stopped (later records are NaN)
            lines.append(f"{'':<10} value where each member stopped, mean over members: {_points(final[name])}")
    return "\n".join(lines)


def _points(values: xr.DataArray) -> str:
    """Mean ± standard error over members, per parameter point; where fewer than two members have a
    value, says so instead of printing NaN."""
    stacked = values.transpose("member", ...).values.reshape(values.sizes["member"], -1)
    out = []
    for column in stacked.T:
        found = column[np.isfinite(column)]
        if found.size == 0:
            out.append("none (every member stopped before the second half; see the values where they stopped)")
        elif found.size == 1:
            out.append(f"{found[0]:.6g} (one member with a value: no error estimate)")
        else:
            out.append(f"{found.mean():.6g} ± {found.std() / np.sqrt(found.size - 1):.2g}")
    return ", ".join(out)


if __name__ == "__main__":
    sys.exit(main())
