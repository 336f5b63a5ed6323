"""The command line as a user meets it: clear errors (never a raw traceback), validate runs every check
of run, progress and logging switches, a dask scheduler, saved system files, the run-file JSON Schema;
and the provenance, store and packaging details a newcomer relies on."""
import ast
import dataclasses
import importlib
import json
import logging
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import zarr

import eqflow as eq
from eqflow import provenance
from eqflow.cli import clean, diagnosis, load_config, main, run_file_problems, summary
from eqflow.location import Location

import toy

ROOT = Path(__file__).resolve().parent.parent
RUN = textwrap.dedent("""
    [system]
    kind = "ising"
    size = 4
    temperature = 2.0
    members = 2
    seed = 1

    [run]
    operator = "metropolis"
    steps = 4
    store = "out.zarr"
""")
CLOSED = {"key": "a", "secret": "b", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
          "config_kwargs": {"retries": {"max_attempts": 1}}}  # nothing listens on port 9 (discard)


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_of(capsys, *argv) -> str:
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --- no raw tracebacks -------------------------------------------------------------------------------------------
def test_files_that_are_not_run_files_are_named(here, capsys):
    (here / "latin1.toml").write_bytes(RUN.replace('"out.zarr"', '"caf\xe9.zarr"').encode("latin-1"))
    assert "expected a UTF-8 TOML file" in error_of(capsys, "validate", "latin1.toml")
    assert "expected a UTF-8 TOML file" in error_of(capsys, "run", "latin1.toml")
    (here / "notes.txt").write_text("hello")
    assert "file: expected a TOML run file (.toml)" in error_of(capsys, "validate", "notes.txt")
    (here / "folder").mkdir()
    assert "config: expected a TOML run file, got the directory" in error_of(capsys, "run", "folder")
    assert "No such file" in error_of(capsys, "run", "missing.toml")
    (here / "broken.toml").write_text("[system\nkind = 1")
    assert "config: expected TOML" in error_of(capsys, "validate", "broken.toml")


def test_tables_of_the_wrong_form_are_named(here, capsys):
    (here / "a.toml").write_text('system = "ising"\n' + RUN.split("[run]")[1].join(["[run]", ""]))
    assert "[system]: expected a table ([system] and its keys below it), got system = 'ising'" in error_of(
        capsys, "validate", "a.toml")
    (here / "b.toml").write_text(RUN.replace("[run]", "[[run]]"))
    assert "[run]: expected one [run] table, got [[run]] (an array of 1 tables)" in error_of(
        capsys, "validate", "b.toml")
    (here / "c.toml").write_text(RUN.replace("steps = 4", 'schedule = { temperature = [3.0, 2.0] }'))
    err = error_of(capsys, "validate", "c.toml")
    assert "[run] stage_steps: required with a schedule (steps per stage), got none" in err


def test_validate_runs_every_check_of_run(here, capsys):
    (here / "a.toml").write_text(RUN.replace('store = "out.zarr"', 'stop = { rule = "converged", var = "entropy", '
                                                                   'tol = 1e-3 }'))
    err = error_of(capsys, "validate", "a.toml")
    assert "[run] store: expected a path or an fsspec URL (or --store on the command line), got none" in err
    assert "stop rule variable: expected an observable among" in err and "got 'entropy'" in err
    (here / "b.toml").write_text(RUN + 'storage_options = { anon = true }\n')
    assert "storage_options: only used with an fsspec URL store, got a local store" in error_of(
        capsys, "validate", "b.toml")
    for schedule, expected in (("[]", "schedule['temperature']: expected a non-empty sequence"),
                               ("[3.0, 2.0]", "schedule['temperature']: the system sweeps 'temperature'")):
        text = RUN.replace("steps = 4", f"stage_steps = 2\nschedule = {{ temperature = {schedule} }}")
        (here / "c.toml").write_text(text.replace("temperature = 2.0", "temperature = [2.0, 3.0]")
                                     if "sweeps" in expected else text)
        assert expected in error_of(capsys, "validate", "c.toml")
    assert not (here / "out.zarr").exists()


