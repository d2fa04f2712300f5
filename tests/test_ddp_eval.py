"""Evaluation in data-parallel runs: each process scores only its contiguous share of a split, and the
gathered metrics equal the single-process ones.

Every task's ``evaluate`` is run on a small fixture in one process and in 2 gloo processes with the same
weights (``setup`` is seeded). The per-item work is counted by wrapping the method that does it (KG:
``ranks`` triples; rec: ``topk`` users; link: ``_scores`` pairs; rating: ``predict`` pairs; node with
``infer_batch_size``: destination rows of every ``forward_layer`` call of layer-wise inference): the two
ranks' counts must add up to the single-process count, each about half of it. Worker functions live at
module level (spawned processes import this module).
"""

from __future__ import annotations

import pytest
import torch

from graphnet import distributed


def _node_graph():
    from graphnet.graph import Graph

    g = torch.Generator().manual_seed(0)
    n = 23
    src, dst = torch.randint(0, n, (80,), generator=g), torch.randint(0, n, (80,), generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    splits = {"train": torch.arange(0, 8), "val": torch.arange(8, 13), "test": torch.arange(13, n)}
    return Graph.from_edges(torch.cat([src, dst]), torch.cat([dst, src]), n, X=torch.randn(n, 4, generator=g),
                            y=y, splits=splits)


def _kg_graph():
    from graphnet.graph import Graph

    g = torch.Generator().manual_seed(1)
    n, r = 15, 3
    cols = [torch.randint(0, k, (90,), generator=g) for k in (n, r, n)]
    triples = torch.unique(torch.stack(cols, 1), dim=0)
    triples = triples[torch.randperm(len(triples), generator=g)]
    train, val, test = triples[:-21], triples[-21:-11], triples[-11:]
    return Graph.from_edges(train[:, 0], train[:, 2], n, edge_type=train[:, 1],
                            edge_splits={"train": train, "val": val, "test": test},
                            meta={"num_entities": n, "num_relations": r})


def _bipartite(U: int, I: int, seed: int, ratings: bool):
    from graphnet.graph import Graph

    g = torch.Generator().manual_seed(seed)
    pairs = (torch.rand(U, I, generator=g) < 0.4).nonzero()
    perm = torch.randperm(len(pairs), generator=g)
    n_test = len(pairs) // 4
    train, test = pairs[perm[n_test:]], pairs[perm[:n_test]]
    splits = {"train": train, "test": test}
    if ratings:
        r = torch.randint(1, 6, (len(pairs),), generator=g)
        splits |= {"train_rating": r[perm[n_test:]], "test_rating": r[perm[:n_test]]}
    u, i = train[:, 0], train[:, 1] + U
    return Graph.from_edges(torch.cat([u, i]), torch.cat([i, u]), U + I, edge_splits=splits,
                            meta={"num_users": U, "num_items": I})


def _count(obj, name: str, size, seen: list[int]) -> None:
    """Wrap ``obj.name`` so every call adds ``size(args, result)`` to ``seen``."""
    inner = getattr(obj, name)

    def wrapped(*args, **kwargs):
        out = inner(*args, **kwargs)
        seen.append(int(size(args, out)))
        return out

    setattr(obj, name, wrapped)


def evaluate_counting(kind: str) -> tuple[dict[str, float], int]:
    """(test metrics, items this process scored) for one task on its fixture, with seeded weights."""
    from graphnet.tasks.kg_completion import KGCompletion
    from graphnet.tasks.link_pred import LinkPrediction
    from graphnet.tasks.node_cls import NodeClassification
    from graphnet.tasks.rating import RatingPrediction
    from graphnet.tasks.recommendation import Recommendation

    seen: list[int] = []
    if kind == "node":
        task = NodeClassification(infer_batch_size=4)
        model, g = task.setup(_node_graph(), "sage", {"hidden_dim": 8}, seed=0)
        _count(model.model, "forward_layer", lambda a, out: a[1].shape[0], seen)  # destination rows
    elif kind == "link":
        task = LinkPrediction(out_dim=8, emb_dim=8, infer_batch_size=5, hits_k=[5])
        model, g = task.setup(_node_graph(), "gcn", {"hidden_dim": 8}, seed=0)
        _count(task, "_scores", lambda a, out: a[2].shape[0], seen)
    elif kind == "kg":
        task = KGCompletion(emb_dim=8, eval_batch_size=4)
        model, g = task.setup(_kg_graph(), "distmult", {}, seed=0)
        _count(task, "ranks", lambda a, out: a[2].shape[0], seen)
    elif kind == "rec":
        task = Recommendation(emb_dim=8, ks=[3, 5], eval_batch_size=3)
        model, g = task.setup(_bipartite(13, 11, 2, ratings=False), "lightgcn", {}, seed=0)
        _count(task, "topk", lambda a, out: out[0].numel(), seen)
    elif kind == "rating":
        task = RatingPrediction(eval_batch_size=7)
        model, g = task.setup(_bipartite(9, 8, 3, ratings=True), "gcmc", {"hidden_dim": 10}, seed=0)
        _count(model, "predict", lambda a, out: a[1].shape[0], seen)
    else:
        raise ValueError(kind)
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, g, "test")
    return metrics, sum(seen)


KINDS = ["node", "link", "kg", "rec", "rating"]
SLICED = {"node": 2, "link": 2, "kg": 1, "rec": 1, "rating": 1}


def worker() -> dict:
    out = {}
    for kind in KINDS:
        metrics, items = evaluate_counting(kind)
        out[kind] = {"metrics": metrics, "items": distributed.all_gather_object(items)}
    return out


@pytest.fixture(scope="module")
def two_processes():
    return distributed.launch(worker, 2, backend="gloo", timeout_s=600)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_is_split_across_processes_and_equals_one_process(kind, two_processes):
    one, total = evaluate_counting(kind)
    two = two_processes[kind]
    assert total > 0 and sorted(one) == sorted(two["metrics"])
    a, b = two["items"]
    # halves of each separately sliced collection (node: 2 layers' rows; link: positive and negative pairs)
    assert a + b == total and abs(a - b) <= SLICED[kind]
    for k, v in one.items():
        assert two["metrics"][k] == pytest.approx(v, abs=1e-6), k
    # the fixtures are not degenerate: a metric strictly inside its range
    inside = [0.0 < v < 1.0 for k, v in one.items() if k not in ("mr", "rmse", "mae", "loss")]
    assert any(inside) or one["rmse"] > 0


def test_eval_slice_covers_in_order():
    # one process: everything; the slices of w ranks tile range(n) in rank order, sizes differ by <= 1
    assert distributed.eval_slice(7) == slice(0, 7)
    from unittest import mock

    for n, w in [(7, 2), (10, 3), (2, 3), (0, 2)]:
        parts = []
        for r in range(w):
            with mock.patch.object(distributed, "world_size", return_value=w), \
                 mock.patch.object(distributed, "rank", return_value=r):
                parts.append(distributed.eval_slice(n))
        assert [i for s in parts for i in range(n)[s]] == list(range(n))
        sizes = [s.stop - s.start for s in parts]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
