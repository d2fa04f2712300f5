"""Sampled mini-batch training and layer-wise inference inside the node and link tasks.

Exactness checks (float64, eval mode): with fanout -1 a sampled forward equals the full-batch forward on the
batch's seeds, and ``NodeEncoder.infer`` (layer-wise inference) equals the full-batch forward for every
model that runs on blocks; with weighted edges, edge features and relation types where the model reads them.
"""

from __future__ import annotations

import dgl.sparse as dglsp
import pytest
import torch

from graphnet.errors import ConfigError
from graphnet.graph import Graph
from graphnet.sampling import EdgeMiniBatch, MiniBatch, edge_ids
from graphnet.tasks.link_pred import LinkPrediction
from graphnet.tasks.node_cls import NodeClassification

N, C = 40, 3


def random_graph(seed: int = 0, edge_feat: bool = False, edge_type: bool = False) -> Graph:
    """Symmetric random graph with positive weights, float64 features, 3 classes and a 20/10/10 split."""
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, N, (120,), generator=g), torch.randint(0, N, (120,), generator=g)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    pairs = torch.unique(torch.stack([torch.cat([src, dst]), torch.cat([dst, src])], 1), dim=0)
    w = torch.rand(pairs.shape[0], generator=g, dtype=torch.float64) + 0.5
    X = torch.randn(N, 5, generator=g, dtype=torch.float64)
    y = X[:, :C].argmax(1)
    perm = torch.randperm(N, generator=g)
    fields = {}
    if edge_feat:
        fields["edge_feat"] = torch.rand(pairs.shape[0], 2, generator=g, dtype=torch.float64)
    if edge_type:
        fields["edge_type"] = torch.randint(0, 3, (pairs.shape[0],), generator=g)
    return Graph.from_edges(pairs[:, 0], pairs[:, 1], N, weight=w, X=X, y=y,
                            splits={"train": perm[:20], "val": perm[20:30], "test": perm[30:]}, **fields)


def as_float32(graph: Graph) -> Graph:
    return graph.replace(X=graph.X.float(), A=dglsp.val_like(graph.A, graph.A.val.float()))


MODELS = [
    ("gcn", {}, {}),
    ("sage", {"aggregator": "mean"}, {}),
    ("sage", {"aggregator": "pool"}, {}),
    ("gin", {}, {}),
    ("gat", {"num_heads": 2, "hidden_dim": 4}, {}),
    ("mlp", {}, {}),
    ("edgefeat", {"edge_dim": 2}, {"edge_feat": True}),
    ("rgcn", {"num_relations": 3, "num_bases": 2}, {"edge_type": True}),
]


def _setup(name, kwargs, data, **task_kwargs):
    graph = random_graph(**data)
    task = NodeClassification(**task_kwargs)
    model, g = task.setup(graph, name, {"hidden_dim": 8, **kwargs}, seed=0)
    return task, model.double().eval(), g


