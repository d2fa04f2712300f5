"""Relational graph convolution (R-GCN) and its per-relation normalization.

Edges carry a relation id ``edge_type[e]`` aligned with A's nonzeros (``A.row[e], A.col[e]``) and a
scalar weight ``A.val[e]``. ``relation_norm`` divides each weight by the weighted in-degree of its
destination within its relation; ``RGCN.preprocess`` applies it once at set-up.
"""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import torch
from dgl.ops import gather_mm
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn.inputs import check_input, dst_features, scalar_weights


def check_edge_type(
    what: str, A: SparseMatrix, edge_type: Tensor | None, num_relations: int | None
) -> Tensor:
    """Raise GraphError unless edge_type is an (nnz,) integer tensor with ids in [0, num_relations)."""
    if edge_type is None:
        raise GraphError(
            f"{what}: expected edge_type (a relation id per edge) of shape (nnz={A.nnz},), got None"
        )
    if edge_type.shape != (A.nnz,) or edge_type.is_floating_point():
        raise GraphError(
            f"{what}: expected integer edge_type of shape (nnz={A.nnz},), got "
            f"{tuple(edge_type.shape)} {edge_type.dtype}"
        )
    if (
        num_relations is not None
        and edge_type.numel()
        and (edge_type.min() < 0 or edge_type.max() >= num_relations)
    ):
        raise GraphError(
            f"{what}: expected relation ids in 0..{num_relations - 1}, got range "
            f"{int(edge_type.min())}..{int(edge_type.max())}"
        )
    return edge_type.long()


def relation_norm(A: SparseMatrix, edge_type: Tensor) -> SparseMatrix:
    """R-GCN's per-relation normalization: ``a_ij / c_{i,r}``, c_{i,r} = sum of the weights of the
    r-edges into i (weighted in-degree per relation; |N_i^r| for an unweighted graph). Edge order is kept.

    Signed weights follow ``ops.row_norm``'s rule: a (node, relation) group of all-zero weights stays 0,
    but one with a nonzero weight whose weights sum to <= 0 has no mean and raises GraphError (dividing
    would flip the signs of a negative group, and a zero sum would silently drop it).

    Shapes:
        A: (N_dst, N_src), values (nnz,). edge_type: (nnz,). Output: same sparsity as A.
    """
    edge_type = check_edge_type("relation_norm", A, edge_type, None)
    a = scalar_weights("relation_norm", A)
    # unique over (dst, relation) pairs instead of an (N * R) table: KGs have many relations
    key = A.row * (int(edge_type.max()) + 1 if A.nnz else 1) + edge_type
    _, group = torch.unique(key, return_inverse=True)
    c = torch.zeros(int(group.max()) + 1 if A.nnz else 0, dtype=a.dtype, device=a.device).index_add(
        0, group, a
    )
    c = c[group]
    bad = (c <= 0) & (a != 0)
    if bool(bad.any()):
        e = int(bad.nonzero()[0])
        i, r = int(A.row[e]), int(edge_type[e])
        w = a[(A.row == i) & (edge_type == r)].tolist()
        raise GraphError(f"relation_norm: node {i} has weighted in-degree {float(c[e])} <= 0 for relation "
                         f"{r} (edge weights {w}); the per-relation mean needs a positive sum for every "
                         "(node, relation) with a nonzero weight")
    return dglsp.val_like(
        A, torch.where(c != 0, a / torch.where(c != 0, c, torch.ones_like(c)), torch.zeros_like(a))
    )


