"""Graphs for the alignment system: networkx families, empirical networks, padded neighbour tables.

Families (``graph=`` a name; their arguments as keywords of ``create``):

- ``"ring"``: ring lattice, ``nodes`` N, each joined to its ``degree`` k nearest (k even).
- ``"watts_strogatz"``: the ring lattice with every edge rewired with probability ``rewiring``
  (Watts & Strogatz, Nature 393, 440 (1998); ``networkx.watts_strogatz_graph``).
- ``"erdos_renyi"``: G(N, p), p = ``edge_probability`` (``networkx.gnp_random_graph``).
- ``"barabasi_albert"``: preferential attachment, ``attachments`` m edges per new node.
- ``"random_regular"``: a uniformly random ``degree``-regular graph.

Random families draw one graph per member and graph-parameter value: networkx's generator
is seeded with a 64-bit integer from the ensemble seed's initial-state streams (slot
:data:`GRAPH_SLOT`), keyed by the member label and the values of ``rewiring`` or
``edge_probability`` only, so the same member has the same graph at every ``anti_fraction``
or ``threshold``. The graph is stored in the Dataset; a run never calls networkx.

Empirical networks (bundled with networkx, BSD-3-Clause; see ``data/README.md``):

- ``"karate"``: Zachary's karate club, 34 nodes, 78 edges (Zachary, J. Anthropol. Res. 33, 452 (1977)).
- ``"les_miserables"``: co-appearances in Hugo's novel, 77 nodes, 254 edges (Knuth, The Stanford
  GraphBase (1993)), as the unweighted graph of who meets whom (networkx's co-appearance counts
  are not used: pass ``networkx.les_miserables_graph()`` itself to be told so).
- ``"florentine"``: marriages between Renaissance Florentine families, 15 nodes, 20 edges
  (Breiger & Pattison, Social Networks 8, 215 (1986); Padgett & Ansell (1993)).
- ``"davis"``: Davis' southern women and the events they attended (bipartite), 32 nodes, 89 edges
  (Davis, Gardner & Gardner, Deep South (1941)).
"""
from __future__ import annotations

import numpy as np

from ... import random
from ...errors import SchemaError
from ...schema import MAX_SIZE

MAX_NODES = 10**7  # a family graph is built in networkx first (about a kilobyte per node and edge)

KIND = "alignment"
GRAPH_SLOT = 2  # initial-state stream slot of the graph seeds (0: actions, 1: types)
FAMILIES = ("ring", "watts_strogatz", "erdos_renyi", "barabasi_albert", "random_regular")
EMPIRICAL = ("karate", "les_miserables", "florentine", "davis")
RANDOM_FAMILIES = {"watts_strogatz": "rewiring", "erdos_renyi": "edge_probability", "barabasi_albert": None,
                   "random_regular": None}
FAMILY_ARGS = {"ring": ("nodes", "degree"), "watts_strogatz": ("nodes", "degree"), "erdos_renyi": ("nodes",),
               "barabasi_albert": ("nodes", "attachments"), "random_regular": ("nodes", "degree")}


def empirical(name: str):
    """One of the empirical networks bundled with networkx, as an unweighted simple graph."""
    import networkx as nx

    loaders = {"karate": nx.karate_club_graph, "les_miserables": nx.les_miserables_graph,
               "florentine": nx.florentine_families_graph, "davis": nx.davis_southern_women_graph}
    if name not in loaders:
        raise SchemaError(f"graph: expected one of {list(loaders)}, got {name!r}", kind=KIND)
    return _unweighted(loaders[name]())


def _unweighted(graph):
    import networkx as nx

    out = nx.Graph()
    out.add_nodes_from(graph.nodes())
    out.add_edges_from(graph.edges())
    return out


def check_graph(graph, what: str = "graph"):
    """``graph`` as a simple undirected networkx Graph with nodes relabelled 0..N-1 (in node order)."""
    import networkx as nx

    if not isinstance(graph, nx.Graph):
        raise SchemaError(f"{what}: expected a networkx Graph, a family name {list(FAMILIES)} or an empirical "
                          f"network {list(EMPIRICAL)}, got {type(graph).__name__}", kind=KIND)
    if graph.is_directed() or graph.is_multigraph():
        raise SchemaError(f"{what}: expected a simple undirected graph, got a "
                          f"{'directed' if graph.is_directed() else 'multi'}graph {type(graph).__name__}", kind=KIND)
    if graph.number_of_nodes() == 0:
        raise SchemaError(f"{what}: expected at least one node, got an empty graph", kind=KIND)
    weighted = [(u, v) for u, v, data in graph.edges(data=True) if "weight" in data]
    if weighted:
        raise SchemaError(f"{what}: expected an unweighted graph (the threshold model counts each neighbour once), "
                          f"got 'weight' on {len(weighted)} of {graph.number_of_edges()} edges, e.g. {weighted[0]}; "
                          f"weights are not dropped silently: pass an unweighted copy (g = nx.Graph(); "
                          f"g.add_nodes_from(graph); g.add_edges_from(graph.edges()))", kind=KIND)
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise SchemaError(f"{what}: expected no self-loops (a node is not its own neighbour), got {loops[:3]}",
                          kind=KIND)
    return nx.convert_node_labels_to_integers(graph, ordering="default")


