"""graphnet.ops: degrees, normalizations, structure edits and spmm against hand-computed and dense values."""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import pytest
import torch

from graphnet import ops
from graphnet.errors import GraphError
from graphnet.graph import adjacency


def dense(A):
    """Dense A, duplicates summed, differentiable in A.val (dglsp's to_dense keeps only one duplicate)."""
    return torch.zeros(A.shape + A.val.shape[1:], dtype=A.val.dtype).index_put(
        (A.row, A.col), A.val, accumulate=True
    )


def inv_sqrt(d):
    return torch.where(d > 0, d.clamp(min=1e-300).rsqrt(), torch.zeros_like(d))


def small():
    """0 -> 1 (2), 0 -> 2 (1), 1 -> 2 (3), 3 isolated:  A[dst, src]."""
    return adjacency([0, 0, 1], [1, 2, 2], 4, torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64))


# ------------------------------------------------------------------------------------------ degrees
def test_weighted_degrees_by_hand():
    A = small()
    assert ops.in_degrees(A).tolist() == [0.0, 2.0, 4.0, 0.0]  # row sums: into each node
    assert ops.out_degrees(A).tolist() == [3.0, 3.0, 0.0, 0.0]  # column sums: out of each node


def test_degrees_of_duplicates_and_multi_dim_values():
    A = adjacency([0, 0], [1, 1], 2, torch.tensor([1.0, 2.0]))
    assert ops.in_degrees(A).tolist() == [0.0, 3.0]
    B = dglsp.val_like(A, torch.tensor([[1.0, 10.0], [2.0, 20.0]]))
    assert ops.in_degrees(B).tolist() == [[0.0, 0.0], [3.0, 30.0]]


# ------------------------------------------------------------------------------------------ gcn_norm
# dgl.sparse's ``A + B`` returns values without a grad_fn in dgl 2.1; ops.plus_identity builds A + I
# itself so that gcn_norm with self-loops (and scaled_laplacian) keep the gradient to the edge weights.
@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.tiny_graphs(require=("square",))
def test_gcn_norm_equals_dense_formula_and_grads(tiny_graph, self_loops):
    w = tiny_graph.random_weights().requires_grad_()
    An = ops.gcn_norm(tiny_graph.adjacency(w), self_loops=self_loops)
    w_ref = w.detach().clone().requires_grad_()
    D = dense(tiny_graph.adjacency(w_ref))
    if self_loops:
        D = D + torch.eye(D.shape[0], dtype=D.dtype)
    ref = inv_sqrt(D.sum(1))[:, None] * D * inv_sqrt(D.sum(0))[None, :]
    torch.testing.assert_close(dense(An), ref)
    G = torch.randn_like(ref)
    (dense(An) * G).sum().backward()
    (ref * G).sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)


def test_gcn_norm_by_hand_and_zero_degree_rows():
    An = ops.gcn_norm(small(), self_loops=False)
    # edge 0 -> 1 (w=2): 2 / sqrt(d_in(1)=2 * d_out(0)=3); node 0 (no in-edges) and 3 (isolated) stay zero
    expected = {(1, 0): 2 / (2 * 3) ** 0.5, (2, 0): 1 / (4 * 3) ** 0.5, (2, 1): 3 / (4 * 3) ** 0.5}
    got = {(int(r), int(c)): float(v) for r, c, v in zip(An.row, An.col, An.val, strict=True)}
    assert got == pytest.approx(expected)
    assert torch.isfinite(An.val).all()
    out = ops.spmm(An, torch.ones(4, 2, dtype=torch.float64))
    assert out[0].tolist() == [0.0, 0.0] and out[3].tolist() == [0.0, 0.0]


def test_gcn_norm_with_loops_gives_isolated_node_its_own_feature():
    An = ops.gcn_norm(small())
    X = torch.arange(8, dtype=torch.float64).reshape(4, 2)
    assert ops.spmm(An, X)[3].tolist() == X[3].tolist()  # (0 + 1) / sqrt(1 * 1)


