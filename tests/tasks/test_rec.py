"""Recommendation task: BPR sampling, L2 on ego embeddings, full-sort evaluation with train items masked."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphnet.graph import Graph
from graphnet.tasks.recommendation import Recommendation


def bipartite(train: torch.Tensor, test: torch.Tensor, num_users: int, num_items: int, val=None) -> Graph:
    u, i = train[:, 0], train[:, 1] + num_users
    splits = {"train": train, "test": test} | ({"val": val} if val is not None else {})
    return Graph.from_edges(torch.cat([u, i]), torch.cat([i, u]), num_users + num_items, edge_splits=splits,
                            meta={"num_users": num_users, "num_items": num_items})


def random_interactions(U=12, I=15, seed=0) -> Graph:
    """Two taste groups: users < U/2 like items < I/2, the others the rest; 20% held out as test."""
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for u in range(U):
        lo, hi = (0, I // 2) if u < U // 2 else (I // 2, I)
        for i in range(lo, hi):
            if torch.rand(1, generator=g).item() < 0.6:
                pairs.append((u, i))
    pairs = torch.tensor(pairs)
    perm = torch.randperm(len(pairs), generator=g)
    n_test = len(pairs) // 5
    return bipartite(pairs[perm[n_test:]], pairs[perm[:n_test]], U, I)


@pytest.mark.parametrize("model_name", ["mf", "lightgcn", "gcn"])
def test_loss_decreases(model_name, fit_task):
    graph = random_interactions()
    task = Recommendation(emb_dim=8, batch_size=16, ks=[5])
    kw = {"hidden_dim": 8, "dropout": 0.0} if model_name == "gcn" else {}
    model, g = task.setup(graph, model_name, kw, seed=0)
    losses = fit_task(task, model, g, 25, lr=0.05)
    assert losses[-1] < 0.6 * losses[0]


def test_negatives_are_never_training_items_and_seeded():
    graph = random_interactions()
    task = Recommendation(batch_size=7)
    model, g = task.setup(graph, "mf", {}, seed=0)
    train_set = set(map(tuple, graph.edge_splits["train"].tolist()))
    b = task.batches(model, g, 0, torch.Generator().manual_seed(2))
    again = task.batches(model, g, 0, torch.Generator().manual_seed(2))
    allb = torch.cat(b)
    assert sorted(map(tuple, allb[:, :2].tolist())) == sorted(train_set)  # every interaction once per epoch
    assert not any((u, j) in train_set for u, j in allb[:, [0, 2]].tolist())
    assert all(torch.equal(x, y) for x, y in zip(b, again, strict=True))


def test_loss_is_bpr_plus_ego_l2():
    graph = random_interactions()
    task = Recommendation(emb_dim=4, reg_weight=0.01)
    model, g = task.setup(graph, "lightgcn", {"num_layers": 2}, seed=0)
    batch = torch.tensor([[0, 1, 9], [7, 10, 2]])
    H = model(g)
    E = model.encoder.model.embedding.weight  # LightGCN's layer-0 ("ego") embeddings
    U = 12
    s_pos = (H[batch[:, 0]] * H[batch[:, 1] + U]).sum(1)
    s_neg = (H[batch[:, 0]] * H[batch[:, 2] + U]).sum(1)
    bpr = -F.logsigmoid(s_pos - s_neg).mean()
    ego = E[batch[:, 0]].pow(2).sum() + E[batch[:, 1] + U].pow(2).sum() + E[batch[:, 2] + U].pow(2).sum()
    reg = 0.5 * ego / 2  # / batch size
    assert float(task.loss(model, g, batch)) == pytest.approx(float(bpr + 0.01 * reg), rel=1e-5)


def test_full_sort_masks_training_items_hand_checked():
    # 2 users, 4 items. MF with d = 1: user vectors 1, item vectors [4, 3, 2, 1]: every user ranks 0, 1, 2, 3.
    train = torch.tensor([[0, 0], [1, 2]])
    test = torch.tensor([[0, 1], [1, 3]])
    graph = bipartite(train, test, 2, 4)
    task = Recommendation(emb_dim=1, ks=[1, 3], eval_batch_size=1)
    model, g = task.setup(graph, "mf", {}, seed=0)
    model.encoder.model.embedding.weight.data = torch.tensor([[1.0], [1.0], [4.0], [3.0], [2.0], [1.0]])
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "test")
        users, hits, counts = task.topk(model, g, "test")
    # user 0: item 0 (train) masked -> ranking 1, 2, 3; test item 1 first. Unmasked it would be second.
    # user 1: item 2 (train) masked -> ranking 0, 1, 3; test item 3 third.
    assert hits.tolist() == [[True, False, False], [False, False, True]]
    assert counts.tolist() == [1, 1]
    assert res["recall@1"] == 0.5 and res["hit_rate@1"] == 0.5 and res["precision@1"] == 0.5
    assert res["recall@3"] == 1.0 and res["precision@3"] == pytest.approx(1 / 3)
    assert res["ndcg@3"] == pytest.approx((1.0 + 1 / math.log2(4)) / 2)
    assert set(res) == {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit_rate") for k in (1, 3)}


def test_validation_items_are_masked_when_evaluating_test():
    train, val, test = torch.tensor([[0, 0]]), torch.tensor([[0, 1]]), torch.tensor([[0, 2]])
    graph = bipartite(train, test, 1, 4, val=val)
    task = Recommendation(emb_dim=1, ks=[1])
    model, g = task.setup(graph, "mf", {}, seed=0)
    model.encoder.model.embedding.weight.data = torch.tensor([[1.0], [4.0], [3.0], [2.0], [1.0]])
    with torch.no_grad():
        assert task.evaluate(model, g, "test")["recall@1"] == 1.0  # items 0 (train) and 1 (val) masked
        assert task.evaluate(model, g, "val")["recall@1"] == 1.0  # item 0 masked; test items not
    assert task.monitor == "val_recall@1"
    assert task.evaluate(model, bipartite(train, test, 1, 4), "val") == {}


def test_val_frac_holds_out_training_interactions_without_leaking():
    graph = random_interactions()
    task = Recommendation(val_frac=0.2, ks=[5])
    model, g = task.setup(graph, "lightgcn", {}, seed=3)
    tr, va = g.edge_splits["train"], g.edge_splits["val"]
    assert len(va) == round(0.2 * len(graph.edge_splits["train"]))
    both = sorted(map(tuple, torch.cat([tr, va]).tolist()))
    assert both == sorted(map(tuple, graph.edge_splits["train"].tolist()))  # a partition of the old train
    mp = set(zip(g.A.col.tolist(), g.A.row.tolist(), strict=True))
    assert not any((u, i + 12) in mp or (i + 12, u) in mp for u, i in va.tolist())  # val not in A
    assert all((u, i + 12) in mp for u, i in tr.tolist())
    assert set(task.evaluate(model, g, "val")) == {"recall@5", "ndcg@5", "precision@5", "hit_rate@5"}
    _, g2 = Recommendation(val_frac=0.2).setup(graph, "mf", {}, seed=3)
    assert torch.equal(g2.edge_splits["val"], va)  # seeded
