"""Each field's conventions: PySCF's densities, networkx's labels and weights, spiking neurons.

Each test holds eqflow to another library's convention (or to a hand-written reference of it).
"""
import numpy as np
import pytest

import eqflow as eq
from eqflow.errors import SchemaError
from eqflow.systems.feedback_snn import dynamics


@pytest.fixture(scope="module")
def water():
    gto = pytest.importorskip("pyscf.gto")
    scf = pytest.importorskip("pyscf.scf")
    mol = gto.M(atom="O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692", basis="sto-3g", verbose=0)
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-12
    mf.kernel()
    return mol, mf


def test_scf_takes_pyscf_make_rdm1_as_the_total_density(water, tmp_path):
    mol, mf = water
    total = mf.make_rdm1()  # PySCF's RHF convention: 2 D, trace(D S) = 10 electrons
    assert np.trace(total @ mol.intor("int1e_ovlp")) == pytest.approx(10.0)
    system = eq.create("scf", problem="molecule", mol=mol, guess=total)
    np.testing.assert_allclose(system.density.values[0, 0], total / 2, atol=1e-10)
    hist = eq.run(system, "damping", steps=1, store=tmp_path / "h.zarr", progress=False)
    # the start is PySCF's converged density: its energy, not -67.68 Eh as when taken per spin
    assert float(hist.energy.isel(step=0, member=0)) == pytest.approx(mf.e_tot, abs=1e-8)
    same = eq.create("scf", problem="molecule", mol=mol, guess=total / 2)  # eqflow's own convention
    np.testing.assert_array_equal(same.density.values, system.density.values)


def test_scf_refuses_a_density_of_neither_convention_by_name(water):
    mol, mf = water
    with pytest.raises(SchemaError, match=r"guess: expected an \(n, n\) density whose trace .* got a trace of 7\.5"):
        eq.create("scf", problem="molecule", mol=mol, guess=mf.make_rdm1() * 0.75)


def test_alignment_keeps_the_graphs_node_labels(tmp_path):
    nx = pytest.importorskip("networkx")
    source = nx.les_miserables_graph()
    system = eq.create("alignment", graph="les_miserables", members=2, seed=1)
    assert system.node.values.tolist() == list(source.nodes())
    valjean = list(source.nodes()).index("Valjean")
    assert int(system.degree.sel(node="Valjean")) == source.degree("Valjean")
    row = system.neighbors.values[valjean]
    assert sorted(system.node.values[row[row >= 0]].tolist()) == sorted(source.neighbors("Valjean"))
    hist = eq.run(system, "best_response", steps=2, store=tmp_path / "h.zarr", progress=False)
    assert hist.node.values.tolist() == list(source.nodes())
    assert eq.final_state(hist).node.values.tolist() == list(source.nodes())
    florentine = nx.florentine_families_graph()
    given = eq.create("alignment", graph=florentine, members=1)
    assert given.node.values.tolist() == list(florentine.nodes())
    ring = eq.create("alignment", graph="ring", nodes=8, degree=2)
    assert ring.node.values.tolist() == list(range(8))


def test_alignment_refuses_edge_weights_by_name():
    nx = pytest.importorskip("networkx")
    with pytest.raises(SchemaError, match=r"graph: expected an unweighted graph .* got 'weight' on 254 of 254 edges"):
        eq.create("alignment", graph=nx.les_miserables_graph())
    g = nx.path_graph(4)
    g.add_edge(1, 2, weight=3.0)
    with pytest.raises(SchemaError, match=r"'weight' on 1 of 3 edges, e\.g\. \(1, 2\)"):
        eq.create("alignment", graph=g)
    unweighted = nx.Graph()
    unweighted.add_nodes_from(g)
    unweighted.add_edges_from(g.edges())
    eq.create("alignment", graph=unweighted)  # the remedy the message names works


def _spikingjelly_if(x, feedback, threshold, steps, reset=None):
    """spikingjelly's IFNode(v_threshold, v_reset=None) in a feedback loop, written from its
    documented equations: charge H[t] = V[t-1] + X[t]; fire S[t] = Heaviside(H[t] - V_th) with
    Heaviside(0) = 1; soft reset V[t] = H[t] - V_th S[t]. The input at step t is X[t] = W S[t-1] + c."""
    v = np.zeros_like(x)
    s = np.zeros_like(x)
    spikes = []
    for _ in range(steps):
        h = v + (s @ feedback.T + x)
        s = (h - threshold >= 0).astype(x.dtype)
        v = h - threshold * s if reset is None else np.where(s > 0, reset, h)  # v_reset=None: soft reset
        spikes.append(s)
    return np.array(spikes)


def test_feedback_snn_neuron_is_spikingjellys_if_neuron_spike_for_spike():
    rng = np.random.default_rng(0)
    n, m, samples, steps, threshold = 12, 5, 7, 60, 2.0
    w = rng.normal(0, 0.3, (n, n))
    w *= 0.9 * threshold / np.linalg.norm(w, 2)
    f, b, x = rng.normal(0, 1, (n, m)), rng.normal(0, 0.2, n), rng.random((samples, m))
    current = dynamics.drive(f[None], b[None], x)[0]
    current[0, 0] = threshold  # a neuron exactly at threshold fires (Heaviside(0) = 1)
    reference = _spikingjelly_if(current, w, threshold, steps)
    u, s = np.zeros_like(current)[None], np.zeros_like(current)[None]
    ours = []
    for _ in range(steps):
        u, s = dynamics.step(u, s, w[None], current[None], np.array([threshold]), np.array([1.0]))
        ours.append(s[0])
    np.testing.assert_array_equal(np.array(ours), reference)
    assert reference[0, 0, 0] == 1 and reference.sum() > 0
    assert not np.array_equal(_spikingjelly_if(current, w, threshold, steps, reset=0.0), reference)  # not hard reset
    rates, _, _ = dynamics.simulate(w[None], f[None], b[None], x, threshold=np.array([threshold]),
                                    leak=np.array([1.0]), time_steps=np.array([float(steps)]))
    plain = _spikingjelly_if(dynamics.drive(f[None], b[None], x)[0], w, threshold, steps)
    np.testing.assert_array_equal(rates[0] * steps, plain.sum(0))