@pytest.mark.tiny_graphs(require=("square",))
def test_gcn_norm_adds_one_to_existing_self_loops(tiny_graph):
    """gcn_norm(A) == gcn_norm(A + I, self_loops=False): an existing loop of weight w becomes w + 1."""
    A = tiny_graph.adjacency(tiny_graph.random_weights())
    A_loop = A + dglsp.identity(A.shape, dtype=A.dtype)
    torch.testing.assert_close(dense(ops.gcn_norm(A)), dense(ops.gcn_norm(A_loop, self_loops=False)))


@pytest.mark.tiny_graphs(require=("square",))
def test_gcn_norm_scale_invariant_without_self_loops_only(tiny_graph):
    A = tiny_graph.adjacency(tiny_graph.random_weights())
    cA = dglsp.val_like(A, 3.5 * A.val)
    torch.testing.assert_close(ops.gcn_norm(cA, self_loops=False).val, ops.gcn_norm(A, self_loops=False).val)
    assert not torch.allclose(dense(ops.gcn_norm(cA)), dense(ops.gcn_norm(A)))  # I is not rescaled


@pytest.mark.tiny_graphs(require=("square", "unweighted"))
def test_gcn_norm_all_ones_is_kipf_degree_count_formula(tiny_graph):
    A = tiny_graph.adjacency()
    n = A.shape[0]
    deg_in = torch.tensor(
        [sum(1 for d in tiny_graph.dst if d == i) + 1 for i in range(n)], dtype=torch.float64
    )
    deg_out = torch.tensor(
        [sum(1 for s in tiny_graph.src if s == i) + 1 for i in range(n)], dtype=torch.float64
    )
    ref = (dense(A) + torch.eye(n, dtype=torch.float64)) / torch.sqrt(deg_in[:, None] * deg_out[None, :])
    torch.testing.assert_close(dense(ops.gcn_norm(A)), ref)


def test_gcn_norm_rejects_negative_nan_and_inf_weights():
    with pytest.raises(GraphError, match=r"gcn_norm: expected non-negative edge weights.*-1\.0.*edge 1 -> 2"):
        ops.gcn_norm(adjacency([0, 1], [1, 2], 3, torch.tensor([1.0, -1.0])))
    for bad in (float("nan"), float("inf")):
        A = dglsp.spmatrix(torch.tensor([[1, 2], [0, 1]]), torch.tensor([1.0, bad]), (3, 3))
        with pytest.raises(GraphError, match="expected finite edge weights"):
            ops.gcn_norm(A)
    with pytest.raises(GraphError, match=r"square adjacency, got shape \(2, 3\)"):
        ops.gcn_norm(adjacency([0, 2], [1, 0], (2, 3)))
    rect = ops.gcn_norm(adjacency([0, 2], [1, 0], (2, 3)), self_loops=False)  # bipartite: fine without loops
    assert rect.shape == (2, 3) and torch.allclose(rect.val, torch.ones(2))


# ------------------------------------------------------------------------------------------ row / col norm
@pytest.mark.tiny_graphs()
def test_row_and_col_norm(tiny_graph):
    A = tiny_graph.adjacency(tiny_graph.random_weights())
    D = dense(A)
    R, C = dense(ops.row_norm(A)), dense(ops.col_norm(A))
    rows, cols = D.sum(1), D.sum(0)
    torch.testing.assert_close(R.sum(1), (rows > 0).double())  # non-empty rows sum to 1, empty rows to 0
    torch.testing.assert_close(C.sum(0), (cols > 0).double())
    torch.testing.assert_close(R, D / torch.where(rows > 0, rows, 1.0)[:, None])
    torch.testing.assert_close(C, D / torch.where(cols > 0, cols, 1.0)[None, :])


def test_row_norm_rejects_nan():
    A = dglsp.spmatrix(torch.tensor([[1], [0]]), torch.tensor([float("nan")]), (2, 2))
    with pytest.raises(GraphError, match="row_norm: expected finite edge weights"):
        ops.row_norm(A)


