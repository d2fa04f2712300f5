"""Neighbor-sampled blocks and layer-wise inference against full-batch float64 references and DGL."""

import dgl
import dgl.sparse as dglsp
import pytest
import torch
from torch import nn

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn import conv
from graphnet.sampling import EdgeMiniBatch, NeighborSampler, edge_ids, layerwise_inference, shuffled_batches


def random_graph(n=40, m=160, seed=0, symmetric=False):
    """Weighted float64 graph without duplicate edges; nodes n-3.. have no in-edges (unless symmetric)."""
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (m,), generator=g), torch.randint(0, n - 3, (m,), generator=g)
    if symmetric:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    key = torch.unique(dst * n + src)  # no duplicates, row-major
    dst, src = key // n, key % n
    if symmetric:
        w = torch.rand(n * n, generator=g, dtype=torch.float64) + 0.5
        w = w.view(n, n)
        w = (w + w.T)[dst, src]  # same weight both ways
    else:
        w = torch.rand(key.numel(), generator=g, dtype=torch.float64) + 0.5
    # Shuffle the nonzeros so that edge ids differ from CSR positions (exercises value_indices).
    p = torch.randperm(key.numel(), generator=g)
    return dglsp.spmatrix(torch.stack([dst[p], src[p]]), w[p], (n, n))


class GCNStack(nn.Module):
    """2-layer GCN following the sampling protocol: H = act(A (H W) + b); A = gcn_norm(A) from setup."""

    def __init__(self, dims=(5, 8, 3)):
        super().__init__()
        self.lins = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.randn(b)) for b in dims[1:])
        self.num_layers = len(self.lins)

    def forward_layer(self, i, A, H):
        H = ops.spmm(A, self.lins[i](H)) + self.biases[i]
        return torch.relu(H) if i < self.num_layers - 1 else H

    def forward(self, A, X):
        blocks = A if isinstance(A, list) else [A] * self.num_layers
        for i, B in enumerate(blocks):
            X = self.forward_layer(i, B, X)
        return X


class SAGEStack(GCNStack):
    """Root term on the destination rows (the first N_dst source rows): H' = H_dst W1 + A_mean H W2."""

    def __init__(self, dims=(5, 8, 3)):
        super().__init__(dims)
        self.roots = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward_layer(self, i, A, H):
        H = self.roots[i](H[: A.shape[0]]) + ops.spmm(A, self.lins[i](H)) + self.biases[i]
        return torch.tanh(H) if i < self.num_layers - 1 else H


def dense(A):
    return A.to_dense()


STACKS = {"gcn": (GCNStack, lambda A: ops.gcn_norm(A)), "sage": (SAGEStack, ops.row_norm)}


@pytest.mark.parametrize("name", ["gcn", "sage"])
def test_full_fanout_sampled_forward_equals_full_batch(name):
    torch.manual_seed(0)
    cls, prep = STACKS[name]
    A = prep(random_graph())
    X = torch.randn(40, 5, dtype=torch.float64)
    model = cls().double()
    seeds = torch.tensor([3, 0, 39, 17, 8, 25, 38])  # unordered, includes a node without in-edges
    batch = NeighborSampler([-1, -1]).sample(A, seeds)
    out = model(batch.blocks, X[batch.input_nodes])
    ref = model(A, X)[seeds]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    # Gradients of a loss on the seeds agree too (sampled training = full-batch training on the seeds).
    g1 = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    g2 = torch.autograd.grad(model(A, X)[seeds].square().sum(), list(model.parameters()))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_full_fanout_with_graphnet_graphconv_layers():
    torch.manual_seed(3)

    class Stack(nn.Module):
        num_layers = 2

        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([conv.GraphConv(5, 8), conv.GraphConv(8, 3)])

        def forward_layer(self, i, A, H):
            H = self.layers[i](A, H)
            return torch.relu(H) if i == 0 else H

    A, X = ops.gcn_norm(random_graph(seed=4)), torch.randn(40, 5, dtype=torch.float64)
    model = Stack().double()
    full = model.forward_layer(1, A, model.forward_layer(0, A, X))
    seeds = torch.tensor([0, 7, 21, 39])
    batch = NeighborSampler([-1, -1]).sample(A, seeds)
    H = X[batch.input_nodes]
    for i, B in enumerate(batch.blocks):
        H = model.forward_layer(i, B, H)
    torch.testing.assert_close(H, full[seeds], rtol=0, atol=1e-10)
    torch.testing.assert_close(layerwise_inference(model, A, X, 16), full, rtol=0, atol=1e-10)