def test_validate_reports_both_tables_at_once(here, capsys):
    (here / "a.toml").write_text(RUN.replace("size = 4", "size = 5").replace('"metropolis"', '"glauber"')
                                 .replace("steps = 4", "steps = 0"))
    err = error_of(capsys, "validate", "a.toml")
    for expected in ("size of 'y': expected an integer >= 2 and a multiple of 2, got 5",
                     "[run] operator: expected one of ['heat_bath', 'metropolis', 'swendsen_wang', 'wolff'] for "
                     "kind 'ising', got 'glauber'", "[run] steps: expected a positive integer, got 0"):
        assert expected in err, expected


def test_unreachable_url_store_is_one_line(here, capsys):
    options = json.dumps(CLOSED)
    for command in ("info", "verify"):
        err = error_of(capsys, command, "s3://bucket/run.zarr", "--storage-options", options)
        assert "store 's3://bucket/run.zarr': cannot be reached (EndpointConnectionError" in err
    with pytest.raises(eq.StoreError, match="cannot be reached"):
        eq.open("s3://bucket/run.zarr", CLOSED)


def test_messages_name_the_flags_as_typed(here, capsys):
    (here / "run.toml").write_text(RUN)
    assert main(["run", "run.toml", "--no-progress"]) == 0
    err = error_of(capsys, "run", "run.toml", "--no-progress")
    assert "pass --resume to continue it or --overwrite to replace it" in err and "=True" not in err


# --- info ------------------------------------------------------------------------------------------------------
def test_info_strips_terminal_escapes(here, capsys):
    name = "a\x1b]0;owned\x07\x1b[2Jb.zarr"
    eq.run(eq.create("ising", size=4, members=2, seed=1), "metropolis", steps=2, store=here / name, progress=False)
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "ab.zarr" in out
    assert clean("x\x1b[31mred\x1b[0m\x9b\x00y\n") == "xredy\n"


def test_info_shows_units_as_people_write_them(here, capsys):
    # the store holds the UDUNITS spelling of k_B * K (1.380649e-23 J); info shows k_B * K
    hist = eq.run(eq.create("ising", size=4, members=2, seed=1), "metropolis", steps=4, store=here / "u.zarr",
                  progress=False, record={"energy": 1})
    assert hist["energy"].attrs["units"] == "1.380649e-23 J"
    assert main(["info", "u.zarr"]) == 0
    out = capsys.readouterr().out
    assert "energy     [k_B * K] second-half mean" in out and "[1.380649e-23 J]" not in out


def test_info_says_why_there_is_no_mean(tmp_path):
    system = toy.create(rate=[0.9, 0.1], members=2)  # rate 0.9 converges in 3 steps, 0.1 in 66
    hist = eq.run(system, "relax", steps=200, store=None, stop=eq.stop.converged("residual", 1e-3), progress=False)
    text = summary(hist)
    assert "nan" not in text and "nan ±" not in diagnosis(hist)
    assert ("residual   [1] second-half mean over members: none (every member stopped before the second half; see "
            "the values where they stopped), 0.00883637 ± 0") in text
    one = eq.run(toy.create(rate=0.5, members=1), "relax", steps=4, store=None, progress=False)
    assert "(one member with a value: no error estimate)" in summary(one)


def test_info_on_a_system_file_names_it(here, capsys):
    eq.create("ising", size=4, seed=1).to_zarr(here / "sys.zarr", zarr_format=3)
    err = error_of(capsys, "info", "sys.zarr")
    assert "a 'ising' system (a Dataset saved with to_zarr" in err and "not a history" in err
    assert "format" not in err


# --- provenance ----------------------------------------------------------------------------------------------
def test_parent_names_carry_no_token_and_no_address():
    assert Location("s3://bucket/runs/a.zarr?X-Amz-Signature=secret&X-Amz-Credential=k").short_name == "a.zarr"
    assert provenance._parent_name("https://host/x/run.zarr?token=secret#frag") == "run.zarr"
    assert Location(None).short_name == "memory"
    hist = eq.run(eq.create("ising", size=4, members=2, seed=1), "metropolis", steps=2, store=None, progress=False)
    state = eq.final_state(hist)
    assert state.attrs["eqflow_parent"] == "memory"
    chained = eq.run(state, "metropolis", steps=2, store=None, progress=False)
    assert chained.attrs["eqflow_parent"] == "memory"


