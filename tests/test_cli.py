"""The command line, end to end in a temporary directory."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import eqflow as eq
from eqflow.cli import main

CONFIG = textwrap.dedent("""
    [system]
    kind = "ising"
    size = 8
    temperature = [1.5, 3.0]
    members = 4
    seed = 2

    [run]
    operator = "metropolis"
    steps = 30
    store = "out.zarr"
    chunks = { member = 2 }
    record = { energy = 1, magnetization = 1, spin = 10 }
""")


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(CONFIG)
    return tmp_path / "run.toml"


def test_run_info_validate(config, tmp_path, capsys):
    assert main(["validate", str(config)]) == 0
    assert "valid run file (ising" in capsys.readouterr().out
    assert main(["run", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "steps      30 done of 0 -> 30  status complete" in out and "energy" in out
    hist = eq.open(tmp_path / "out.zarr")
    assert hist.sizes["step"] == 31 and hist.sizes["step_10"] == 4
    assert main(["info", "out.zarr"]) == 0
    assert "kind       ising  operator metropolis" in capsys.readouterr().out
    assert main(["validate", "out.zarr"]) == 0
    assert "valid history store (ising, 30 steps done)" in capsys.readouterr().out
    eq.create("ising", size=4, temperature=2.0, seed=1).to_zarr(tmp_path / "system.zarr", zarr_format=3)
    assert main(["validate", "system.zarr"]) == 0
    assert "valid system (ising" in capsys.readouterr().out


def test_existing_store_needs_a_flag(config, capsys):
    assert main(["run", str(config), "--no-progress"]) == 0
    assert main(["run", str(config), "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["run", str(config), "--no-progress", "--overwrite"]) == 0


def test_bad_config_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace("size = 8", "size = 7").replace('operator = "metropolis"', 'operator = "kawasaki"'))
    assert main(["validate", str(bad)]) == 1
    assert "size of 'y': expected an integer >= 2 and a multiple of 2, got 7" in capsys.readouterr().err
    bad.write_text(CONFIG.replace('operator = "metropolis"', 'operator = "kawasaki"'))
    assert main(["validate", str(bad)]) == 1
    assert "operator: expected one of ['heat_bath', 'metropolis', 'swendsen_wang', 'wolff']" in capsys.readouterr().err
    bad.write_text(CONFIG.replace("[run]", "[run]\nstep = 3"))
    assert main(["validate", str(bad)]) == 1
    assert "[run]: unknown keys ['step']" in capsys.readouterr().err


def test_console_script_entry_point(config, tmp_path):
    done = subprocess.run([sys.executable, "-m", "eqflow.cli", "run", str(config), "--no-progress"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    script = Path(sys.executable).parent / "eqflow"  # installed by pip beside the interpreter
    info = subprocess.run([str(script), "info", "out.zarr"], capture_output=True, text=True, cwd=tmp_path)
    assert info.returncode == 0 and "status complete" in info.stdout


def test_a_run_file_expresses_stop_rules_and_options(tmp_path, capsys):
    config = tmp_path / "scf.toml"
    config.write_text(f"""
[system]
kind = "scf"
problem = "hubbard"
sites = 6
interaction = [2.0, 6.0]
members = 2
rotation = 0.3
[run]
operator = "diis"
steps = 300
store = "{tmp_path / 'h.zarr'}"
options = {{ history = 6 }}
stop = [{{ rule = "converged", var = "residual", tol = 1e-9 }}]
record = {{ energy = 1, residual = 1 }}
""")
    assert main(["run", str(config), "--no-progress"]) == 0
    hist = eq.open(tmp_path / "h.zarr")
    assert (hist.stop_reason.sel(interaction=2.0) == "converged").all()
    assert hist.attrs["eqflow_options"] == '{"history": 6}' and '"rule": "converged"' in hist.attrs["eqflow_stop"]


def test_every_problem_of_a_run_file_at_once(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("""
[system]
kind = "ising"
size = 5
temperature = -1.0
magnetic_field = 2
[run]
operator = "glauber"
stepz = 10
stop = [{ rule = "converged", var = "energy", tol = -1 }, { rule = "sometime" }]
""")
    assert main(["validate", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for expected in ("[run]: unknown keys ['stepz']", "stop[0] (converged): tol: expected a positive tolerance",
                     "stop[1]: expected a table with rule one of", "[system] create() got an unexpected keyword "
                     "argument 'magnetic_field'"):
        assert expected in err, expected
    config.write_text(config.read_text().replace("magnetic_field = 2\n", ""))
    assert main(["run", str(config)]) == 1
    err = capsys.readouterr().err
    for expected in ("size of 'y': expected an integer >= 2 and a multiple of 2, got 5",
                     "temperature: expected values > 0", "[run]: unknown keys ['stepz']"):
        assert expected in err, expected
