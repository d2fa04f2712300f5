"""graphnet.nn.conv_rel.RelGraphConv: every compute path (bases, relations, per-edge bdd) against the per-edge
formula in float64 (values and gradients), on square graphs and on dst-first blocks, and against DGL on a
message-flow graph. (tests/nn/test_conv.py and test_vs_dgl.py check the layer on the tiny-graph catalog.)"""

from __future__ import annotations

import dgl
import dgl.nn.pytorch as dglnn
import dgl.sparse as dglsp
import pytest
import torch

from graphnet.errors import GraphError
from graphnet.nn.conv_rel import RelGraphConv, relation_norm

IN, OUT, R = 6, 4, 5
# (regularizer, num_bases, path forced through by_relations; None = the layer's own choice)
PATHS = [(None, None, None), ("basis", 3, "bases"), ("basis", 3, "relations"), ("basis", 3, None),
         ("bdd", 2, None)]


def per_edge_formula(layer: RelGraphConv, A, X, etype):
    """The definition, one message per edge (what the layer computed before the SpMM paths):
    h_i = sum_e [row_e = i] a_e W_{r_e} x_{col_e} + W_0 x_i + b, with x_i = X[i] for i < N_dst."""
    W = layer.relation_weights()  # (R, in, out)
    msg = torch.einsum("ei,eio->eo", X[A.col], W[etype]) * A.val[:, None]  # (E, out)
    H = X.new_zeros(A.shape[0], layer.out_dim).index_add(0, A.row, msg)
    if layer.loop_weight is not None:
        H = H + X[: A.shape[0]] @ layer.loop_weight
    return H if layer.bias is None else H + layer.bias


def random_graph(n_dst, n_src, nnz=30, seed=0):
    """Weighted multi-relational (N_dst, N_src) matrix with duplicate entries (the same pair under two
    relations, and one triple twice), destination 0 without in-edges; values require grad."""
    g = torch.Generator().manual_seed(seed)
    row = torch.randint(1, n_dst, (nnz,), generator=g)
    col = torch.randint(0, n_src, (nnz,), generator=g)
    etype = torch.randint(0, R, (nnz,), generator=g)
    row, col = torch.cat([row, row[:3]]), torch.cat([col, col[:3]])
    etype = torch.cat([etype, (etype[:2] + 1) % R, etype[2:3]])
    val = (0.5 + torch.rand(row.numel(), generator=g, dtype=torch.float64)).requires_grad_()
    X = torch.randn(n_src, IN, generator=g, dtype=torch.float64, requires_grad=True)
    return dglsp.spmatrix(torch.stack([row, col]), val, (n_dst, n_src)), X, etype


def make_layer(regularizer, num_bases, path, self_loop=True, seed=0):
    torch.manual_seed(seed)
    layer = RelGraphConv(IN, OUT, R, regularizer, num_bases, self_loop=self_loop).double()
    torch.nn.init.normal_(layer.bias)  # non-zero, so a misplaced bias shows
    if path is not None:
        layer.by_relations = lambda n_src, n_edges: path == "relations"
    return layer