# --- progress and logging ---------------------------------------------------------------------------------------
def test_progress_defaults_and_log_lines(monkeypatch, caplog):
    monkeypatch.setattr(provenance, "in_notebook", lambda: False)
    assert not provenance.bar_by_default()  # pytest's stderr is not a terminal
    monkeypatch.setattr(provenance, "in_notebook", lambda: True)
    assert provenance.bar_by_default()  # tqdm.auto draws the notebook widget
    monkeypatch.setattr(provenance, "in_notebook", lambda: False)
    system = eq.create("ising", size=4, members=2, seed=1)
    with caplog.at_level(logging.INFO, logger="eqflow"):
        eq.run(system, "metropolis", steps=6, segment=2, store=None)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and " of 6 (" in r.getMessage()]
    assert lines == ["ising metropolis: step 6 of 6 (100%)"]  # the end; periodic lines come every LOG_SECONDS
    caplog.clear()
    monkeypatch.setattr(provenance, "LOG_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="eqflow"):
        eq.run(system, "metropolis", steps=6, segment=2, store=None)
        eq.run(system, "metropolis", steps=6, segment=2, store=None, progress=False)  # off: no lines either
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and " of 6 (" in r.getMessage()]
    assert lines == [f"ising metropolis: step {k} of 6 ({100 * k / 6:.0f}%)" for k in (2, 4, 6)]


