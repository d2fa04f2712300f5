"""Edge-weighted graph convolutions on dgl.sparse.

Every layer takes ``forward(A, X)`` with ``A`` a (N_dst, N_src) ``dgl.sparse.SparseMatrix`` in graphnet's
orientation (``A[i, j]`` = weight of edge j -> i, so ``A @ X`` sums over in-neighbours) and reads edge
weights only from ``A.val``. Each docstring states the one meaning the weight has in that layer. All
sparse x dense products go through ``graphnet.ops.spmm`` (scalar values), so they use its kernel choice.
Normalization is not done here (except SAGE's weighted mean, which *is* the aggregator): the model's
``preprocess`` applies ``ops.gcn_norm`` and friends once at set-up.

Blocks (sampled mini-batches, graphnet.sampling): a one-hop layer also takes a (N_dst, N_src) block with
N_dst <= N_src whose source nodes 0..N_dst-1 are its destination nodes (DGL's convention); a self/root
term reads ``X[:N_dst]``, so ``layer(A[D][:, S], X[S]) == layer(A, X)[D]`` when S = D followed by the other
in-neighbours of D. GraphConv, SAGE, GAT, GIN and EdgeFeatConv do; the multi-hop layers (SGC, APPNP, Cheb,
LightGCN) need the square A and say so.

Which layers satisfy "a zero-weight edge == a removed edge": every layer whose aggregation is a weighted
sum (GraphConv, SAGE mean/sum, SAGE pool for non-negative weights, GIN, SGC, APPNP, Cheb, EdgeFeat,
LightGCN, RelGraphConv). Not GATConv: the weight multiplies the message *after* the softmax, so a
zero-weight edge still takes its share of the softmax denominator.

Modules: this one holds the one-hop weighted-sum layers (GraphConv, SAGEConv, GINConv, EdgeFeatConv);
``conv_gat`` the attention layer, ``conv_prop`` the multi-hop propagation layers (SGConv, APPNPConv,
ChebConv, LightGCNProp), ``conv_rel`` RelGraphConv; the first two are re-exported here, so
``graphnet.nn.conv.GATConv`` keeps working. Shared input checks live in ``graphnet.nn.inputs``.
"""

from __future__ import annotations

import dgl.sparse as dglsp
import torch
import torch.nn.functional as F
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn.conv_gat import GATConv
from graphnet.nn.conv_prop import APPNPConv, ChebConv, LightGCNProp, SGConv
from graphnet.nn.inputs import check_input, dst_features, scalar_weights

__all__ = [
    "APPNPConv", "ChebConv", "EdgeFeatConv", "GATConv", "GINConv", "GraphConv", "LightGCNProp", "SAGEConv",
    "SGConv", "check_input", "dst_features", "scalar_weights",
]


def _inv_in_degree(A: SparseMatrix, w: Tensor) -> Tensor:
    """``1 / sum_j w_ij`` per row as a (N_dst, 1) column; 0 for a row of weight 0 (no entries or all zero).

    Rows whose signed weights sum to <= 0 with a nonzero weight have no mean and raise GraphError, as does
    a non-finite weight (``ops.row_norm``'s rules and messages). Those O(E) checks run only when some
    degree is not positive (e.g. nodes without in-edges), so a graph with positive degrees pays O(N).
    """
    d = ops.in_degrees(A)  # (N_dst,)
    positive = d > 0
    finite = torch.isfinite(d)  # a NaN or inf weight makes its row's degree non-finite
    if not bool((positive & finite).all()) and (not bool(finite.all()) or bool((w < 0).any())):
        ops.row_norm(A)  # raises naming the node and its weights; returns if every such row is fine
    safe = torch.where(positive, d, torch.ones_like(d))  # no 1/0: its gradient would be NaN
    return torch.where(positive, safe.reciprocal(), torch.zeros_like(d)).unsqueeze(1)


