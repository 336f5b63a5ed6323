"""Behavioural alignment: coordinators and anti-coordinators on a graph, updating by best response.

Xia, McAvoy & Su, "Behavioral alignment in social networks", arXiv:2506.00046 (2025), on the
linear threshold model of Ramazi, Riehl & Cao, "Networks of conforming or nonconforming
individuals tend to reach satisfactory decisions", PNAS 113, 12985 (2016), where networks of
only coordinators or only anti-coordinators reach an equilibrium under asynchronous best
response (for mixed populations see the converged fractions in ``benchmarks/RESULTS.md``).

Each node i plays A (action 1) or B (0). With n_A of its d_i neighbours playing A, a
coordinator strictly prefers A when n_A > tau d_i and B when n_A < tau d_i (align with the
local majority for tau = 1/2); an anti-coordinator the reverse (diverge from it). At
n_A = tau d_i a node is indifferent and the ``tie`` attribute decides: "keep" (default),
"switch" or "random". An equilibrium is a profile in which no node wants to switch
(``unsatisfied`` = 0): a pure Nash equilibrium for "keep" and "random", a strict one for "switch".

State ``action(member, *sweeps, node)`` int8. Constants: the padded neighbour table
``neighbors(node, neighbor)`` (-1 padding), ``degree(node)``, the edge list ``edges(edge, end)``
(i < j, -1 rows pad graphs with fewer edges) and ``type(node)`` (0 coordinator, 1
anti-coordinator), each per member where it varies (random graphs, random types).
Sweepable parameters: ``anti_fraction``, ``threshold`` (tau), ``rewiring`` (Watts-Strogatz),
``edge_probability`` (Erdos-Renyi). Operators: ``best_response`` (asynchronous, uniformly
random node per pick, options ``picks_per_step`` and ``activation``: "uniform" or
"unsatisfied", a pick among the nodes that want to switch) and ``synchronous``. Observables:
``unsatisfied``, ``fraction_a``, ``discordant_edges``. ``theory.count_equilibria`` enumerates.

Equilibrium time: ``eq.run(ds, "best_response", stop=eq.stop.converged("unsatisfied", 0.5))``
stops each member at the first step after which no node wants to switch (``stopped_at``, in
steps of ``picks_per_step`` picks; a member that starts in an equilibrium stops at step 1,
since stop rules are checked after each step). ``synchronous`` may cycle: add
``eq.stop.cycled("action")`` and 2-cycles end as ``cycled``.
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...dataset import finish_system, system_coords
from ...errors import SchemaError
from ...system import Operator, System
from . import graphs, observables, operators, theory
from .observables import discordant_edges, fraction_a, unsatisfied
from .operators import best_response, prepare, synchronous

KIND = "alignment"
ACTION_SLOT, TYPE_SLOT = 0, 1  # initial-state stream slots (graphs.GRAPH_SLOT = 2)
DEFAULTS = {"nodes": 20, "degree": 4, "attachments": 2}


def create(graph="ring", *, members=1, seed=0, anti_fraction=None, threshold=0.5, tie="keep", rewiring=None,
           edge_probability=None, nodes=None, degree=None, attachments=None, types=None, action=None,
           start="random"):
    """A new ensemble of games on a graph as an xarray Dataset.

    Parameters
    ----------
    graph : a networkx Graph (shared by every member); a sequence of ``members`` Graphs with the
        same number of nodes (one per member); a family "ring", "watts_strogatz", "erdos_renyi",
        "barabasi_albert", "random_regular" (see :mod:`.graphs`; random ones drawn per member
        from the seed); or an empirical network "karate", "les_miserables", "florentine", "davis".
        Nodes are numbered in the graph's node order; the ``node`` coordinate holds the graph's own
        labels (e.g. the characters of "les_miserables"). A graph whose edges carry ``weight``
        is refused by name (the threshold model counts each neighbour once): pass an unweighted copy.
    members : int. Independent replicas per parameter point.
    seed : int in [0, 2**64). Keys the graphs, types, initial actions and every update.
    anti_fraction : float or 1-D sweep in [0, 1] (default 0 unless ``types`` is given): each
        member gets round(f N) anti-coordinators, the first ones of a uniformly random order of
        the nodes drawn per member (so the sets are nested along a sweep).
    threshold : float or 1-D sweep in [0, 1], tau (default 1/2).
    tie : "keep", "switch" or "random".
    rewiring : Watts-Strogatz rewiring probability (required for and only for that family; sweepable).
    edge_probability : Erdos-Renyi p (required for and only for that family; sweepable).
    nodes, degree, attachments : family arguments (defaults N = 20, k = 4, m = 2).
    types : array (node,) or (member, node) of 0/1 instead of ``anti_fraction``.
    action : initial actions, an array broadcastable to (member, *sweeps, node) of 0/1; else
        ``start="random"``: each node plays A with probability 1/2, drawn per member from the
        seed (the same profile at every parameter point of a member).

    Examples
    --------
    >>> ds = create("watts_strogatz", nodes=12, degree=4, rewiring=[0.0, 0.5], members=3, seed=1)
    >>> dict(ds.action.sizes), ds.neighbors.dims
    ({'member': 3, 'rewiring': 2, 'node': 12}, ('member', 'rewiring', 'node', 'neighbor'))
    >>> int(ds.degree.sum(("node")).min()) // 2   # edges: rewiring keeps N k / 2
    24
    """
    schema = SYSTEM.schema
    problems = []
    if tie not in operators.TIES:
        problems.append(f"tie: expected one of {list(operators.TIES)}, got {tie!r}")
    if types is not None and anti_fraction is not None:
        problems.append("anti_fraction, types: expected at most one of them, got both")
    label, family_args = _graph_label(graph, members, nodes, degree, attachments, rewiring, edge_probability, problems)
    if problems:
        raise SchemaError(problems, kind=KIND)
    parameters = {"anti_fraction": 0.0 if anti_fraction is None and types is None else anti_fraction,
                  "threshold": threshold, "rewiring": rewiring, "edge_probability": edge_probability}
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters,
                                        site_sizes={"node": 1, "neighbor": 1, "edge": 0, "end": 2}, seed=seed)
    labels = coords["member"]
    graph_dims, table, degrees, edges = _graph_constants(graph, label, family_args, coords, seed)
    n = table.shape[-2]
    type_dims, kinds = _types(types, coords, labels, seed, n)
    constants = {"neighbors": ((*graph_dims, "node", "neighbor"), table),
                 "degree": ((*graph_dims, "node"), degrees), "type": ((*type_dims, "node"), kinds),
                 "edges": ((*graph_dims, "edge", "end"), edges)}
    sizes = {"node": n, "neighbor": table.shape[-1], "edge": edges.shape[-2], "end": 2}
    coords, dims, shape = system_coords(schema, members=members, parameters=parameters, site_sizes=sizes,
                                        constants=constants, seed=seed)
    state = _initial_action(action, start, labels, seed, shape, n)
    names = _node_labels(graph, label)
    if names is not None:
        coords["node"] = (("node",), names, {"long_name": "node label (the graph's own, in its node order)"})
    return finish_system(schema, coords, {"action": ((*dims, "node"), state)}, seed=seed,
                         attributes={"tie": tie, "graph": label})


def _graph_label(graph, members, nodes, degree, attachments, rewiring, edge_probability, problems):
    """(label, family args) of ``graph``; appends problems (unknown names, misplaced arguments)."""
    import networkx as nx

    given = {"nodes": nodes, "degree": degree, "attachments": attachments}
    family_args = {}
    if isinstance(graph, str) and graph in graphs.FAMILIES:
        label = graph
        allowed = graphs.FAMILY_ARGS[graph]
        family_args = {k: (v if v is not None else DEFAULTS[k]) for k, v in given.items() if k in allowed}
        extra = [k for k, v in given.items() if v is not None and k not in allowed]
        if extra:
            problems.append(f"{', '.join(extra)}: not argument(s) of graph={graph!r}; expected some of {list(allowed)}")
    else:
        if isinstance(graph, str):
            if graph not in graphs.EMPIRICAL:
                problems.append(f"graph: expected a networkx Graph, a family {list(graphs.FAMILIES)} or an empirical "
                                f"network {list(graphs.EMPIRICAL)}, got {graph!r}")
            label = graph
        elif isinstance(graph, (list, tuple)):
            label = "graphs"
            if len(graph) != members:
                problems.append(f"graph: expected one Graph per member ({members}), got {len(graph)}")
        elif isinstance(graph, nx.Graph):
            label = "graph"
        else:
            problems.append(f"graph: expected a networkx Graph, a sequence of them, or a name, got "
                            f"{type(graph).__name__}")
            label = "graph"
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            problems.append(f"{', '.join(extra)}: only for the graph families {list(graphs.FAMILIES)}, got "
                            f"graph={graph if isinstance(graph, str) else type(graph).__name__!r}")
    _check_graph_parameters(label, rewiring, edge_probability, problems)
    if not problems and label in graphs.FAMILIES:
        graphs.check_family_args(label, family_args)
    return label, family_args


def _check_graph_parameters(label, rewiring, edge_probability, problems):
    """``rewiring`` for Watts-Strogatz and ``edge_probability`` for Erdos-Renyi: required there, refused elsewhere."""
    for name, value in (("rewiring", rewiring), ("edge_probability", edge_probability)):
        owner = "watts_strogatz" if name == "rewiring" else "erdos_renyi"
        if value is None and label == owner:
            problems.append(f"{name}: required for graph={owner!r} (a probability in [0, 1], or a 1-D sweep)")
        elif value is not None and label != owner:
            problems.append(f"{name}: only for graph={owner!r}, got graph={label!r}")


def _graph_constants(graph, label, family_args, coords, seed):
    """(lead dims, neighbour table, degrees, edge list) of the graph(s)."""
    if label in graphs.RANDOM_FAMILIES:
        parameter = graphs.RANDOM_FAMILIES[label]
        values = None if parameter is None else np.asarray(coords[parameter][1], dtype=np.float64)
        seeds = graphs.graph_seeds(seed, coords["member"], parameter, values)
        out = np.empty(seeds.shape, dtype=object)
        for index in np.ndindex(seeds.shape):
            args = dict(family_args)
            if parameter is not None:
                args[parameter] = values[index[1]] if values.ndim else values
            out[index] = graphs.family(label, args, seeds[index])
        lead = ("member",) if seeds.ndim == 1 else ("member", parameter)
    elif label == "ring":
        out, lead = _one(graphs.family("ring", family_args, None)), None
    elif label in graphs.EMPIRICAL:
        out, lead = _one(graphs.empirical(label)), None
    elif label == "graphs":
        out = np.empty(len(graph), dtype=object)
        for i, g in enumerate(graph):  # one by one: numpy would iterate over a Graph's nodes
            out[i] = g
        lead = ("member",)
    else:
        out, lead = _one(graph), None
    table, degrees, edges = graphs.tables(out)
    if lead is None:
        return (), table[0], degrees[0], edges[0]
    return lead, table, degrees, edges


def _node_labels(graph, label) -> np.ndarray | None:
    """The graph's own node labels (a given Graph, the same labels in every Graph of a sequence, or
    an empirical network's, e.g. the characters of Les Miserables), as int64 if every label is an
    integer, else as strings; None where they are just 0..N-1 (the families)."""
    if label == "graph":
        found = list(graph.nodes())
    elif label in graphs.EMPIRICAL:
        found = list(graphs.empirical(label).nodes())
    elif label == "graphs":
        lists = [list(g.nodes()) for g in graph]
        if any(nodes != lists[0] for nodes in lists[1:]):
            return None
        found = lists[0]
    else:
        return None
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in found):
        values = np.asarray(found, dtype=np.int64)
        return None if np.array_equal(values, np.arange(len(found))) else values
    return np.asarray([str(x) for x in found])


def _one(graph) -> np.ndarray:
    """A 1-element object array holding ``graph`` (np.array would iterate over its nodes)."""
    out = np.empty(1, dtype=object)
    out[0] = graph
    return out


def _types(types, coords, labels, seed, n):
    """(lead dims, int8 types): given, or round(f N) anti-coordinators per member from the seed."""
    if types is not None:
        kinds = np.asarray(types)
        members = len(labels)
        if kinds.shape not in ((n,), (members, n)) or not np.isin(kinds, (0, 1)).all():
            raise SchemaError(f"types: expected 0/1 values of shape ({n},) or ({members}, {n}), got shape "
                              f"{kinds.shape} with values {np.unique(kinds)[:5].tolist()}", kind=KIND)
        return (() if kinds.ndim == 1 else ("member",)), kinds.astype(np.int8)
    order = random.initial(random.permutation("node"), seed=seed, members=labels, parameters={}, sizes={"node": n},
                           slot=TYPE_SLOT)
    rank = np.argsort(order, axis=-1)  # rank[m, i]: node i's place in member m's random order
    values = coords["anti_fraction"][1]
    count = np.floor(np.asarray(values, dtype=np.float64) * n + 0.5).astype(np.int64)
    if np.ndim(count) == 0:
        return ("member",), (rank < count).astype(np.int8)
    return ("member", "anti_fraction"), (rank[:, None, :] < count[None, :, None]).astype(np.int8)


def _initial_action(action, start, labels, seed, shape, n):
    """int8 (*shape, n): the given actions, or a fair coin per node and member."""
    if action is not None:
        values = np.asarray(action)
        try:
            out = np.broadcast_to(values, (*shape, n))
        except ValueError:
            raise SchemaError(f"action: expected 0/1 values broadcastable to {(*shape, n)}, got shape {values.shape}",
                              kind=KIND) from None
        if not np.isin(values, (0, 1)).all():
            raise SchemaError(f"action: expected values in [0, 1], got {np.unique(values)[:5].tolist()}", kind=KIND)
        return out.astype(np.int8)
    if start != "random":
        raise SchemaError(f"start: expected 'random' (or pass action=...), got {start!r}", kind=KIND)
    words = random.initial(random.bits("node"), seed=seed, members=labels, parameters={}, sizes={"node": n},
                           slot=ACTION_SLOT)
    coin = (words >= 2**31).astype(np.int8)
    return np.broadcast_to(coin.reshape((len(labels),) + (1,) * (len(shape) - 1) + (n,)), (*shape, n)).copy()


def graph_of(ds, **index):
    """The networkx Graph of one member / graph point of ``ds`` (``index``: e.g. member=0, rewiring=0.1)."""
    import networkx as nx

    table = ds["neighbors"]
    sel = {k: v for k, v in index.items() if k in table.dims}
    table = table.sel(sel).values if sel else table.values
    if table.ndim != 2:
        raise ValueError(f"index: expected values for the graph's lead dims {table.shape[:-2]} "
                         f"({[d for d in ds['neighbors'].dims[:-2]]}), got {index}")
    g = nx.Graph()
    g.add_nodes_from(range(table.shape[0]))
    g.add_edges_from((i, int(j)) for i, row in enumerate(table) for j in row if j >= 0)
    return g


def perturb(ds, flips: int, *, seed: int = 0, slot: int = 3):
    """``ds`` with ``flips`` distinct nodes of every member and point switched (chosen uniformly).

    The nodes are the first ``flips`` of a random order drawn per member and point from the
    initial-state streams of ``seed`` (slot ``slot``); the step attribute is kept, so a run from
    the result continues the step count (and the random streams). Used for resilience: from an equilibrium
    x*, flip k nodes, run best response again, and measure the fraction of members that come back
    to x* and the time they take to re-equilibrate (see ``benchmarks/bench_alignment.py``).
    """
    from ...dataset import point_values, validate

    n = ds.sizes["node"]
    if not isinstance(flips, (int, np.integer)) or isinstance(flips, bool) or not 0 <= flips <= n:
        raise ValueError(f"flips: expected an integer in [0, {n}], got {flips!r}")
    schema = SYSTEM.schema
    coords = {k: (ds[k].dims, ds[k].values, dict(ds[k].attrs)) for k in schema.parameters if k in ds.coords}
    coords["member"] = ds["member"].values
    order = random.initial(random.permutation("node"), seed=seed, members=ds["member"].values,
                           parameters=point_values(coords, schema), sizes={"node": n}, slot=slot)
    chosen = np.argsort(order, axis=-1) < flips
    out = ds.copy()
    out["action"] = ds["action"].copy(data=np.where(chosen, 1 - ds["action"].values, ds["action"].values)
                                      .astype(np.int8))
    return validate(out)


SYSTEM = System(
    kind=KIND,
    create=create,
    operators={
        "best_response": Operator(best_response, prepare=prepare,
                                  draws={"picks": random.integers("node", "picks_per_step"),
                                         "coins": random.bits("picks_per_step")}),
        "synchronous": Operator(synchronous, prepare=prepare, draws={"coins": random.bits("node")}),
    },
    observables={"unsatisfied": unsatisfied, "fraction_a": fraction_a, "discordant_edges": discordant_edges},
    theory=theory,
    example={"graph": "watts_strogatz", "nodes": 10, "degree": 4, "rewiring": [0.0, 0.3], "anti_fraction": 0.2,
             "members": 3, "seed": 5, "tie": "random"},
)

__all__ = ["SYSTEM", "best_response", "create", "discordant_edges", "fraction_a", "graph_of", "graphs",
           "observables", "operators", "perturb", "prepare", "synchronous", "theory", "unsatisfied"]
