"""The one meaning of an edge weight (README): it multiplies the edge's message, so a zero-weight edge is the
same as no edge and weight 2 the same as the edge stored twice; GAT and SAGE ``pool`` are the documented
exceptions. Each layer runs with its model's preprocessing on a directed float64 graph with duplicates,
self-loops and isolated nodes, once with an extra edge 5 -> 1 and once with it removed or doubled.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from graphnet import ops
from graphnet.graph import adjacency
from graphnet.nn.conv import (
    APPNPConv,
    ChebConv,
    EdgeFeatConv,
    GATConv,
    GINConv,
    GraphConv,
    LightGCNProp,
    SAGEConv,
    SGConv,
)
from graphnet.nn.conv_rel import RelGraphConv, relation_norm

N = 10


def _graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random edges among nodes 0..6, node 7 with out-edges only, 8 and 9 isolated; a duplicate 2 -> 5,
    self-loops on 0 and (twice) on 3; weights in [0.2, 2)."""
    g = torch.Generator().manual_seed(6)
    src = torch.cat([torch.randint(0, 7, (18,), generator=g), torch.tensor([7, 7, 2, 2, 0, 3, 3])])
    dst = torch.cat([torch.randint(0, 7, (18,), generator=g), torch.tensor([1, 4, 5, 5, 0, 3, 3])])
    w = 0.2 + 1.8 * torch.rand(src.numel(), generator=g, dtype=torch.float64)
    return src, dst, w


def _relational(layer: RelGraphConv) -> Callable:
    return lambda A, X, et: layer(relation_norm(A, et), X, et)


def _plain(layer: torch.nn.Module, pre: Callable) -> Callable:
    return lambda A, X, et: layer(pre(A), X)


def _same(A):
    return A


def _layers() -> dict[str, tuple[Callable, bool, bool]]:
    """name -> (forward(A, X, edge_type), zero weight == removed edge, weight 2 == duplicated edge)."""
    return {
        "GraphConv + gcn_norm": (_plain(GraphConv(4, 3).double(), ops.gcn_norm), True, True),
        "SAGE mean": (_plain(SAGEConv(4, 3, "mean").double(), _same), True, True),
        "SAGE sum": (_plain(SAGEConv(4, 3, "sum").double(), _same), True, True),
        "SAGE pool": (_plain(SAGEConv(4, 3, "pool").double(), _same), True, False),
        "GIN": (_plain(GINConv(4, 3).double(), _same), True, True),
        "GAT + add_self_loops": (_plain(GATConv(4, 3, 2).double(), ops.add_self_loops), False, False),
        "SGC + gcn_norm": (_plain(SGConv(4, 3).double(), ops.gcn_norm), True, True),
        "APPNP + gcn_norm": (_plain(APPNPConv(4, 0.1), ops.gcn_norm), True, True),
        "Cheb + scaled_laplacian": (_plain(ChebConv(4, 3, 3).double(), ops.scaled_laplacian), True, True),
        "LightGCN + gcn_norm(self_loops=False)": (_plain(LightGCNProp(2), lambda A: ops.gcn_norm(A, False)),
                                                  True, True),
        "EdgeFeat + row_norm": (_plain(EdgeFeatConv(4, 3).double(), ops.row_norm), True, True),
        "R-GCN + relation_norm": (_relational(RelGraphConv(4, 3, 2, "basis", 2).double()), True, True),
    }


with torch.random.fork_rng():  # fixed initial weights, without touching the global RNG
    torch.manual_seed(0)
    LAYERS = _layers()


@pytest.mark.parametrize("name", LAYERS)
def test_zero_weight_is_no_edge_and_weight_two_is_a_duplicate(name):
    forward, zero_is_removed, two_is_duplicate = LAYERS[name]
    src, dst, w = _graph()
    X = torch.randn(N, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    et = torch.randint(0, 2, (src.numel() + 2,), generator=torch.Generator().manual_seed(2))
    E = src.numel()

    def run(extra: list[float]) -> torch.Tensor:
        """The graph plus len(extra) copies of edge 5 -> 1 with these weights (one relation for all)."""
        k = len(extra)
        s, d = torch.cat([src, torch.full((k,), 5)]), torch.cat([dst, torch.full((k,), 1)])
        types = torch.cat([et[:E], et[E:E + 1].repeat(k)])
        A = adjacency(s, d, N, torch.cat([w, torch.tensor(extra, dtype=torch.float64)]), dtype=torch.float64)
        return forward(A, X, types)

    removed, zero, two, dup = run([]), run([0.0]), run([2.0]), run([1.0, 1.0])
    assert torch.allclose(zero, removed, rtol=0, atol=1e-12) == zero_is_removed
    assert torch.allclose(two, dup, rtol=0, atol=1e-12) == two_is_duplicate
    assert not torch.allclose(two, removed, rtol=0, atol=1e-6)  # the extra edge does reach node 1
