"""The alignment system against exact results: closed-form equilibrium counts, hand counts and a
second enumeration, the potential bound on the number of flips, and where the dynamics end."""
import itertools
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest

import eqflow as eq
from eqflow.systems.alignment import graph_of, perturb, theory

CONVERGED = eq.stop.converged("unsatisfied", 0.5)


def _run(ds, op, path, steps, **kw):
    return eq.run(ds, op, steps=steps, store=path, progress=False, **kw)


# ---------------------------------------------------------------------------------------------
# Equilibria by enumeration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("anti", [False, True])
def test_cycle_counts_match_the_lucas_closed_forms(anti):
    """C_n, tie keep: Lucas(n) + 2 cos(n pi/3) (coordinators), + 2 cos(2 n pi/3) (anti), n = 3..16."""
    for n in range(3, 17):
        expected = round(theory.lucas(n) + 2 * np.cos((2 if anti else 1) * n * np.pi / 3))
        assert theory.count_equilibria(nx.cycle_graph(n), int(anti), "keep") == expected, n
    assert [theory.lucas(n) for n in range(7)] == [2, 1, 3, 4, 7, 11, 18]


def test_cycle_counts_with_the_other_tie_rules():
    """'random' has the same (Nash) equilibria as 'keep'. 'switch' makes the tied nodes of C_n
    unsatisfied: coordinators need both neighbours equal to themselves (2 constant profiles),
    anti-coordinators both opposite (the 2 alternating profiles, none for odd n)."""
    for n in (5, 6, 9, 10):
        cycle = nx.cycle_graph(n)
        assert theory.count_equilibria(cycle, 0, "random") == theory.cycle_equilibria(n)
        assert theory.count_equilibria(cycle, 1, "random") == theory.cycle_equilibria(n, anti=True)
        assert theory.count_equilibria(cycle, 0, "switch") == 2
        assert theory.count_equilibria(cycle, "anti", "switch") == (2 if n % 2 == 0 else 0)


def test_hand_counted_small_graphs():
    """K_4 (d = 3, no ties): coordinators agree (2); an anti-coordinator playing A wants B once
    >= 2 of its 3 neighbours play A, one playing B wants A while <= 1 does: exactly 2 A, C(4, 2) = 6.
    Star K_{1,3}: leaves copy the centre, the centre its leaves' majority: 2 coordinating profiles;
    anti-coordinating leaves oppose the centre, which then opposes all of them: 2. Path P_3, anti:
    ABA and BAB (2). An edge with one coordinator (0) and one anti-coordinator (1): the
    anti-coordinator always opposes, the coordinator always follows: no equilibrium."""
    assert theory.count_equilibria(nx.complete_graph(4), 0) == 2
    assert theory.count_equilibria(nx.complete_graph(4), 1) == 6
    assert theory.count_equilibria(nx.star_graph(3), 0) == 2
    assert theory.count_equilibria(nx.star_graph(3), 1) == 2
    assert list(theory.equilibria(nx.path_graph(3), 1)) == [0b010, 0b101]
    assert theory.count_equilibria(nx.path_graph(2), [0, 1]) == 0
    assert theory.count_equilibria(nx.empty_graph(3), 0, "keep") == 8  # isolated nodes: always indifferent
    assert theory.count_equilibria(nx.empty_graph(3), 0, "switch") == 0


def _equilibria_by_networkx(graph, types, tie, threshold):
    """A second, independent enumeration: every profile, every node, exact rational comparison."""
    nodes = list(graph.nodes())
    tau = Fraction(threshold).limit_denominator(1000)
    found = []
    for code, bits in enumerate(itertools.product((0, 1), repeat=len(nodes))):
        bits = bits[::-1]  # node i plays bit i of the code
        ok = True
        for i, node in enumerate(nodes):
            d = graph.degree(node)
            n_a = sum(bits[nodes.index(j)] for j in graph.neighbors(node))
            if n_a == tau * d:
                ok = tie != "switch"
            else:
                wants_a = (n_a > tau * d) != bool(types[i])
                ok = wants_a == bool(bits[i])
            if not ok:
                break
        if ok:
            found.append(code)
    return found


