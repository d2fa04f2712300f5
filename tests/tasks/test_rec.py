"""Recommendation task: BPR sampling, L2 on ego embeddings, full-sort evaluation with train items masked."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from graphnet import metrics
from graphnet.errors import ConfigError, GraphError
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


def test_val_frac_refuses_repeated_training_pairs_and_negative_fractions():
    """A pair listed twice in edge_splits["train"] could be split between val and train (trained on and in
    A while held out); the loaders merge repeats, and the hold-out refuses a graph built without that."""
    graph = random_interactions()
    tr = graph.edge_splits["train"]
    twice = graph.replace(edge_splits={**graph.edge_splits, "train": torch.cat([tr, tr[:1]])})
    with pytest.raises(GraphError, match="lists a pair more than once"):
        Recommendation(val_frac=0.2).setup(twice, "mf", {}, seed=0)
    Recommendation(val_frac=0.0).setup(twice, "mf", {}, seed=0)  # no hold-out: nothing to straddle
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="val_frac"):
            Recommendation(val_frac=bad)


def _integer_mf(graph: Graph, ks: list[int], eval_batch_size: int, seed: int = 0):
    """MF with small-integer vectors: exact float32 scores (no batch size can change them), many ties."""
    task = Recommendation(emb_dim=3, ks=ks, eval_batch_size=eval_batch_size)
    model, g = task.setup(graph, "mf", {}, seed=0)
    gen = torch.Generator().manual_seed(seed)
    vectors = torch.randint(-2, 3, (graph.num_nodes, 3), generator=gen).float()
    model.encoder.model.embedding.weight.data = vectors
    model.eval()
    return task, model, g


def _many_items(U=25, I=1000, seed=0) -> Graph:
    """I = 1000 items (not a multiple of metrics.TOPK_GROUP; 16 groups > 2 K for K <= 7, so evaluation takes
    the grouped top-k path). Test sizes 0..6 per user (fewer than K for many users), a val split; user 0 has
    2 test items, 1 val item and all items but 5 in train: 4 unmasked items, fewer than K."""
    g = torch.Generator().manual_seed(seed)
    train, val, test = [], [], []
    for u in range(U):
        perm = torch.randperm(I, generator=g).tolist()
        n_test = 2 if u == 0 else int(torch.randint(0, 7, (1,), generator=g))
        n_train = I - 5 if u == 0 else int(torch.randint(1, 40, (1,), generator=g))
        test += [(u, i) for i in perm[:n_test]]
        val += [(u, perm[n_test])]
        train += [(u, i) for i in perm[n_test + 1:n_test + 1 + n_train]]
    return bipartite(torch.tensor(train), torch.tensor(test), U, I, val=torch.tensor(val))


def _dense_reference(task, model, g, split: str) -> tuple[list[list[bool]], dict[str, float]]:
    """Every user scored against every item in float64, masked items -inf, a stable descending sort (equal
    scores: lower item first), then LightGCN's formulas in plain Python."""
    U, k_max = task.num_users, max(task.ks)
    H = model(g).double()
    scores = H[:U] @ H[U:].T  # (U, I)
    sets = {name: set(map(tuple, g.edge_splits[name].tolist())) for name in g.edge_splits}
    masked = sets["train"] | (sets.get("val", set()) if split == "test" else set())
    for u, i in masked:
        scores[u, i] = -math.inf
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices.tolist()
    hits, out = [], {}
    users = sorted({u for u, _ in sets[split]})
    for u in users:
        truth = {i for v, i in sets[split] if v == u}
        r = [(u, i) in sets[split] for i in order[u][:k_max]] + [False] * max(0, k_max - len(order[u]))
        hits.append(r)
        for k in task.ks:
            idcg = sum(1 / math.log2(j + 2) for j in range(min(len(truth), k)))
            vals = {"recall": sum(r[:k]) / len(truth), "precision": sum(r[:k]) / k,
                    "hit_rate": float(any(r[:k])),
                    "ndcg": sum(x / math.log2(j + 2) for j, x in enumerate(r[:k])) / idcg}
            for m, v in vals.items():
                out[f"{m}@{k}"] = out.get(f"{m}@{k}", 0.0) + v / len(users)
    return hits, out