def neighbor_table(graph, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(neighbors int32 (N, width) padded with -1, each row increasing; degree int32 (N,))."""
    n = graph.number_of_nodes()
    degree = np.array([graph.degree(i) for i in range(n)], dtype=np.int32)
    width = max(1, int(degree.max(initial=0))) if width is None else width
    table = np.full((n, width), -1, dtype=np.int32)
    for i in range(n):
        row = sorted(graph.neighbors(i))
        table[i, :len(row)] = row
    return table, degree


def tables(graphs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded tables of an object array of graphs (any shape), to a common width.

    Returns neighbours int32 (*shape, N, K), degrees int32 (*shape, N) and the edge list int32
    (*shape, E, 2): each edge once as (i, j), i < j, in increasing order, padded with -1 rows up
    to the largest edge count E.
    """
    flat = [check_graph(g) for g in graphs.reshape(-1)]
    sizes = {g.number_of_nodes() for g in flat}
    if len(sizes) != 1:
        raise SchemaError(f"graph: expected graphs with the same number of nodes, got sizes {sorted(sizes)}", kind=KIND)
    width = max(1, max(max((d for _, d in g.degree()), default=0) for g in flat))
    pairs = [neighbor_table(g, width) for g in flat]
    n = sizes.pop()
    count = max(g.number_of_edges() for g in flat)
    edges = np.full((len(flat), count, 2), -1, dtype=np.int32)
    for e, g in enumerate(flat):
        listed = sorted((min(u, v), max(u, v)) for u, v in g.edges())
        edges[e, :len(listed)] = np.asarray(listed, dtype=np.int32).reshape(-1, 2)
    return (np.stack([p[0] for p in pairs]).reshape(*graphs.shape, n, width),
            np.stack([p[1] for p in pairs]).reshape(*graphs.shape, n), edges.reshape(*graphs.shape, count, 2))


def family(name: str, args: dict, seed: int | None):
    """One graph of a family; ``args`` holds nodes, degree, attachments, rewiring, edge_probability."""
    import networkx as nx

    n, k = args.get("nodes"), args.get("degree")
    if name == "ring":
        return nx.watts_strogatz_graph(n, k, 0.0)
    if name == "watts_strogatz":
        return nx.watts_strogatz_graph(n, k, float(args["rewiring"]), seed=seed)
    if name == "erdos_renyi":
        return nx.gnp_random_graph(n, float(args["edge_probability"]), seed=seed)
    if name == "barabasi_albert":
        return nx.barabasi_albert_graph(n, args["attachments"], seed=seed)
    return nx.random_regular_graph(k, n, seed=seed)


def check_family_args(name: str, args: dict) -> None:
    """One SchemaError naming every bad family argument."""
    problems = []
    n = args.get("nodes")
    if not _int_at_least(n, 1) or n > MAX_NODES:
        problems.append(f"nodes: expected an integer >= 1, at most {MAX_NODES:,}, for graph={name!r}, got {n!r}")
    if "degree" in FAMILY_ARGS[name]:
        k = args.get("degree")
        even = name in ("ring", "watts_strogatz")
        if not _int_at_least(k, 0 if not even else 2) or (even and k % 2):
            want = "an even integer >= 2" if even else "an integer >= 0"
            problems.append(f"degree: expected {want} for graph={name!r}, got {k!r}")
        elif _int_at_least(n, 1) and k >= n:
            problems.append(f"degree: expected an integer < nodes = {n} for graph={name!r}, got {k!r}")
        elif name == "random_regular" and _int_at_least(n, 1) and (n * k) % 2:
            problems.append(f"degree: expected nodes * degree even for a {k}-regular graph on {n} nodes, got {n * k}")
    if name == "barabasi_albert":
        m = args.get("attachments")
        if not _int_at_least(m, 1) or (_int_at_least(n, 1) and m >= n):
            problems.append(f"attachments: expected an integer in [1, nodes) for graph='barabasi_albert', got {m!r}")
    if problems:
        raise SchemaError(problems, kind=KIND)


def _int_at_least(value, low: int) -> bool:
    """An integer in [low, MAX_SIZE] (a node count or degree beyond that cannot be laid out)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= MAX_SIZE


def graph_seeds(seed: int, members: np.ndarray, parameter: str | None, values: np.ndarray | None) -> np.ndarray:
    """networkx seeds (Python ints in an object array), (members,) or (members, len(values)).

    Keyed by the member label and the graph parameter's value (not by the other parameters).
    """
    params = {} if parameter is None or values is None else {parameter: np.asarray(values, dtype=np.float64)}
    words = random.initial(random.bits(2), seed=seed, members=members, parameters=params, sizes={},
                           slot=GRAPH_SLOT)
    out = np.empty(words.shape[:-1], dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = int(words[index][0]) | int(words[index][1]) << 32
    return out