@pytest.mark.parametrize("name,kwargs,data", MODELS, ids=lambda v: v if isinstance(v, str) else None)
def test_full_fanout_batch_equals_full_batch_on_the_seeds(name, kwargs, data):
    task, model, g = _setup(name, kwargs, data, fanouts=[-1, -1], batch_size=7)
    full = model(g)  # (N, C)
    batches = list(task.batches(model, g, 0, torch.Generator().manual_seed(0)))
    assert all(isinstance(b, MiniBatch) for b in batches)
    seen = torch.cat([b.output_nodes for b in batches])
    assert torch.equal(torch.sort(seen)[0], torch.sort(g.splits["train"])[0])  # every training node once
    for b in batches:
        out = model(g, b)
        assert out.shape == (b.output_nodes.numel(), C)
        torch.testing.assert_close(out, full[b.output_nodes], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,kwargs,data", MODELS, ids=lambda v: v if isinstance(v, str) else None)
def test_layerwise_inference_equals_full_batch(name, kwargs, data):
    task, model, g = _setup(name, kwargs, data, infer_batch_size=6)
    with torch.no_grad():
        torch.testing.assert_close(model.infer(g, 6), model(g), rtol=1e-10, atol=1e-10)
    # and the task's evaluation goes through it with the same numbers as full batch
    full_task = NodeClassification()
    assert task.evaluate(model, g, "test") == pytest.approx(full_task.evaluate(model, g, "test"), abs=1e-12)


def test_sampled_fanouts_give_fewer_edges_and_the_loss_trains(fit_task):
    task, model, g = _setup("sage", {}, {}, fanouts=[2, 2], batch_size=5)
    model, g = model.float(), as_float32(g)
    b = next(iter(task.batches(model, g, 0, torch.Generator().manual_seed(0))))
    indeg = torch.bincount(g.A.row, minlength=N)
    # each destination keeps min(fanout, in-degree) in-edges in every block
    for block, nodes in zip(b.blocks, b.nodes[1:], strict=True):
        kept = torch.bincount(block.row, minlength=block.shape[0])
        assert torch.equal(kept, indeg[nodes].clamp(max=2))
    losses = fit_task(task, model.train(), g, 40, lr=0.05)
    assert losses[-1] < 0.6 * losses[0]


def test_batches_are_reproducible_from_the_generator():
    task, model, g = _setup("gcn", {}, {}, fanouts=[3, 3], batch_size=8)
    a = list(task.batches(model, g, 0, torch.Generator().manual_seed(5)))
    b = list(task.batches(model, g, 0, torch.Generator().manual_seed(5)))
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(e1, e2) for e1, e2 in zip(x.eids, y.eids, strict=True))


def test_models_without_blocks_and_bad_fanouts_are_config_errors():
    graph = random_graph()
    with pytest.raises(ConfigError, match=r"task\.fanouts: model 'sgc'.*models that can: .*gcn"):
        NodeClassification(fanouts=[5]).setup(graph, "sgc", {}, seed=0)
    with pytest.raises(ConfigError, match=r"task\.infer_batch_size: model 'appnp'"):
        NodeClassification(infer_batch_size=8).setup(graph, "appnp", {}, seed=0)
    with pytest.raises(ConfigError, match=r"task\.fanouts: expected one fanout per layer \(2 for 'gcn'"):
        NodeClassification(fanouts=[5]).setup(graph, "gcn", {}, seed=0)
    with pytest.raises(ConfigError, match=r"task\.fanouts: expected a non-empty list of positive ints"):
        NodeClassification(fanouts=[5, 0]).setup(graph, "gcn", {}, seed=0)
    with pytest.raises(ConfigError, match=r"task\.infer_batch_size: expected an integer >= 1"):
        NodeClassification(infer_batch_size=0)


# ------------------------------------------------------------------------------------------- link
def test_link_batches_exclude_their_positive_edges_and_train(fit_task):
    graph = as_float32(random_graph())
    task = LinkPrediction(fanouts=[-1, -1], batch_size=16, infer_batch_size=10, out_dim=8)
    model, g = task.setup(graph, "sage", {"hidden_dim": 8, "dropout": 0.0}, seed=0)
    batches = list(task.batches(model, g, 0, torch.Generator().manual_seed(0)))
    assert all(isinstance(b, EdgeMiniBatch) for b in batches)
    for b in batches:
        pos = b.output_nodes[b.pos]  # global (src, dst)
        banned = torch.cat([edge_ids(g.A, pos[:, 0], pos[:, 1]), edge_ids(g.A, pos[:, 1], pos[:, 0])])
        assert banned.numel() > 0  # the training positives are message-passing edges here
        for eid in b.eids:
            assert not torch.isin(eid, banned).any()  # "reverse" exclusion: neither direction leaks
    losses = fit_task(task, model, g, 30, lr=0.02)
    assert losses[-1] < 0.8 * losses[0]
    model.eval()
    with torch.no_grad():
        via_infer = task.evaluate(model, g, "test")
        task.infer_batch_size = None
        full = task.evaluate(model, g, "test")
    assert via_infer == pytest.approx(full, abs=1e-5)


def test_link_fanouts_need_a_block_model():
    with pytest.raises(ConfigError, match=r"task\.fanouts: model 'lightgcn'"):
        LinkPrediction(fanouts=[5, 5]).setup(random_graph(), "lightgcn", {}, seed=0)
    with pytest.raises(ConfigError, match=r"task\.exclude: expected 'reverse', 'self' or none"):
        LinkPrediction(exclude="both")