class GraphConv(nn.Module):
    """Graph convolution (Kipf & Welling 2017, https://arxiv.org/abs/1609.02907) for whatever A it is given.

    ``H = A (X W) + b``, i.e. ``h_i = sum_j a_ij W x_j + b``. Edge weight: ``a_ij`` scales the message
    from j. Normalize beforehand (``ops.gcn_norm(A)`` = D^-1/2 (A + I) D^-1/2 with weighted degrees).
    DGL users: ``dgl.nn.GraphConv(norm="both")`` given ``edge_weight`` normalizes by *unweighted* degrees;
    its equal on a weighted graph is ``EdgeWeightNorm("both")`` on the self-looped graph, then
    ``GraphConv(norm="none")`` with those weights.

    Args:
        in_dim: input feature size. out_dim: output feature size.
        bias: add a learnable bias after aggregation (before, A would rescale it per node).

    Shapes:
        A: (N_dst, N_src), values (nnz,). X: (N_src, in_dim). Output: (N_dst, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)  # Glorot, as in Kipf & Welling
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, bias={self.bias is not None}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("GraphConv", A, X, self.in_dim)
        scalar_weights("GraphConv", A)
        H = ops.spmm(A, X @ self.weight)  # (N_dst, out_dim)
        return H if self.bias is None else H + self.bias


class SAGEConv(nn.Module):
    """GraphSAGE layer (Hamilton et al. 2017, https://arxiv.org/abs/1706.02216).

    ``h_i = W_self x_i + W_neigh agg_i + b`` with the aggregator

    - ``"mean"``: ``agg_i = sum_j w_ij x_j / sum_j w_ij`` (weighted mean; 0 for a node without in-edges or
      with only zero weights; signed weights that sum to <= 0 with a nonzero weight raise GraphError, as in
      ``ops.row_norm``);
    - ``"sum"``:  ``agg_i = sum_j w_ij x_j``;
    - ``"pool"``: ``agg_i = max_j w_ij * relu(W_pool x_j + b_pool)`` (elementwise max over in-neighbours of
      the weight-scaled pooled features, DGL's ``u_mul_e`` + max; 0 without in-neighbours). With non-negative
      weights every term is >= 0, so a zero-weight edge contributes nothing, as if removed.

    Edge weight: ``w_ij = A[i, j]`` as above. DGL's ``SAGEConv(mean)`` with ``edge_weight`` instead divides
    the weighted sum by the *unweighted* in-degree; both agree for all-ones weights.
    Blocks: A may be (N_dst, N_src) with the destination nodes first (``x_i`` = ``X[i]`` for i < N_dst).

    Args:
        in_dim, out_dim: feature sizes. aggregator: "mean", "sum" or "pool". bias: learnable bias.

    Shapes:
        A: (N_dst, N_src), N_dst <= N_src, values (nnz,). X: (N_src, in_dim). Output: (N_dst, out_dim).
    """

    AGGREGATORS = ("mean", "sum", "pool")

    def __init__(self, in_dim: int, out_dim: int, aggregator: str = "mean", bias: bool = True):
        super().__init__()
        if aggregator not in self.AGGREGATORS:
            raise ConfigError(f"SAGEConv: aggregator must be one of {self.AGGREGATORS}, got {aggregator!r}")
        self.in_dim, self.out_dim, self.aggregator = in_dim, out_dim, aggregator
        self.lin_pool = nn.Linear(in_dim, in_dim) if aggregator == "pool" else None
        self.lin_self = nn.Linear(in_dim, out_dim, bias=False)
        self.lin_neigh = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("relu")
        for lin in (self.lin_pool, self.lin_self, self.lin_neigh):
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight, gain=gain)
        if self.lin_pool is not None:
            nn.init.zeros_(self.lin_pool.bias)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, aggregator={self.aggregator!r}, bias={self.bias is not None}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("SAGEConv", A, X, self.in_dim, dst_first=True)
        w = scalar_weights("SAGEConv", A)
        if self.aggregator == "mean":
            # spmm(A, .) / d rather than spmm(row_norm(A), .): A itself keeps spmm's cached kernel choice
            # (all-ones A: DGL's unweighted kernel) instead of a new matrix and its tests at every call.
            H = ops.spmm(A, self.lin_neigh(X)) * _inv_in_degree(A, w)  # W first: linear, so it commutes
        elif self.aggregator == "sum":
            H = ops.spmm(A, self.lin_neigh(X))
        else:
            # A max is not a sum, so no spmm: scatter the (E, in_dim) weighted messages with amax.
            msg = w.unsqueeze(1) * F.relu(self.lin_pool(X))[A.col]  # (E, in_dim)
            agg = torch.zeros(A.shape[0], self.in_dim, dtype=msg.dtype, device=msg.device)
            agg = agg.scatter_reduce(0, A.row.unsqueeze(1).expand_as(msg), msg, "amax", include_self=False)
            H = self.lin_neigh(agg)  # (N_dst, out_dim)
        return F.linear(dst_features(A, X), self.lin_self.weight, self.bias) + H  # (N_dst, out_dim)


class GINConv(nn.Module):
    """Graph isomorphism layer (Xu et al. 2019, https://arxiv.org/abs/1810.00826), weighted sum.

    ``h_i = MLP((1 + eps) x_i + sum_j w_ij x_j)``, MLP = Linear-ReLU-Linear. Edge weight: ``w_ij = A[i, j]``
    scales the message from j. ``eps`` is learnable (GIN-eps) unless ``learn_eps=False`` (fixed, GIN-0).

    Blocks: A may be (N_dst, N_src) with the destination nodes first (``x_i`` = ``X[i]`` for i < N_dst).

    Args:
        in_dim, out_dim: feature sizes. hidden_dim: MLP hidden size (default out_dim). eps: initial eps.
        learn_eps: make eps a parameter.

    Shapes:
        A: (N_dst, N_src), N_dst <= N_src, values (nnz,). X: (N_src, in_dim). Output: (N_dst, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        eps: float = 0.0,
        learn_eps: bool = True,
    ):
        super().__init__()
        self.in_dim, self.out_dim, self.init_eps, self.learn_eps = in_dim, out_dim, eps, learn_eps
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
        if learn_eps:
            self.eps = nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.mlp[0], self.mlp[2]):
            lin.reset_parameters()
        with torch.no_grad():
            self.eps.fill_(self.init_eps)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, eps={self.init_eps}, learn_eps={self.learn_eps}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("GINConv", A, X, self.in_dim, dst_first=True)
        scalar_weights("GINConv", A)
        return self.mlp((1 + self.eps) * dst_features(A, X) + ops.spmm(A, X))


class EdgeFeatConv(nn.Module):
    """Edge-gated convolution: a learned linear map of each edge's weight/features gates its message.

    ``h_i = sum_j (W e_ij) * (Theta x_j) [+ W_root x_i] + b`` (elementwise *), with ``e_ij = a_ij f_ij``:
    ``a_ij = A[i, j]`` the edge weight and ``f_ij`` the edge's feature vector (edge_feat row), or
    ``f_ij = 1`` (edge_dim=1) without edge features, so ``e_ij`` is then the scalar weight itself. W has no
    bias, so the gate is linear in ``a_ij``: a zero-weight edge is a removed edge, and an unweighted graph
    (all-ones A) with features gates by ``W f_ij`` alone. The nonlinearity sigma of the usual formula is
    applied by the model stack between layers, as for every layer here.
    Computed as ``sum_k W[:, k] * spmm(A_k, X Theta)``, A_k with values ``a_ij f_ij[k]``: one scalar
    ``ops.spmm`` per edge-feature column, never an (E, out_dim) message tensor.

    Args:
        in_dim, out_dim: feature sizes. edge_dim: size of e_ij (1 for scalar weights).
        root: add ``W_root x_i`` (requires a square A or a block with the destination nodes first,
            N_dst <= N_src, ``x_i`` = ``X[i]``). bias: learnable bias.

    Shapes:
        A: (N_dst, N_src), values (nnz,). X: (N_src, in_dim). edge_feat: (nnz, edge_dim) or None.
        Output: (N_dst, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, edge_dim: int = 1, root: bool = True, bias: bool = True):
        super().__init__()
        self.in_dim, self.out_dim, self.edge_dim = in_dim, out_dim, edge_dim
        self.lin = nn.Linear(in_dim, out_dim, bias=False)  # Theta
        self.gate = nn.Linear(edge_dim, out_dim, bias=False)  # W
        self.lin_root = nn.Linear(in_dim, out_dim, bias=False) if root else None
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin, self.gate, self.lin_root):
            if lin is not None:
                lin.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_dim}, {self.out_dim}, edge_dim={self.edge_dim}, root={self.lin_root is not None}, "
            f"bias={self.bias is not None}"
        )

    def forward(self, A: SparseMatrix, X: Tensor, edge_feat: Tensor | None = None) -> Tensor:
        check_input("EdgeFeatConv", A, X, self.in_dim, dst_first=self.lin_root is not None)
        a = scalar_weights("EdgeFeatConv", A)
        if edge_feat is None and self.edge_dim != 1:
            raise GraphError(
                f"EdgeFeatConv: expected edge_feat of shape (nnz={A.nnz}, {self.edge_dim}), got None"
            )
        if edge_feat is not None and edge_feat.shape != (A.nnz, self.edge_dim):
            raise GraphError(
                f"EdgeFeatConv: expected edge_feat of shape (nnz={A.nnz}, {self.edge_dim}), "
                f"got {tuple(edge_feat.shape)}"
            )
        XT = self.lin(X)  # (N_src, out_dim)
        if edge_feat is None:
            H = ops.spmm(A, XT) * self.gate.weight[:, 0]  # (N_dst, out_dim)
        else:
            e = a.unsqueeze(1) * edge_feat  # (E, edge_dim)
            H = sum(
                ops.spmm(dglsp.val_like(A, e[:, k]), XT) * self.gate.weight[:, k]
                for k in range(self.edge_dim)
            )
        if self.lin_root is not None:
            H = H + self.lin_root(dst_features(A, X))
        return H if self.bias is None else H + self.bias
