"""graphnet layers vs DGL 2.1's own modules, parameters copied across, float64, to rtol 1e-10.

DGL graphs are built with Graph.to_dgl() (edges src -> dst), and edge weights go in as DGL's ``edge_weight``.
Intended differences, each pinned by a test below:
- GraphConv: DGL's ``norm="both"`` normalizes by *unweighted* degrees even when ``edge_weight`` is given;
  graphnet's gcn_norm uses weighted degrees, which is DGL's ``EdgeWeightNorm("both")`` path.
- SAGEConv(mean): DGL divides the weighted sum by the *unweighted* in-degree; graphnet's weighted mean is
  sum w h / sum w. They agree with all-ones weights, and with DGL fed w * deg / sum(w).
- SAGE "sum" has no DGL counterpart (DGL's "gcn" aggregator is a different formula); it is checked against
  the dense reference in test_conv.py only. EdgeFeatConv and LightGCNProp have no DGL module either.
- ChebConv: DGL's ChebConv takes no edge weights (unweighted in-degrees on both sides), so it is compared on
  unweighted symmetric graphs.
"""

from __future__ import annotations

import dgl
import dgl.sparse as dglsp
import pytest
import torch
from dgl.nn import pytorch as dglnn

from graphnet import ops
from graphnet.graph import Graph
from graphnet.nn.conv import APPNPConv, ChebConv, GATConv, GINConv, GraphConv, SAGEConv, SGConv
from graphnet.nn.conv_rel import RelGraphConv, relation_norm

IN, OUT = 4, 6
TOL = dict(rtol=1e-10, atol=1e-12)  # float64 on both sides


def setup(case, seed=0, loops=False):
    """(A, weights, DGL graph of the same edges, X); with loops=True, A + I (existing loops summed)."""
    torch.manual_seed(seed)
    A = case.adjacency(case.random_weights(seed))
    if loops:
        A = A + dglsp.identity(A.shape, dtype=A.dtype)
    X = torch.randn(A.shape[1], IN, dtype=torch.float64)
    return A, A.val, Graph(A=A).to_dgl(), X


def copy_(dst: torch.Tensor, src: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src.reshape(dst.shape))


# ------------------------------------------------------------------------------------------ GraphConv
@pytest.mark.tiny_graphs(require=("square",))
def test_graphconv_with_gcn_norm_matches_dgl_edge_weight_norm(tiny_graph):
    A, _, _, X = setup(tiny_graph)
    ours = GraphConv(IN, OUT).double()
    A_loop = A + dglsp.identity(A.shape, dtype=A.dtype)  # what gcn_norm adds; DGL needs it as real edges
    g = Graph(A=A_loop).to_dgl()
    theirs = dglnn.GraphConv(IN, OUT, norm="none", allow_zero_in_degree=True).double()
    copy_(theirs.weight, ours.weight), copy_(theirs.bias, ours.bias)
    ew = dglnn.EdgeWeightNorm(norm="both")(g, g.edata["w"])
    torch.testing.assert_close(ours(ops.gcn_norm(A), X), theirs(g, X, edge_weight=ew), **TOL)


@pytest.mark.tiny_graphs(require=("square",))
def test_graphconv_unweighted_matches_dgl_norm_both(tiny_graph):
    A, _, g, X = setup(tiny_graph)
    A1 = dglsp.val_like(A, torch.ones_like(A.val))
    ours = GraphConv(IN, OUT).double()
    theirs = dglnn.GraphConv(IN, OUT, norm="both", allow_zero_in_degree=True).double()
    copy_(theirs.weight, ours.weight), copy_(theirs.bias, ours.bias)
    torch.testing.assert_close(ours(ops.gcn_norm(A1, self_loops=False), X), theirs(g, X), **TOL)