# ------------------------------------------------------------------------------------------ structure
def test_add_self_loops_only_where_missing():
    A = adjacency([0, 1, 1], [1, 1, 2], 3, torch.tensor([2.0, 5.0, 3.0]))
    B = ops.add_self_loops(A, weight=0.5)
    D = dense(B)
    assert D.diag().tolist() == [0.5, 5.0, 0.5]  # node 1's loop (5) kept, not summed
    assert (
        B.nnz == 5 and torch.equal(B.row[:3], A.row) and torch.equal(B.col[:3], A.col)
    )  # appended at the end
    V = ops.add_self_loops(dglsp.val_like(A, torch.ones(3, 2)), weight=2.0)
    assert V.val.shape == (5, 2) and V.val[3:].eq(2.0).all()
    with pytest.raises(GraphError, match=r"add_self_loops: expected a square adjacency, got shape \(2, 3\)"):
        ops.add_self_loops(adjacency([0], [1], (2, 3)))
    for bad in (math.nan, math.inf):  # every constructor refuses such weights
        with pytest.raises(GraphError, match="add_self_loops: expected a finite self-loop weight"):
            ops.add_self_loops(A, weight=bad)


def test_remove_self_loops():
    A = adjacency([0, 1, 2], [0, 2, 2], 3, torch.tensor([1.0, 2.0, 3.0]))
    B = ops.remove_self_loops(A)
    assert B.row.tolist() == [2] and B.col.tolist() == [1] and B.val.tolist() == [2.0]


def test_drop_edges():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 50, (4000,), generator=g)
    dst = torch.randint(0, 50, (4000,), generator=g)
    A = adjacency(src, dst, 50, torch.rand(4000, generator=g))
    assert ops.drop_edges(A, 0.0) is A
    B1 = ops.drop_edges(A, 0.3, torch.Generator().manual_seed(7))
    B2 = ops.drop_edges(A, 0.3, torch.Generator().manual_seed(7))
    assert torch.equal(B1.row, B2.row) and torch.equal(B1.val, B2.val)  # seeded: reproducible
    assert abs(B1.nnz / A.nnz - 0.7) < 0.05
    kept = {(int(r), int(c), float(v)) for r, c, v in zip(B1.row, B1.col, B1.val, strict=True)}
    assert kept <= {
        (int(r), int(c), float(v)) for r, c, v in zip(A.row, A.col, A.val, strict=True)
    }  # values not rescaled
    for p in (-0.1, 1.0):
        with pytest.raises(GraphError, match=r"drop_edges: expected 0 <= p < 1"):
            ops.drop_edges(A, p)


@pytest.mark.parametrize("lambda_max", [2.0, 1.2])
@pytest.mark.tiny_graphs(require=("square",))
def test_scaled_laplacian_equals_dense_formula(tiny_graph, lambda_max):
    A = tiny_graph.adjacency(tiny_graph.random_weights())
    D = dense(A)
    n = D.shape[0]
    L = torch.eye(n, dtype=D.dtype) - inv_sqrt(D.sum(1))[:, None] * D * inv_sqrt(D.sum(0))[None, :]
    torch.testing.assert_close(
        dense(ops.scaled_laplacian(A, lambda_max)), 2 * L / lambda_max - torch.eye(n, dtype=D.dtype)
    )


def _recip(d, p):
    """d^-p with 0 where d == 0 (the convention of ops: zero-degree nodes keep zero rows/columns)."""
    return torch.where(d > 0, d.clamp(min=1e-300) ** -p, torch.zeros_like(d))


def _dense_gcn(D, loops):
    D = D + torch.eye(D.shape[0], dtype=D.dtype) if loops else D
    return _recip(D.sum(1), 0.5)[:, None] * D * _recip(D.sum(0), 0.5)[None, :]


