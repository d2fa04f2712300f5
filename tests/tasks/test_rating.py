"""Rating prediction task: training-only rating graph, GC-MC loss decrease, RMSE/MAE of expected ratings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph
from graphnet.tasks.rating import RatingPrediction


def ratings_graph(U=8, I=10, seed=0) -> Graph:
    """Ratings 1..5 with a user bias + item bias structure; 25% test. A as a loader would give it."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(U, I, generator=g) < 0.6
    pairs = keep.nonzero()  # (M, 2) (user, item)
    ub, ib = torch.randn(U, generator=g), torch.randn(I, generator=g)
    r = (3 + ub[pairs[:, 0]] + ib[pairs[:, 1]]).round().clamp(1, 5)
    perm = torch.randperm(len(pairs), generator=g)
    n_test = len(pairs) // 4
    te, tr = perm[:n_test], perm[n_test:]
    # the loader's A may hold every interaction as ones; the task must rebuild it from training ratings only
    u, i = pairs[:, 0], pairs[:, 1] + U
    return Graph.from_edges(torch.cat([u, i]), torch.cat([i, u]), U + I,
                            edge_splits={"train": pairs[tr], "train_rating": r[tr], "test": pairs[te],
                                         "test_rating": r[te]},
                            meta={"num_users": U, "num_items": I})


def test_setup_builds_rating_graph_from_training_ratings_only():
    graph = ratings_graph()
    task = RatingPrediction()
    model, g = task.setup(graph, "gcmc", {"hidden_dim": 10, "dropout": 0.0}, seed=0)
    U = 8
    tr, r = graph.edge_splits["train"], graph.edge_splits["train_rating"]
    assert g.A.nnz == 2 * len(tr)
    values = torch.unique(r)
    assert torch.equal(model.rating_values, values)
    edges = {(int(s), int(d)): int(t) for s, d, t in zip(g.A.col, g.A.row, g.edge_type, strict=True)}
    for (u, i), rating in zip(tr.tolist(), r.tolist(), strict=True):
        cls = int((values == rating).nonzero())
        assert edges[(u, i + U)] == cls and edges[(i + U, u)] == cls
    for u, i in graph.edge_splits["test"].tolist():
        assert (u, i + U) not in edges and (i + U, u) not in edges  # no test rating leaks
    D = torch.zeros(18, 18)
    D[g.A.row, g.A.col] = g.A.val
    deg = torch.zeros(18).index_add(0, torch.cat([tr[:, 0], tr[:, 1] + U]), torch.ones(2 * len(tr)))
    u0, i0 = tr[0, 0], tr[0, 1] + U
    assert float(D[i0, u0]) == pytest.approx(1 / math.sqrt(deg[u0] * deg[i0]))  # global symmetric norm


@pytest.mark.parametrize("model_name,loss", [("gcmc", "ce"), ("gcmc", "mse"), ("rgcn", "ce")])
def test_loss_decreases(model_name, loss, fit_task):
    graph = ratings_graph()
    task = RatingPrediction(loss=loss, emb_dim=8)
    kw = {"hidden_dim": 10, "dropout": 0.0} if model_name == "gcmc" else {"hidden_dim": 8, "num_bases": 2}
    model, g = task.setup(graph, model_name, kw, seed=0)
    losses = fit_task(task, model, g, 40, lr=0.02)
    assert losses[-1] < 0.7 * losses[0]


def test_evaluate_rmse_mae_of_expected_rating(fit_task):
    graph = ratings_graph()
    task = RatingPrediction(emb_dim=8, eval_batch_size=5)
    model, g = task.setup(graph, "gcmc", {"hidden_dim": 10}, seed=0)
    fit_task(task, model, g, 5, lr=0.01)
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "test")
        H = model(g)
        pairs, target = graph.edge_splits["test"], graph.edge_splits["test_rating"]
        logits = model.decoder(H[pairs[:, 0]], H[pairs[:, 1] + 8])
        values = torch.unique(graph.edge_splits["train_rating"]).double()
        expected = (F.softmax(logits.double(), 1) * values).sum(1)
    assert set(res) == {"rmse", "mae"}
    err = expected - target.double()
    assert res["rmse"] == pytest.approx(float(err.pow(2).mean().sqrt()), rel=1e-5)
    assert res["mae"] == pytest.approx(float(err.abs().mean()), rel=1e-5)
    assert task.monitor == "val_rmse" and task.higher_is_better is False
    assert task.evaluate(model, g, "val") == {}


def test_cross_entropy_targets_are_rating_classes():
    graph = ratings_graph()
    task = RatingPrediction(emb_dim=8)
    model, g = task.setup(graph, "gcmc", {"hidden_dim": 10, "dropout": 0.0}, seed=0)
    batch = task.batches(model, g, 0, torch.Generator())[0]
    H = model(g)
    tr, r = graph.edge_splits["train"], graph.edge_splits["train_rating"]
    logits = model.decoder(H[tr[:, 0]], H[tr[:, 1] + 8])
    cls = torch.searchsorted(torch.unique(r), r)
    assert float(task.loss(model, g, batch)) == pytest.approx(float(F.cross_entropy(logits, cls)), rel=1e-5)


def test_errors(with_split_entry):
    with pytest.raises(ConfigError, match="loss"):
        RatingPrediction(loss="hinge")
    with pytest.raises(ConfigError, match="task 'rating'"):
        RatingPrediction().setup(ratings_graph(), "distmult", {}, seed=0)
    graph = ratings_graph()  # 8 users, 10 items
    broken = with_split_entry(graph, "test", 2, 1, 10)  # item node U + 10 = 18 is past the 18 nodes of A
    with pytest.raises(GraphError, match=r"task 'rating': edge_splits\['test'\] row 2 column 1: item id 10 "
                                         r"out of range, expected 0\.\.9"):
        RatingPrediction().setup(broken, "gcmc", {}, seed=0)


def test_val_frac_holds_out_aligned_ratings():
    graph = ratings_graph()
    task = RatingPrediction(val_frac=0.25, emb_dim=8)
    model, g = task.setup(graph, "gcmc", {"hidden_dim": 10}, seed=0)
    old = {tuple(p): r for p, r in zip(graph.edge_splits["train"].tolist(),
                                       graph.edge_splits["train_rating"].tolist(), strict=True)}
    va, va_r = g.edge_splits["val"], g.edge_splits["val_rating"]
    assert len(va) == round(0.25 * len(old)) and len(va) + len(g.edge_splits["train"]) == len(old)
    assert all(old[tuple(p)] == r for p, r in zip(va.tolist(), va_r.tolist(), strict=True))
    assert g.A.nnz == 2 * len(g.edge_splits["train"])  # val ratings are not in the rating graph
    with torch.no_grad():
        assert set(task.evaluate(model.eval(), g, "val")) == {"rmse", "mae"}
