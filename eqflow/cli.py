"""Command line: ``eqflow run CONFIG.toml``, ``eqflow info STORE``, ``eqflow validate FILE``."""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np
import xarray as xr

from . import dataset, registry, results, runner
from .errors import SchemaError, StoreError
from .inputs import check_run_inputs
from .schedule import anneal
from .store import STEPS_DONE, read_attrs

RUN_KEYS = {"operator", "steps", "store", "record", "chunks", "backend", "device", "segment", "torch_threads",
            "options", "stop", "storage_options", "schedule", "stage_steps", "equilibrium", "kernel"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eqflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"eqflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="create a system from a TOML file and run it to a Zarr store")
    p_run.add_argument("config", type=Path)
    p_run.add_argument("--store", help="override [run] store (a path or an fsspec URL)")
    p_run.add_argument("--storage-options", type=_json_table, help="override [run] storage_options (JSON)")
    mode = p_run.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing store")
    mode.add_argument("--resume", action="store_true", help="continue an interrupted store")
    p_run.add_argument("--no-progress", action="store_true")
    p_info = sub.add_parser("info", help="summarize a history store")
    p_rep = sub.add_parser("report", help="write a self-contained HTML report of a history store")
    p_rep.add_argument("-o", "--output", type=Path, default=Path("report.html"))
    p_ver = sub.add_parser("verify", help="check that every chunk of a history store is present and intact")
    for p in (p_info, p_rep, p_ver):
        p.add_argument("store", help="a local path or an fsspec URL (s3://bucket/run.zarr)")
        p.add_argument("--storage-options", type=_json_table, default=None,
                       help='fsspec options as JSON, e.g. \'{"anon": true}\' or an endpoint_url in client_kwargs')
    p_val = sub.add_parser("validate", help="check a TOML run file, a system file (Zarr/netCDF) or a history store")
    p_val.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        commands = {"run": _run, "info": _info, "validate": _validate, "report": _report, "verify": _verify}
        return commands[args.command](args)
    except (SchemaError, StoreError, FileNotFoundError, tomllib.TOMLDecodeError) as exc:
        print(f"eqflow {args.command}: error: {exc}", file=sys.stderr)
        return 1


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


def load_config(path: Path) -> tuple[xr.Dataset, dict]:
    """Read a run file: ``[system]`` (kind and create arguments) and ``[run]`` (eq.run arguments,
    including ``options`` and ``stop`` rules); raise one SchemaError listing every problem."""
    with open(path, "rb") as f:
        config = tomllib.load(f)
    problems = [f"[{s}]: expected a table in {str(path)!r}, got none" for s in ("system", "run") if s not in config]
    run_args = dict(config.get("run", {}))
    unknown = sorted(set(run_args) - RUN_KEYS)
    if unknown:
        problems.append(f"[run]: unknown keys {unknown}; expected some of {sorted(RUN_KEYS)}")
    if "stop" in run_args:
        run_args["stop"] = _stop_rules(run_args["stop"], problems)
    if not isinstance(run_args.get("storage_options", {}), dict):
        problems.append(f"[run] storage_options: expected a table, e.g. {{anon = true}}, got "
                        f"{run_args['storage_options']!r}")
    system = _create(dict(config.get("system", {})), problems) if "system" in config else None
    if "schedule" in run_args and "steps" in run_args:
        problems.append("[run] steps: not taken with a schedule (stage_steps x the number of stages)")
    if system is not None and "run" in config:
        contract = registry.get(system.attrs[dataset.KIND_ATTR])
        arguments = {k: run_args.get(k) for k in ("record", "chunks", "device", "segment", "options", "torch_threads")}
        steps = run_args.get("steps") if "schedule" not in run_args else run_args.get("stage_steps")
        problems += check_run_inputs(system, contract, run_args.get("operator"), steps=steps,
                                     backend=run_args.get("backend", "numpy"), kernel=run_args.get("kernel", "auto"),
                                     **arguments).problems
    if problems:
        raise SchemaError(problems)
    return system, run_args


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
    system, options = load_config(args.config)
    operator = options.pop("operator", None)
    if args.store:
        options["store"] = args.store
    if args.storage_options is not None:
        options["storage_options"] = args.storage_options
    go = anneal if "schedule" in options else runner.run  # a schedule: stage by stage, in one store
    hist = go(system, operator, **options, overwrite=args.overwrite, resume=args.resume,
              progress=False if args.no_progress else None)
    print(summary(hist))
    return 0


def _info(args) -> int:
    hist = results.open(args.store, args.storage_options)
    print(summary(hist))
    print(diagnosis(hist))
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
    elif path.is_dir() and STEPS_DONE in read_attrs(path):
        state = results.final_state(path)
        what = f"history store ({state.attrs[dataset.KIND_ATTR]}, {state.attrs[dataset.STEP_ATTR]} steps done)"
    else:
        ds = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path)
        dataset.validate(ds.load())
        what = f"system ({ds.attrs[dataset.KIND_ATTR]}, {dict(ds.sizes)})"
    print(f"{path}: valid {what}")
    return 0


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
        lines.append(f"{name:<10} [{da.attrs.get('units', '')}] second-half mean over members: {_points(tail)}")
        if final is not None:  # each member's value where it stopped (later records are NaN)
            lines.append(f"{'':<10} value where each member stopped, mean over members: {_points(final[name])}")
    return "\n".join(lines)


def _points(values: xr.DataArray) -> str:
    """Mean ± standard error over members, per parameter point."""
    members = values.mean("member")
    err = values.std("member") / np.sqrt(max(values.sizes["member"] - 1, 1))
    return ", ".join(f"{v:.6g} ± {e:.2g}" for v, e in zip(np.ravel(members.values), np.ravel(err.values)))


if __name__ == "__main__":
    sys.exit(main())