@pytest.mark.parametrize("name,tie,threshold", [("florentine", "keep", 0.5), ("petersen", "switch", 1 / 3),
                                                ("cube", "random", 2 / 3)])
def test_enumeration_agrees_with_a_networkx_check(name, tie, threshold):
    graph = {"florentine": None, "petersen": nx.petersen_graph(), "cube": nx.hypercube_graph(3)}[name]
    graph = eq.systems.alignment.graphs.empirical(name) if graph is None else nx.convert_node_labels_to_integers(graph)
    counts = []
    for types in (np.zeros(graph.number_of_nodes(), int), (np.arange(graph.number_of_nodes()) % 3 == 1).astype(int)):
        expected = _equilibria_by_networkx(graph, types, tie, threshold)
        assert list(theory.equilibria(graph if name != "florentine" else name, types, tie, threshold)) == expected
        counts.append(len(expected))
    assert counts[0] > 0


def test_enumeration_on_torch_equals_numpy():
    g = nx.watts_strogatz_graph(10, 4, 0.3, seed=1)
    types = np.arange(10) % 4 == 0
    np.testing.assert_array_equal(theory.equilibria(g, types.astype(int), backend="torch", chunk=300),
                                  theory.equilibria(g, types.astype(int)))


def test_enumeration_refuses_bad_inputs():
    with pytest.raises(ValueError, match="types: expected"):
        theory.count_equilibria(nx.cycle_graph(4), [0, 1])
    with pytest.raises(ValueError, match="tie: expected"):
        theory.count_equilibria(nx.cycle_graph(4), 0, "sometimes")
    with pytest.raises(ValueError, match="at most 26 nodes"):
        theory.count_equilibria(nx.cycle_graph(30))


# ---------------------------------------------------------------------------------------------
# Dynamics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("graph,kw", [("random_regular", {"nodes": 24, "degree": 3}),
                                      ("watts_strogatz", {"nodes": 24, "degree": 4, "rewiring": [0.1, 0.6]})])
@pytest.mark.parametrize("anti", [0.0, 1.0])
def test_flips_bounded_by_the_potential(graph, kw, anti, tmp_path):
    """Homogeneous, tie keep, tau = 1/2: every flip removes at least one discordant edge
    (coordinators) or concordant edge (anti-coordinators), so flips <= discordant(0) - discordant(T)
    (resp. the reverse) <= |E|, and every member converges."""
    ds = eq.create("alignment", graph=graph, anti_fraction=anti, members=40, seed=3, **kw)
    edges = ds.degree.sum("node") // 2
    h = _run(ds, "best_response", tmp_path / "h.zarr", 400, stop=CONVERGED, options={"picks_per_step": 24},
             record={"flips": 1, "discordant_edges": 1, "unsatisfied": 1}).load()
    assert (h.stop_reason == "converged").all()
    stopped = h.stopped_at
    flips = h.flips.where((h.step >= 1) & (h.step <= stopped)).sum("step")
    start = h.discordant_edges.isel(step=0)
    end = h.discordant_edges.sel(step=stopped)
    drop = (start - end) if anti == 0.0 else (end - start)
    assert (flips <= drop).all() and (drop <= edges).all()
    assert (h.unsatisfied.sel(step=stopped) == 0).all()
    assert int(flips.sum()) > 0


@pytest.mark.parametrize("tie,threshold", [("keep", 0.5), ("random", 0.5), ("switch", 0.5), ("keep", 0.3)])
def test_asynchronous_runs_end_in_enumerated_equilibria(tie, threshold, tmp_path):
    """Mixed populations (per-member types) on one Watts-Strogatz graph: a member stops as converged
    exactly when its final profile is one the enumeration lists for its types (strict equilibria,
    tie 'switch', are rare on this graph: most of those members run to max_steps)."""
    g = nx.watts_strogatz_graph(14, 4, 0.3, seed=7)
    ds = eq.create("alignment", graph=g, anti_fraction=0.3, tie=tie, threshold=threshold, members=24, seed=11)
    h = _run(ds, "best_response", tmp_path / "h.zarr", 300, stop=CONVERGED, options={"picks_per_step": 7},
             record={"unsatisfied": 1})
    final = eq.final_state(h)
    converged = h.stop_reason.values == "converged"
    assert converged.sum() >= (1 if tie == "switch" else 12)
    for m in range(24):
        listed = theory.equilibria(g, ds.type.values[m], tie, threshold)
        assert (theory.codes(final.action.values[m]) in listed) == converged[m], m


