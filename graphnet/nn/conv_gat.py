"""Graph attention (GATConv) on dgl.sparse: attention logits per edge, softmax normalized after aggregation.

Orientation, edge weights and the block convention as in graphnet.nn.conv (re-exported there).
"""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import torch
import torch.nn.functional as F
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import GraphError
from graphnet.nn.inputs import check_input


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
