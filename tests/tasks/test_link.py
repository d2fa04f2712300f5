"""Link prediction task: leak-free splits, negative sampling, loss decrease, metrics vs sklearn / ogb."""

from __future__ import annotations

import pytest
import torch

from graphnet import metrics
from graphnet.data.splits import link_split
from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph
from graphnet.tasks.link_pred import LinkPrediction


def clusters(n_clusters: int = 3, size: int = 8, seed: int = 0) -> Graph:
    """Featureless undirected graph: dense random clusters, few cross edges (easy to predict links)."""
    g = torch.Generator().manual_seed(seed)
    pairs = set()
    for c in range(n_clusters):
        base = c * size
        for i in range(size):
            for j in range(i + 1, size):
                if torch.rand(1, generator=g).item() < 0.7:
                    pairs.add((base + i, base + j))
    pairs |= {(0, size), (size, 2 * size)}
    src = [u for u, v in pairs] + [v for u, v in pairs]
    dst = [v for u, v in pairs] + [u for u, v in pairs]
    return Graph.from_edges(src, dst, n_clusters * size)


def _keys(pairs: torch.Tensor, n: int) -> set[int]:
    return set((pairs[:, 0] * n + pairs[:, 1]).tolist())


def test_setup_makes_a_leak_free_seeded_split():
    graph = clusters()
    n = graph.num_nodes
    task = LinkPrediction()
    _, g = task.setup(graph, "mf", {}, seed=0)  # mf: preprocess leaves A unchanged, so A = training edges
    es = g.edge_splits
    assert {"train", "val", "val_neg", "test", "test_neg"} <= set(es)
    mp = set((g.A.col * n + g.A.row).tolist())  # message-passing edges src -> dst
    for split in ("val", "test"):
        held = es[split]
        both = _keys(held, n) | _keys(held.flip(1), n)
        assert not both & mp, f"{split} edges leak into the message-passing graph"
        assert not _keys(es[split + "_neg"], n) & (mp | both)  # negatives are not positives
    train = es["train"]
    assert _keys(train, n) <= mp and _keys(train.flip(1), n) <= mp
    _, g2 = LinkPrediction().setup(graph, "mf", {}, seed=0)
    assert all(torch.equal(es[k], g2.edge_splits[k]) for k in es)  # seeded


def test_negative_sampling_avoids_training_positives_and_is_seeded():
    graph = clusters()
    n = graph.num_nodes
    task = LinkPrediction(num_neg=3, batch_size=16)
    model, g = task.setup(graph, "mf", {}, seed=0)
    gen = torch.Generator().manual_seed(1)
    e0 = list(task.batches(model, g, 0, gen))  # yielded lazily: materialize before the next epoch draws
    e1 = list(task.batches(model, g, 1, gen))
    known = set((g.A.col * n + g.A.row).tolist())
    m = g.edge_splits["train"].shape[0]
    assert sum(len(p) for p, _ in e0) == m
    for pos, neg in e0 + e1:
        assert neg.shape == (3 * len(pos), 2)
        assert not _keys(neg, n) & known
        assert bool((neg[:, 0] != neg[:, 1]).all())
    assert not torch.equal(e0[0][1], e1[0][1])  # resampled each epoch
    again = list(task.batches(model, g, 0, torch.Generator().manual_seed(1)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(e0, again, strict=True))



def test_directed_data_keeps_reverse_edges_as_negatives():
    """On directed data the reverse of a training edge is a valid negative (it is not an edge); undirected
    data excludes both directions. OGB-style graphs without link_split's flag: a symmetric A is undirected."""
    n = 40
    src = torch.arange(n - 1).repeat(3)
    dst = torch.cat([torch.arange(1, n), torch.arange(2, n + 1) % n, torch.arange(3, n + 2) % n])
    splits = {"train": torch.stack([src[:60], dst[:60]], 1), "val": torch.stack([src[60:90], dst[60:90]], 1),
              "test": torch.stack([src[90:], dst[90:]], 1)}
    for k in ("val", "test"):
        splits[k + "_neg"] = torch.tensor([[0, 20], [5, 30]])
    directed = Graph.from_edges(src[:60], dst[:60], n, edge_splits=splits)
    task = LinkPrediction()
    task.setup(directed, "mf", {}, seed=0)
    forward = _keys(splits["train"], n)
    assert set(task._known.tolist()) == forward
    draws = task.sample_negatives(n, 20000, torch.Generator().manual_seed(0))
    assert not _keys(draws, n) & forward
    reverse = _keys(splits["train"].flip(1), n)
    # 60 reverse pairs out of 40 * 39 - 60 allowed ones: about 20000 * 60 / 1500 = 800 draws hit one
    assert sum(k in reverse for k in (draws[:, 0] * n + draws[:, 1]).tolist()) > 500
    sym = Graph.from_edges(torch.cat([src[:60], dst[:60]]), torch.cat([dst[:60], src[:60]]), n,
                           edge_splits=splits)
    task.setup(sym, "mf", {}, seed=0)
    assert set(task._known.tolist()) == forward | reverse


@pytest.mark.parametrize("model_name,decoder",
                         [("gcn", "dot"), ("sage", "mlp"), ("mf", "dot"), ("lightgcn", "dot")])
def test_loss_decreases(model_name, decoder, fit_task):
    graph = clusters()
    task = LinkPrediction(decoder=decoder, out_dim=16, emb_dim=16, mlp_hidden_dim=16)
    kwargs = {"hidden_dim": 16, "dropout": 0.0} if model_name in ("gcn", "sage") else {}
    model, g = task.setup(graph, model_name, kwargs, seed=0)
    losses = fit_task(task, model, g, 40, lr=0.02)
    assert losses[-1] < 0.7 * losses[0]


def test_evaluate_matches_metric_functions(fit_task):
    graph = clusters()
    task = LinkPrediction(out_dim=8, emb_dim=8, hits_k=(1, 3))
    model, g = task.setup(graph, "gcn", {"hidden_dim": 8}, seed=0)
    fit_task(task, model, g, 10, lr=0.02)
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "test")
        H = model(g)
    assert set(res) == {"roc_auc", "ap", "hits@1", "hits@3"}
    pos_pairs, neg_pairs = g.edge_splits["test"], g.edge_splits["test_neg"]
    pos = (H[pos_pairs[:, 0]] * H[pos_pairs[:, 1]]).sum(1)  # dot decoder by hand
    neg = (H[neg_pairs[:, 0]] * H[neg_pairs[:, 1]]).sum(1)
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = torch.cat([pos, neg]).numpy()
    assert res["roc_auc"] == pytest.approx(roc_auc_score(labels.numpy(), s), abs=1e-6)
    assert res["ap"] == pytest.approx(average_precision_score(labels.numpy(), s), abs=1e-6)
    kth = torch.sort(neg, descending=True).values[2]
    assert res["hits@3"] == pytest.approx(float((pos > kth).float().mean()))
    assert res["hits@1"] == pytest.approx(float((pos > neg.max()).float().mean()))


