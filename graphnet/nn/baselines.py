"""Embedding models that learn one vector per node: MF, LightGCN, plain KG embeddings and GC-MC.

They follow the model contract of graphnet.nn.models (``forward(A, X, edge_type=None, edge_feat=None)``
returns (N, out_dim) node representations; ``preprocess(A, edge_type)`` is applied once by the task), so the
one Trainer cannot tell them from GNN stacks. They ignore X (``in_dim`` is accepted for the common
signature) and need ``num_nodes``; the class attribute ``takes_node_ids = True`` tells tasks to pass it and
not to add a learnable input embedding of their own. Scoring (dot product, DistMult, bilinear) lives in
graphnet.nn.heads and is applied by the tasks; KG embeddings carry their triple scorer as ``.scorer``.
"""

from __future__ import annotations

import math

import dgl.sparse as dglsp
import torch
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn.conv import LightGCNProp
from graphnet.nn.conv_rel import check_edge_type
from graphnet.nn.heads import make_triple_scorer


class MF(nn.Module):
    """Matrix factorisation (MF-BPR, Rendle et al. 2009): node u is represented by a free vector e_u.

    With the dot decoder the score of (user, item) is <e_u, e_i>. A is ignored.

    Args:
        in_dim: ignored (common model signature); out_dim: embedding width d; num_nodes: N;
        init_std: std of the normal init (0.1 as LightGCN's code for MF and LightGCN).
    Shapes: -> (N, d).
    """

    takes_node_ids = True

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, init_std: float = 0.1):
        super().__init__()
        self.init_std = init_std
        self.embedding = nn.Embedding(num_nodes, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=self.init_std)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return A

    def forward(self, A: SparseMatrix, X: Tensor | None = None, edge_type: Tensor | None = None,
                edge_feat: Tensor | None = None) -> Tensor:
        return self.embedding.weight


class LightGCN(nn.Module):
    """LightGCN (He et al. 2020, arXiv:2002.02126): parameter-free propagation of free node embeddings.

    E^(k+1) = A_hat E^(k) with A_hat = D^-1/2 A D^-1/2 (``ops.gcn_norm(A, self_loops=False)``), and the
    output is the layer mean  E = 1/(K+1) sum_{k=0..K} E^(k). E^(0) (``self.embedding``) is the only
    parameter; tasks regularize its rows ("ego embeddings").

    Args:
        in_dim: ignored; out_dim: embedding width d (64 in the paper); num_nodes: N (users + items);
        num_layers: K (3 in the paper); init_std: normal init std (0.1).
    Shapes: A (N, N) normalized, -> (N, d).
    """

    takes_node_ids = True

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_layers: int = 3, init_std: float = 0.1):
        super().__init__()
        self.init_std = init_std
        self.embedding = nn.Embedding(num_nodes, out_dim)
        self.prop = LightGCNProp(num_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=self.init_std)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.gcn_norm(A, self_loops=False)

    def forward(self, A: SparseMatrix, X: Tensor | None = None, edge_type: Tensor | None = None,
                edge_feat: Tensor | None = None) -> Tensor:
        return self.prop(A, self.embedding.weight)


class KGEmbedding(nn.Module):
    """Plain knowledge-graph embedding: free entity vectors + a triple scorer (no GNN encoder, A ignored).

    ``forward`` returns the entity matrix; ``self.scorer`` (graphnet.nn.heads: DistMult, ComplEx or
    RotatE) owns the relation parameters and scores triples from it. The registry holds the subclasses
    DistMultKGE, ComplExKGE and RotatEKGE, which fix ``score``.
    Init: Xavier-normal for DistMult/ComplEx (ConvE's code); RotatE: uniform in +-(gamma + 2) / (d/2) as
    the RotatE code (embedding_range with epsilon = 2).
    Dropout is ConvE's input dropout and lives in the scorer: in training it drops entries of the query
    entity and relation vectors only, never the candidate matrix of 1-N scoring (ConvE model.py:
    ``mm(drop(e1) * drop(rel), emb_e.weight.T)``), so ``forward`` returns the table itself.

    Args:
        in_dim: ignored; out_dim: entity width d (even for complex/rotate: [re | im]);
        num_nodes: number of entities; num_relations: R; score: "distmult" | "complex" | "rotate";
        gamma: RotatE margin; dropout: input dropout of the scorer (see above).
    Shapes: -> (N, d).
    """

    takes_node_ids = True

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_relations: int, score: str,
                 gamma: float = 12.0, dropout: float = 0.0):
        super().__init__()
        self.score = score
        self.gamma = gamma
        self.dropout = dropout
        self.entity = nn.Parameter(torch.empty(num_nodes, out_dim))
        self.scorer = make_triple_scorer(self.score, num_relations, out_dim, gamma, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.score == "rotate":
            bound = (self.gamma + 2.0) / (self.entity.shape[1] // 2)
            nn.init.uniform_(self.entity, -bound, bound)
        else:
            nn.init.xavier_normal_(self.entity)
        self.scorer.reset_parameters()

    def extra_repr(self) -> str:
        return f"score={self.score!r}, num_entities={self.entity.shape[0]}, dim={self.entity.shape[1]}"

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return A

    def forward(self, A: SparseMatrix, X: Tensor | None = None, edge_type: Tensor | None = None,
                edge_feat: Tensor | None = None) -> Tensor:
        return self.entity  # no dropout here: these rows are also the 1-N candidates


class DistMultKGE(KGEmbedding):
    """KGEmbedding with the DistMult scorer (Yang et al. 2015). Config keys: dropout."""

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_relations: int, dropout: float = 0.0):
        super().__init__(in_dim, out_dim, num_nodes, num_relations, "distmult", dropout=dropout)


class ComplExKGE(KGEmbedding):
    """KGEmbedding with the ComplEx scorer (Trouillon et al. 2016). Config keys: dropout."""

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_relations: int, dropout: float = 0.0):
        super().__init__(in_dim, out_dim, num_nodes, num_relations, "complex", dropout=dropout)