def test_intended_difference_dgl_norm_both_ignores_weights_in_degrees(tiny_graph_catalog):
    case = tiny_graph_catalog["weighted"]
    A, w, g, X = setup(case)
    ours = GraphConv(IN, OUT).double()
    theirs = dglnn.GraphConv(IN, OUT, norm="both", allow_zero_in_degree=True).double()
    copy_(theirs.weight, ours.weight), copy_(theirs.bias, ours.bias)
    out_dgl = theirs(g, X, edge_weight=w)
    count_in = torch.bincount(A.row, minlength=A.shape[0]).double()
    count_out = torch.bincount(A.col, minlength=A.shape[1]).double()
    A_count_norm = dglsp.val_like(A, w / torch.sqrt(count_in[A.row] * count_out[A.col]))
    torch.testing.assert_close(out_dgl, ours(A_count_norm, X), **TOL)  # what DGL computes
    assert not torch.allclose(out_dgl, ours(ops.gcn_norm(A, self_loops=False), X))  # what we compute


# ------------------------------------------------------------------------------------------ SAGEConv
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.tiny_graphs(require=("square",))
def test_sage_mean_matches_dgl(tiny_graph, weighted):
    A, w, g, X = setup(tiny_graph)
    if not weighted:
        w = torch.ones_like(w)
        A = dglsp.val_like(A, w)
    ours = SAGEConv(IN, OUT, "mean").double()
    theirs = dglnn.SAGEConv(IN, OUT, "mean").double()
    copy_(theirs.fc_self.weight, ours.lin_self.weight), copy_(theirs.fc_self.bias, ours.bias)
    copy_(theirs.fc_neigh.weight, ours.lin_neigh.weight)
    if weighted:  # DGL: sum w h / count; feed w * count / sum(w) to get graphnet's sum w h / sum w
        count = torch.bincount(A.row, minlength=A.shape[0]).double()
        weighted_in = torch.zeros(A.shape[0], dtype=w.dtype).index_add(0, A.row, w)  # not ops.in_degrees
        out_dgl = theirs(g, X, edge_weight=w * count[A.row] / weighted_in[A.row])
    else:
        out_dgl = theirs(g, X)
    torch.testing.assert_close(ours(A, X), out_dgl, **TOL)


@pytest.mark.tiny_graphs(require=("square",))
def test_sage_pool_matches_dgl(tiny_graph):
    A, w, g, X = setup(tiny_graph)
    ours = SAGEConv(IN, OUT, "pool").double()
    theirs = dglnn.SAGEConv(IN, OUT, "pool").double()
    copy_(theirs.fc_pool.weight, ours.lin_pool.weight), copy_(theirs.fc_pool.bias, ours.lin_pool.bias)
    copy_(theirs.fc_self.weight, ours.lin_self.weight), copy_(theirs.fc_self.bias, ours.bias)
    copy_(theirs.fc_neigh.weight, ours.lin_neigh.weight)
    torch.testing.assert_close(ours(A, X), theirs(g, X, edge_weight=w), **TOL)


# ------------------------------------------------------------------------------------------ GAT, GIN
@pytest.mark.tiny_graphs(require=("square",))
def test_gat_matches_dgl(tiny_graph):
    A, w, _, X = setup(tiny_graph)
    A = ops.add_self_loops(A)
    g, H = Graph(A=A).to_dgl(), 3
    ours = GATConv(IN, OUT, num_heads=H).double()
    theirs = dglnn.GATConv(IN, OUT, H, allow_zero_in_degree=True).double()
    copy_(theirs.fc.weight, ours.lin.weight), copy_(theirs.attn_l, ours.attn_src)
    copy_(theirs.attn_r, ours.attn_dst), copy_(theirs.bias, ours.bias)
    torch.testing.assert_close(ours(A, X), theirs(g, X, edge_weight=A.val), **TOL)
    A1 = dglsp.val_like(A, torch.ones_like(A.val))  # all-ones weights == DGL without edge_weight
    torch.testing.assert_close(ours(A1, X), theirs(g, X), **TOL)