def test_block_structure_values_and_edge_ids():
    A = random_graph()
    gen = torch.Generator().manual_seed(1)
    seeds = torch.tensor([5, 1, 30, 12])
    batch = NeighborSampler([3, 2]).sample(A, seeds, gen)
    assert torch.equal(batch.output_nodes, seeds)
    assert len(batch.blocks) == len(batch.eids) == 2 and len(batch.nodes) == 3
    for l, (B, eid) in enumerate(zip(batch.blocks, batch.eids, strict=True)):
        src_nodes, dst_nodes = batch.nodes[l], batch.nodes[l + 1]
        assert B.shape == (dst_nodes.numel(), src_nodes.numel())
        assert torch.equal(src_nodes[: dst_nodes.numel()], dst_nodes)  # dst nodes come first
        assert src_nodes.unique().numel() == src_nodes.numel()
        # Every block nonzero is the original edge, with the original weight.
        assert torch.equal(dst_nodes[B.row], A.row[eid]) and torch.equal(src_nodes[B.col], A.col[eid])
        assert torch.equal(B.val, A.val[eid])
        # Every source node is a dst node or a sampled neighbour (no unused inputs).
        used = torch.zeros(src_nodes.numel(), dtype=torch.bool)
        used[: dst_nodes.numel()] = True
        used[B.col] = True
        assert used.all()


@pytest.mark.parametrize("fanout", [1, 2, 4])
def test_fanout_k_gives_min_k_deg_distinct_in_edges(fanout):
    A = random_graph(symmetric=False)
    deg = torch.bincount(A.row, minlength=40)
    gen = torch.Generator().manual_seed(fanout)
    seeds = torch.arange(40)
    batch = NeighborSampler([fanout]).sample(A, seeds, gen)
    B, eid = batch.blocks[0], batch.eids[0]
    got = torch.bincount(B.row, minlength=40)
    assert torch.equal(got, torch.clamp(deg, max=fanout))
    assert eid.unique().numel() == eid.numel()  # without replacement: no edge twice
    # With replacement: exactly `fanout` draws for every node that has an in-edge, none otherwise.
    B2 = NeighborSampler([fanout], replace=True).sample(A, seeds, gen).blocks[0]
    assert torch.equal(torch.bincount(B2.row, minlength=40), torch.where(deg > 0, fanout, 0))


def test_sampling_is_uniform_and_seeded():
    # Star: node 0 has 10 in-neighbours; each is kept with probability 3/10.
    A = dglsp.spmatrix(
        torch.stack([torch.zeros(10, dtype=torch.long), torch.arange(1, 11)]), torch.ones(10), (11, 11)
    )
    sampler, gen = NeighborSampler([3]), torch.Generator().manual_seed(0)
    counts = torch.zeros(11)
    for _ in range(2000):
        counts.index_add_(0, sampler.sample(A, torch.tensor([0]), gen).nodes[0][1:], torch.ones(3))
    freq = counts[1:] / 2000
    assert (freq - 0.3).abs().max() < 0.05  # binomial std 0.01
    a = sampler.sample(A, torch.tensor([0]), torch.Generator().manual_seed(7))
    b = sampler.sample(A, torch.tensor([0]), torch.Generator().manual_seed(7))
    assert torch.equal(a.eids[0], b.eids[0]) and torch.equal(a.nodes[0], b.nodes[0])


def test_rescale_makes_unweighted_row_sums_equal_degree():
    A = random_graph()
    A = dglsp.val_like(A, torch.ones(A.nnz, dtype=torch.float64))
    deg = torch.bincount(A.row, minlength=40).double()
    for replace in (False, True):
        batch = NeighborSampler([2], replace=replace, rescale=True).sample(
            A, torch.arange(40), torch.Generator().manual_seed(0)
        )
        B = batch.blocks[0]
        row_sum = torch.zeros(40, dtype=torch.float64).index_add(0, B.row, B.val)
        torch.testing.assert_close(row_sum, deg)


