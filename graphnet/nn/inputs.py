"""Input checks and the block helper shared by the layer modules (conv, conv_gat, conv_prop, conv_rel).

Layers validate their own arguments with these (naming the layer and the expected shape) and never read a
config. Orientation and the block convention are described in graphnet.nn.conv.
"""

from __future__ import annotations

from dgl.sparse import SparseMatrix
from torch import Tensor

from graphnet.errors import GraphError


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


def scalar_weights(layer: str, A: SparseMatrix) -> Tensor:
    if A.val.dim() != 1:
        raise GraphError(
            f"{layer}: expected scalar edge weights, A.val of shape (nnz,), got {tuple(A.val.shape)}"
        )
    return A.val