@pytest.mark.tiny_graphs(require=("square",))
def test_gin_matches_dgl(tiny_graph):
    A, w, g, X = setup(tiny_graph)
    ours = GINConv(IN, OUT, hidden_dim=5, eps=0.25).double()
    theirs = dglnn.GINConv(ours.mlp, "sum", init_eps=0.25, learn_eps=True).double()  # shares the MLP
    torch.testing.assert_close(ours(A, X), theirs(g, X, edge_weight=w), **TOL)


# ------------------------------------------------------------------------------------------ SGC, APPNP, Cheb
@pytest.mark.parametrize("out_dim", [OUT, 2], ids=["propagate_first", "project_first"])
@pytest.mark.tiny_graphs(require=("square",))
def test_sgconv_matches_dgl(tiny_graph, out_dim):
    A, _, _, X = setup(tiny_graph)
    A_loop = A + dglsp.identity(A.shape, dtype=A.dtype)
    g = Graph(A=A_loop).to_dgl()
    ours = SGConv(IN, out_dim, K=2).double()
    theirs = dglnn.SGConv(IN, out_dim, k=2, allow_zero_in_degree=True).double()
    copy_(theirs.fc.weight, ours.lin.weight), copy_(theirs.fc.bias, ours.lin.bias)
    torch.testing.assert_close(ours(ops.gcn_norm(A), X), theirs(g, X, edge_weight=g.edata["w"]), **TOL)


@pytest.mark.tiny_graphs(require=("square",))
def test_appnp_matches_dgl(tiny_graph):
    A, _, _, X = setup(tiny_graph)
    A_loop = A + dglsp.identity(A.shape, dtype=A.dtype)
    g = Graph(A=A_loop).to_dgl()
    ours, theirs = APPNPConv(K=5, alpha=0.15), dglnn.APPNPConv(k=5, alpha=0.15)
    torch.testing.assert_close(ours(ops.gcn_norm(A), X), theirs(g, X, edge_weight=g.edata["w"]), **TOL)


@pytest.mark.parametrize("lambda_max", [2.0, 1.5])
@pytest.mark.tiny_graphs(require=("square", "symmetric", "unweighted"))
def test_cheb_matches_dgl_on_unweighted_symmetric_graphs(tiny_graph, lambda_max):
    A, _, g, X = setup(tiny_graph)
    A = dglsp.val_like(A, torch.ones_like(A.val))
    ours = ChebConv(IN, OUT, K=3).double()
    theirs = dglnn.ChebConv(IN, OUT, 3, activation=None).double()
    copy_(theirs.linear.weight, ours.lin.weight), copy_(theirs.linear.bias, ours.lin.bias)
    out_dgl = theirs(g, X, lambda_max=[lambda_max])
    torch.testing.assert_close(ours(ops.scaled_laplacian(A, lambda_max), X), out_dgl, **TOL)


# ------------------------------------------------------------------------------------------ R-GCN
@pytest.mark.parametrize("regularizer,num_bases", [(None, None), ("basis", 2), ("bdd", 2)])
@pytest.mark.tiny_graphs(require=("square",))
def test_relgraphconv_matches_dgl(tiny_graph, regularizer, num_bases):
    A, _, g, X = setup(tiny_graph)
    R = 3
    t = tiny_graph.edge_types() if tiny_graph.edge_type is not None else torch.arange(A.nnz) % R
    ours = RelGraphConv(IN, OUT, R, regularizer, num_bases).double()
    theirs = dglnn.RelGraphConv(IN, OUT, R, regularizer, num_bases, self_loop=True).double()
    copy_(theirs.linear_r.W, ours.weight)
    if regularizer == "basis":
        copy_(theirs.linear_r.coeff, ours.coeff)
    copy_(theirs.h_bias, ours.bias), copy_(theirs.loop_weight, ours.loop_weight)
    A_n = relation_norm(A, t)
    torch.testing.assert_close(ours(A_n, X, t), theirs(g, X, t, norm=A_n.val.unsqueeze(1)), **TOL)


