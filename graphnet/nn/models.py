"""Model stacks: layers from conv.py / conv_rel.py stacked into node encoders, plus a dense MLP baseline.

Every model maps ``forward(A, X, edge_type=None, edge_feat=None)`` to (N, out_dim) node representations
and has ``preprocess(A, edge_type=None)``, the adjacency it expects, which a task calls ONCE at set-up.
Arguments a model does not use (A for the MLP, edge_type outside R-GCN, edge_feat outside GAT/EdgeFeat)
are ignored, so one training loop can call every model the same way. Defaults are each paper's
Planetoid (node classification) setting. Models never compute losses.

Mini-batch protocol (graphnet.sampling; models with ``supports_blocks = True``: MLP, GCN, SAGE, GIN,
GAT, EdgeFeat, RGCN): ``num_layers``; ``forward_layer(i, A, H, edge_type=None, edge_feat=None)`` applies
layer i with its dropout before and its activation after; ``forward`` also takes a list of ``num_layers``
blocks (A_i of shape (N_dst_i, N_src_i), destination nodes first) with per-block lists of edge data, and
then returns the last block's destination rows. SGC, APPNP, Cheb and the K-hop propagations inside one
layer need the square A and stay full-batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn.conv import APPNPConv, ChebConv, EdgeFeatConv, GATConv, GINConv, GraphConv, SAGEConv, SGConv
from graphnet.nn.conv_rel import RelGraphConv, relation_norm


def _check_sizes(model: str, in_dim: int, out_dim: int, num_layers: int, dropout: float,
                 hidden_dim: int | None = None) -> None:
    """ConfigError naming the argument for non-positive sizes (``hidden_dim`` is checked when given)."""
    sizes = [("in_dim", in_dim), ("out_dim", out_dim), ("num_layers", num_layers)]
    if hidden_dim is not None:
        sizes.append(("hidden_dim", hidden_dim))
    for name, v in sizes:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{model}: expected {name} to be an integer >= 1, got {v!r}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{model}: expected 0 <= dropout < 1, got {dropout!r}")


def _dims(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> list[tuple[int, int]]:
    """(in, out) of each layer: in -> hidden -> ... -> hidden -> out."""
    sizes = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def per_layer(
    A: SparseMatrix | list[SparseMatrix],
    edge_type: Tensor | list[Tensor] | None,
    edge_feat: Tensor | list[Tensor] | None,
    num_layers: int,
    model: str,
) -> list[tuple[SparseMatrix, Tensor | None, Tensor | None]]:
    """(A_i, edge_type_i, edge_feat_i) for each layer: one matrix shared by all layers, or one block each.

    With blocks, edge data must be None or a list with one tensor per block (rows aligned with the block's
    nonzeros, e.g. ``edge_feat[batch.eids[i]]``).
    """
    if not isinstance(A, (list, tuple)):
        return [(A, edge_type, edge_feat)] * num_layers
    if len(A) != num_layers:
        raise GraphError(f"{model}: expected {num_layers} blocks (one per layer), got {len(A)}")
    data = []
    for name, d in (("edge_type", edge_type), ("edge_feat", edge_feat)):
        if d is None:
            d = [None] * num_layers
        elif not isinstance(d, (list, tuple)) or len(d) != num_layers:
            raise GraphError(f"{model}: with blocks, expected {name} as a list of {num_layers} tensors "
                             f"(one per block), got {type(d).__name__}")
        data.append(d)
    return list(zip(A, *data, strict=True))


class _Stack(nn.Module):
    """Shared loop: dropout -> layer -> activation between layers (none after the last).

    Subclasses pass their layers and dropout rate and override ``layer_forward`` when a layer takes
    more than ``(A, H)``; ``forward_layer`` and a list of blocks in ``forward`` come for free.
    ``input_dropout`` is the rate on the first layer's input: None = ``dropout`` (Kipf & Welling's GCN,
    DGL's examples); 0 = none, as the OGB link-prediction examples, which drop only between layers.
    """

    supports_blocks = True

    def __init__(self, layers: list[nn.Module], dropout: float, input_dropout: float | None = None):
        super().__init__()
        if input_dropout is not None and not 0.0 <= input_dropout < 1.0:
            raise ConfigError(f"{type(self).__name__}: expected 0 <= input_dropout < 1 (or None = dropout), "
                              f"got {input_dropout!r}")
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.input_dropout = self.dropout if input_dropout is None else nn.Dropout(input_dropout)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def extra_repr(self) -> str:
        return f"dropout={self.dropout.p}, input_dropout={self.input_dropout.p}"

    def forward(
        self,
        A: SparseMatrix | list[SparseMatrix],
        X: Tensor,
        edge_type: Tensor | list[Tensor] | None = None,
        edge_feat: Tensor | list[Tensor] | None = None,
    ) -> Tensor:
        H = X
        for i, (A_i, et, ef) in enumerate(per_layer(A, edge_type, edge_feat, self.num_layers,
                                                     type(self).__name__)):
            H = self.forward_layer(i, A_i, H, et, ef)
        return H

    def forward_layer(
        self, i: int, A: SparseMatrix, H: Tensor, edge_type: Tensor | None = None,
        edge_feat: Tensor | None = None,
    ) -> Tensor:
        """Layer i: dropout, the layer, then ReLU unless it is the last.

        Shapes: A (N_dst, N_src), H (N_src, F) -> (N_dst, F').
        """
        H = self.layer_forward(self.layers[i], A, self.dropout_before(i)(H), edge_type, edge_feat)
        return F.relu(H) if i < self.num_layers - 1 else H

    def dropout_before(self, i: int) -> nn.Module:
        """The dropout on layer i's input: ``input_dropout`` for the first layer, ``dropout`` after that
        (every override of ``forward_layer`` takes it from here)."""
        return self.input_dropout if i == 0 else self.dropout

    def layer_forward(
        self, layer: nn.Module, A: SparseMatrix, H: Tensor, edge_type: Tensor | None, edge_feat: Tensor | None
    ) -> Tensor:
        return layer(A, H)


class MLP(_Stack):
    """Dense baseline: Linear layers with ReLU and dropout; ignores the graph.

    Shapes: X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int = 64, num_layers: int = 2, dropout: float = 0.5,
        input_dropout: float | None = None,
    ):
        _check_sizes("MLP", in_dim, out_dim, num_layers, dropout, hidden_dim)
        super().__init__([nn.Linear(i, o) for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)],
                         dropout, input_dropout)
        self.in_dim = in_dim

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return A

    def forward(
        self,
        A: SparseMatrix | list[SparseMatrix] | None,
        X: Tensor,
        edge_type: Tensor | None = None,
        edge_feat: Tensor | None = None,
    ) -> Tensor:
        if not isinstance(X, Tensor) or X.dim() != 2 or X.shape[1] != self.in_dim:
            got = tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__
            raise GraphError(f"MLP: expected X of shape (N, in_dim={self.in_dim}), got {got}")
        return super().forward(A, X)

    def layer_forward(self, layer, A, H, edge_type, edge_feat):
        # a block's destination nodes are its first A.shape[0] sources: keep just their rows
        return layer(H if A is None else H[: A.shape[0]])


