"""SpMM kernel selection (placeholder: dgl.sparse's own kernel; replaced by the tuned dispatch)."""

import dgl.sparse as dglsp
from dgl.sparse import SparseMatrix
from torch import Tensor


def spmm(A: SparseMatrix, X: Tensor) -> Tensor:
    return dglsp.spmm(A, X)
