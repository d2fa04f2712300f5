"""graphnet.metrics: hand-computed cases (ties, empty rows), sklearn and ogb Evaluator cross-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from graphnet import metrics as M


# ---------------------------------------------------------------------------------- classification
def test_accuracy_logits_and_labels():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.2, 0.1]])
    y = torch.tensor([0, 1, 1, 1])
    assert M.accuracy(logits, y) == pytest.approx(0.5)
    assert M.accuracy(torch.tensor([0, 1, 1, 1]), y) == 1.0
    assert math.isnan(M.accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="accuracy"):
        M.accuracy(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


def test_roc_auc_and_ap_hand_computed():
    # sklearn's documented example: AUC 0.75, AP 0.8333...
    s, y = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    assert M.roc_auc(s, y) == pytest.approx(0.75)
    assert M.average_precision(s, y) == pytest.approx((1 / 2) * 1.0 + (1 / 2) * (2 / 3))
    # ties: positive tied with one negative counts 1/2: pairs (1 vs 1) = .5, (1 vs 0) = 1 -> 0.75
    s, y = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1, 0, 0])
    assert M.roc_auc(s, y) == pytest.approx(0.75)
    # the tied group is one threshold: precision 1/2 at recall 1
    assert M.average_precision(s, y) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_ap_match_sklearn_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 6, (200,), generator=g).double() / 2  # many ties
    y = torch.rand(200, generator=g) < 0.3
    assert M.roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y.numpy(), s.numpy()), abs=1e-12)
    ap = skm.average_precision_score(y.numpy(), s.numpy())
    assert M.average_precision(s, y) == pytest.approx(ap, abs=1e-12)
    s = torch.randn(300, generator=g)  # continuous scores: no ties
    y2 = torch.rand(300, generator=g) < 0.5
    assert M.roc_auc(s, y2) == pytest.approx(skm.roc_auc_score(y2.numpy(), s.numpy()), abs=1e-12)
    ap = skm.average_precision_score(y2.numpy(), s.numpy())
    assert M.average_precision(s, y2) == pytest.approx(ap, abs=1e-12)


def test_binary_metrics_reject_one_class_and_nan():
    with pytest.raises(ValueError, match="both positive and negative"):
        M.roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        M.average_precision(torch.tensor([float("nan"), 0.2]), torch.tensor([1, 0]))


# ---------------------------------------------------------------------------------- ranks
def test_rank_tie_policies_hand_computed():
    pos = torch.tensor([1.0, 5.0, 0.0])
    neg = torch.tensor([[2.0, 1.0, 1.0, 0.0],   # 1 greater, 2 tied -> opt 2, pess 4, real 3
                        [1.0, 2.0, 3.0, 4.0],   # best -> 1 in every policy
                        [0.0, 0.0, 0.0, 0.0]])  # constant scorer: opt 1, pess 5, real 3 = (C + 1) / 2
    assert M.rank_of_positive(pos, neg, ties="optimistic").tolist() == [2, 1, 1]
    assert M.rank_of_positive(pos, neg, ties="pessimistic").tolist() == [4, 1, 5]
    assert M.rank_of_positive(pos, neg).tolist() == [3, 1, 3]
    valid = torch.tensor([[False, True, False, True]] + [[True] * 4] * 2)  # drop the larger and one tie
    assert M.rank_of_positive(pos, neg, valid).tolist() == [1.5, 1, 3]
    with pytest.raises(ValueError, match="ties"):
        M.rank_of_positive(pos, neg, ties="random")
    with pytest.raises(ValueError, match="NaN"):
        M.rank_of_positive(torch.tensor([float("nan")]), torch.zeros(1, 3))


def test_rank_of_target_excludes_target_itself():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [3.0, 3.0, 3.0, 3.0]])
    # row 0, target 2 (0.5): one greater (0.9), one tie (0.5 at col 0) -> realistic 2.5
    # row 1, target 0: three ties -> (1 + 4) / 2
    assert M.rank_of_target(scores, torch.tensor([2, 0])).tolist() == [2.5, 2.5]
    exclude = torch.tensor([[False, True, False, False], [False, True, True, False]])
    assert M.rank_of_target(scores, torch.tensor([2, 0]), exclude).tolist() == [1.5, 1.5]


def test_filter_mask_hand_checked():
    # true triples (h, r, t) over 5 entities, 2 relations
    triples = torch.tensor([[0, 0, 1], [0, 0, 2], [0, 1, 3], [4, 0, 1], [0, 0, 4]])
    R = 2
    index = M.build_answer_index(triples[:, 0] * R + triples[:, 1], triples[:, 2])
    # query (0, 0, ?) with target 2: the other true tails 1 and 4 are filtered, 2 itself is not
    # query (3, 1, ?) has no known answer: an empty row
    mask = M.filter_mask(index, torch.tensor([0 * R + 0, 3 * R + 1]), torch.tensor([2, 0]), 5)
    assert mask.tolist() == [[False, True, False, False, True], [False] * 5]
    full = M.answer_mask(index, torch.tensor([0 * R + 0, 0 * R + 1, 4 * R + 0]), 5)
    assert full.tolist() == [[False, True, True, False, True], [False, False, False, True, False],
                             [False, True, False, False, False]]
    scores = torch.tensor([[0.0, 9.0, 1.0, 5.0, 8.0]])
    # raw rank of entity 2: 9, 5, 8 are higher -> 4; filtered (1 and 4 removed): only 5 -> 2
    assert M.rank_of_target(scores, torch.tensor([2])).item() == 4
    assert M.rank_of_target(scores, torch.tensor([2]), mask[:1]).item() == 2


def test_rank_summaries():
    ranks = torch.tensor([1.0, 2.0, 4.0, 10.5])
    assert M.mrr(ranks) == pytest.approx((1 + 0.5 + 0.25 + 1 / 10.5) / 4)
    assert M.mean_rank(ranks) == pytest.approx(17.5 / 4)
    assert M.hits_at(ranks, 1) == 0.25
    assert M.hits_at(ranks, 10) == 0.75  # a realistic 10.5 misses Hits@10
    assert math.isnan(M.mrr(torch.zeros(0)))


# ---------------------------------------------------------------------------------- OGB cross-checks
def test_ogb_hits_hand_computed():
    neg = torch.tensor([0.9, 0.5, 0.7, 0.1])
    pos = torch.tensor([0.8, 0.7, 0.95, 0.2])
    # 2nd highest negative = 0.7; strictly above: 0.8, 0.95 (0.7 tied does not count)
    assert M.ogb_hits_at(pos, neg, 2) == 0.5
    assert M.ogb_hits_at(pos, neg, 5) == 1.0  # fewer negatives than K
    # per-query Hits@K is a different protocol: each positive against its own negatives
    own = torch.tensor([[0.9, 0.1], [0.1, 0.1], [0.0, 0.0], [0.5, 0.3]])
    ranks = M.rank_of_positive(pos, own)
    assert ranks.tolist() == [2, 1, 1, 3]
    assert M.hits_at(ranks, 2) == 0.75


@pytest.mark.parametrize("seed", range(3))
def test_ogb_hits_matches_ogb_evaluator_ddi(seed):
    from ogb.linkproppred import Evaluator

    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 50, (300,), generator=g).float()  # integer scores: ties with the K-th negative
    neg = torch.randint(0, 60, (500,), generator=g).float()
    ours = M.ogb_hits_at(pos, neg, 20)
    ref = Evaluator("ogbl-ddi").eval({"y_pred_pos": pos, "y_pred_neg": neg})["hits@20"]
    assert ours == pytest.approx(ref, abs=1e-12)
    ref_np = Evaluator("ogbl-ddi").eval({"y_pred_pos": pos.numpy(), "y_pred_neg": neg.numpy()})["hits@20"]
    assert ours == pytest.approx(ref_np, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_realistic_mrr_matches_ogb_evaluator_citation2(seed):
    from ogb.linkproppred import Evaluator

    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 8, (200,), generator=g).float()
    neg = torch.randint(0, 8, (200, 30), generator=g).float()  # many ties
    ranks = M.rank_of_positive(pos, neg)
    ref = Evaluator("ogbl-citation2").eval({"y_pred_pos": pos, "y_pred_neg": neg})
    assert M.mrr(ranks) == pytest.approx(float(ref["mrr_list"].mean()), abs=1e-6)
    for k in (1, 3, 10):
        assert M.hits_at(ranks, k) == pytest.approx(float(ref[f"hits@{k}_list"].mean()), abs=1e-6)


# ---------------------------------------------------------------------------------- top-K recommendation
def test_topk_metrics_hand_computed():
    # user 0: relevant {1, 3}, ranking [3, 0, 1, ...]; user 1: relevant {2}, ranking [0, 1, 4];
    # user 2: no relevant item (empty row: skipped)
    scores = torch.tensor([[0.8, 0.1, 0.0, 0.9, -1.0],
                           [0.9, 0.8, -2.0, 0.0, 0.7],
                           [0.1, 0.2, 0.3, 0.4, 0.5]])
    relevant = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    hits = M.topk_hits(scores, relevant, 3)
    assert hits.tolist() == [[True, False, True], [False, False, False], [False, False, False]]
    n = relevant.sum(1)
    assert M.recall_at_k(hits, n, 3) == pytest.approx((1.0 + 0.0) / 2)
    assert M.precision_at_k(hits, n, 3) == pytest.approx((2 / 3 + 0) / 2)
    ndcg_u0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert M.ndcg_at_k(hits, n, 3) == pytest.approx(ndcg_u0 / 2)
    assert M.hit_rate_at_k(hits, n, 3) == pytest.approx(0.5)
    # K=1: user 0's top item is relevant; ideal DCG over min(2, 1) = 1 item
    assert M.recall_at_k(hits, n, 1) == pytest.approx(0.5 / 2)
    assert M.ndcg_at_k(hits, n, 1) == pytest.approx(0.5)
    assert math.isnan(M.recall_at_k(hits[2:], n[2:], 3))  # only empty rows
    with pytest.raises(ValueError, match="at least k"):
        M.recall_at_k(hits, n, 4)
    # fewer items than k: missing positions count as misses (user 0 ranks item 0, then relevant item 1)
    assert M.topk_hits(scores[:, :2], relevant[:, :2], 3).tolist()[0] == [False, True, False]


def test_topk_indices_hand_computed_ties_and_nan():
    # 300 columns, k = 2: 5 groups of 64 > 2k, so the grouped candidate search runs (not the plain sort)
    scores = torch.zeros(4, 300)
    scores[0, [250, 10, 3]] = torch.tensor([5.0, 5.0, 4.0])  # tie at the top: lower column first
    scores[1, 0] = -math.inf  # all others tied at 0: columns 1, 2
    scores[2, [299, 5]] = torch.tensor([math.nan, 1.0])  # NaN ranks first, as in torch.sort
    scores[3] = -math.inf
    scores[3, 200] = 1.0  # one finite score, then the -inf ones in column order (299 is not padding)
    assert M.topk_indices(scores, 2).tolist() == [[10, 250], [1, 2], [299, 5], [200, 0]]
    assert M.topk_indices(scores[:, :5], 9).tolist()[0] == [3, 0, 1, 2, 4]  # k > I: all columns


@pytest.mark.parametrize("n", [64 * 50, 64 * 50 + 7, 100])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_topk_indices_equals_stable_sort(n, k):
    g = torch.Generator().manual_seed(n + k)
    scores = torch.randint(-20, 20, (30, n), generator=g).float() / 4  # many ties
    scores[torch.rand(30, n, generator=g) < 0.2] = -math.inf
    scores[1, : n - 3] = -math.inf  # fewer than k finite scores
    scores[2] = torch.randn(n, generator=g)  # no ties
    scores[3, 7] = math.nan
    for s in (scores, scores[4:], scores.double(), scores[:, :-1]):
        ref = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(M.topk_indices(s, k), ref)
    nonan = scores[4:]
    assert torch.equal(torch.topk(nonan, k, dim=1).values, nonan.gather(1, M.topk_indices(nonan, k)))
    assert M.topk_indices(scores[:0], k).shape == (0, min(k, n))


def test_topk_hits_ties_rank_lower_item_first():
    scores = torch.tensor([[1.0, 2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    relevant = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    # user 0: items 1 and 2 tie at 2.0 -> 1 first; user 1: all tie -> 0, 1, 2, 3
    assert M.topk_hits(scores, relevant, 2).tolist() == [[False, True], [False, False]]
    assert M.topk_hits(scores, relevant, 4).tolist()[1] == [False, False, False, True]


def _lightgcn_reference(ranked: list[list[int]], test: list[list[int]], k: int) -> dict[str, float]:
    """Plain-Python port of the formulas in LightGCN-PyTorch utils.py (RecallPrecision_ATk, NDCGatK_r)."""
    rec, prec, ndcg, hr = [], [], [], []
    for items, truth in zip(ranked, test, strict=True):
        r = [1.0 if i in truth else 0.0 for i in items[:k]]
        rec.append(sum(r) / len(truth))
        prec.append(sum(r) / k)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(truth), k)))
        ndcg.append(sum(x / math.log2(i + 2) for i, x in enumerate(r)) / idcg)
        hr.append(float(sum(r) > 0))
    return {"recall": np.mean(rec), "precision": np.mean(prec), "ndcg": np.mean(ndcg), "hr": np.mean(hr)}


def test_topk_metrics_match_reference_formulas_random():
    g = torch.Generator().manual_seed(0)
    U, I, k = 40, 30, 10
    scores = torch.randn(U, I, generator=g)
    relevant = torch.rand(U, I, generator=g) < 0.15
    relevant[:, 0] = True  # every user has at least one relevant item
    ranked = torch.argsort(scores, 1, descending=True).tolist()
    test = [set(torch.nonzero(row).squeeze(1).tolist()) for row in relevant]
    ref = _lightgcn_reference(ranked, test, k)
    hits, n = M.topk_hits(scores, relevant, k), relevant.sum(1)
    assert M.recall_at_k(hits, n, k) == pytest.approx(ref["recall"])
    assert M.precision_at_k(hits, n, k) == pytest.approx(ref["precision"])
    assert M.ndcg_at_k(hits, n, k) == pytest.approx(ref["ndcg"])
    assert M.hit_rate_at_k(hits, n, k) == pytest.approx(ref["hr"])


# ---------------------------------------------------------------------------------- regression
def test_rmse_mae():
    pred, target = torch.tensor([3.0, 4.5, 1.0]), torch.tensor([4.0, 4.0, 1.0])
    assert M.rmse(pred, target) == pytest.approx(math.sqrt((1 + 0.25) / 3))
    assert M.mae(pred, target) == pytest.approx(1.5 / 3)
    g = torch.Generator().manual_seed(1)
    p, t = torch.randn(50, generator=g), torch.randn(50, generator=g)
    assert M.rmse(p, t) == pytest.approx(math.sqrt(skm.mean_squared_error(t.numpy(), p.numpy())), rel=1e-6)
    assert M.mae(p, t) == pytest.approx(skm.mean_absolute_error(t.numpy(), p.numpy()), rel=1e-6)


@pytest.mark.parametrize("pred_shape, target_shape", [((3, 1), (3,)), ((3,), (1,)), ((3,), (3, 1))])
def test_rmse_mae_refuse_shapes_that_would_broadcast(pred_shape, target_shape):
    """(3, 1) - (3,) broadcasts to (3, 3): an exact predictor would score rmse > 0 instead of an error."""
    for f in (M.rmse, M.mae):
        with pytest.raises(ValueError, match=rf"{f.__name__}: expected .* same shape \(M,\)"):
            f(torch.ones(pred_shape), torch.ones(target_shape))