def test_ogb_protocol_uses_official_evaluator_and_monitor():
    graph = clusters()
    graph = graph.replace(meta={"evaluator": "ogbl-ddi"})
    task = LinkPrediction(out_dim=8, emb_dim=8)
    model, g = task.setup(graph, "mf", {}, seed=0)
    assert task.monitor == "val_hits@20"
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "val")
        H = model(g)
    from ogb.linkproppred import Evaluator

    pos_pairs, neg_pairs = g.edge_splits["val"], g.edge_splits["val_neg"]
    pos = (H[pos_pairs[:, 0]] * H[pos_pairs[:, 1]]).sum(1)
    neg = (H[neg_pairs[:, 0]] * H[neg_pairs[:, 1]]).sum(1)
    ref = Evaluator("ogbl-ddi").eval({"y_pred_pos": pos, "y_pred_neg": neg})["hits@20"]
    assert res["hits@20"] == pytest.approx(ref)
    with pytest.raises(ConfigError, match="evaluator"):
        LinkPrediction().setup(graph.replace(meta={"evaluator": "ogbl-nope"}), "mf", {}, seed=0)


def test_ogbl_citation2_layout_and_vessel_monitor_use_the_official_evaluator():
    from ogb.linkproppred import Evaluator
    from sklearn.metrics import roc_auc_score

    split = link_split(clusters(), seed=0)
    val = split.edge_splits["val"]
    neg_dst = torch.randint(0, split.num_nodes, (len(val), 7), generator=torch.Generator().manual_seed(1))
    # the ogb loader's citation2 layout: (M, K) negative targets per source, no "val_neg"
    keep = {k: v for k, v in split.edge_splits.items() if k in ("train", "val", "test")}
    cit = split.replace(edge_splits={**keep, "val_neg_dst": neg_dst, "test_neg_dst": neg_dst[:0]},
                        meta={"evaluator": "ogbl-citation2"})
    task = LinkPrediction(out_dim=8, emb_dim=8)
    model, g = task.setup(cit, "mf", {}, seed=0)
    model.eval()
    with torch.no_grad():
        res, H = task.evaluate(model, g, "val"), model(g)
    assert task.monitor == "val_mrr" and "mrr" in res
    pos = (H[val[:, 0]] * H[val[:, 1]]).sum(1)
    neg = (H[val[:, :1]] * H[neg_dst]).sum(-1)  # (M, 7): the source of each positive vs its negatives
    ref = Evaluator("ogbl-citation2").eval({"y_pred_pos": pos, "y_pred_neg": neg})["mrr_list"].mean()
    assert res["mrr"] == pytest.approx(float(ref))

    task = LinkPrediction(out_dim=8, emb_dim=8)
    model, g = task.setup(split.replace(meta={"evaluator": "ogbl-vessel"}), "mf", {}, seed=0)
    model.eval()
    with torch.no_grad():
        res, H = task.evaluate(model, g, "val"), model(g)
    assert task.monitor == "val_roc_auc"  # the key evaluate returns (OGB's Evaluator says "rocauc")
    negp = g.edge_splits["val_neg"]
    s = torch.cat([(H[val[:, 0]] * H[val[:, 1]]).sum(1), (H[negp[:, 0]] * H[negp[:, 1]]).sum(1)])
    labels = [1] * len(val) + [0] * len(negp)
    assert res["roc_auc"] == pytest.approx(roc_auc_score(labels, s.detach().numpy()), abs=1e-6)


