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
"""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import torch
import torch.nn.functional as F
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError


def check_input(
    layer: str, A: SparseMatrix, X: Tensor, in_dim: int, square: bool = False, dst_first: bool = False
) -> None:
    """Raise GraphError unless A is a SparseMatrix of an accepted shape and X is (N_src, in_dim).

    ``square``: A must be (N, N) (e.g. multi-hop layers, which propagate over one node set repeatedly).
    ``dst_first``: A may also be a block (N_dst, N_src) with N_dst <= N_src whose source nodes
    0..N_dst-1 are the destination nodes (DGL's message-flow-graph convention); the layer's self term
    reads ``X[:N_dst]`` (``dst_features``). Takes precedence over ``square``.
    """
    if not isinstance(A, SparseMatrix):
        raise GraphError(f"{layer}: expected A to be a dgl.sparse.SparseMatrix, got {type(A).__name__}")
    if dst_first and A.shape[0] > A.shape[1]:
        raise GraphError(
            f"{layer}: expected a square adjacency or a block with the destination nodes first "
            f"(N_dst <= N_src, source nodes 0..N_dst-1 are the destination nodes), "
            f"got shape (N_dst={A.shape[0]}, N_src={A.shape[1]})"
        )
    if square and not dst_first and A.shape[0] != A.shape[1]:
        raise GraphError(
            f"{layer}: expected a square adjacency (N_dst == N_src; this layer does not take blocks), "
            f"got shape {tuple(A.shape)}"
        )
    if not isinstance(X, Tensor) or X.dim() != 2 or X.shape[0] != A.shape[1] or X.shape[1] != in_dim:
        got = tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__
        raise GraphError(f"{layer}: expected X of shape (N_src={A.shape[1]}, in_dim={in_dim}), got {got}")


def dst_features(A: SparseMatrix, X: Tensor) -> Tensor:
    """The destination nodes' own rows ``X[:N_dst]`` of a square A or a dst-first block (N_dst, N_src).

    Returns X itself when A is square, so the square case runs exactly the ops it always ran.
    """
    n_dst = A.shape[0]
    return X if X.shape[0] == n_dst else X[:n_dst]


def _scalar_weights(layer: str, A: SparseMatrix) -> Tensor:
    if A.val.dim() != 1:
        raise GraphError(
            f"{layer}: expected scalar edge weights, A.val of shape (nnz,), got {tuple(A.val.shape)}"
        )
    return A.val


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
        _scalar_weights("GraphConv", A)
        H = ops.spmm(A, X @ self.weight)  # (N_dst, out_dim)
        return H if self.bias is None else H + self.bias


class SAGEConv(nn.Module):
    """GraphSAGE layer (Hamilton et al. 2017, https://arxiv.org/abs/1706.02216).

    ``h_i = W_self x_i + W_neigh agg_i + b`` with the aggregator

    - ``"mean"``: ``agg_i = sum_j w_ij x_j / sum_j w_ij`` (weighted mean; 0 for zero weighted in-degree);
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
        w = _scalar_weights("SAGEConv", A)
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


class GATConv(nn.Module):
    """Graph attention (Velickovic et al. 2018, https://arxiv.org/abs/1710.10903), multi-head, edge-weighted.

    ``alpha_ij = softmax_j(LeakyReLU(a_src . W x_j + a_dst . W x_i [+ a_edge . W_e f_ij]))`` per head,
    ``h_i = sum_j w_ij alpha_ij W x_j + b``. Edge weight: ``w_ij = A[i, j]`` scales the attention-weighted
    message *after* the softmax (as DGL's ``edge_weight``), so all-ones weights give plain GAT and a zero
    weight silences the edge without removing it from the softmax. Optional edge features ``f_ij``
    (``edge_dim``) enter the logits (as PyG's ``edge_dim``). Attention dropout acts on alpha.
    Computed as ``h_i = (sum_j w_ij p_ij W x_j) / s_i`` with ``p_ij = exp(logit_ij - c_i)``,
    ``s_i = sum_j p_ij`` (so alpha = p / s) and a shift c_i bounding row i's logits (``_shift``): one
    ``ops.spmm`` per head with that head's (nnz,) values ``w p`` (keeps the scalar kernel), then a per-row
    division, instead of an edge softmax's per-edge max, sum and division.

    Args:
        in_dim, out_dim: feature sizes (per head). num_heads: attention heads. negative_slope: LeakyReLU.
        attn_dropout: dropout on alpha. edge_dim: size of edge features (None: no edge features).
        bias: learnable bias (num_heads, out_dim).

    Shapes:
        A: (N_dst, N_src), N_dst <= N_src (a block: destination nodes first), values (nnz,) or
        (nnz, num_heads). X: (N_src, in_dim). edge_feat: (nnz, edge_dim). Output: (N_dst, num_heads, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_heads: int = 1,
        negative_slope: float = 0.2,
        attn_dropout: float = 0.0,
        edge_dim: int | None = None,
        bias: bool = True,
    ):
        super().__init__()
        self.in_dim, self.out_dim, self.num_heads, self.edge_dim = in_dim, out_dim, num_heads, edge_dim
        self.negative_slope = negative_slope
        self.lin = nn.Linear(in_dim, num_heads * out_dim, bias=False)
        self.attn_src = nn.Parameter(torch.empty(num_heads, out_dim))
        self.attn_dst = nn.Parameter(torch.empty(num_heads, out_dim))
        self.lin_edge = nn.Linear(edge_dim, num_heads * out_dim, bias=False) if edge_dim else None
        self.attn_edge = nn.Parameter(torch.empty(num_heads, out_dim)) if edge_dim else None
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.bias = nn.Parameter(torch.empty(num_heads, out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("relu")
        for p in (self.lin.weight, self.attn_src, self.attn_dst):
            nn.init.xavier_normal_(p, gain=gain)
        if self.lin_edge is not None:
            nn.init.xavier_normal_(self.lin_edge.weight, gain=gain)
            nn.init.xavier_normal_(self.attn_edge, gain=gain)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_dim}, {self.out_dim}, num_heads={self.num_heads}, edge_dim={self.edge_dim}, "
            f"negative_slope={self.negative_slope}, bias={self.bias is not None}"
        )

    def forward(self, A: SparseMatrix, X: Tensor, edge_feat: Tensor | None = None) -> Tensor:
        check_input("GATConv", A, X, self.in_dim, dst_first=True)
        H, F_out, n_dst = self.num_heads, self.out_dim, A.shape[0]
        if self.lin_edge is not None and (edge_feat is None or edge_feat.shape != (A.nnz, self.edge_dim)):
            got = None if edge_feat is None else tuple(edge_feat.shape)
            raise GraphError(
                f"GATConv: expected edge_feat of shape (nnz={A.nnz}, {self.edge_dim}), got {got}"
            )
        Z = self.lin(X).view(-1, H, F_out)  # (N_src, H, F)
        # a . (W x) = (W^T a) . x: the attention vectors folded into the weights give every node's logit
        # terms from one thin product, with no (N, H, F) multiply-and-sum (or (E, H, F) for edge features).
        # Per-edge tensors are head-major (H, E): each head's values are then a contiguous row for spmm.
        W = self.lin.weight.view(H, F_out, self.in_dim)
        a = torch.stack([self.attn_src, self.attn_dst], 1)  # (H, 2, F)
        U = torch.bmm(a, W).transpose(0, 1).reshape(2 * H, self.in_dim)  # rows: W_h^T a_src_h, then a_dst
        el_er = U @ X.T  # (2H, N_src)
        el, er = el_er[:H], el_er[H:, :n_dst]  # (H, N_src), (H, N_dst): destination terms of a block's rows
        row, col = A.row, A.col
        logits = el.index_select(1, col) + er.index_select(1, row)  # (H, E)
        ee = None
        if self.lin_edge is not None:
            W_e = self.lin_edge.weight.view(H, F_out, self.edge_dim)
            U_e = torch.bmm(self.attn_edge.unsqueeze(1), W_e).squeeze(1)  # (H, edge_dim)
            ee = U_e @ edge_feat.T  # (H, E)
            logits = logits + ee
        logits = F.leaky_relu(logits, self.negative_slope)
        # Softmax over each row's in-edges, normalized *after* aggregation: h_i = (sum_j w_ij p_ij z_j) / s_i
        # with p_ij = exp(logit_ij - c_i), s_i = sum_j p_ij: no per-edge max (usually), gather or division.
        p = torch.exp(logits - self._shift(el, er, ee, logits, row))  # (H, E), in (0, 1]
        s = torch.zeros(H, n_dst, dtype=p.dtype, device=p.device).index_add(1, row, p)  # (H, N_dst)
        w = A.val if A.val.dim() == 1 else A.val.T  # (E,) or (H, E)
        # Dropout on p is dropout on alpha (they differ by a per-row factor). (H, E); w.T may be strided.
        msg = (self.attn_dropout(p) * w).contiguous()
        Z_h = Z.transpose(0, 1).contiguous()  # (H, N_src, F)
        out = torch.stack(
            [ops.spmm(dglsp.val_like(A, m), z) for m, z in zip(msg.unbind(0), Z_h.unbind(0), strict=True)], 1
        )  # (N_dst, H, F)
        inv = torch.where(s > 0, torch.where(s > 0, s, 1).reciprocal(), 0).T.unsqueeze(-1)  # (N_dst, H, 1)
        return out * inv if self.bias is None else torch.addcmul(self.bias, out, inv)

    def _shift(self, el: Tensor, er: Tensor, ee: Tensor | None, logits: Tensor, row: Tensor) -> Tensor:
        """c_i >= every logit of row i, per head, broadcastable to (H, E): exp(logit - c_i) <= 1.

        The softmax does not depend on c_i, but the exp of a row's largest logit must not underflow. For
        0 <= slope, LeakyReLU is monotone and max(1, slope)-Lipschitz, so c = LeakyReLU(sum of the maxima
        of the terms) exceeds a row's max by at most max(1, slope) * (sum of the terms' ranges); within
        half the exponent range that exp stays a normal number. Cheapest first: one constant per head
        (ranges of sources, destinations, edges), one per destination (ranges of sources and edges), else
        the exact row max (a scatter over the edges, what every edge softmax pays).
        """
        slope = self.negative_slope
        with torch.no_grad():  # c_i cancels from the output: no gradient through it
            if logits.shape[1] and slope >= 0:
                limit = -0.5 * math.log(torch.finfo(logits.dtype).tiny) / max(1.0, slope)
                hi_src, hi_dst = el.amax(1, keepdim=True), er.amax(1, keepdim=True)  # (H, 1)
                gap_src, gap_dst = hi_src - el.amin(1, keepdim=True), hi_dst - er.amin(1, keepdim=True)
                hi_e = gap_e = torch.zeros_like(hi_src)
                if ee is not None:
                    hi_e = ee.amax(1, keepdim=True)
                    gap_e = hi_e - ee.amin(1, keepdim=True)
                if bool((gap_src + gap_dst + gap_e <= limit).all()):
                    return F.leaky_relu(hi_src + hi_dst + hi_e, slope)  # (H, 1)
                if bool((gap_src + gap_e <= limit).all()):
                    return F.leaky_relu(er + hi_src + hi_e, slope).index_select(1, row)  # (H, E)
            m = torch.zeros_like(er).scatter_reduce(
                1, row.expand_as(logits), logits, "amax", include_self=False
            )
            return m.index_select(1, row)  # (H, E)


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
        _scalar_weights("GINConv", A)
        return self.mlp((1 + self.eps) * dst_features(A, X) + ops.spmm(A, X))


class SGConv(nn.Module):
    """Simplified graph convolution (Wu et al. 2019, https://arxiv.org/abs/1902.07153).

    ``H = A^K X W + b``. Edge weight: ``A[i, j]`` scales the message from j at every hop; pass
    ``ops.gcn_norm(A)`` for SGC's S = D^-1/2 (A + I) D^-1/2. Nothing is cached across calls.

    Args:
        in_dim, out_dim: feature sizes. K: number of hops. bias: learnable bias.

    Shapes:
        A: (N, N) square, values (nnz,). X: (N, in_dim). Output: (N, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, K: int = 2, bias: bool = True):
        super().__init__()
        self.in_dim, self.out_dim, self.K = in_dim, out_dim, K
        self.lin = nn.Linear(in_dim, out_dim, bias=bias)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, K={self.K}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("SGConv", A, X, self.in_dim, square=True)
        _scalar_weights("SGConv", A)
        # A^K (X W) == (A^K X) W: propagate whichever is narrower; the bias goes on after.
        project_first = self.out_dim < self.in_dim
        H = F.linear(X, self.lin.weight) if project_first else X
        for _ in range(self.K):
            H = ops.spmm(A, H)
        H = H if project_first else F.linear(H, self.lin.weight)
        return H if self.lin.bias is None else H + self.lin.bias


class APPNPConv(nn.Module):
    """APPNP propagation (Gasteiger et al. 2019, https://arxiv.org/abs/1810.05997), no parameters.

    ``H_0 = X``, ``H_{k+1} = (1 - alpha) A H_k + alpha X``, output ``H_K``. Edge weight: ``A[i, j]``
    scales the message from j at every step; pass ``ops.gcn_norm(A)`` for the paper's A_hat.

    Args:
        K: propagation steps. alpha: teleport (restart) probability.

    Shapes:
        A: (N, N) square, values (nnz,). X: (N, F). Output: (N, F).
    """

    def __init__(self, K: int = 10, alpha: float = 0.1):
        super().__init__()
        self.K, self.alpha = K, alpha

    def reset_parameters(self) -> None:
        """No parameters."""

    def extra_repr(self) -> str:
        return f"K={self.K}, alpha={self.alpha}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("APPNPConv", A, X, X.shape[-1] if isinstance(X, Tensor) else -1, square=True)
        _scalar_weights("APPNPConv", A)
        H = X
        for _ in range(self.K):
            H = (1 - self.alpha) * ops.spmm(A, H) + self.alpha * X
        return H


class ChebConv(nn.Module):
    """Chebyshev spectral convolution (Defferrard et al. 2016, https://arxiv.org/abs/1606.09375).

    ``H = sum_{k<K} T_k(L) X W_k + b`` with ``T_0 = X``, ``T_1 = L X``, ``T_k = 2 L T_{k-1} - T_{k-2}``.
    ``L`` is the scaled Laplacian from ``ops.scaled_laplacian(A)`` (weighted degrees), so an edge weight
    enters through L's entries ``-(2 / lambda_max) a_ij / sqrt(d_i d_j)``. ``K`` counts the terms T_0..T_{K-1}
    (DGL's and PyG's convention; Kipf & Welling's "K = 3" is K=4 here). W_0..W_{K-1} are stored stacked
    in one Linear on ``[T_0 | ... | T_{K-1}]`` (DGL's layout).

    Args:
        in_dim, out_dim: feature sizes. K: number of Chebyshev terms (>= 1). bias: learnable bias.

    Shapes:
        A (= L): (N, N) square, values (nnz,). X: (N, in_dim). Output: (N, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, K: int = 2, bias: bool = True):
        super().__init__()
        if K < 1:
            raise ConfigError(f"ChebConv: expected K >= 1 Chebyshev terms, got K={K}")
        self.in_dim, self.out_dim, self.K = in_dim, out_dim, K
        self.lin = nn.Linear(K * in_dim, out_dim, bias=bias)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, K={self.K}"

    def forward(self, L: SparseMatrix, X: Tensor) -> Tensor:
        check_input("ChebConv", L, X, self.in_dim, square=True)
        _scalar_weights("ChebConv", L)
        T = [X]
        if self.K > 1:
            T.append(ops.spmm(L, X))
        for _ in range(2, self.K):
            T.append(2 * ops.spmm(L, T[-1]) - T[-2])
        return self.lin(torch.cat(T, 1))  # (N, K * in_dim) -> (N, out_dim)


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
        a = _scalar_weights("EdgeFeatConv", A)
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


class LightGCNProp(nn.Module):
    """LightGCN propagation (He et al. 2020, https://arxiv.org/abs/2002.02126), no parameters.

    ``E_0 = X``, ``E_{k+1} = A E_k``, output ``mean(E_0, ..., E_K)``. Edge weight: ``A[i, j]`` scales the
    message from j at every layer; pass ``ops.gcn_norm(A, self_loops=False)`` for the paper's
    D^-1/2 A D^-1/2.

    Args:
        num_layers: K, the number of propagation steps.

    Shapes:
        A: (N, N) square, values (nnz,). X: (N, F). Output: (N, F).
    """

    def __init__(self, num_layers: int = 3):
        super().__init__()
        self.num_layers = num_layers

    def reset_parameters(self) -> None:
        """No parameters."""

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"

    def forward(self, A: SparseMatrix, X: Tensor) -> Tensor:
        check_input("LightGCNProp", A, X, X.shape[-1] if isinstance(X, Tensor) else -1, square=True)
        _scalar_weights("LightGCNProp", A)
        H, total = X, X
        for _ in range(self.num_layers):
            H = ops.spmm(A, H)
            total = total + H
        return total / (self.num_layers + 1)
