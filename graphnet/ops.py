"""Pure functions on adjacency matrices (dgl.sparse), and ``spmm``: the one place that picks the kernel.

Orientation: ``A[i, j]`` is the weight of edge j -> i, shape (N_dst, N_src) (see graphnet.graph).
In-degree of i = ``A.sum(1)[i]`` (row sums); out-degree of j = ``A.sum(0)[j]`` (column sums).
All degrees are *weighted* (sums of edge values). Normalizations build new matrices with
``dglsp.val_like`` and never cache anything on a module.
"""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import torch
from dgl.sparse import SparseMatrix
from torch import Tensor

from graphnet.graph import GraphError, check_weights


# ---------------------------------------------------------------------------------------- degrees
def in_degrees(A: SparseMatrix) -> Tensor:
    """Weighted in-degree d_in[i] = sum_j A[i, j]. Shape (N_dst,) (or (N_dst, H) for (nnz, H) values)."""
    return _segment_sum(A.val, A.row, A.shape[0])


def out_degrees(A: SparseMatrix) -> Tensor:
    """Weighted out-degree d_out[j] = sum_i A[i, j]. Shape (N_src,)."""
    return _segment_sum(A.val, A.col, A.shape[1])


def _segment_sum(val: Tensor, index: Tensor, n: int) -> Tensor:
    # index_add instead of A.sum(d): differentiable in val and defined (zero) for empty rows.
    out = torch.zeros((n,) + tuple(val.shape[1:]), dtype=val.dtype, device=val.device)
    return out.index_add(0, index, val)


def _inv(d: Tensor, power: float) -> Tensor:
    """d ** -power with 0 -> 0 (isolated nodes keep zero rows instead of inf/NaN)."""
    safe = torch.where(d > 0, d, torch.ones_like(d))
    return torch.where(d > 0, safe.pow(-power), torch.zeros_like(d))


def _require_nonnegative(A: SparseMatrix, what: str) -> None:
    check_weights(what, A.val)
    if A.nnz and bool((A.val < 0).any()):
        e = int((A.val < 0).reshape(A.nnz, -1).any(1).nonzero()[0])
        raise GraphError(f"{what}: expected non-negative edge weights (a square root of the weighted degree "
                         f"is taken), got {A.val[e].tolist()} on edge {int(A.col[e])} -> {int(A.row[e])}")


# ---------------------------------------------------------------------------------------- structure
def add_self_loops(A: SparseMatrix, weight: float = 1.0) -> SparseMatrix:
    """A with a self-loop of ``weight`` on every node that has none; existing self-loops are unchanged.

    Requires a square A. Values of shape (nnz, H) get ``weight`` in every column.
    """
    _require_square(A, "add_self_loops")
    if not math.isfinite(float(weight)):  # every constructor refuses non-finite weights; so must this
        raise GraphError(f"add_self_loops: expected a finite self-loop weight, got {weight}")
    n = A.shape[0]
    has_loop = torch.zeros(n, dtype=torch.bool, device=A.device)
    has_loop[A.row[A.row == A.col]] = True
    missing = (~has_loop).nonzero().squeeze(1)
    loop_val = torch.full((missing.numel(),) + tuple(A.val.shape[1:]), float(weight), dtype=A.val.dtype,
                          device=A.device)
    idx = torch.cat([torch.stack([A.row, A.col]), torch.stack([missing, missing])], 1)
    return dglsp.spmatrix(idx, torch.cat([A.val, loop_val]), A.shape)


def remove_self_loops(A: SparseMatrix) -> SparseMatrix:
    """A without its diagonal entries."""
    keep = A.row != A.col
    return dglsp.spmatrix(torch.stack([A.row[keep], A.col[keep]]), A.val[keep], A.shape)


def _require_square(A: SparseMatrix, what: str) -> None:
    if A.shape[0] != A.shape[1]:
        raise GraphError(f"{what}: expected a square adjacency, got shape {tuple(A.shape)}")


def drop_edges(A: SparseMatrix, p: float, generator: torch.Generator | None = None) -> SparseMatrix:
    """Drop each edge independently with probability p (DropEdge, Rong et al. 2020); values not rescaled."""
    if not 0.0 <= p < 1.0:
        raise GraphError(f"drop_edges: expected 0 <= p < 1, got p={p}")
    if p == 0.0:
        return A
    # draw on the generator's own device (a CUDA generator cannot fill a CPU tensor, nor the reverse)
    keep = torch.rand(A.nnz, generator=generator, device=A.device if generator is None else generator.device)
    keep = (keep >= p).to(A.device)
    return dglsp.spmatrix(torch.stack([A.row[keep], A.col[keep]]), A.val[keep], A.shape)


# ---------------------------------------------------------------------------------------- normalizations
def gcn_norm(A: SparseMatrix, self_loops: bool = True) -> SparseMatrix:
    """Symmetric GCN normalization D_in^-1/2 (A + I) D_out^-1/2 with weighted degrees.

    ``A_hat[i, j] = A[i, j] / sqrt(d_in[i] * d_out[j])``, d_in = row sums, d_out = column sums of A (+ I).
    Zero-degree nodes keep zero rows/columns. Negative or non-finite weights raise GraphError.
    Scale-invariant without self-loops: ``gcn_norm(c * A, False) == gcn_norm(A, False)``.

    Equal to PyG's ``gcn_norm`` / DGL's ``EdgeWeightNorm("both")`` + self-loops on a symmetric graph without
    self-loops. Elsewhere, by design: an existing self-loop of weight w becomes w + 1 (A + I; PyG's
    ``add_remaining_self_loops`` keeps w), and on directed graphs the source j contributes its out-degree
    d_out[j] (PyG's ``gcn_norm`` uses in-degrees for both ends of an edge).
    """
    _require_nonnegative(A, "gcn_norm")
    if self_loops:
        _require_square(A, "gcn_norm(self_loops=True)")
        A = plus_identity(A, 1.0)
    inv_in, inv_out = _inv(in_degrees(A), 0.5), _inv(out_degrees(A), 0.5)  # (N_dst,), (N_src,)
    return dglsp.val_like(A, A.val * inv_in[A.row] * inv_out[A.col])


