"""graphnet.Graph and adjacency(): orientation, validation, transforms and round-trips to other formats."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphnet.errors import GraphError
from graphnet.graph import Graph, adjacency


def edges_of(g: Graph) -> list[tuple[int, int, float]]:
    """Sorted (src, dst, weight) triples."""
    return sorted(zip(g.src.tolist(), g.dst.tolist(), g.A.val.tolist(), strict=True))


# ------------------------------------------------------------------------------------------ orientation
def test_orientation_edge_j_to_i_is_A_i_j():
    g = Graph.from_edges([0, 0, 2], [1, 2, 1], 3, weight=[2.0, 3.0, 5.0])
    D = g.A.to_dense()
    assert D[1, 0] == 2.0 and D[2, 0] == 3.0 and D[1, 2] == 5.0 and D[0, 1] == 0.0
    X = torch.tensor([[1.0], [10.0], [100.0]])
    assert (D @ X).flatten().tolist() == [0.0, 2.0 + 500.0, 3.0]  # sums over in-neighbours
    assert g.src.tolist() == [0, 0, 2] and g.dst.tolist() == [1, 2, 1]
    assert g.edge_index().tolist() == [[0, 0, 2], [1, 2, 1]]


def test_bipartite_shape_is_dst_by_src():
    A = adjacency([0, 3], [1, 2], (3, 4))
    assert A.shape == (3, 4) and A.to_dense()[1, 0] == 1.0 and A.to_dense()[2, 3] == 1.0


def test_properties_and_edge_order_kept(tiny_graph_catalog):
    case = tiny_graph_catalog["multi_relation"]
    g = case.graph()
    assert g.num_nodes == 6 and g.num_edges == case.num_edges
    assert g.src.tolist() == list(case.src) and g.dst.tolist() == list(case.dst)  # listing order kept
    assert g.edge_weight.tolist() == list(case.weight) and g.edge_type.tolist() == list(case.edge_type)


# ------------------------------------------------------------------------------------------ validation
def test_adjacency_rejects_bad_input():
    with pytest.raises(GraphError, match=r"src: node id 5 out of range, expected 0 <= id < 3"):
        adjacency([0, 5], [1, 2], 3)
    with pytest.raises(GraphError, match=r"dst: node id -1 out of range"):
        adjacency([0, 1], [1, -1], 3)
    with pytest.raises(GraphError, match="same length, got 2 and 1"):
        adjacency([0, 1], [1], 3)
    with pytest.raises(GraphError, match="expected integer node ids"):
        adjacency([0.5], [1.0], 3)
    with pytest.raises(GraphError, match=r"weight: expected 2 values \(one per edge\), got shape \(3,\)"):
        adjacency([0, 1], [1, 2], 3, weight=[1.0, 2.0, 3.0])
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(GraphError, match="expected finite edge weights"):
            adjacency([0, 1], [1, 2], 3, weight=[1.0, bad])
    with pytest.raises(GraphError, match="at least one node"):
        adjacency([], [], 0)
    with pytest.raises(GraphError, match="at least one node"):
        adjacency([], [])


def test_adjacency_defaults_and_dtypes():
    A = adjacency([0, 2], [1, 0])
    assert A.shape == (3, 3) and A.val.dtype == torch.float32 and A.val.tolist() == [1.0, 1.0]
    assert adjacency([0], [1], 2, weight=np.array([0.5])).val.dtype == torch.float32  # numpy -> float32
    assert adjacency([0], [1], 2, weight=torch.tensor([0.5], dtype=torch.float64)).val.dtype == torch.float64
    assert adjacency([], [], 4).nnz == 0  # edgeless graphs are fine
    assert adjacency(torch.tensor([0.0, 1.0]), [1, 0]).nnz == 2  # integral floats accepted


def test_graph_validates_fields():
    A = adjacency([0, 1], [1, 2], 3)
    with pytest.raises(GraphError, match="A: expected a dgl.sparse.SparseMatrix, got Tensor"):
        Graph(A=A.to_dense())
    with pytest.raises(GraphError, match=r"X: expected 3 rows \(one per node\), got shape \(2, 4\)"):
        Graph(A=A, X=torch.zeros(2, 4))
    with pytest.raises(GraphError, match=r"y: expected 3 entries"):
        Graph(A=A, y=torch.zeros(4, dtype=torch.long))
    with pytest.raises(GraphError, match=r"edge_feat: expected 2 rows \(one per edge\)"):
        Graph(A=A, edge_feat=torch.zeros(3, 2))
    with pytest.raises(GraphError, match=r"edge_type: expected 2 rows"):
        Graph(A=A, edge_type=torch.zeros(1, dtype=torch.long))
    with pytest.raises(GraphError, match=r"splits\['train'\]: node index out of range 0..2"):
        Graph(A=A, splits={"train": torch.tensor([0, 3])})
    with pytest.raises(GraphError, match=r"edge_index: expected shape \(2, E\), got \(3, 2\)"):
        Graph.from_edge_index(torch.zeros(3, 2, dtype=torch.long))


# ------------------------------------------------------------------------------------------ transforms
def test_symmetrize_max_and_sum():
    once = Graph.from_edges([0], [1], 2, weight=[3.0])
    assert edges_of(once.symmetrize()) == [(0, 1, 3.0), (1, 0, 3.0)]
    assert edges_of(once.symmetrize("sum")) == [(0, 1, 3.0), (1, 0, 3.0)]
    both = Graph.from_edges([0, 1, 0], [1, 0, 1], 2, weight=[3.0, 3.0, 3.0])  # pair listed 3 times
    assert edges_of(both.symmetrize()) == [(0, 1, 3.0), (1, 0, 3.0)]  # max: stays the edge's weight
    assert edges_of(both.symmetrize("sum")) == [(0, 1, 9.0), (1, 0, 9.0)]  # sum: A + A^T, duplicates summed
    loop = Graph.from_edges([0, 0], [0, 1], 2, weight=[2.0, 1.0]).symmetrize()
    assert edges_of(loop) == [(0, 0, 2.0), (0, 1, 1.0), (1, 0, 1.0)]
    D = Graph.from_edges([0, 1, 2], [1, 2, 0], 3, weight=[1.0, 2.0, 3.0]).symmetrize().A.to_dense()
    assert torch.equal(D, D.T)


def test_symmetrize_and_add_self_loops_refuse_edge_data():
    g = Graph.from_edges([0], [1], 2, edge_type=torch.tensor([0]))
    with pytest.raises(GraphError, match="symmetrize: edge features/types have no defined reverse"):
        g.symmetrize()
    with pytest.raises(GraphError, match="add_self_loops"):
        g.add_self_loops()
    with pytest.raises(GraphError, match="symmetrize: expected a square adjacency"):
        Graph(A=adjacency([0], [1], (2, 3))).symmetrize()


def test_self_loops_add_and_remove():
    g = Graph.from_edges([0, 1], [1, 1], 3, weight=[2.0, 5.0])
    loops = g.add_self_loops(weight=0.5)
    assert edges_of(loops) == [(0, 0, 0.5), (0, 1, 2.0), (1, 1, 5.0), (2, 2, 0.5)]
    typed = Graph.from_edges(
        [0, 1, 2],
        [0, 2, 2],
        3,
        edge_type=torch.tensor([4, 5, 6]),
        edge_feat=torch.tensor([[1.0], [2.0], [3.0]]),
    )
    r = typed.remove_self_loops()
    assert edges_of(r) == [(1, 2, 1.0)] and r.edge_type.tolist() == [5] and r.edge_feat.tolist() == [[2.0]]


def test_coalesce_sums_or_maxes_duplicates():
    g = Graph.from_edges([0, 0, 1, 0], [1, 1, 2, 1], 3, weight=[1.0, 2.0, 4.0, 0.5])
    assert edges_of(g.coalesce()) == [(0, 1, 3.5), (1, 2, 4.0)]
    assert edges_of(g.coalesce("max")) == [(0, 1, 2.0), (1, 2, 4.0)]
    typed = Graph.from_edges(
        [0, 0, 0], [1, 1, 1], 2, weight=[1.0, 2.0, 4.0], edge_type=torch.tensor([0, 1, 0])
    )
    c = typed.coalesce()
    assert sorted(zip(c.edge_type.tolist(), c.A.val.tolist(), strict=True)) == [
        (0, 5.0),
        (1, 2.0),
    ]  # one edge per relation
    with pytest.raises(GraphError, match="reduce must be 'sum' or 'max', got 'mean'"):
        g.coalesce("mean")
    with pytest.raises(GraphError, match="edge features of duplicate edges cannot be merged"):
        Graph.from_edges([0], [1], 2, edge_feat=torch.ones(1, 2)).coalesce()


def test_to_device_moves_everything(device):
    g = Graph.from_edges(
        [0, 1],
        [1, 2],
        3,
        X=torch.ones(3, 2),
        y=torch.zeros(3, dtype=torch.long),
        splits={"train": torch.tensor([0])},
        edge_type=torch.tensor([0, 1]),
    )
    h = g.to(device)
    assert h.A.device.type == device.type and h.X.device.type == device.type
    assert h.splits["train"].device.type == device.type and h.edge_type.device.type == device.type


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.tiny_graphs(require=("square",))
def test_round_trip_edge_index(tiny_graph):
    g = Graph(A=tiny_graph.adjacency())
    back = Graph.from_edge_index(g.edge_index(), tiny_graph.shape[0], edge_weight=g.A.val)
    assert edges_of(back) == edges_of(g)


@pytest.mark.tiny_graphs(require=("square",))
def test_round_trip_scipy(tiny_graph):
    g = Graph(A=tiny_graph.adjacency())
    M = g.to_scipy()
    assert M.shape == tiny_graph.shape
    summed = {}  # (u, v) -> total weight of the u -> v edges (duplicates summed, as tocsr does)
    for s, d, w in zip(tiny_graph.src, tiny_graph.dst, tiny_graph.weights().tolist(), strict=True):
        summed[(s, d)] = summed.get((s, d), 0.0) + w
    csr = M.tocsr()
    assert csr.nnz == len(summed)
    for (s, d), w in summed.items():
        assert csr[s, d] == pytest.approx(w, rel=1e-12)  # M[u, v] = weight of u -> v
    assert edges_of(Graph.from_scipy(M)) == edges_of(g)


def test_scipy_orientation_by_hand():
    M = sp.coo_array(([2.0], ([0], [1])), shape=(3, 3))  # scipy/networkx: M[u, v] = edge u -> v
    g = Graph.from_scipy(M)
    assert g.src.tolist() == [0] and g.dst.tolist() == [1] and g.A.to_dense()[1, 0] == 2.0
    # scipy's float64 data becomes float32, as from_edges does with a numpy array: the layers' dtype
    assert g.A.val.dtype == Graph.from_edges([0], [1], 3, np.array([2.0])).A.val.dtype == torch.float32
    with pytest.raises(GraphError, match="from_scipy: expected a square matrix"):
        Graph.from_scipy(sp.coo_array((2, 3)))
    with pytest.raises(GraphError, match="to_scipy: expected scalar edge weights"):
        import dgl.sparse as dglsp

        Graph(A=dglsp.val_like(g.A, torch.ones(1, 2))).to_scipy()


@pytest.mark.tiny_graphs(require=("square",))
def test_round_trip_networkx(tiny_graph):
    g = Graph(A=tiny_graph.adjacency())
    G = g.to_networkx()
    assert isinstance(G, nx.MultiDiGraph if "multi_edge" in tiny_graph.tags else nx.DiGraph)
    assert G.number_of_nodes() == tiny_graph.shape[0] and G.number_of_edges() == tiny_graph.num_edges
    assert edges_of(Graph.from_networkx(G)) == edges_of(g)


def test_networkx_orientation_by_hand():
    # networkx: a DiGraph edge (u, v) is u -> v, i.e. A[v, u] in graphnet's A[dst, src]
    G = Graph.from_edges([0], [1], 2, weight=[2.0]).to_networkx()
    assert list(G.edges(data="weight")) == [(0, 1, 2.0)]
    D = Graph.from_networkx(nx.DiGraph([(0, 1)])).A.to_dense()
    assert D.tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_from_networkx_undirected_weights_and_names():
    G = nx.Graph()
    G.add_edge("a", "b", weight=2.0)
    G.add_edge("b", "c")  # no attribute -> weight 1
    G.add_edge("c", "c", weight=4.0)  # a self-loop is added once
    g = Graph.from_networkx(G)
    assert g.meta["node_names"] == ["a", "b", "c"]
    assert edges_of(g) == [(0, 1, 2.0), (1, 0, 2.0), (1, 2, 1.0), (2, 1, 1.0), (2, 2, 4.0)]
    assert {w for *_, w in edges_of(Graph.from_networkx(G, weight=None))} == {1.0}
    karate = Graph.from_networkx(nx.karate_club_graph())
    assert karate.num_nodes == 34 and karate.num_edges == 2 * 78
    D = karate.A.to_dense()
    assert torch.equal(D, D.T)


@pytest.mark.tiny_graphs(require=("square",))
def test_round_trip_dgl(tiny_graph):
    g = Graph(
        A=tiny_graph.adjacency(),
        X=torch.ones(tiny_graph.shape[0], 2),
        y=torch.arange(tiny_graph.shape[0]),
        edge_type=tiny_graph.edge_types(),
    )
    d = g.to_dgl()
    src, dst = d.edges()
    assert src.tolist() == list(tiny_graph.src) and dst.tolist() == list(tiny_graph.dst)  # DGL is src -> dst
    assert torch.equal(d.in_degrees(), torch.bincount(g.dst, minlength=g.num_nodes))
    assert torch.equal(d.edata["w"], g.A.val) and torch.equal(d.ndata["label"], g.y)
    if g.edge_type is not None:
        assert torch.equal(d.edata["etype"], g.edge_type)
    back = Graph.from_dgl(d, weight="w")
    assert edges_of(back) == edges_of(g) and back.num_nodes == g.num_nodes
    assert torch.equal(back.X, g.X) and torch.equal(back.y, g.y)
    assert (back.edge_type is None) == (g.edge_type is None)
    if g.edge_type is not None:
        assert torch.equal(back.edge_type, g.edge_type)


def test_from_dgl_reads_dgl_dataset_names_and_round_trips_every_field():
    """A graph laid out as dgl.data's CoraGraphDataset (ndata feat/label/*_mask, bool masks) and back."""
    import dgl

    src, dst = torch.tensor([0, 1, 2, 3, 3]), torch.tensor([1, 2, 0, 0, 1])
    d = dgl.graph((src, dst), num_nodes=5)
    d.ndata["feat"] = torch.arange(10.0).view(5, 2)
    d.ndata["label"] = torch.tensor([0, 1, 0, 1, 1])
    d.ndata["train_mask"] = torch.tensor([True, True, False, False, False])
    d.ndata["val_mask"] = torch.tensor([False, False, True, False, False])
    d.ndata["test_mask"] = torch.tensor([False, False, False, True, True])
    d.ndata["year"] = torch.tensor([1, 2, 3, 4, 5])  # not a convention: ignored
    d.edata["feat"] = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5])  # (E,): one feature per edge
    d.edata["etype"] = torch.tensor([0, 1, 0, 2, 1])
    d.edata["w"] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    g = Graph.from_dgl(d, weight="w")
    assert g.src.tolist() == src.tolist() and g.dst.tolist() == dst.tolist()  # edge order kept
    assert g.edge_weight.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert torch.equal(g.X, d.ndata["feat"]) and torch.equal(g.y, d.ndata["label"])
    assert {k: v.tolist() for k, v in g.splits.items()} == {"train": [0, 1], "val": [2], "test": [3, 4]}
    assert g.edge_feat.tolist() == [[0.5], [1.5], [2.5], [3.5], [4.5]]
    assert torch.equal(g.edge_type, d.edata["etype"])
    # explicit fields win over the adopted ones
    assert Graph.from_dgl(d, y=torch.zeros(5, dtype=torch.long)).y.tolist() == [0] * 5
    assert Graph.from_dgl(d).edge_weight.tolist() == [1.0] * 5  # no weight named: ones, as in DGL
    # and back: to_dgl writes the same names, with each split as a boolean mask
    e = g.to_dgl()
    for key in ("feat", "label", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(e.ndata[key], d.ndata[key]), key
    assert torch.equal(e.edata["feat"], g.edge_feat) and torch.equal(e.edata["w"], d.edata["w"])