# (ops function, its dense float64 formula); row_norm/col_norm rows sum to 1, so a plain .sum() loss
# would have gradient 0 whatever the code did: the upstream gradient G below is random.
NORMALIZATIONS = {
    "gcn_norm": (ops.gcn_norm, lambda D: _dense_gcn(D, True)),
    "gcn_norm_no_loops": (lambda A: ops.gcn_norm(A, self_loops=False), lambda D: _dense_gcn(D, False)),
    "scaled_laplacian": (ops.scaled_laplacian, lambda D: -_dense_gcn(D, False)),  # lambda_max 2: L~ = -A_n
    "scaled_laplacian_1.5": (
        lambda A: ops.scaled_laplacian(A, 1.5),
        lambda D: (2 / 1.5) * (torch.eye(D.shape[0], dtype=D.dtype) - _dense_gcn(D, False))
        - torch.eye(D.shape[0], dtype=D.dtype),
    ),
    "row_norm": (ops.row_norm, lambda D: _recip(D.sum(1), 1)[:, None] * D),
    "col_norm": (ops.col_norm, lambda D: D * _recip(D.sum(0), 1)[None, :]),
}


@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_normalizations_pass_gradients_to_edge_weights(name):
    fn, formula = NORMALIZATIONS[name]
    w = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    out = dense(fn(adjacency([0, 0, 1], [1, 2, 2], 4, w)))
    ref = formula(dense(adjacency([0, 0, 1], [1, 2, 2], 4, w_ref)))
    torch.testing.assert_close(out, ref)
    G = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (out * G).sum().backward()
    (ref * G).sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)
    assert w.grad.abs().max() > 1e-3  # the upstream G makes every normalization's gradient nonzero


def test_row_and_col_norm_gradients_by_hand():
    # small(): w = [2, 1, 3] on 0->1, 0->2, 1->2.  row_norm's entry (2, 0) is w1 / (w1 + w2) = 1/4:
    # d/dw = [0, w2 / (w1+w2)^2, -w1 / (w1+w2)^2] = [0, 3/16, -1/16].
    w = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    dense(ops.row_norm(adjacency([0, 0, 1], [1, 2, 2], 4, w)))[2, 0].backward()
    assert w.grad.tolist() == pytest.approx([0.0, 3 / 16, -1 / 16])
    # col_norm's entry (1, 0) is w0 / (w0 + w1) = 2/3: d/dw = [w1, -w0, 0] / (w0+w1)^2 = [1/9, -2/9, 0].
    w.grad = None
    dense(ops.col_norm(adjacency([0, 0, 1], [1, 2, 2], 4, w)))[1, 0].backward()
    assert w.grad.tolist() == pytest.approx([1 / 9, -2 / 9, 0.0])


# ------------------------------------------------------------------------------------------ spmm
@pytest.mark.tiny_graphs()
def test_spmm_values_and_grads_equal_dense(tiny_graph):
    w = tiny_graph.random_weights().requires_grad_()
    X = torch.randn(tiny_graph.shape[1], 3, dtype=torch.float64, requires_grad=True)
    out = ops.spmm(tiny_graph.adjacency(w), X)
    w2, X2 = w.detach().clone().requires_grad_(), X.detach().clone().requires_grad_()
    ref = dense(tiny_graph.adjacency(w2)) @ X2
    torch.testing.assert_close(out, ref)
    G = torch.randn_like(ref)
    (out * G).sum().backward()
    (ref * G).sum().backward()
    torch.testing.assert_close(X.grad, X2.grad)
    torch.testing.assert_close(w.grad, w2.grad)


def test_spmm_orientation_sums_in_neighbours():
    A = small()
    X = torch.tensor([[1.0], [10.0], [100.0], [1000.0]], dtype=torch.float64)
    assert ops.spmm(A, X).flatten().tolist() == [0.0, 2.0, 1.0 + 30.0, 0.0]


def test_spmm_rejects_wrong_rows():
    with pytest.raises(GraphError, match=r"spmm: A has 4 columns \(source nodes\) but X has shape \(3, 2\)"):
        ops.spmm(small(), torch.zeros(3, 2, dtype=torch.float64))