class GCN(_Stack):
    """GCN (Kipf & Welling 2017): GraphConv layers on ``gcn_norm(A)`` = D^-1/2 (A + I) D^-1/2, weighted.

    Defaults: hidden 16, dropout 0.5 (Planetoid setting). Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden_dim: int = 16, num_layers: int = 2, dropout: float = 0.5,
        input_dropout: float | None = None,
    ):
        _check_sizes("GCN", in_dim, out_dim, num_layers, dropout, hidden_dim)
        layers = [GraphConv(i, o) for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout, input_dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.gcn_norm(A)


class SAGE(_Stack):
    """GraphSAGE (Hamilton et al. 2017), full-batch, weighted mean/sum/pool aggregation on the raw A.

    Defaults: hidden 16, dropout 0.5, aggregator "mean" (DGL's full-batch Planetoid setting).
    Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        aggregator: str = "mean",
        input_dropout: float | None = None,
    ):
        _check_sizes("SAGE", in_dim, out_dim, num_layers, dropout, hidden_dim)
        layers = [SAGEConv(i, o, aggregator) for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout, input_dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return A  # the weighted mean is the aggregator itself (SAGEConv divides by the weighted in-degree)


class GIN(_Stack):
    """GIN (Xu et al. 2019): GINConv layers (Linear-ReLU-Linear MLPs, learnable eps), weighted sum on A.

    Defaults: hidden 64, dropout 0.5 (the paper's setting; no batch norm here).
    Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 64,
        num_layers: int = 2,
        dropout: float = 0.5,
        learn_eps: bool = True,
        input_dropout: float | None = None,
    ):
        _check_sizes("GIN", in_dim, out_dim, num_layers, dropout, hidden_dim)
        layers = [GINConv(i, o, hidden_dim=hidden_dim, learn_eps=learn_eps)
                  for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout, input_dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return A


class Cheb(_Stack):
    """ChebNet (Defferrard et al. 2016): ChebConv layers on ``scaled_laplacian(A)`` (weighted degrees).

    Defaults: hidden 16, dropout 0.5, K=4 terms T_0..T_3 (Kipf & Welling's Chebyshev baseline, "K = 3").
    Shapes: A (N, N), X (N, in_dim) -> (N, out_dim). Multi-hop inside each layer: no blocks.
    """

    supports_blocks = False

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        K: int = 4,
    ):
        _check_sizes("Cheb", in_dim, out_dim, num_layers, dropout, hidden_dim)
        layers = [ChebConv(i, o, K) for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.scaled_laplacian(A)


class EdgeFeat(_Stack):
    """Edge-gated network: EdgeFeatConv layers (root term on) on the row-normalized A, so each node takes
    the weighted mean of its gated messages. Without ``edge_feat`` the gate reads the scalar weight
    (edge_dim=1); a given ``edge_feat`` must be (E, edge_dim), so d-dim edge features need edge_dim=d.

    Defaults: hidden 16, dropout 0.5. Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 16,
        num_layers: int = 2,
        dropout: float = 0.5,
        edge_dim: int = 1,
    ):
        _check_sizes("EdgeFeat", in_dim, out_dim, num_layers, dropout, hidden_dim)
        layers = [EdgeFeatConv(i, o, edge_dim) for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.row_norm(A)  # keeps the edge order, so edge_feat stays aligned

    def layer_forward(self, layer, A, H, edge_type, edge_feat):
        return layer(A, H, edge_feat)  # None: scalar weights (edge_dim must be 1)


class RGCN(_Stack):
    """R-GCN encoder (Schlichtkrull et al. 2018): RelGraphConv layers on ``relation_norm(A, edge_type)``.

    Defaults: hidden 16, dropout 0, basis decomposition with num_bases = num_relations unless given
    (entity-classification setting). Shapes: A (N, N), X (N, in_dim), edge_type (E,) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_relations: int,
        num_bases: int | None = None,
        hidden_dim: int = 16,
        num_layers: int = 2,
        dropout: float = 0.0,
        regularizer: str | None = "basis",
        self_loop: bool = True,
    ):
        _check_sizes("RGCN", in_dim, out_dim, num_layers, dropout, hidden_dim)
        if not isinstance(num_relations, int) or num_relations < 1:
            raise ConfigError(f"RGCN: expected num_relations to be an integer >= 1, got {num_relations!r}")
        layers = [RelGraphConv(i, o, num_relations, regularizer, num_bases, self_loop)
                  for i, o in _dims(in_dim, hidden_dim, out_dim, num_layers)]
        super().__init__(layers, dropout)

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return relation_norm(A, edge_type)

    def layer_forward(self, layer, A, H, edge_type, edge_feat):
        return layer(A, H, edge_type)


class GAT(_Stack):
    """GAT (Velickovic et al. 2018): GATConv layers on A with self-loops (weight 1) added.

    Hidden layers concatenate ``num_heads`` heads of ``hidden_dim`` and apply ELU; the last layer averages
    ``out_heads`` heads. Dropout ``dropout`` on every layer's input (``input_dropout``, if given, on the
    first layer's) and ``attn_dropout`` on attention.
    With ``edge_dim``, edge features enter the logits; ``preprocess`` appends the self-loops after the
    original edges, and their features are taken as zeros when edge_feat has only the original rows.
    Defaults (Cora): 8 heads x 8 hidden, 1 output head, dropout 0.6, attention dropout 0.6.

    Shapes: A (N, N), X (N, in_dim), edge_feat (E, edge_dim) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 8,
        num_layers: int = 2,
        dropout: float = 0.6,
        num_heads: int = 8,
        out_heads: int = 1,
        attn_dropout: float = 0.6,
        negative_slope: float = 0.2,
        edge_dim: int | None = None,
        input_dropout: float | None = None,
    ):
        _check_sizes("GAT", in_dim, out_dim, num_layers, dropout, hidden_dim)
        dims = [in_dim] + [hidden_dim * num_heads] * (num_layers - 1)
        layers = [GATConv(d, hidden_dim, num_heads, negative_slope, attn_dropout, edge_dim)
                  for d in dims[:-1]]
        layers.append(GATConv(dims[-1], out_dim, out_heads, negative_slope, attn_dropout, edge_dim))
        super().__init__(layers, dropout, input_dropout)
        self.edge_dim = edge_dim

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.add_self_loops(A)

    def forward(
        self, A: SparseMatrix, X: Tensor, edge_type: Tensor | None = None, edge_feat: Tensor | None = None
    ) -> Tensor:
        if self.edge_dim is None:
            edge_feat = None
        elif isinstance(edge_feat, Tensor) and not isinstance(A, list) and edge_feat.shape[0] < A.nnz:
            # the self-loops appended by preprocess get zero features (blocks carry aligned rows already)
            pad = edge_feat.new_zeros(A.nnz - edge_feat.shape[0], edge_feat.shape[1])
            edge_feat = torch.cat([edge_feat, pad])
        return super().forward(A, X, edge_type, edge_feat)

    def forward_layer(
        self, i: int, A: SparseMatrix, H: Tensor, edge_type: Tensor | None = None,
        edge_feat: Tensor | None = None,
    ) -> Tensor:
        """Layer i: dropout, attention layer (N_dst, heads, F), then ELU of the concatenated heads, or the
        mean over heads for the last layer."""
        H = self.layers[i](A, self.dropout_before(i)(H), edge_feat if self.edge_dim is not None else None)
        return F.elu(H.flatten(1)) if i < self.num_layers - 1 else H.mean(1)


class SGC(nn.Module):
    """SGC (Wu et al. 2019): one SGConv, ``S^K X W + b`` with S = gcn_norm(A). No hidden layer.

    Defaults: K=2, no dropout. Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, K: int = 2, dropout: float = 0.0):
        super().__init__()
        _check_sizes("SGC", in_dim, out_dim, 1, dropout)
        self.conv = SGConv(in_dim, out_dim, K)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def extra_repr(self) -> str:
        return f"dropout={self.dropout.p}"

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.gcn_norm(A)

    def forward(
        self, A: SparseMatrix, X: Tensor, edge_type: Tensor | None = None, edge_feat: Tensor | None = None
    ) -> Tensor:
        return self.conv(A, self.dropout(X))


class APPNP(nn.Module):
    """APPNP (Gasteiger et al. 2019): an MLP predicts, then K steps of personalized-PageRank propagation
    over gcn_norm(A) smooth the predictions.

    Defaults: hidden 64, dropout 0.5, K=10, alpha=0.1 (paper's setting; no adjacency dropout).
    Shapes: A (N, N), X (N, in_dim) -> (N, out_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 64,
        num_layers: int = 2,
        dropout: float = 0.5,
        K: int = 10,
        alpha: float = 0.1,
    ):
        super().__init__()
        self.mlp = MLP(in_dim, out_dim, hidden_dim, num_layers, dropout)
        self.prop = APPNPConv(K, alpha)

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    @staticmethod
    def preprocess(A: SparseMatrix, edge_type: Tensor | None = None) -> SparseMatrix:
        return ops.gcn_norm(A)

    def forward(
        self, A: SparseMatrix, X: Tensor, edge_type: Tensor | None = None, edge_feat: Tensor | None = None
    ) -> Tensor:
        return self.prop(A, self.mlp(A, X))


ENCODERS = {
    "mlp": MLP,
    "gcn": GCN,
    "sage": SAGE,
    "gat": GAT,
    "gin": GIN,
    "sgc": SGC,
    "appnp": APPNP,
    "cheb": Cheb,
    "edgefeat": EdgeFeat,
    "rgcn": RGCN,
}
