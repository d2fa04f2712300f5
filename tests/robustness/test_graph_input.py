"""Malformed input to the Graph constructors, ops and tasks: a GraphError naming the argument, raised by
graphnet, never a TypeError/IndexError from deep inside torch, numpy or DGL. Valid but unusual graphs
(empty, isolated nodes, duplicate edges, self-loops) work and behave as documented.

Cases marked xfail(strict) are bugs found by this suite (reason = what is wrong; docs/robustness.md has
the fixes).
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphnet import ops
from graphnet.config import TrainConfig
from graphnet.errors import GraphError
from graphnet.graph import Graph, adjacency
from graphnet.tasks import TASKS
from graphnet.train import Trainer
from tests.robustness._support import raises_clear

NAN, INF = float("nan"), float("inf")


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


def case(cid, call, *fragments, marks=()):
    return pytest.param(call, fragments, id=cid, marks=marks)


def path3(**fields):
    return Graph.from_edges([0, 1], [1, 2], 3, **fields)


def dgl_graph(weight_key=None):
    import dgl

    g = dgl.graph(([0, 1], [1, 2]))
    if weight_key:
        g.edata[weight_key] = torch.tensor([1.0, NAN])
    return g


def dgl_hetero():
    import dgl

    return dgl.heterograph({("user", "rates", "item"): ([0], [1])})


def nx_graph(**attrs):
    G = nx.Graph()
    G.add_edge("a", "b", **attrs)
    return G


GRAPH_CASES = [
    # ids
    case("src-dst-length-mismatch", lambda: Graph.from_edges([0, 1], [1]), "src and dst", "2 and 1"),
    case("negative-node-id", lambda: Graph.from_edges([-1], [0], 2), "src", "-1"),
    case("node-id-beyond-num-nodes", lambda: Graph.from_edges([0], [5], 3), "dst", "5", "< 3"),
    case("fractional-float-ids", lambda: Graph.from_edges([0.5], [1.0]), "src", "integer"),
    case("nan-node-id", lambda: Graph.from_edges([NAN], [0]), "src", "integer"),
    case("bool-node-ids", lambda: Graph.from_edges(torch.tensor([True]), torch.tensor([False])), "src",
         "bool"),
    case("string-node-ids", lambda: Graph.from_edges(["a", "b"], ["b", "c"]), "src"),
    case("none-as-src", lambda: Graph.from_edges(None, [0]), "src"),
    case("id-beyond-int64", lambda: Graph.from_edges([2**64], [0]), "src"),
    case("inf-node-id", lambda: Graph.from_edges([INF], [0]), "src", "inf"),
    case("2d-src-is-flattened", lambda: Graph.from_edges([[0, 1], [1, 0]], [[1, 0], [0, 1]]), "src",
         "1-D"),
    case("num-nodes-zero", lambda: Graph.from_edges([], [], 0), "num_nodes", "at least one node"),
    case("empty-without-num-nodes", lambda: Graph.from_edges([], []), "num_nodes"),
    case("num-nodes-string", lambda: Graph.from_edges([0], [1], "3"), "num_nodes"),
    case("num-nodes-float", lambda: Graph.from_edges([0], [1], 3.5), "num_nodes"),
    # weights
    case("nan-weight", lambda: Graph.from_edges([0, 1], [1, 2], weight=[1.0, NAN]), "weight", "nan",
         "edge 1"),
    case("inf-weight-tensor", lambda: Graph.from_edges([0], [1], weight=torch.tensor([INF])), "weight",
         "inf"),
    case("weight-count", lambda: Graph.from_edges([0, 1], [1, 0], weight=[1.0]), "weight", "2 values"),
    case("scalar-weight", lambda: Graph.from_edges([0], [1], weight=1.0), "weight"),
    case("string-weights", lambda: Graph.from_edges([0], [1], weight=["heavy"]), "weight"),
    case("complex-weights", lambda: Graph.from_edges([0], [1], weight=torch.tensor([1j])), "weight",
         "complex"),
    # fields
    case("A-not-sparse", lambda: Graph(A=torch.eye(2)), "A", "SparseMatrix"),
    case("X-rows", lambda: path3(X=torch.ones(2, 4)), "X", "3 rows"),
    case("y-rows", lambda: path3(y=torch.zeros(4, dtype=torch.long)), "y", "3 entries"),
    case("edge-feat-rows", lambda: path3(edge_feat=torch.ones(3, 2)), "edge_feat", "2 rows"),
    case("edge-type-rows", lambda: path3(edge_type=torch.zeros(1, dtype=torch.long)), "edge_type"),
    case("split-index-out-of-range", lambda: path3(splits={"train": torch.tensor([0, 7])}), "splits['train']",
         "out of range"),
    case("nan-features", lambda: path3(X=torch.tensor([[1.0], [NAN], [0.0]])), "X", "finite"),
    case("inf-edge-features", lambda: path3(edge_feat=torch.tensor([[1.0], [INF]])), "edge_feat", "finite"),
    case("1d-features", lambda: path3(X=torch.ones(3)), "X", "(N, F)"),
    case("1d-edge-features", lambda: path3(edge_feat=torch.ones(2)), "edge_feat", "(E, d)"),
    case("numpy-features", lambda: path3(X=np.ones((3, 2))), "X", "Tensor"),
    case("float-split-indices", lambda: path3(splits={"train": torch.tensor([0.5])}), "splits['train']",
         "integer"),
    case("list-split-indices", lambda: path3(splits={"train": [0, 1]}), "splits['train']"),
    case("negative-edge-type", lambda: path3(edge_type=torch.tensor([0, -1])), "edge_type", "-1"),
    case("float-edge-type", lambda: path3(edge_type=torch.tensor([0.0, 0.5])), "edge_type", "integer"),
    # other constructors
    case("edge-index-three-rows", lambda: Graph.from_edge_index(torch.zeros(3, 2, dtype=torch.long)),
         "edge_index", "(2, E)"),
    case("edge-index-1d", lambda: Graph.from_edge_index(torch.zeros(4, dtype=torch.long)), "edge_index"),
    case("scipy-non-square", lambda: Graph.from_scipy(sp.coo_array(np.ones((2, 3)))), "square", "(2, 3)"),
    case("scipy-nan-entry", lambda: Graph.from_scipy(sp.coo_array(np.array([[0.0, NAN], [1.0, 0.0]]))),
         "weight", "nan"),
    case("scipy-empty", lambda: Graph.from_scipy(sp.coo_array((0, 0))), "num_nodes"),
    case("scipy-given-dense-array", lambda: Graph.from_scipy(np.ones((2, 2))), "from_scipy"),
    case("networkx-nan-weight", lambda: Graph.from_networkx(nx_graph(weight=NAN)), "weight", "nan"),
    case("networkx-empty", lambda: Graph.from_networkx(nx.Graph()), "num_nodes"),
    case("networkx-string-weight", lambda: Graph.from_networkx(nx_graph(weight="heavy")), "weight",
         "'heavy'"),
    case("networkx-not-a-graph", lambda: Graph.from_networkx([("a", "b")]), "from_networkx"),
    case("dgl-nan-weight", lambda: Graph.from_dgl(dgl_graph("w"), weight="w"), "weight", "nan"),
    case("dgl-missing-weight-key", lambda: Graph.from_dgl(dgl_graph(), weight="w"), "'w'", "edata"),
    case("dgl-heterograph", lambda: Graph.from_dgl(dgl_hetero()), "from_dgl", "homogeneous"),
    # ops
    case("gcn-norm-negative-weight", lambda: ops.gcn_norm(Graph.from_edges([0], [1], weight=[-1.0]).A),
         "gcn_norm", "non-negative", "-1.0"),
    case("row-norm-inf-weight", lambda: ops.row_norm(_bypass_weights([INF])), "row_norm", "inf"),
    case("gcn-norm-nan-bypassing-constructor", lambda: ops.gcn_norm(_bypass_weights([NAN])), "gcn_norm",
         "nan"),
    case("row-norm-negative-degree", lambda: ops.row_norm(Graph.from_edges([0], [1], weight=[-2.0]).A),
         "row_norm", "-2.0"),
    case("row-norm-zero-degree-signed",
         lambda: ops.row_norm(Graph.from_edges([0, 2], [1, 1], 3, weight=[-1.0, 1.0]).A), "row_norm",
         "node 1", "<= 0"),
    case("col-norm-negative-degree", lambda: ops.col_norm(Graph.from_edges([0], [1], weight=[-2.0]).A),
         "col_norm", "-2.0"),
    case("uint64-id-beyond-int64", lambda: Graph.from_edges(np.array([2**64 - 1], dtype=np.uint64), [0]),
         "src", "out of range"),
    # found by the fuzz (2026-12-07): N = max id + 1 = 2**63 overflowed int64 inside torch (RuntimeError)
    case("max-int64-id-without-num-nodes", lambda: Graph.from_edges([0], [2**63 - 1]), "src/dst",
         "9223372036854775807", "< 2**63 - 1"),
    case("num-nodes-beyond-int64", lambda: Graph.from_edges([0], [1], 2**63), "num_nodes", "2**63 - 1"),
    case("spmm-shape", lambda: ops.spmm(path3().A, torch.ones(2, 4)), "spmm", "3 columns", "(2, 4)"),
    case("spmm-multihead-values-2d-x", lambda: ops.spmm(path3(weight=torch.ones(2, 4)).A, torch.ones(3, 5)),
         "spmm", "(3, 5)"),
    case("drop-edges-p-one", lambda: ops.drop_edges(path3().A, 1.0), "drop_edges", "p=1.0"),
    case("coalesce-unknown-reduce", lambda: path3().coalesce("mean"), "coalesce", "'mean'"),
    case("symmetrize-bipartite", lambda: Graph(A=adjacency([0], [1], (3, 2))).symmetrize(), "symmetrize",
         "square"),
    case("self-loops-bipartite", lambda: ops.add_self_loops(adjacency([0], [1], (3, 2))), "add_self_loops",
         "square"),
]


def _bypass_weights(vals):
    """An adjacency whose values never went through Graph validation (e.g. built by a layer)."""
    import dgl.sparse as dglsp

    return dglsp.spmatrix(torch.tensor([[1], [0]]), torch.tensor(vals), (2, 2))


@pytest.mark.parametrize(("call", "fragments"), GRAPH_CASES)
def test_malformed_graph_input_gives_a_graph_error(call, fragments):
    with raises_clear(GraphError, *fragments):
        call()


# ------------------------------------------------------------------------------------ valid edge cases
def test_empty_graph_with_nodes_works_everywhere():
    g = Graph.from_edges([], [], 3, X=torch.ones(3, 2))
    assert g.num_edges == 0 and g.symmetrize().num_edges == 0 and g.coalesce().num_edges == 0
    assert torch.equal(ops.spmm(g.A, g.X), torch.zeros(3, 2))
    assert ops.gcn_norm(g.A, self_loops=False).nnz == 0
    assert torch.equal(ops.gcn_norm(g.A).to_dense(), torch.eye(3))  # only the added loops, degree 1
    assert torch.equal(ops.row_norm(g.A).val, torch.zeros(0))


def test_isolated_nodes_get_zero_rows_not_nan():
    g = Graph.from_edges([0], [1], 4)  # nodes 2, 3 isolated
    A = ops.gcn_norm(g.A, self_loops=False).to_dense()
    assert torch.isfinite(A).all() and A[2:].abs().sum() == 0 and A[:, 2:].abs().sum() == 0
    A_loops = ops.gcn_norm(g.A).to_dense()
    assert A_loops[2, 2] == 1 and A_loops[3, 3] == 1  # an isolated node with a self-loop keeps itself
    assert torch.equal(ops.row_norm(g.A).to_dense()[2:], torch.zeros(2, 4))


def test_duplicate_edges_are_kept_then_summed_or_maxed_by_coalesce():
    g = Graph.from_edges([0, 0, 1], [1, 1, 0], weight=[2.0, 3.0, 1.0])
    assert g.num_edges == 3  # duplicates are kept by the constructor (documented)
    assert g.coalesce().A.to_dense()[1, 0] == 5.0 and g.coalesce("max").A.to_dense()[1, 0] == 3.0
    # a duplicated edge counts twice in the weighted degree: gcn_norm equals that of the coalesced graph
    assert torch.allclose(ops.gcn_norm(g.A).to_dense(), ops.gcn_norm(g.coalesce().A).to_dense())


def test_self_loops_are_kept_and_not_doubled_by_add_self_loops():
    g = Graph.from_edges([0, 1], [0, 2], 3, weight=[4.0, 1.0])
    A = g.add_self_loops(weight=1.0).A.to_dense()
    assert A[0, 0] == 4.0 and A[1, 1] == 1.0 and A[2, 2] == 1.0  # existing loop untouched
    assert g.symmetrize().A.to_dense()[0, 0] == 4.0  # a loop is its own reverse: not doubled
    assert g.remove_self_loops().num_edges == 1


def test_negative_weights_are_valid_for_plain_sums():
    g = Graph.from_edges([0, 1], [1, 0], weight=[-2.0, 1.0])
    assert torch.equal(ops.spmm(g.A, torch.ones(2, 1)).squeeze(1), torch.tensor([1.0, -2.0]))
    R = ops.row_norm(Graph.from_edges([0, 1], [2, 2], weight=[-1.0, 3.0]).A).to_dense()
    assert torch.equal(R[2, :2], torch.tensor([-0.5, 1.5]))  # positive row sum: a signed mean, sums to 1


# ------------------------------------------------------------------------------------ tasks
def node_graph(y, splits=None, X=None, **kw):
    n = len(y)
    src = list(range(n))
    dst = [(i + 1) % n for i in range(n)]
    splits = splits or {"train": torch.tensor([0, 1]), "val": torch.tensor([2, 3]),
                        "test": torch.tensor([4, 5])}
    X = torch.randn(n, 3, generator=torch.Generator().manual_seed(0)) if X is None else X
    return Graph.from_edges(src, dst, n, X=X, y=torch.tensor(y), splits=splits, **kw)


def fit(graph, model="gcn", task="node", epochs=2):
    t = TASKS[task]()
    m, prepared = t.setup(graph, model, {}, 0)
    return Trainer(TrainConfig(epochs=epochs, device="cpu"), progress=False).fit(m, t, prepared)


def test_node_task_on_valid_graph_gives_finite_metrics():
    out = fit(node_graph([0, 1, 0, 1, 0, 1]))
    assert all(math.isfinite(v) for v in out["metrics"].values())


TASK_CASES = [
    case("gcn-negative-weights", lambda: fit(node_graph([0, 1, 0, 1, 0, 1], weight=[-1.0] * 6)), "gcn_norm",
         "non-negative"),
    case("node-task-2d-float-labels", lambda: fit(node_graph([[0.1, 0.9]] * 6)), "task 'node'", "y"),
    case("node-task-no-train-split",
         lambda: fit(node_graph([0, 1, 0, 1, 0, 1], splits={"val": torch.tensor([0])})), "'train'"),
    case("unlabelled-node-in-train-split", lambda: fit(node_graph([-1, 1, 0, 1, 0, 1])), "train", "label"),
    case("unlabelled-node-in-test-split", lambda: fit(node_graph([0, 1, 0, 1, -1, 1])), "test", "label"),
    case("empty-train-split", lambda: fit(node_graph([0, 1, 0, 1, 0, 1], splits={
        "train": torch.zeros(0, dtype=torch.long), "val": torch.tensor([2])})), "train", "empty"),
    case("empty-val-split", lambda: fit(node_graph([0, 1, 0, 1, 0, 1], splits={
        "train": torch.tensor([0, 1]), "val": torch.zeros(0, dtype=torch.long)})), "val", "empty"),
    case("no-labelled-node", lambda: fit(node_graph([-1] * 6)), "label"),
    case("integer-features",
         lambda: fit(node_graph([0, 1, 0, 1, 0, 1], X=torch.ones(6, 3, dtype=torch.long))), "X", "float"),
]


@pytest.mark.parametrize(("call", "fragments"), TASK_CASES)
def test_bad_task_input_gives_a_graph_error(call, fragments):
    with raises_clear(GraphError, *fragments):
        call()


def test_node_task_trains_on_graph_without_edges_and_with_duplicates():
    assert all(math.isfinite(v) for v in fit(node_graph([0, 1, 0, 1, 0, 1])).get("metrics").values())
    empty = Graph.from_edges([], [], 6, X=torch.randn(6, 3), y=torch.tensor([0, 1] * 3),
                             splits={"train": torch.tensor([0, 1]), "val": torch.tensor([2, 3])})
    assert math.isfinite(fit(empty)["metrics"]["val_loss"])
    dup = node_graph([0, 1, 0, 1, 0, 1])
    dup = Graph.from_edges(torch.cat([dup.src, dup.src]), torch.cat([dup.dst, dup.dst]), 6, X=dup.X, y=dup.y,
                           splits=dup.splits)
    assert math.isfinite(fit(dup)["metrics"]["val_loss"])
