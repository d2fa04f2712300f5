"""Node classification task on a tiny two-community graph (a hand-rolled loop; the Trainer is elsewhere)."""

from __future__ import annotations

import dgl.sparse as dglsp
import pytest
import torch
import torch.nn.functional as F

from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph
from graphnet.tasks import TASKS
from graphnet.tasks.node_cls import NodeClassification


def two_communities(featureless: bool = False) -> Graph:
    """12 nodes: 0..5 class 0 and 6..11 class 1, dense inside each community, one bridge 5 - 6."""
    pairs = [(i, j) for c in (0, 6) for i in range(c, c + 6) for j in range(i + 1, c + 6) if (j - i) <= 2]
    pairs.append((5, 6))
    src = [u for u, v in pairs] + [v for u, v in pairs]
    dst = [v for u, v in pairs] + [u for u, v in pairs]
    y = torch.tensor([0] * 6 + [1] * 6)
    g = torch.Generator().manual_seed(0)
    X = None if featureless else torch.randn(12, 5, generator=g) + 0.7 * F.one_hot(y, 5).float()
    splits = {"train": torch.tensor([0, 1, 6, 7]), "val": torch.tensor([2, 8, 3]),
              "test": torch.tensor([4, 5, 9, 10, 11])}
    return Graph.from_edges(src, dst, 12, X=X, y=y, splits=splits)


def test_registry_and_protocol_attributes():
    assert TASKS["node"] is NodeClassification
    t = TASKS["node"]()
    assert t.monitor == "val_accuracy" and t.higher_is_better is True


@pytest.mark.parametrize("model_name", ["gcn", "mlp", "sage"])
def test_loss_decreases(model_name, fit_task):
    graph = two_communities()
    task = NodeClassification()
    model, g = task.setup(graph, model_name, {"hidden_dim": 8, "dropout": 0.0}, seed=0)
    losses = fit_task(task, model, g, 30, lr=0.05)
    assert losses[-1] < 0.5 * losses[0]


def test_featureless_graph_gets_learnable_input_embedding(fit_task):
    graph = two_communities(featureless=True)
    task = NodeClassification(emb_dim=4)
    model, g = task.setup(graph, "gcn", {"hidden_dim": 8, "dropout": 0.0}, seed=0)
    assert model.emb is not None and model.emb.weight.shape == (12, 4)
    losses = fit_task(task, model, g, 30, lr=0.05)
    assert losses[-1] < 0.5 * losses[0]


def test_evaluate_matches_hand_computation(fit_task):
    graph = two_communities()
    task = NodeClassification()
    model, g = task.setup(graph, "gcn", {"hidden_dim": 8, "dropout": 0.5}, seed=3)
    fit_task(task, model, g, 5, lr=0.05)
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "test")
        logits = model(g)
    assert set(res) == {"accuracy", "loss"}
    idx = graph.splits["test"]
    pred = logits[idx].argmax(1).tolist()
    truth = graph.y[idx].tolist()
    correct = sum(p == t for p, t in zip(pred, truth, strict=True))
    assert res["accuracy"] == pytest.approx(correct / len(truth))
    # cross-entropy by hand: mean of logsumexp - logit of the true class
    lse = torch.logsumexp(logits[idx].double(), 1)
    ce = (lse - logits[idx].double()[torch.arange(len(idx)), graph.y[idx]]).mean()
    assert res["loss"] == pytest.approx(float(ce), rel=1e-5)
    assert task.evaluate(model, g, "holdout") == {}  # split the data does not have


def test_minibatch_batches_partition_train_nodes_and_follow_generator():
    graph = two_communities()
    task = NodeClassification(batch_size=3)
    model, g = task.setup(graph, "mlp", {}, seed=0)
    b1 = list(task.batches(model, g, 0, torch.Generator().manual_seed(5)))  # batches are yielded lazily
    b2 = list(task.batches(model, g, 0, torch.Generator().manual_seed(5)))
    assert [len(b) for b in b1] == [3, 1]
    assert sorted(torch.cat(b1).tolist()) == graph.splits["train"].tolist()
    assert all(torch.equal(a, b) for a, b in zip(b1, b2, strict=True))
    full = list(NodeClassification().batches(model, g, 0, torch.Generator()))
    assert len(full) == 1 and torch.equal(full[0], graph.splits["train"])