class RelGraphConv(nn.Module):
    """Relational graph convolution (Schlichtkrull et al. 2018, https://arxiv.org/abs/1703.06103).

    ``h_i = sum_r sum_{j in N_i^r} a_ij W_r x_j + W_0 x_i + b``. Edge weight: ``a_ij = A[i, j]`` scales
    the message; pass ``relation_norm(A, edge_type)`` for the paper's ``1 / c_{i,r}``. Decomposition of W_r:

    - ``None``: a full (in_dim, out_dim) matrix per relation;
    - ``"basis"``: ``W_r = sum_b coeff[r, b] V_b`` with num_bases shared V_b;
    - ``"bdd"``: W_r block-diagonal with num_bases blocks of (in_dim/B, out_dim/B).

    Parameter layouts follow DGL's TypedLinear (``weight``: (R, in, out) / (B, in, out) / (R, B, in/B,
    out/B); ``coeff``: (R, B)); ``loop_weight`` W_0: (in, out). No per-edge matrix products: the
    transform is applied to the N_src nodes and the E edges only gather and sum, through ``ops.spmm``
    (exact gradients to ``A.val`` and, via the values, to ``coeff``):

    - basis, by bases: ``H = sum_b A_b (X V_b)`` with ``A_b = val_like(A, a * coeff[etype, b])``, B SpMMs
      over A's own pattern; O(N_src in out B + E out B);
    - by relations (``None``; basis when ``by_relations`` finds it cheaper, i.e. R small next to B):
      ``H = sum_r A_r (X W_r)`` as one SpMM of the (N_dst, N_src R) matrix holding edge e at column
      j_e R + r_e with the (N_src R, out) table of all W_r x_j; O(N_src in out R + E out) time and
      O(N_src R out) memory;
    - bdd: messages ``W_{r_e} x_{j_e}`` per edge by ``dgl.ops.gather_mm`` on the blocks, summed by
      ``ops.spmm(S, M)`` with S the (N_dst, E) incidence matrix holding the edge weights; O(E in out / B).

    Args:
        in_dim, out_dim: feature sizes. num_relations: R. regularizer: None, "basis" or "bdd".
        num_bases: B (default R). self_loop: add W_0 x_i, x_i = X[i] for i < N_dst (a square A, or a block
            whose source nodes 0..N_dst-1 are its destination nodes). bias: learnable bias.

    Shapes:
        A: (N_dst, N_src), values (nnz,). X: (N_src, in_dim). edge_type: (nnz,) in [0, R).
        Output: (N_dst, out_dim).
    """

    REGULARIZERS = (None, "basis", "bdd")
    SPARSE_COST = 8
    """Cost of one sparse multiply-add (SpMM, SDDMM) in dense (GEMM) ones, measured on CPU (one thread,
    d = 100): with it ``by_relations`` picks the faster path on Kinship- (relations), UMLS- and
    FB15k-237-sized (bases) layers."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_relations: int,
        regularizer: str | None = "basis",
        num_bases: int | None = None,
        self_loop: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        if regularizer not in self.REGULARIZERS:
            raise ConfigError(
                f"RelGraphConv: regularizer must be one of {self.REGULARIZERS}, got {regularizer!r}"
            )
        B = num_relations if num_bases is None else num_bases
        if regularizer == "bdd" and (in_dim % B or out_dim % B):
            raise ConfigError(
                f"RelGraphConv: bdd needs in_dim and out_dim divisible by num_bases={B}, got "
                f"in_dim={in_dim}, out_dim={out_dim}"
            )
        self.in_dim, self.out_dim, self.num_relations = in_dim, out_dim, num_relations
        self.regularizer, self.num_bases = regularizer, B
        if regularizer is None:
            self.weight = nn.Parameter(torch.empty(num_relations, in_dim, out_dim))
        elif regularizer == "basis":
            self.weight = nn.Parameter(torch.empty(B, in_dim, out_dim))
            self.coeff = nn.Parameter(torch.empty(num_relations, B))
        else:
            self.weight = nn.Parameter(torch.empty(num_relations, B, in_dim // B, out_dim // B))
        self.loop_weight = nn.Parameter(torch.empty(in_dim, out_dim)) if self_loop else None
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_dim // self.num_bases if self.regularizer == "bdd" else self.in_dim
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))  # DGL TypedLinear
        if self.regularizer == "basis":
            nn.init.xavier_uniform_(self.coeff, gain=nn.init.calculate_gain("relu"))
        if self.loop_weight is not None:
            nn.init.xavier_uniform_(self.loop_weight, gain=nn.init.calculate_gain("relu"))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_dim}, {self.out_dim}, num_relations={self.num_relations}, "
            f"regularizer={self.regularizer!r}, num_bases={self.num_bases}, "
            f"self_loop={self.loop_weight is not None}, bias={self.bias is not None}"
        )

    def relation_weights(self) -> Tensor:
        """W_r for every relation: (R, in_dim, out_dim) (block-diagonal ones expanded for bdd)."""
        if self.regularizer is None:
            return self.weight
        if self.regularizer == "basis":
            return torch.einsum("rb,bio->rio", self.coeff, self.weight)
        return torch.stack([torch.block_diag(*blocks) for blocks in self.weight])

    def messages(self, x: Tensor, etype: Tensor) -> Tensor:
        """``W_{r_e} x_e`` per edge, (E, in_dim) -> (E, out_dim), by gather_mm (no per-edge weight copies).

        O(E in out) for None/basis: ``forward`` uses it for bdd only (O(E in out / B)).
        """
        if self.regularizer != "bdd":
            return gather_mm(x, self.relation_weights(), idx_b=etype)
        B, sub_in, sub_out = self.weight.shape[1:]
        blocks = self.weight.reshape(-1, sub_in, sub_out)  # (R * B, sub_in, sub_out)
        idx = (etype.unsqueeze(1) * B + torch.arange(B, device=x.device)).reshape(
            -1
        )  # (E * B,): block b of r
        return gather_mm(x.reshape(-1, sub_in), blocks, idx_b=idx).reshape(-1, self.out_dim)

    def by_relations(self, n_src: int, n_edges: int) -> bool:
        """True if ``forward`` takes the per-relation product: always without a decomposition; for basis
        when its cost N_src in out R + c E out is below the bases' N_src in out B + c E out B
        (c = SPARSE_COST), i.e. when R is small next to B."""
        if self.regularizer is None:
            return True
        if self.regularizer != "basis":
            return False
        dense, sparse = n_src * self.in_dim * self.out_dim, self.SPARSE_COST * n_edges * self.out_dim
        return dense * self.num_relations + sparse < (dense + sparse) * self.num_bases

    def forward(self, A: SparseMatrix, X: Tensor, edge_type: Tensor | None = None) -> Tensor:
        # with a self-loop, a block must list its destination nodes first (the loop reads X[:N_dst])
        check_input("RelGraphConv", A, X, self.in_dim, dst_first=self.loop_weight is not None)
        a = scalar_weights("RelGraphConv", A)
        etype = check_edge_type("RelGraphConv", A, edge_type, self.num_relations)
        if A.nnz == 0:
            H = X.new_zeros(A.shape[0], self.out_dim)
        elif self.regularizer == "bdd":
            H = self._by_edges(A, X, a, etype)
        elif self.by_relations(A.shape[1], A.nnz):
            H = self._by_relations(A, X, a, etype)
        else:
            H = self._by_bases(A, X, a, etype)
        if self.loop_weight is not None:
            H = H + dst_features(A, X) @ self.loop_weight  # the destination nodes' own rows
        return H if self.bias is None else H + self.bias

    def _by_edges(self, A: SparseMatrix, X: Tensor, a: Tensor, etype: Tensor) -> Tensor:
        msg = self.messages(X[A.col], etype)  # (E, out_dim)
        # (N_dst, E) incidence matrix holding the edge weights: row i sums the weighted messages into i.
        S = dglsp.spmatrix(torch.stack([A.row, torch.arange(A.nnz, device=X.device)]), a, (A.shape[0], A.nnz))
        return ops.spmm(S, msg)  # (N_dst, out_dim)

    def _by_relations(self, A: SparseMatrix, X: Tensor, a: Tensor, etype: Tensor) -> Tensor:
        R = self.num_relations
        W = self.relation_weights().permute(1, 0, 2).reshape(self.in_dim, R * self.out_dim)  # [W_0 ... W_R-1]
        XW = (X @ W).reshape(-1, self.out_dim)  # (N_src * R, out): row j * R + r is W_r x_j
        cols = A.col * R + etype  # edge e reads row col_e * R + r_e
        A_rel = dglsp.spmatrix(torch.stack([A.row, cols]), a, (A.shape[0], A.shape[1] * R))
        return ops.spmm(A_rel, XW)  # (N_dst, out_dim)

    def _by_bases(self, A: SparseMatrix, X: Tensor, a: Tensor, etype: Tensor) -> Tensor:
        # unbind, not [b] or split: their backward zero-fills the whole (E, B) / (N_src, B * out) gradient
        # once per basis, while unbind's stacks the B pieces once.
        H = None
        coeffs, bases = self.coeff[etype].unbind(1), self.weight.unbind(0)  # B x (E,), B x (in, out)
        for c_b, V_b in zip(coeffs, bases, strict=True):
            # val_like shares A's index arrays, so spmm reuses A's cached CSR pattern for every b
            term = ops.spmm(dglsp.val_like(A, a * c_b), X @ V_b)  # (N_dst, out)
            H = term if H is None else H + term
        return H
