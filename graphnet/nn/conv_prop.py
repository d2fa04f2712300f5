"""Multi-hop propagation layers on a square A: SGConv, APPNPConv, ChebConv, LightGCNProp.

Each applies K sparse products ``ops.spmm(A, .)`` inside one layer, so it needs the whole square A (no
blocks; the models built on them stay full-batch). Orientation and edge weights as in graphnet.nn.conv
(re-exported there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet import ops
from graphnet.errors import ConfigError
from graphnet.nn.inputs import check_input, scalar_weights


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
        scalar_weights("SGConv", A)
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
        scalar_weights("APPNPConv", A)
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
        scalar_weights("ChebConv", L)
        T = [X]
        if self.K > 1:
            T.append(ops.spmm(L, X))
        for _ in range(2, self.K):
            T.append(2 * ops.spmm(L, T[-1]) - T[-2])
        return self.lin(torch.cat(T, 1))  # (N, K * in_dim) -> (N, out_dim)


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
        scalar_weights("LightGCNProp", A)
        H, total = X, X
        for _ in range(self.num_layers):
            H = ops.spmm(A, H)
            total = total + H
        return total / (self.num_layers + 1)