@pytest.mark.parametrize("regularizer,num_bases,path", PATHS)
@pytest.mark.parametrize("shape", [(8, 8), (5, 8)])  # square; block with the destination nodes first
def test_every_path_equals_the_per_edge_formula_values_and_grads(regularizer, num_bases, path, shape):
    A, X, etype = random_graph(*shape)
    layer = make_layer(regularizer, num_bases, path)
    out = layer(A, X, etype)
    ref = per_edge_formula(layer, A, X, etype)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    G = torch.randn_like(out)
    inputs = [X, A.val, *layer.parameters()]
    got = torch.autograd.grad((out * G).sum(), inputs)
    want = torch.autograd.grad((ref * G).sum(), inputs)
    for g_, w_ in zip(got, want, strict=True):
        torch.testing.assert_close(g_, w_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("regularizer,num_bases,path", PATHS)
def test_gradcheck_values_and_features(regularizer, num_bases, path):
    A, X, etype = random_graph(5, 7, nnz=12)
    layer = make_layer(regularizer, num_bases, path)

    def f(val, X):
        return layer(dglsp.val_like(A, val), X, etype)

    assert torch.autograd.gradcheck(f, (A.val.detach().requires_grad_(), X))


@pytest.mark.parametrize("regularizer,num_bases,path", PATHS)
def test_block_equals_rows_of_the_full_graph(regularizer, num_bases, path):
    """layer(A[D][:, S], X[S]) == layer(A, X)[D] for S = D followed by the other in-neighbours of D."""
    A, X, etype = random_graph(9, 9, nnz=40, seed=1)
    layer = make_layer(regularizer, num_bases, path)
    D = torch.tensor([6, 2, 0, 7])  # node 0 has no in-edges
    keep = torch.isin(A.row, D)
    others = [j for j in A.col[keep].unique().tolist() if j not in D.tolist()]
    S = torch.cat([D, torch.tensor(others, dtype=torch.long)])
    pos = torch.full((9,), -1, dtype=torch.long)
    pos[S] = torch.arange(S.numel())
    index = torch.stack([pos[A.row[keep]], pos[A.col[keep]]])
    block = dglsp.spmatrix(index, A.val[keep], (D.numel(), S.numel()))
    assert block.shape[0] < block.shape[1]
    torch.testing.assert_close(layer(block, X[S], etype[keep]), layer(A, X, etype)[D], rtol=1e-12, atol=1e-12)


def test_block_matches_dgl_on_a_message_flow_graph():
    g = torch.Generator().manual_seed(3)
    src, dst = torch.randint(0, 12, (50,), generator=g), torch.randint(0, 12, (50,), generator=g)
    graph = dgl.graph((src, dst), num_nodes=12)
    graph.edata["t"] = torch.randint(0, R, (50,), generator=g)
    mfg = dgl.to_block(dgl.in_subgraph(graph, torch.tensor([3, 8, 1])), torch.tensor([3, 8, 1]))
    u, v = mfg.edges()
    t = mfg.edata["t"]
    A = relation_norm(dglsp.spmatrix(torch.stack([v, u]), torch.ones(u.numel(), dtype=torch.float64),
                                     (mfg.num_dst_nodes(), mfg.num_src_nodes())), t)
    X = torch.randn(mfg.num_src_nodes(), IN, generator=g, dtype=torch.float64)
    for regularizer, num_bases, path in PATHS:
        ours = make_layer(regularizer, num_bases, path)
        theirs = dglnn.RelGraphConv(IN, OUT, R, regularizer, num_bases, self_loop=True).double()
        with torch.no_grad():
            theirs.linear_r.W.copy_(ours.weight.reshape(theirs.linear_r.W.shape))  # bdd: (R, B sub sub)
            if regularizer == "basis":
                theirs.linear_r.coeff.copy_(ours.coeff)
            theirs.h_bias.copy_(ours.bias), theirs.loop_weight.copy_(ours.loop_weight)
        torch.testing.assert_close(ours(A, X, t), theirs(mfg, X, t, norm=A.val.unsqueeze(1)))


def test_self_loop_needs_destination_nodes_first():
    A, X, etype = random_graph(8, 5)  # N_dst > N_src: the destinations cannot be the first sources
    with pytest.raises(GraphError, match=r"RelGraphConv: .*N_dst <= N_src.*\(N_dst=8, N_src=5\)"):
        make_layer("basis", 3, None)(A, X, etype)
    layer = make_layer("basis", 3, None, self_loop=False)  # no self term: any shape
    torch.testing.assert_close(layer(A, X, etype), per_edge_formula(layer, A, X, etype))


def test_zero_weight_edge_equals_removed_edge_and_empty_graph():
    A, X, etype = random_graph(6, 6)
    val = A.val.detach().clone()
    val[4] = 0.0
    keep = torch.arange(A.nnz) != 4
    removed = dglsp.spmatrix(torch.stack([A.row[keep], A.col[keep]]), val[keep], A.shape)
    empty = dglsp.spmatrix(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.float64), A.shape)
    for regularizer, num_bases, path in PATHS:
        layer = make_layer(regularizer, num_bases, path)
        torch.testing.assert_close(layer(dglsp.val_like(A, val), X, etype), layer(removed, X, etype[keep]))
        torch.testing.assert_close(layer(empty, X, etype[:0]), X @ layer.loop_weight + layer.bias)


def test_path_choice_on_kg_sized_layers():
    """Relations without a decomposition; bdd per edge; basis by relations when R is small next to B
    (Kinship with inverse relations) and by bases on UMLS- and FB15k-237-sized layers (measured faster)."""
    assert RelGraphConv(100, 100, 474, None).by_relations(14541, 544230)
    assert not RelGraphConv(100, 100, 50, "bdd", 10).by_relations(104, 17088)
    assert RelGraphConv(100, 100, 50, "basis", 10).by_relations(104, 17088)  # Kinship
    assert not RelGraphConv(100, 100, 92, "basis", 10).by_relations(135, 10432)  # UMLS
    assert not RelGraphConv(100, 100, 474, "basis", 20).by_relations(14541, 544230)  # FB15k-237
    assert RelGraphConv(100, 100, 4, "basis", 10).by_relations(14541, 544230)  # few relations