def test_full_fanout_matches_dgl_multilayer_full_neighbor_sampler():
    A = random_graph()
    g = dgl.graph((A.col, A.row), num_nodes=40)  # edge id e = nonzero e of A
    seeds = torch.tensor([2, 9, 33, 20])
    _, _, ref = dgl.dataloading.MultiLayerFullNeighborSampler(2).sample_blocks(g, seeds)
    ours = NeighborSampler([-1, -1]).sample(A, seeds)
    for l in range(2):
        assert torch.equal(ours.eids[l].sort().values, ref[l].edata[dgl.EID].sort().values)
        assert torch.equal(ours.nodes[l].sort().values, ref[l].srcdata[dgl.NID].sort().values)
        # Dst-first prefix on both sides; DGL orders the other sources by first appearance, we sort them.
        assert torch.equal(ref[l].srcdata[dgl.NID][: ref[l].num_dst_nodes()], ref[l].dstdata[dgl.NID])
        assert torch.equal(ours.nodes[l + 1].sort().values, ref[l].dstdata[dgl.NID].sort().values)
    assert torch.equal(ours.output_nodes, ref[-1].dstdata[dgl.NID])


def test_edge_sampler_excludes_batch_edges_and_reverses():
    A = random_graph(symmetric=True)
    n, gen = 40, torch.Generator().manual_seed(3)
    pick = torch.randperm(A.nnz, generator=gen)[:6]
    pos = torch.stack([A.col[pick], A.row[pick]], 1)  # (6, 2) existing edges src -> dst
    neg = torch.randint(0, n, (6, 2, 2), generator=gen)  # per-query negatives: (M, K, 2)
    sampler = NeighborSampler([-1, -1])
    batch = sampler.sample_edges(A, pos, gen, neg=neg, exclude="reverse")
    assert isinstance(batch, EdgeMiniBatch)
    assert torch.equal(batch.output_nodes[batch.pos], pos) and torch.equal(batch.output_nodes[batch.neg], neg)
    # The forbidden set: the batch's edges and their reverses, found by brute force over all nonzeros.
    pair = lambda s, d: {(int(a), int(b)) for a, b in zip(s, d, strict=True)}  # noqa: E731
    forbidden = pair(pos[:, 0], pos[:, 1]) | pair(pos[:, 1], pos[:, 0])
    banned = torch.tensor([(int(s), int(d)) in forbidden for s, d in zip(A.col, A.row, strict=True)])
    assert banned.sum() >= pos.shape[0]
    for l in range(2):
        eid = batch.eids[l]
        assert not banned[eid].any()
        # Full fanout: every other in-edge of the block's destination nodes is still there.
        dst = batch.nodes[l + 1]
        expect = (torch.isin(A.row, dst) & ~banned).nonzero().squeeze(1)
        assert torch.equal(eid.sort().values, expect)
    # Same exclusion set as DGL's as_edge_prediction_sampler(exclude="reverse_id").
    g = dgl.graph((A.col, A.row), num_nodes=n)
    reverse = edge_ids(A, A.row, A.col)  # reverse id of edge e: the nonzero for (row -> col)
    assert reverse.numel() == A.nnz
    dgl_excl = dgl.dataloading.find_exclude_eids(g, pick, "reverse_id", reverse_eids=reverse)
    assert torch.equal(dgl_excl.sort().values, banned.nonzero().squeeze(1))
    # exclude="self" keeps the reverses; exclude=None keeps everything.
    self_only = sampler.sample_edges(A, pos, gen, exclude="self")
    kept = torch.cat(self_only.eids)
    assert not torch.isin(pick, kept).any() and torch.isin(reverse[pick], self_only.eids[-1]).all()
    assert torch.isin(pick, sampler.sample_edges(A, pos, gen, exclude=None).eids[-1]).all()