@pytest.mark.parametrize("eval_batch_size", [1, 7, 1024])
def test_full_sort_equals_dense_reference_with_ties(eval_batch_size):
    graph = _many_items()
    task, model, g = _integer_mf(graph, ks=[3, 7], eval_batch_size=eval_batch_size)
    users, hits, counts = task.topk(model, g, "test")
    ref_hits, ref = _dense_reference(task, model, g, "test")
    assert hits.tolist() == ref_hits
    test = g.edge_splits["test"]
    assert users.tolist() == sorted(set(test[:, 0].tolist()))
    assert counts.tolist() == [int((test[:, 0] == u).sum()) for u in users]
    assert min(counts.tolist()) < 3  # users with fewer test items than K are in the mean
    assert hits[0].tolist()[4:] == [False] * 3 and int(hits[0].sum()) == 2  # user 0: 4 unmasked, then masked
    res = task.evaluate(model, g, "test")
    assert res.keys() == ref.keys()
    for key, value in ref.items():
        assert res[key] == pytest.approx(value, rel=1e-12), key
    val_hits, val_ref = _dense_reference(task, model, g, "val")  # "val": train masked, test items not
    assert task.topk(model, g, "val")[1].tolist() == val_hits
    assert task.evaluate(model, g, "val") == pytest.approx(val_ref, rel=1e-12)


def test_full_sort_equals_dense_mask_implementation():
    """The CSR + index_put_ evaluation against the dense-mask one it replaced (answer_mask, masked_fill,
    topk_hits) on random float embeddings."""
    graph = _many_items(seed=1)
    task = Recommendation(emb_dim=8, ks=[5], eval_batch_size=16)
    model, g = task.setup(graph, "lightgcn", {}, seed=0)
    model.eval()
    with torch.no_grad():
        H = model(g)
        U, I = task.num_users, task.num_items
        splits = g.edge_splits
        users = torch.unique(splits["test"][:, 0])
        scores = H[users] @ H[U:].T
        for name in ("train", "val"):
            index = metrics.build_answer_index(splits[name][:, 0], splits[name][:, 1])
            scores = scores.masked_fill(metrics.answer_mask(index, users, I), float("-inf"))
        index = metrics.build_answer_index(splits["test"][:, 0], splits["test"][:, 1])
        relevant = metrics.answer_mask(index, users, I)
        ref_hits = metrics.topk_hits(scores, relevant, 5)
        _, hits, counts = task.topk(model, g, "test")
    assert torch.equal(hits, ref_hits) and torch.equal(counts, relevant.sum(1))
    assert hits.any()


def test_full_sort_fewer_items_than_k():
    train, test = torch.tensor([[0, 0], [1, 2]]), torch.tensor([[0, 1], [1, 3]])
    graph = bipartite(train, test, 2, 4)
    task = Recommendation(emb_dim=1, ks=[8])
    model, g = task.setup(graph, "mf", {}, seed=0)
    model.encoder.model.embedding.weight.data = torch.tensor([[1.0], [1.0], [4.0], [3.0], [2.0], [1.0]])
    _, hits, _ = task.topk(model, g, "test")
    # user 0 ranks 1, 2, 3 then the masked item 0; user 1 ranks 0, 1, 3 then 2; positions 5-8 do not exist
    # (user 0's position 8 would be the padding column 7, whose key 0 * 4 + 7 is user 1's test item 3)
    assert hits.tolist() == [[True] + [False] * 7, [False, False, True] + [False] * 5]
    assert task.evaluate(model, g, "test")["recall@8"] == 1.0


@pytest.mark.parametrize("key, row, col, bad, what", [
    # item 15 of 15 would share the key u * 15 + i with user u + 1's item 0
    ("test", 1, 1, 15, r"item id 15 out of range, expected 0\.\.14"),
    ("train", 0, 0, -1, r"user id -1 out of range, expected 0\.\.11")])
def test_out_of_range_user_or_item_ids_are_refused(key, row, col, bad, what, with_split_entry):
    graph = random_interactions()  # 12 users, 15 items
    broken = with_split_entry(graph, key, row, col, bad)
    where = rf"task 'rec': edge_splits\['{key}'\] row {row} column {col}"
    with pytest.raises(GraphError, match=f"{where}: {what}"):
        Recommendation().setup(broken, "mf", {}, seed=0)


def test_data_without_val_split_names_task_val_frac_as_the_way_out():
    """Catalog rec/rating data ships train/test only while the default monitor is val_recall@20."""
    from graphnet.config import TrainConfig
    from graphnet.train import Trainer

    graph, task = random_interactions(), Recommendation()
    model, g = task.setup(graph, "mf", {}, seed=0)
    with pytest.raises(ConfigError, match=r"train.monitor: the graph has no 'val' split \(it has test, "
                                          r"train\); set task.val_frac \(e.g. 0.1\)"):
        Trainer(TrainConfig(device="cpu", epochs=1), progress=False).fit(model, task, g)
    task = Recommendation(val_frac=0.1)
    model, g = task.setup(graph, "mf", {}, seed=0)
    out = Trainer(TrainConfig(device="cpu", epochs=1), progress=False).fit(model, task, g)
    assert "val_recall@20" in out["history"][0]
