"""Reports and trace plots: every record traced, no "± nan", the theory drawn where the kind has one."""
import numpy as np
import pytest

import eqflow as eq
from eqflow.plot import trace
from eqflow.report import traced_records, write_report
from eqflow.systems.ising import theory as ising_theory
from eqflow.systems.smd import theory as smd_theory

pytest.importorskip("matplotlib")


def _theory_lines(fig):
    """{panel: y of the dotted theory line} of a trace figure."""
    out = {}
    for i, ax in enumerate(fig.axes):
        for collection in ax.collections:
            if str(collection.get_label()).startswith("theory"):
                out[i] = float(collection.get_segments()[0][0][1])
    return out


def test_smd_report_traces_every_layer_record_with_the_equilibrium_angle(tmp_path):
    eta, lam = 0.5, 0.05
    system = eq.create("smd", dim=16, learning_rate=eta, weight_decay=lam, momentum=0.0, members=3, seed=2)
    hist = eq.run(system, "sgd", steps=40, store=tmp_path / "h.zarr", progress=False)
    labels = [label for label, _, _ in traced_records(hist)]
    for name in ("weight_norm", "angular_update", "effective_learning_rate"):
        assert f"{name}[layer=0]" in labels  # on main these records (dim ``layer``) were skipped
    page = write_report(tmp_path / "h.zarr", tmp_path / "r.html").read_text()
    assert "<figcaption>angular_update[layer=0]</figcaption>" in page
    assert "± nan" not in page
    sub = dict((label, (h, v)) for label, h, v in traced_records(hist))["angular_update[layer=0]"]
    lines = _theory_lines(trace(*sub))
    # the mean angle E atan(a chi) at the equilibrium norm (smd.theory.mean_angular_update), within
    # a relative 1/(4 (d - 1)) of Delta* = arccos(1 - eta lambda) (Wan et al., NeurIPS 2021)
    exact = float(smd_theory.mean_angular_update(learning_rate=eta, weight_decay=lam, dim=16))
    assert lines == {0: pytest.approx(exact, rel=1e-12)}
    assert exact == pytest.approx(np.arccos(1 - eta * lam), rel=1 / (4 * 15) + 0.01)


def test_ising_trace_draws_kaufman_and_the_report_gives_c_chi_binder(tmp_path):
    system = eq.create("ising", size=4, temperature=[2.0, 3.0], members=4, seed=1)
    hist = eq.run(system, "metropolis", steps=80, store=tmp_path / "h.zarr", progress=False,
                  record={"energy": 1, "magnetization": 1})
    lines = _theory_lines(trace(hist, "energy"))
    for i, t in enumerate((2.0, 3.0)):
        assert lines[i] == pytest.approx(float(ising_theory.kaufman(4, t)["energy"][0]), rel=1e-12)
    page = write_report(tmp_path / "h.zarr", tmp_path / "r.html").read_text()
    section = page.split("Thermodynamics")[1].split("<h2>")[0]
    for column in ("specific_heat", "susceptibility", "binder", "specific_heat exact", "energy exact"):
        assert column in section, column
    exact_c = float(ising_theory.kaufman(4, 2.0)["specific_heat"][0])
    assert f"{exact_c:.6g}" in section


def test_scf_summary_says_why_there_is_no_error_bar(tmp_path):
    system = eq.create("scf", problem="hubbard", sites=4, members=1)
    hist = eq.run(system, "damping", steps=30, store=tmp_path / "h.zarr", progress=False)
    page = write_report(tmp_path / "h.zarr", tmp_path / "r.html").read_text()
    table = page.split("<h2>Equilibrium estimates</h2>")[1].split("<p>")[0]
    assert "± nan" not in table
    assert "no error bar" in table
    assert hist.sizes["member"] == 1