def test_edge_ids_finds_parallel_edges_and_ignores_missing_pairs():
    A = dglsp.spmatrix(torch.tensor([[1, 1, 2, 1], [0, 0, 1, 2]]), torch.ones(4), (3, 3))  # 0->1 twice
    assert edge_ids(A, torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2])).sort().values.tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["gcn", "sage"])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_layerwise_inference_equals_full_batch(name, batch_size):
    torch.manual_seed(1)
    cls, prep = STACKS[name]
    A = prep(random_graph(seed=2))
    X = torch.randn(40, 5, dtype=torch.float64)
    model = cls().double().eval()
    out = layerwise_inference(model, A, X, batch_size)
    torch.testing.assert_close(out, model(A, X), rtol=0, atol=1e-10)


class EdgeFeatStack(GCNStack):
    """Messages scaled by a per-edge feature: H' = act((A * e) (H W) + b), e = edge_feat[:, 0]."""

    def forward_layer(self, i, A, H, edge_feat=None):
        return super().forward_layer(i, dglsp.val_like(A, A.val * edge_feat[:, 0]), H)

    def forward(self, A, X, edge_feat=None):
        for i in range(self.num_layers):
            X = self.forward_layer(i, A, X, edge_feat=edge_feat)
        return X


def test_layerwise_inference_gathers_edge_data_per_block():
    torch.manual_seed(2)
    A = ops.gcn_norm(random_graph(seed=3))
    X, feat = torch.randn(40, 5, dtype=torch.float64), torch.rand(A.nnz, 2, dtype=torch.float64)
    model = EdgeFeatStack().double().eval()
    out = layerwise_inference(model, A, X, 9, edge_feat=feat)
    torch.testing.assert_close(out, model(A, X, edge_feat=feat), rtol=0, atol=1e-10)
    # The sampled path gathers the same way: edge_feat[batch.eids[l]] for block l.
    batch = NeighborSampler([-1, -1]).sample(A, torch.tensor([4, 11]))
    H = X[batch.input_nodes]
    for i, (B, eid) in enumerate(zip(batch.blocks, batch.eids, strict=True)):
        H = model.forward_layer(i, B, H, edge_feat=feat[eid])
    torch.testing.assert_close(H, out[torch.tensor([4, 11])], rtol=0, atol=1e-10)
    with pytest.raises(GraphError, match=rf"edge_feat: expected one row per nonzero of the prepared A "
                                         rf"\({A.nnz}\), got shape \({A.nnz - 3}, 2\)"):
        layerwise_inference(model, A, X, 9, edge_feat=feat[:-3])  # was an IndexError deep in a block


def test_shuffled_batches_partition_a_seeded_permutation():
    items = torch.arange(10, 20)
    batches = list(shuffled_batches(items, 3, torch.Generator().manual_seed(0)))
    assert [b.numel() for b in batches] == [3, 3, 3, 1]
    assert torch.equal(torch.cat(batches).sort().values, items)
    again = list(shuffled_batches(items, 3, torch.Generator().manual_seed(0), drop_last=True))
    assert len(again) == 3 and all(torch.equal(a, b) for a, b in zip(again, batches[:3], strict=True))
    pairs = torch.arange(12).view(6, 2)
    assert torch.cat(list(shuffled_batches(pairs, 4, torch.Generator()))).shape == (6, 2)


def test_errors_name_the_argument():
    A = random_graph()
    with pytest.raises(ConfigError, match="fanouts"):
        NeighborSampler([0])
    with pytest.raises(ConfigError, match="batch_size"):
        next(shuffled_batches(torch.arange(3), 0, torch.Generator()))
    with pytest.raises(GraphError, match="unique"):
        NeighborSampler([2]).sample(A, torch.tensor([1, 1]))
    with pytest.raises(GraphError, match="square"):
        NeighborSampler([2]).sample(
            dglsp.spmatrix(torch.tensor([[0], [1]]), torch.ones(1), (2, 3)), torch.tensor([0])
        )
    with pytest.raises(ConfigError, match="exclude"):
        NeighborSampler([2]).sample_edges(A, torch.tensor([[0, 1]]), exclude="reverse_id")
    with pytest.raises(GraphError, match="pos"):
        NeighborSampler([2]).sample_edges(A, torch.tensor([0, 1]))