def test_setup_is_deterministic_given_seed_and_preprocesses_once():
    graph = two_communities()
    task = NodeClassification()
    torch.manual_seed(123)
    m1, g1 = task.setup(graph, "gcn", {"hidden_dim": 8}, seed=7)
    torch.manual_seed(999)
    m2, g2 = task.setup(graph, "gcn", {"hidden_dim": 8}, seed=7)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    from graphnet import ops

    ref = ops.gcn_norm(graph.A)
    assert torch.allclose(g1.A.to_dense(), ref.to_dense())  # GCN's preprocess applied at setup


def test_unknown_or_unsuitable_model_raises_config_error():
    task = NodeClassification()
    with pytest.raises(ConfigError, match=r"'mf' is not a model for task 'node'.*gcn"):
        task.setup(two_communities(), "mf", {}, seed=0)
    with pytest.raises(ConfigError, match="'nope'"):
        task.setup(two_communities(), "nope", {}, seed=0)


def test_bad_labels_raise_graph_error():
    graph = two_communities().replace(y=None)
    with pytest.raises(GraphError, match="expected y"):
        NodeClassification().setup(graph, "gcn", {}, seed=0)


def test_gat_edge_features_survive_the_self_loops_preprocess_adds():
    # GAT's preprocess appends one self-loop per node after the original edges: the task must pad the
    # edge features with zero rows for them, not drop them (GATConv would then refuse edge_dim)
    base = two_communities()
    E = base.A.nnz
    ef = torch.randn(E, 3, generator=torch.Generator().manual_seed(1))
    graph = base.replace(edge_feat=ef)
    task = NodeClassification()
    encoder, prepared = task.setup(graph, "gat", {"edge_dim": 3, "num_heads": 2, "hidden_dim": 4}, seed=0)
    assert prepared.A.nnz == E + 12
    assert torch.equal(prepared.edge_feat[:E], ef)
    assert torch.equal(prepared.edge_feat[E:], torch.zeros(12, 3))
    encoder.eval()
    out = encoder(prepared)
    from graphnet import ops

    A_loops = ops.add_self_loops(base.A)
    padded = torch.cat([ef, torch.zeros(12, 3)])
    assert torch.allclose(out, encoder.model(A_loops, base.X, edge_feat=padded), atol=1e-6)
    # the features enter the logits: zero features give a different output
    zero_feat = encoder.model(A_loops, base.X, edge_feat=torch.zeros_like(padded))
    assert not torch.allclose(out, zero_feat, atol=1e-4)
    loss = task.loss(encoder, prepared, next(iter(task.batches(encoder, prepared, 0, torch.Generator()))))
    assert torch.isfinite(loss)


def test_edge_features_are_dropped_when_preprocess_reorders_the_edges():
    from graphnet import ops
    from graphnet.tasks import pad_appended_edges

    graph = two_communities()
    graph = graph.replace(edge_feat=torch.ones(graph.A.nnz, 2))
    A_norm = ops.gcn_norm(graph.A)  # A + I coalesced: the original rows are no longer a prefix
    assert A_norm.nnz == graph.A.nnz + 12
    assert pad_appended_edges(graph, A_norm) is None
    assert pad_appended_edges(graph, ops.add_self_loops(graph.A)).shape == (graph.A.nnz + 12, 2)


def test_edge_data_is_dropped_when_preprocess_resorts_edges_without_changing_their_number():
    """Every self-loop already present: gcn_norm's coalesced A + I has the same nnz, in row-major order."""
    base = two_communities()
    A = loops_shuffled(base)
    ef = torch.arange(A.nnz, dtype=torch.float32).unsqueeze(1)  # edge e's feature is e
    graph = base.replace(A=A, edge_feat=ef, edge_type=torch.zeros(A.nnz, dtype=torch.long))
    _, prepared = NodeClassification().setup(graph, "gcn", {}, seed=0)
    assert prepared.A.nnz == A.nnz and not torch.equal(prepared.A.row, A.row)  # the case under test
    assert prepared.edge_feat is None and prepared.edge_type is None
    _, kept = NodeClassification().setup(graph, "sage", {}, seed=0)  # preprocess keeps A: data kept
    assert torch.equal(kept.edge_feat, ef) and torch.equal(kept.edge_type, graph.edge_type)


def loops_shuffled(graph: Graph):
    """graph.A with one self-loop per node, entries in a seeded random order."""
    from graphnet import ops

    A = ops.add_self_loops(graph.A)
    perm = torch.randperm(A.nnz, generator=torch.Generator().manual_seed(0))
    return dglsp.spmatrix(torch.stack([A.row[perm], A.col[perm]]), A.val[perm], A.shape)