def test_dgl_graph_orientation_matches_graphnet(tiny_graph_catalog):
    """Sanity of the bridge every test here relies on: DGL's sum over in-edges == A @ X (duplicates summed;
    note dglsp's A.to_dense() keeps only one of two duplicate entries, so the dense A is built by hand)."""
    A, _, g, X = setup(tiny_graph_catalog["multi_relation"])
    g.ndata["h"], g.edata["w"] = X, A.val
    g.update_all(dgl.function.u_mul_e("h", "w", "m"), dgl.function.sum("m", "h"))
    D = torch.zeros(A.shape, dtype=A.dtype).index_put((A.row, A.col), A.val, accumulate=True)
    torch.testing.assert_close(g.ndata["h"], D @ X)
    torch.testing.assert_close(ops.spmm(A, X), D @ X)


# ------------------------------------------------------------------------------------------ blocks (MFGs)
def dgl_block(seed=0, n=25, e=100, n_dst=7):
    """A random weighted DGL graph, an MFG of it from dgl.to_block (destination nodes first), our block.

    Returns (our block (N_dst, N_src) with the original weights, DGL block, X of the block's sources).
    """
    from graphnet.graph import adjacency

    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)
    graph = dgl.graph((src, dst), num_nodes=n)
    graph.edata["w"] = 0.5 + 1.5 * torch.rand(e, generator=g, dtype=torch.float64)
    seeds = torch.randperm(n, generator=g)[:n_dst]
    mfg = dgl.to_block(dgl.in_subgraph(graph, seeds), seeds)  # in-edges of the seeds; edata carried along
    u, v = mfg.edges()
    B = adjacency(u, v, (mfg.num_dst_nodes(), mfg.num_src_nodes()), mfg.edata["w"])
    X = torch.randn(n, IN, dtype=torch.float64, generator=g)[mfg.srcdata[dgl.NID]]
    return B, mfg, X


def test_one_hop_layers_on_blocks_match_dgl_on_mfgs():
    B, mfg, X = dgl_block()
    assert B.shape[0] < B.shape[1]  # a genuine block, destination nodes first:
    assert torch.equal(mfg.srcdata[dgl.NID][: B.shape[0]], mfg.dstdata[dgl.NID])
    w = mfg.edata["w"]
    ones = dglsp.val_like(B, torch.ones_like(B.val))
    sage = SAGEConv(IN, OUT, "mean").double()
    theirs = dglnn.SAGEConv(IN, OUT, "mean").double()
    copy_(theirs.fc_self.weight, sage.lin_self.weight), copy_(theirs.fc_self.bias, sage.bias)
    copy_(theirs.fc_neigh.weight, sage.lin_neigh.weight)
    torch.testing.assert_close(sage(ones, X), theirs(mfg, X), **TOL)
    pool = SAGEConv(IN, OUT, "pool").double()
    theirs = dglnn.SAGEConv(IN, OUT, "pool").double()
    copy_(theirs.fc_pool.weight, pool.lin_pool.weight), copy_(theirs.fc_pool.bias, pool.lin_pool.bias)
    copy_(theirs.fc_self.weight, pool.lin_self.weight), copy_(theirs.fc_self.bias, pool.bias)
    copy_(theirs.fc_neigh.weight, pool.lin_neigh.weight)
    torch.testing.assert_close(pool(B, X), theirs(mfg, X, edge_weight=w), **TOL)
    gat = GATConv(IN, OUT, num_heads=3).double()
    theirs = dglnn.GATConv(IN, OUT, 3, allow_zero_in_degree=True).double()
    copy_(theirs.fc.weight, gat.lin.weight), copy_(theirs.attn_l, gat.attn_src)
    copy_(theirs.attn_r, gat.attn_dst), copy_(theirs.bias, gat.bias)
    torch.testing.assert_close(gat(B, X), theirs(mfg, X, edge_weight=w), **TOL)
    gin = GINConv(IN, OUT, hidden_dim=5, eps=0.25).double()
    theirs = dglnn.GINConv(gin.mlp, "sum", init_eps=0.25, learn_eps=True).double()
    torch.testing.assert_close(gin(B, X), theirs(mfg, X, edge_weight=w), **TOL)