class RotatEKGE(KGEmbedding):
    """KGEmbedding with the RotatE scorer (Sun et al. 2019). Config keys: gamma (margin), dropout."""

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_relations: int, gamma: float = 12.0,
                 dropout: float = 0.0):
        super().__init__(in_dim, out_dim, num_nodes, num_relations, "rotate", gamma=gamma, dropout=dropout)


class GCMC(nn.Module):
    """GC-MC graph auto-encoder's encoder (van den Berg et al. 2017, arXiv:1706.02263), featureless variant.

    One graph convolution per rating level r over the user-item graph, with one-hot node inputs (so
    W_r x_j is row j of a learned table W_r):
        stack: h_i = relu( concat_r  sum_j A_r[i, j] W_r[j] ),   W_r (N, hidden_dim / R)
        sum:   h_i = relu( sum_r sum_j A_r[i, j] (W_1 + ... + W_r)[j] )  (ordinal weight sharing)
    then a dense layer z_i = W_d dropout(h_i) (linear, as GC-MC's code). A_r keeps the edges of rating r
    from the globally normalized adjacency (degrees d over all ratings; ``preprocess``):
        norm="symmetric": A[i, j] / sqrt(d_i d_j)  (GC-MC's default flag; DGL's gcmc example)
        norm="left":      A[i, j] / d_i, the mean over i's neighbours (GC-MC's ``-nleft``, which its
                          run_experiments.sh uses for ml-100k)
    Dropout on the one-hot inputs drops whole node rows and rescales by 1/(1-p) (GC-MC's sparse dropout).
    The bilinear decoder is graphnet.nn.heads.BilinearDecoder, applied by the rating task.

    Args:
        in_dim: ignored (no side features); out_dim: width of z (75 in the paper);
        num_nodes: users + items; num_ratings: R rating levels (edge_type = rating class 0..R-1);
        hidden_dim: width of h (500 in the paper; divisible by R for "stack");
        dropout: 0.7 in the paper; accum: "stack" | "sum"; norm: "symmetric" | "left" (above).
    Shapes: A (N, N) with edge_type (nnz,) -> (N, out_dim).
    """

    takes_node_ids = True

    def __init__(self, in_dim: int, out_dim: int, num_nodes: int, num_ratings: int, hidden_dim: int = 500,
                 dropout: float = 0.7, accum: str = "stack", norm: str = "symmetric"):
        super().__init__()
        if accum not in ("stack", "sum"):
            raise ConfigError(f"GCMC accum: expected 'stack' or 'sum', got {accum!r}")
        if norm not in ("symmetric", "left"):
            raise ConfigError(f"GCMC norm: expected 'symmetric' or 'left', got {norm!r}")
        if accum == "stack" and hidden_dim % num_ratings:
            raise ConfigError(f"GCMC: hidden_dim={hidden_dim} must be divisible by num_ratings={num_ratings} "
                             f"for accum='stack'")
        self.accum, self.dropout, self.num_ratings, self.norm = accum, dropout, num_ratings, norm
        width = hidden_dim // num_ratings if accum == "stack" else hidden_dim
        self.W = nn.Parameter(torch.empty(num_ratings, num_nodes, width))
        self.dense = nn.Linear(hidden_dim, out_dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Glorot-uniform over the (num_nodes, hidden_dim) one-hot weight, as GC-MC's init.
        hidden = self.W.shape[2] * (self.num_ratings if self.accum == "stack" else 1)
        bound = math.sqrt(6.0 / (self.W.shape[1] + hidden))
        nn.init.uniform_(self.W, -bound, bound)
        nn.init.xavier_uniform_(self.dense.weight)

    def extra_repr(self) -> str:
        return (f"num_ratings={self.num_ratings}, accum={self.accum!r}, dropout={self.dropout}, "
                f"norm={self.norm!r}")

    def preprocess(self, A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.gcn_norm(A, self_loops=False) if self.norm == "symmetric" else ops.row_norm(A)

    def forward(self, A: SparseMatrix, X: Tensor | None = None, edge_type: Tensor | None = None,
                edge_feat: Tensor | None = None) -> Tensor:
        if edge_type is None:
            raise GraphError("GCMC: expected edge_type (rating class per edge of A), got None")
        # a class >= num_ratings, or a short edge_type, would otherwise drop those edges without a word
        edge_type = check_edge_type("GCMC", A, edge_type, self.num_ratings)
        W = self.W  # (R, N, width)
        if self.training and self.dropout > 0:
            keep = (torch.rand(W.shape[1], 1, device=W.device) >= self.dropout).to(W.dtype)  # (N, 1)
            W = W * keep / (1 - self.dropout)
        if self.accum == "sum":
            W = torch.cumsum(W, 0)  # ordinal sharing: level r uses W_1 + ... + W_r
        parts = []
        for r in range(self.num_ratings):
            sel = (edge_type == r).nonzero().squeeze(1)
            A_r = dglsp.spmatrix(torch.stack([A.row[sel], A.col[sel]]), A.val[sel], A.shape)
            parts.append(ops.spmm(A_r, W[r]))  # (N, width)
        H = torch.cat(parts, 1) if self.accum == "stack" else torch.stack(parts).sum(0)
        H = torch.relu(H)
        return self.dense(nn.functional.dropout(H, self.dropout, self.training))


BASELINES = {
    "lightgcn": LightGCN,
    "mf": MF,
    "distmult": DistMultKGE,
    "complex": ComplExKGE,
    "rotate": RotatEKGE,
    "gcmc": GCMC,
}