def test_cli_progress_and_verbosity_switches(here, capsys, monkeypatch):
    (here / "run.toml").write_text(RUN)
    monkeypatch.setattr(provenance, "LOG_SECONDS", 0.0)
    assert main(["run", "run.toml", "--overwrite"]) == 0  # no terminal: log lines on stderr
    assert "eqflow: ising metropolis: step 4 of 4 (100%)" in capsys.readouterr().err
    assert main(["run", "run.toml", "--overwrite", "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["run", "run.toml", "--overwrite", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "finished at step 4" in err and "(100%)" not in err  # the run's own lines, no progress lines
    assert main(["run", "run.toml", "--overwrite", "-v"]) == 0
    assert "segment done: step 4 of 4" in capsys.readouterr().err
    assert main(["run", "run.toml", "--overwrite", "--progress"]) == 0
    assert "4/4" in capsys.readouterr().err  # tqdm's bar, asked for
    assert logging.getLogger("eqflow").level == logging.NOTSET  # main() leaves the logger as it was


# --- a dask cluster, memory stores and store objects ---------------------------------------------------------
def test_scheduler_address_and_memory_refusal(here, capsys):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        (here / "run.toml").write_text(RUN + f'scheduler = "{cluster.scheduler_address}"\n')
        assert main(["run", "run.toml", "--no-progress"]) == 0
        assert main(["run", "run.toml", "--no-progress", "--overwrite", "--scheduler",
                     cluster.scheduler_address]) == 0
        direct = eq.run(eq.create("ising", size=4, temperature=2.0, members=2, seed=1), "metropolis", steps=4,
                        store=None, progress=False)
        np.testing.assert_array_equal(eq.open(here / "out.zarr").energy.values, direct.energy.values)
        with distributed.Client(cluster, set_as_default=False) as client:
            system = eq.create("ising", size=4, members=2, seed=1)
            with pytest.raises(eq.SchemaError, match=r"store: a memory:// store .* lives in this process only"):
                eq.run(system, "metropolis", steps=2, store="memory://cli/run.zarr", client=client)
            with pytest.raises(eq.SchemaError, match=r"store: an in-memory store"):
                eq.run(system, "metropolis", steps=2, store=None, client=client)
        assert not Location("memory://cli/run.zarr").exists()


def test_fsspec_store_object_works_like_its_url(tmp_path):
    system = eq.create("ising", size=4, members=2, seed=1)
    obj = zarr.storage.FsspecStore.from_url("memory://objects/run.zarr")
    hist = eq.run(system, "metropolis", steps=3, store=obj, progress=False)
    again = eq.open("memory://objects/run.zarr")
    np.testing.assert_array_equal(hist.energy.values, again.energy.values)
    local = zarr.storage.FsspecStore.from_url(f"file://{tmp_path / 'f.zarr'}")
    eq.run(system, "metropolis", steps=3, store=local, progress=False)
    np.testing.assert_array_equal(eq.open(tmp_path / "f.zarr").energy.values, hist.energy.values)


# --- saved systems and the run-file schema ----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_run_file_runs_a_saved_system(here, capsys, suffix):
    system = eq.create("ising", size=4, temperature=[2.0, 3.0], members=2, seed=3)
    (system.to_netcdf if suffix == ".nc" else lambda p: system.to_zarr(p, zarr_format=3))(here / f"system{suffix}")
    (here / "run.toml").write_text(f'[system]\nfile = "system{suffix}"\n' + RUN.split("seed = 1")[1])
    assert main(["validate", "run.toml"]) == 0
    assert main(["run", "run.toml", "--no-progress"]) == 0
    direct = eq.run(system, "metropolis", steps=4, store=None, progress=False)
    np.testing.assert_array_equal(eq.open(here / "out.zarr").energy.values, direct.energy.values)
    (here / "bad.toml").write_text(f'[system]\nfile = "system{suffix}"\nmembers = 3\n' + RUN.split("seed = 1")[1])
    assert "[system]: with file = ..., expected no other keys than ['file', 'storage_options'], got ['members']" \
        in error_of(capsys, "validate", "bad.toml")


def test_the_run_file_schema_is_published_and_used(here):
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "run-file.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for example in [RUN, *(p.read_text() for p in (ROOT / "examples").glob("*.toml"))]:
        assert run_file_problems(tomllib.loads(example)) == [], example
    bad = tomllib.loads(RUN.replace("steps = 4", 'steps = 4\nrecord = { energy = "often" }'))
    assert run_file_problems(bad) == ["[run]['record']['energy']: 'often' is not of type 'integer' (run-file "
                                      "schema: properties/run/properties/record/additionalProperties/type)"]
    (here / "bad.toml").write_text(RUN.replace("steps = 4", 'steps = 4\nrecord = { energy = "often" }'))
    with pytest.raises(eq.SchemaError) as err:
        load_config(here / "bad.toml")
    assert sum("'energy'" in p for p in err.value.problems) == 1  # named once, by eqflow's own check


# --- files a newcomer meets ---------------------------------------------------------------------------------------
def test_generator_file_config_is_bounded_by_its_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from eqflow.generators import ising_flow as flow

    model = flow._network(4, 3, True)
    lattice = {"coupling": 1.0, "field": 0.0, "size": [4, 4]}
    generator = flow.Generator(model, [2.0, 3.0], lattice, {"hidden": 4, "layers": 3, "symmetric": True, "steps": 2})
    generator.save(tmp_path / "g.pt")
    assert flow.Generator.load(tmp_path / "g.pt").config["hidden"] == 4
    found = torch.load(tmp_path / "g.pt", weights_only=True)
    for config, message in (({"hidden": 2**40}, r"config\['hidden'\]: expected an integer in \[1, 65536\]"),
                            ({"hidden": 4096}, r"config: hidden=4096, layers=3 make \d+ weights, the file holds "),
                            ({"layers": True}, r"config\['layers'\]: expected an integer")):
        torch.save({**found, "config": {**found["config"], **config}}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=message):
            flow.Generator.load(tmp_path / "bad.pt")


def test_a_copied_system_must_rename_its_schema_kind():
    copied = dataclasses.replace(toy.SYSTEM, kind="my_relax")
    with pytest.raises(eq.SchemaError, match=r"kind: the System is named 'my_relax' but its schema relax.json says "
                                             r"\"kind\": 'relax'; the two names must agree"):
        eq.registry.register(copied)
    assert "my_relax" not in eq.registry.available()


def test_make_molecules_imports_what_exists():
    tree = ast.parse((ROOT / "data" / "make_molecules.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("eqflow")]
    assert imports
    for node in imports:
        module = importlib.import_module(node.module)
        assert all(hasattr(module, alias.name) for alias in node.names), node.module
    assert "_scf_problems" not in (ROOT / "data" / "README.md").read_text()


def test_distribution_name_is_ours_everywhere():
    from eqflow import _version

    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert name == _version.DISTRIBUTION == "eqflow-ensembles"
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["eqflow"]
    hits = [p for p in (ROOT / "eqflow").rglob("*.py") if "eqflow[" in p.read_text()]
    assert hits == []  # install hints name the distribution: `pip install eqflow[...]` is another project