def test_per_query_negatives_give_mrr():
    graph = clusters()
    task = LinkPrediction(out_dim=8, emb_dim=8)
    model, g = task.setup(graph, "mf", {}, seed=0)
    pos_pairs = g.edge_splits["test"]
    gen = torch.Generator().manual_seed(3)
    dst_neg = torch.randint(0, g.num_nodes, (len(pos_pairs), 5), generator=gen)
    per_query = torch.stack([pos_pairs[:, :1].expand(-1, 5), dst_neg], -1)  # (M, 5, 2)
    g = g.replace(edge_splits={**g.edge_splits, "test_neg": per_query})
    model.eval()
    with torch.no_grad():
        res = task.evaluate(model, g, "test")
        H = model(g)
    assert set(res) == {"roc_auc", "ap", "mrr", "hits@1", "hits@3", "hits@10"}
    pos = (H[pos_pairs[:, 0]] * H[pos_pairs[:, 1]]).sum(1)
    neg = (H[per_query[..., 0]] * H[per_query[..., 1]]).sum(-1)  # (M, 5)
    assert res["mrr"] == pytest.approx(metrics.mrr(metrics.rank_of_positive(pos, neg)))


@pytest.mark.parametrize("key", ["val_frac", "test_frac"])
def test_empty_evaluation_split_is_refused_by_name(key):
    with pytest.raises(ConfigError, match=rf"task\.{key}: expected > 0 .* got 0"):
        LinkPrediction(**{key: 0.0}).setup(clusters(), "gcn", {}, seed=0)
    graph = link_split(clusters(), seed=0)
    split = key.split("_")[0]
    empty = graph.replace(edge_splits={**graph.edge_splits, split: graph.edge_splits[split][:0]})
    with pytest.raises(GraphError, match=f"edge split '{split}' is empty"):
        LinkPrediction().setup(empty, "gcn", {}, seed=0)


def test_unknown_decoder_or_model():
    with pytest.raises(ConfigError, match="decoder"):
        LinkPrediction(decoder="bilinear")
    with pytest.raises(ConfigError, match="task 'link'"):
        LinkPrediction().setup(clusters(), "distmult", {}, seed=0)


@pytest.mark.parametrize("key, row, col, bad",
                         [("val", 2, 0, -1), ("test_neg", 0, 1, 24), ("train", 5, 1, 99)])
def test_out_of_range_pair_ids_are_refused_by_split_row_and_column(key, row, col, bad, with_split_entry):
    # Indexing would wrap -1 around to the last node and make a key n * src + dst collide with another pair's.
    graph = link_split(clusters(), seed=0)  # 24 nodes
    broken = with_split_entry(graph, key, row, col, bad)
    with pytest.raises(GraphError, match=rf"edge_splits\['{key}'\] row {row} column {col}: node id {bad} "
                                         r"out of range, expected 0\.\.23"):
        LinkPrediction().setup(broken, "gcn", {}, seed=0)
    per_query = graph.replace(edge_splits={**graph.edge_splits, "val_neg_dst": torch.tensor([[3, 24, 5]])})
    with pytest.raises(GraphError, match=r"'val_neg_dst'\] row 0 column 1: node id 24"):
        LinkPrediction().setup(per_query, "gcn", {}, seed=0)
    floats = graph.replace(edge_splits={**graph.edge_splits, key: graph.edge_splits[key].float()})
    with pytest.raises(GraphError, match=rf"edge_splits\['{key}'\]: expected integer ids, got torch.float32"):
        LinkPrediction().setup(floats, "gcn", {}, seed=0)