@pytest.mark.parametrize("anti", [0.0, 1.0])
def test_activation_among_unsatisfied_nodes(anti, tmp_path):
    """Picking only nodes that want to switch: every pick before the equilibrium flips, so with one
    pick per step the equilibrium time equals the number of flips, at most |E| (homogeneous, tie
    keep), and the run ends in an enumerated equilibrium; NumPy and torch take the same picks."""
    ds = eq.create("alignment", graph="random_regular", nodes=14, degree=3, anti_fraction=anti, members=16, seed=5)
    runs = [_run(ds, "best_response", tmp_path / f"{b}.zarr", 60, stop=CONVERGED, backend=b,
                 options={"activation": "unsatisfied"}, record={"flips": 1, "action": 1}).load()
            for b in ("numpy", "torch")]
    h = runs[0]
    np.testing.assert_array_equal(h.action.values, runs[1].action.values)
    assert (h.stop_reason == "converged").all()
    flips = h.flips.where((h.step >= 1) & (h.step <= h.stopped_at)).sum("step")
    initial = eq.create("alignment", graph="random_regular", nodes=14, degree=3, anti_fraction=anti, members=16,
                        seed=5)
    at_start = np.array([theory.codes(initial.action.values[m]) in theory.equilibria(
        graph_of(ds, member=m), int(anti)) for m in range(16)])
    assert (flips == np.where(at_start, 0, h.stopped_at)).all() and (flips <= 21).all()
    final = eq.final_state(h)
    for m in range(16):
        assert theory.codes(final.action.values[m]) in theory.equilibria(graph_of(ds, member=m), int(anti))
    with pytest.raises(ValueError, match="activation"):
        _run(ds, "best_response", tmp_path / "bad.zarr", 5, options={"activation": "oldest"})
    assert not (tmp_path / "bad.zarr").exists()


def test_synchronous_two_cycles_end_as_cycled(tmp_path):
    """C_6 coordinators from ABABAB: every node sees two opposite neighbours, all switch, forever.
    C_4 anti-coordinators from AAAA: all switch to B and back. A fixed point converges instead."""
    six = eq.create("alignment", graph=nx.cycle_graph(6), action=[1, 0, 1, 0, 1, 0])
    four = eq.create("alignment", graph=nx.cycle_graph(4), types=[1, 1, 1, 1], action=[1, 1, 1, 1])
    rules = [CONVERGED, eq.stop.cycled("action")]
    for ds in (six, four):
        h = _run(ds, "synchronous", tmp_path / f"{ds.sizes['node']}.zarr", 20, stop=rules, record={"action": 1})
        assert h.stop_reason.values.tolist() == ["cycled"] and h.stopped_at.values.tolist() == [2]
        np.testing.assert_array_equal(h.action.isel(step=1).values, 1 - ds.action.values)
    still = eq.create("alignment", graph=nx.cycle_graph(6), action=[1, 1, 1, 0, 0, 0])
    h = _run(still, "synchronous", tmp_path / "still.zarr", 20, stop=rules)
    assert h.stop_reason.values.tolist() == ["converged"] and h.stopped_at.values.tolist() == [1]


