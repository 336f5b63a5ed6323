"""Wolff and Swendsen-Wang against the exact 4x4 enumeration, and what they refuse.

Statistics as in test_ising_physics: members are independent chains, each member's time
average is one sample, |mean - exact| < 4.5 standard errors, no member beyond 8 robust
deviations. Wolff's cluster size is checked against the improved estimator
<|C|> = N <m^2> (Wolff 1989: the seed falls in a cluster with probability |C| / N), and
Swendsen-Wang flips N / 2 spins per step on average (every cluster's coin is fair).
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems import ising

from test_ising_physics import check_against_exact

TEMPERATURES = [1.5, 2.269, 3.5]


@pytest.mark.parametrize("op,steps", [("wolff", 4000), ("swendsen_wang", 2000)])
def test_4x4_against_exact_enumeration(op, steps, tmp_path):
    system = eq.create("ising", size=4, temperature=TEMPERATURES, members=64, seed=21)
    hist = eq.run(system, op, steps=steps, store=tmp_path / "h.zarr", progress=False,
                  record={"energy": 1, "magnetization": 1, "flipped": 1})
    window = hist.isel(step=slice(steps // 8, None))
    energy = window.energy.mean("step").values
    abs_m = np.abs(window.magnetization).mean("step").values
    flipped = window.flipped.mean("step").values
    exact = ising.theory.exact_averages(4, TEMPERATURES)
    for j, t in enumerate(TEMPERATURES):
        check_against_exact(energy[:, j], exact["energy"][j], f"{op} energy at T={t}")
        check_against_exact(abs_m[:, j], exact["abs_magnetization"][j], f"{op} |m| at T={t}")
        if op == "wolff":
            m2 = exact["abs_magnetization"][j] ** 2 + exact["abs_magnetization_std"][j] ** 2
            check_against_exact(flipped[:, j], 16 * m2, f"wolff <|C|> at T={t}")
        else:
            check_against_exact(flipped[:, j], 8.0, f"swendsen_wang flips per step at T={t}")
    assert hist.flipped.encoding["dtype"] == np.int64 and int(hist.flipped[1:].min()) >= (1 if op == "wolff" else 0)
    assert int(hist.flipped.max()) <= 16


@pytest.mark.parametrize("op", ["wolff", "swendsen_wang"])
def test_antiferromagnet_against_exact_enumeration(op, tmp_path):
    """J < 0: the satisfied bonds are the antiparallel ones (exact on the bipartite square lattice)."""
    system = eq.create("ising", size=4, temperature=2.0, coupling=-1.0, members=48, seed=5)
    hist = eq.run(system, op, steps=2000, store=tmp_path / "h.zarr", progress=False, record={"energy": 1})
    exact = ising.theory.exact_averages(4, [2.0], coupling=-1.0)["energy"][0]
    check_against_exact(hist.energy.isel(step=slice(250, None)).mean("step").values.ravel(), exact,
                        f"{op} energy, J = -1")


@pytest.mark.parametrize("op", ["wolff", "swendsen_wang"])
@pytest.mark.parametrize("kernel", ["reference", "numba"])
def test_a_field_is_refused_before_anything_is_written(op, kernel, tmp_path):
    system = eq.create("ising", size=4, temperature=[2.0, 3.0], field=[0.0, 0.25], members=2, seed=1)
    with pytest.raises(SchemaError, match=rf"field: the {op} cluster update is exact only at h = 0 .* got h = "
                                          r"\[0.25\] k_B K"):
        eq.run(system, op, steps=3, store=tmp_path / "h.zarr", progress=False, kernel=kernel)
    assert not (tmp_path / "h.zarr").exists()


def test_cluster_roots_are_the_lowest_site_of_each_component():
    """The label propagation against a brute-force flood fill on random bond graphs."""
    rng = np.random.default_rng(0)
    for ny, nx in ((4, 4), (2, 6), (6, 8)):
        right, down = rng.random((2, 5, ny, nx)) < 0.45
        roots = ising.clusters.component_roots(right, down)
        for c in range(5):
            expected = _flood_fill_minimum(right[c], down[c])
            np.testing.assert_array_equal(roots[c], expected)


def _flood_fill_minimum(right, down):
    ny, nx = right.shape
    out = np.full((ny, nx), -1)
    for start in range(ny * nx):
        if out.flat[start] >= 0:
            continue
        stack, members = [start], {start}
        while stack:
            i = stack.pop()
            y, x = divmod(i, nx)
            for j, bond in ((y * nx + (x + 1) % nx, right[y, x]), (y * nx + (x - 1) % nx, right[y, (x - 1) % nx]),
                            (((y + 1) % ny) * nx + x, down[y, x]), (((y - 1) % ny) * nx + x, down[(y - 1) % ny, x])):
                if bond and j not in members:
                    members.add(j)
                    stack.append(j)
        for i in members:
            out.flat[i] = min(members)
    return out