def row_norm(A: SparseMatrix) -> SparseMatrix:
    """Random-walk (mean) normalization D_in^-1 A: each non-empty row sums to 1, ``A[i, j] / d_in[i]``.

    Signed weights are allowed while every row's weighted degree is positive; a row whose weights sum
    to <= 0 has no mean and raises GraphError (it would otherwise silently become a zero row).
    """
    check_weights("row_norm", A.val)
    d = in_degrees(A)  # (N_dst,) or (N_dst, H)
    _require_positive_degree(A, d, A.row, "row_norm", "in")
    return dglsp.val_like(A, A.val * _inv(d, 1.0)[A.row])


def col_norm(A: SparseMatrix) -> SparseMatrix:
    """A D_out^-1: each non-empty column sums to 1, ``A[i, j] / d_out[j]`` (same degree rule as row_norm)."""
    check_weights("col_norm", A.val)
    d = out_degrees(A)  # (N_src,) or (N_src, H)
    _require_positive_degree(A, d, A.col, "col_norm", "out")
    return dglsp.val_like(A, A.val * _inv(d, 1.0)[A.col])


def _require_positive_degree(A: SparseMatrix, d: Tensor, index: Tensor, what: str, kind: str) -> None:
    """Raise if a node with nonzero edges has weighted degree <= 0 (only possible with negative weights).

    The negative test is O(N) on the degrees already computed; the zero-sum test gathers per edge only
    when some degree is exactly zero (isolated nodes), so all-positive graphs pay nothing extra.
    """
    node_bad = (d < 0).reshape(d.shape[0], -1).any(1)  # (N,)
    zero = (d == 0).reshape(d.shape[0], -1).any(1)
    if bool(zero.any()) and A.nnz:
        edge_bad = zero[index] & (A.val != 0).reshape(A.nnz, -1).any(1)
        node_bad = node_bad.index_fill(0, index[edge_bad], True)
    if bool(node_bad.any()):
        i = int(node_bad.nonzero()[0])
        w = A.val[index == i].tolist()
        raise GraphError(f"{what}: node {i} has weighted {kind}-degree {d[i].tolist()} <= 0 "
                         f"(edge weights {w}); mean aggregation needs a positive degree for every node "
                         "with edges")


def scaled_laplacian(A: SparseMatrix, lambda_max: float = 2.0) -> SparseMatrix:
    """ChebNet's L~ = 2 L / lambda_max - I with L = I - D^-1/2 A D^-1/2 (no self-loops added).

    Written as L~ = (2 / lambda_max - 1) I - (2 / lambda_max) A_n; with the default lambda_max = 2 the
    diagonal cancels and L~ = -A_n (explicit zero diagonal entries are kept, harmless for spmm).
    """
    _require_square(A, "scaled_laplacian")
    A_n = gcn_norm(A, self_loops=False)
    scale = 2.0 / lambda_max
    return plus_identity(dglsp.val_like(A_n, -scale * A_n.val), scale - 1.0)


def plus_identity(A: SparseMatrix, c: float) -> SparseMatrix:
    """A + c I, coalesced (row-major, existing diagonal entries increased by c), differentiable in A.val.

    dgl.sparse's own ``A + B`` returns values detached from autograd, so the sum is built here from the
    concatenated entries with ``index_add`` (gradient 1 to every contributing value).
    """
    _require_square(A, "plus_identity")
    n = A.shape[0]
    ar = torch.arange(n, device=A.device)
    row, col = torch.cat([A.row, ar]), torch.cat([A.col, ar])
    diag = torch.full((n,) + tuple(A.val.shape[1:]), float(c), dtype=A.val.dtype, device=A.device)
    key, inv = torch.unique(row * n + col, return_inverse=True)  # sorted keys = row-major order
    val = torch.zeros((key.numel(),) + tuple(A.val.shape[1:]), dtype=A.val.dtype, device=A.device)
    val = val.index_add(0, inv, torch.cat([A.val, diag]))
    return dglsp.spmatrix(torch.stack([key // n, key % n]), val, A.shape)


# ---------------------------------------------------------------------------------------- spmm
def spmm(A: SparseMatrix, X: Tensor) -> Tensor:
    """Sparse x dense product ``A @ X``: (N_dst, N_src) x (N_src, F) -> (N_dst, F).

    The single entry point every layer uses. The kernel is chosen here (see graphnet._spmm);
    gradients to X and to ``A.val`` are exact. Facts derived from A (index layouts, reordered values) are
    cached per matrix and keyed by the tensors' version counters, which every in-place update bumps; a
    write through ``.data`` does not, so values or indices changed that way need a new matrix.
    """
    from graphnet._spmm import spmm as _impl

    if X.dim() < 1 or X.shape[0] != A.shape[1]:
        raise GraphError(f"spmm: A has {A.shape[1]} columns (source nodes) but X has shape {tuple(X.shape)}")
    if A.val.dim() == 2 and (X.dim() != 3 or X.shape[2] != A.val.shape[1]):
        H = A.val.shape[1]
        raise GraphError(f"spmm: A has {H} values per edge, so X must have shape (N_src, F, {H}), "
                         f"got {tuple(X.shape)}")
    return _impl(A, X)