def test_tie_rules_on_an_all_tied_profile(tmp_path):
    """C_4 coordinators in BBAA: every node has one neighbour of each action. keep: nothing moves;
    switch: everyone flips (to AABB, then back: a 2-cycle); random: each node a fair coin."""
    rules = [CONVERGED, eq.stop.cycled("action")]
    for tie, outcome in (("keep", "converged"), ("switch", "cycled")):
        ds = eq.create("alignment", graph=nx.cycle_graph(4), action=[0, 0, 1, 1], tie=tie)
        h = _run(ds, "synchronous", tmp_path / f"{tie}.zarr", 10, stop=rules, record={"unsatisfied": 1})
        assert h.stop_reason.values.tolist() == [outcome]
        assert h.unsatisfied.values[0, 0] == (4 if tie == "switch" else 0)
    members = 400
    ds = eq.create("alignment", graph=nx.cycle_graph(4), action=[0, 0, 1, 1], tie="random", members=members, seed=2)
    h = _run(ds, "synchronous", tmp_path / "random.zarr", 1, record={"action": 1})
    a = h.action.isel(step=1).values
    assert abs(a.mean() - 0.5) < 4 * np.sqrt(0.25 / a.size)  # 4 sigma
    assert 0.3 < (a != ds.action.values).mean() < 0.7


def test_picks_are_uniform_over_nodes(tmp_path):
    """Isolated nodes with tie 'switch' flip whenever picked: one pick per step reveals the pick.
    Its counts over members and steps are uniform (chi-square, 10 nodes, p > 1e-4)."""
    n, members, steps = 10, 300, 8
    ds = eq.create("alignment", graph=nx.empty_graph(n), tie="switch", members=members, seed=4)
    h = _run(ds, "best_response", tmp_path / "h.zarr", steps, record={"action": 1, "flips": 1}).load()
    changed = (h.action.diff("step") != 0).values  # (steps, members, n)
    assert (changed.sum(-1) == 1).all() and (h.flips.isel(step=slice(1, None)) == 1).all()
    counts = changed.sum((0, 1))
    expected = members * steps / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 33.7  # chi-square with 9 degrees of freedom: P(> 33.7) = 1e-4


def test_several_picks_per_step(tmp_path):
    ds = eq.create("alignment", graph="karate", anti_fraction=0.0, members=4, seed=1)
    h = _run(ds, "best_response", tmp_path / "h.zarr", 6, options={"picks_per_step": 34}, record={"flips": 1})
    flips = h.flips.isel(step=slice(1, None)).values
    assert (flips >= 0).all() and (flips <= 34).all() and flips.sum() > 0


# ---------------------------------------------------------------------------------------------
# create: graphs, types, seeds, errors
# ---------------------------------------------------------------------------------------------


