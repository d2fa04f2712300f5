"""DGL's own neighbor sampler behind graphnet's sampler interface (``task.sampler = "dgl"``).

``DGLNeighborSampler`` returns the same ``MiniBatch`` / ``EdgeMiniBatch`` as
``graphnet.sampling.NeighborSampler`` (blocks as dgl.sparse matrices in graphnet orientation with values
from ``A.val``, ``eids`` into A's nonzeros, each block's destination nodes first among its sources), but the
edges are drawn by ``dgl.dataloading.NeighborSampler(fanouts).sample_blocks`` on a DGLGraph view of A
(edge ``A.col[e] -> A.row[e]`` has id e; built once and cached on the matrix). Link batches exclude their
own positive edges (both directions with ``exclude="reverse"``) through its ``exclude_eids``, which is
what ``dgl.dataloading.as_edge_prediction_sampler(exclude="reverse_id")`` does for edge-id seeds.

Randomness: DGL draws from its global RNG; each batch first calls ``dgl.seed`` with a number drawn from
the run's torch generator. DGL 2.1's CPU sampler is reproducible under ``dgl.seed`` only with one OpenMP
thread (with 2 it samples different edges for the same seed), so runs with this sampler repeat exactly only
with ``OMP_NUM_THREADS=1``; graphnet's own sampler (the default) repeats on any number of threads.
Non-source order differs from graphnet's (DGL: first appearance; graphnet: increasing id).
"""

from __future__ import annotations

import warnings

import dgl
import dgl.sparse as dglsp
import torch
from dgl.sparse import SparseMatrix
from dgl.utils import get_num_threads
from torch import Tensor

from graphnet.errors import GraphError
from graphnet.sampling import MiniBatch, NeighborSampler, unique_seeds

_GRAPH_ATTR = "_graphnet_dgl_graph"  # the DGLGraph view of A, cached on the matrix object


def dgl_graph(A: SparseMatrix) -> dgl.DGLGraph:
    """A as a DGLGraph: edge e goes ``A.col[e] -> A.row[e]`` (graphnet orientation), edge id e.

    Cached on A (dies with it); the graph holds no values, only A's index arrays.
    """
    g = A.__dict__.get(_GRAPH_ATTR)
    if g is None:
        if A.shape[0] != A.shape[1]:
            raise GraphError(f"DGLNeighborSampler: expected a square adjacency, got shape {tuple(A.shape)}")
        g = A.__dict__[_GRAPH_ATTR] = dgl.graph((A.col, A.row), num_nodes=A.shape[0])
    return g


class DGLNeighborSampler(NeighborSampler):
    """``dgl.dataloading.NeighborSampler(fanouts, replace=replace)`` producing graphnet mini-batches.

    Args:
        fanouts: in-edges sampled per destination node for each layer, input layer first; -1 = all.
        replace: sample with replacement (DGL's semantics).
    """

    def __init__(self, fanouts: list[int], replace: bool = False):
        super().__init__(fanouts, replace=replace, rescale=False)
        self._dgl = dgl.dataloading.NeighborSampler(list(fanouts), replace=replace)
        if get_num_threads() > 1:
            warnings.warn(
                f"DGLNeighborSampler: DGL samples with {get_num_threads()} OpenMP threads, so batches (and "
                "the run's results) will not repeat for the same seed; set OMP_NUM_THREADS=1 or use "
                "task.sampler = 'graphnet'",
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"DGLNeighborSampler(fanouts={self.fanouts}, replace={self.replace})"

    def sample(
        self,
        A: SparseMatrix,
        seeds: Tensor,
        generator: torch.Generator | None = None,
        exclude_eids: Tensor | None = None,
    ) -> MiniBatch:
        """The L blocks that compute the seeds' outputs (see graphnet.sampling.NeighborSampler.sample)."""
        seeds = unique_seeds(seeds, A.device)
        if generator is not None:
            dgl.seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)))
        excl = None if exclude_eids is None or exclude_eids.numel() == 0 else exclude_eids.to(A.device)
        _, _, dgl_blocks = self._dgl.sample_blocks(dgl_graph(A), seeds, exclude_eids=excl)
        blocks, eids, nodes = [], [], []
        for b in dgl_blocks:
            u, v = b.edges()  # local source / destination ids of each sampled edge
            eid = b.edata[dgl.EID].long()
            shape = (b.num_dst_nodes(), b.num_src_nodes())
            blocks.append(dglsp.spmatrix(torch.stack([v, u]), A.val[eid], shape))  # row = dst, col = src
            eids.append(eid)
            nodes.append(b.srcdata[dgl.NID].long())
        nodes.append(seeds)
        return MiniBatch(blocks, eids, nodes)