def test_random_graphs_per_member_and_per_value():
    a = eq.create("alignment", graph="watts_strogatz", nodes=16, degree=4, rewiring=[0.2, 0.5], members=3, seed=9)
    b = eq.create("alignment", graph="watts_strogatz", nodes=16, degree=4, rewiring=0.5, members=3, seed=9)
    np.testing.assert_array_equal(a.neighbors.sel(rewiring=0.5).values, b.neighbors.values)
    assert not np.array_equal(a.neighbors.values[0, 1], a.neighbors.values[1, 1])  # members differ
    for m in range(3):
        g = graph_of(a, member=m, rewiring=0.2)
        assert g.number_of_edges() == 32 and (np.array([d for _, d in g.degree()]) == a.degree.values[m, 0]).all()
    c = eq.create("alignment", graph="erdos_renyi", nodes=20, edge_probability=0.2, members=2, seed=1)
    assert c.neighbors.dims == ("member", "node", "neighbor")
    r = eq.create("alignment", graph="random_regular", nodes=12, degree=3, members=2, seed=1)
    assert (r.degree == 3).all()
    ba = eq.create("alignment", graph="barabasi_albert", nodes=30, attachments=2, members=2, seed=1)
    assert (ba.degree.sum("node") // 2 == 2 * 28).all()  # m (N - m) edges


def test_given_graph_round_trips_and_tables_are_padded():
    g = nx.les_miserables_graph()
    ds = eq.create("alignment", graph="les_miserables")
    assert ds.sizes["node"] == 77 and ds.sizes["neighbor"] == max(d for _, d in g.degree())
    h = graph_of(ds)
    assert nx.is_isomorphic(h, nx.Graph(g.edges())) and h.number_of_edges() == 254
    table, degree = ds.neighbors.values, ds.degree.values
    assert ((table >= 0).sum(1) == degree).all() and (table[np.arange(77), np.maximum(degree - 1, 0)] >= 0).all()
    edges = ds.edges.values
    assert edges.shape == (254, 2) and (edges[:, 0] < edges[:, 1]).all()
    assert {tuple(e) for e in edges} == {(i, int(j)) for i in range(77) for j in table[i] if j > i}


def test_edge_lists_are_padded_per_member():
    ds = eq.create("alignment", graph="erdos_renyi", nodes=12, edge_probability=[0.1, 0.3], members=3, seed=1)
    assert ds.edges.dims == ("member", "edge_probability", "edge", "end")
    listed = (ds.edges >= 0).all("end").sum("edge")
    assert (listed == ds.degree.sum("node") // 2).all() and int(listed.max()) == ds.sizes["edge"]


def test_one_graph_per_member():
    graphs = [nx.random_regular_graph(3, 10, seed=i) for i in range(3)]
    ds = eq.create("alignment", graph=graphs, members=3, types=np.eye(3, 10, dtype=int))
    assert ds.neighbors.dims == ("member", "node", "neighbor") and ds.type.dims == ("member", "node")
    for m, g in enumerate(graphs):
        assert sorted(graph_of(ds, member=m).edges()) == sorted(tuple(sorted(e)) for e in g.edges())


def test_types_from_anti_fraction_are_counted_and_nested():
    ds = eq.create("alignment", graph="ring", nodes=20, anti_fraction=[0.0, 0.24, 0.5, 1.0], members=5, seed=3)
    counts = ds.type.sum("node").values
    assert (counts == np.array([0, 5, 10, 20])).all()  # round(f N)
    t = ds.type.values
    assert ((t[:, 1] <= t[:, 2]) & (t[:, 2] <= t[:, 3])).all()  # nested
    assert not (t[0, 2] == t[1, 2]).all()  # per member


def test_perturb_flips_exactly_k_nodes():
    ds = eq.create("alignment", graph="karate", members=6, seed=1)
    out = perturb(ds, 5, seed=2)
    assert ((out.action != ds.action).sum("node") == 5).all()
    with pytest.raises(ValueError, match="flips: expected"):
        perturb(ds, 35)


@pytest.mark.parametrize("kw,match", [
    ({"tie": "maybe"}, "tie: expected one of"),
    ({"graph": "ring", "rewiring": 0.1}, "rewiring: only for graph='watts_strogatz'"),
    ({"graph": "watts_strogatz"}, "rewiring: required"),
    ({"graph": "ring", "degree": 3}, "degree: expected an even integer"),
    ({"graph": "random_regular", "nodes": 5, "degree": 3}, "nodes \\* degree even"),
    ({"graph": "karate", "nodes": 10}, "nodes: only for the graph families"),
    ({"graph": "kite"}, "graph: expected a networkx Graph"),
    ({"graph": nx.DiGraph([(0, 1)])}, "simple undirected graph"),
    ({"graph": nx.Graph([(0, 0), (0, 1)])}, "no self-loops"),
    ({"graph": [nx.cycle_graph(4), nx.cycle_graph(5)], "members": 2}, "same number of nodes"),
    ({"graph": "ring", "types": [0, 1], "nodes": 6}, "types: expected 0/1 values of shape \\(6,\\)"),
    ({"graph": "ring", "nodes": 6, "action": [0, 1, 2, 0, 1, 0]}, "action: expected values in \\[0, 1\\]"),
    ({"graph": "ring", "anti_fraction": 1.5}, "anti_fraction: expected values <= 1"),
    ({"graph": "ring", "types": [0] * 20, "anti_fraction": 0.5}, "at most one of them"),
])
def test_bad_inputs_are_named(kw, match):
    with pytest.raises(eq.SchemaError, match=match):
        eq.create("alignment", **kw)
