"""Evaluation metrics as pure tensor functions. Each name and docstring states its protocol.

Conventions used throughout:
  * Ranks are 1-based. Ties between the positive and a candidate are broken by a *tie policy*:
    ``optimistic`` (the positive wins every tie: 1 + #{s > s_pos}), ``pessimistic`` (it loses every
    tie: 1 + #{s >= s_pos}) or ``realistic`` (their mean, the default; the rank expected under a random
    ordering of ties, as in PyKEEN and the OGB MRR evaluator). A constant scorer thus gets the mean rank
    (C + 1) / 2 under ``realistic`` instead of a perfect 1.
  * "Filtered" KG ranks drop every *other* known true answer of a query from the candidates (Bordes et al.
    2013); ``filter_mask`` builds that mask from an index over all known triples.
  * Two kinds of Hits@K: ``hits_at`` on per-query ranks (KG, OGB MRR datasets), and ``ogb_hits_at`` with
    one *shared* negative set (OGB ogbl-ddi/collab/ppa: a positive counts if its score is strictly above
    the K-th highest negative score).
  * Top-K recommendation metrics take ``hits`` (U, >=K) bool: whether the item at each position of a
    user's full-sort top-K list (training items masked) is relevant, plus each user's number of relevant
    items. Users with no relevant item are left out of the mean. All means are over users, and an
    empty set gives NaN. The top-K lists come from ``topk_indices``: highest score first, equal scores
    in ascending item order (so, given the scores, a list does not depend on batching or on the top-k
    kernel; the scores themselves may differ in the last bit between batch shapes of a matmul, which can
    reorder items whose float scores are exactly tied).

Shapes are stated per function; inputs may live on any device, results are Python floats (or
tensors where documented).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

TIE_POLICIES = ("optimistic", "pessimistic", "realistic")


def _mean(x: Tensor) -> float:
    return float(x.double().mean()) if x.numel() else math.nan


# ---------------------------------------------------------------------------------- classification
def accuracy(pred: Tensor, y: Tensor) -> float:
    """Fraction of correct labels: mean(argmax(pred) == y).

    Args:
        pred: (N, C) scores/logits (argmax taken) or (N,) predicted labels.
        y: (N,) integer labels.
    Returns: accuracy in [0, 1]; NaN for N = 0.
    """
    labels = pred.argmax(-1) if pred.dim() == 2 else pred
    if labels.shape != y.shape:
        raise ValueError(f"accuracy: expected predictions for {tuple(y.shape)} labels, "
                         f"got {tuple(pred.shape)}")
    return _mean((labels == y).double())


def _binary_inputs(name: str, scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    scores, labels = scores.detach().reshape(-1).double(), labels.detach().reshape(-1).bool()
    if scores.shape != labels.shape:
        raise ValueError(f"{name}: expected as many labels as scores, got {labels.numel()} and "
                         f"{scores.numel()}")
    if torch.isnan(scores).any():
        raise ValueError(f"{name}: scores contain NaN")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.numel():
        raise ValueError(f"{name}: expected both positive and negative labels, got {n_pos} positives "
                         f"out of {labels.numel()}")
    return scores, labels


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties count 1/2.

    Computed as the Mann-Whitney U statistic with average ranks for tied scores, which equals
    ``sklearn.metrics.roc_auc_score``:  AUC = (sum of positive ranks - P (P + 1) / 2) / (P N).

    Shapes: scores (M,), labels (M,) {0, 1} or bool. Raises ValueError if only one class is present.
    """
    scores, labels = _binary_inputs("roc_auc", scores, labels)
    uniq, inv, counts = torch.unique(scores, return_inverse=True, return_counts=True)  # ascending
    ends = torch.cumsum(counts, 0).double()
    avg_rank = ends - (counts.double() - 1) / 2  # mean of the 1-based ranks each tie group occupies
    n_pos = labels.sum().double()
    n_neg = labels.numel() - n_pos
    u = avg_rank[inv][labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """Average precision AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds (descending).

    Tied scores form one threshold (no interpolation), as in ``sklearn.metrics.average_precision_score``.

    Shapes: scores (M,), labels (M,) {0, 1} or bool. Raises ValueError if only one class is present.
    """
    scores, labels = _binary_inputs("average_precision", scores, labels)
    uniq, inv, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    pos = torch.zeros(uniq.numel(), dtype=torch.float64, device=scores.device)
    pos = pos.index_add_(0, inv, labels.double())  # positives per distinct score
    tp = torch.cumsum(pos.flip(0), 0)  # true positives at each threshold, highest score first
    predicted = torch.cumsum(counts.flip(0).double(), 0)
    precision, recall = tp / predicted, tp / tp[-1]
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


# ---------------------------------------------------------------------------------- ranking
def rank_of_positive(pos: Tensor, neg: Tensor, valid: Tensor | None = None,
                     ties: str = "realistic") -> Tensor:
    """1-based rank of each positive among itself and its own candidates, with a tie policy.

    ``optimistic = 1 + #{j: neg_j > pos}``, ``pessimistic = 1 + #{j: neg_j >= pos}``,
    ``realistic = (optimistic + pessimistic) / 2`` (default). Only candidates with ``valid`` True count.

    Args:
        pos: (Q,) score of each query's positive.
        neg: (Q, M) scores of its candidates (per-query negatives, or all entities minus the positive).
        valid: (Q, M) bool, False = ignore the candidate (filtered setting); default all True.
        ties: "optimistic" | "pessimistic" | "realistic".
    Returns: (Q,) float64 ranks in [1, M + 1].
    """
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties: expected one of {TIE_POLICIES}, got {ties!r}")
    if pos.dim() != 1 or neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"rank_of_positive: expected pos (Q,) and neg (Q, M), got {tuple(pos.shape)} and "
                         f"{tuple(neg.shape)}")
    if torch.isnan(pos).any() or torch.isnan(neg).any():
        raise ValueError("rank_of_positive: scores contain NaN (a NaN would compare as a perfect rank)")
    p = pos.unsqueeze(1)  # (Q, 1)
    greater, geq = neg > p, neg >= p  # (Q, M)
    if valid is not None:
        greater, geq = greater & valid, geq & valid
    optimistic = 1 + greater.sum(1).double()
    pessimistic = 1 + geq.sum(1).double()
    if ties == "optimistic":
        return optimistic
    if ties == "pessimistic":
        return pessimistic
    return (optimistic + pessimistic) / 2


def rank_of_target(scores: Tensor, target: Tensor, exclude: Tensor | None = None,
                   ties: str = "realistic") -> Tensor:
    """1-based rank of ``scores[q, target[q]]`` among the C candidates of row q (not against itself).

    With ``exclude`` (e.g. from ``filter_mask``) the excluded candidates are ignored: the filtered rank.

    Shapes: scores (Q, C), target (Q,) long, exclude (Q, C) bool -> (Q,) float64.
    """
    q = torch.arange(scores.shape[0], device=scores.device)
    pos = scores[q, target]  # (Q,)
    valid = torch.ones_like(scores, dtype=torch.bool) if exclude is None else ~exclude
    valid[q, target] = False
    return rank_of_positive(pos, scores, valid, ties)


def build_answer_index(keys: Tensor, answers: Tensor) -> tuple[Tensor, Tensor]:
    """Sort (key, answer) pairs by key so ``answer_mask`` can look up all answers of a key.

    For KG tail queries: ``keys = head * num_relations + rel``, ``answers = tail`` over ALL known true
    triples (train + val + test); for head queries ``keys = tail * num_relations + rel``, ``answers = head``.
    For recommendation: ``keys = user``, ``answers = item``.

    Shapes: keys (P,), answers (P,) long -> (sorted keys (P,), answers in that order (P,)).
    """
    order = torch.argsort(keys, stable=True)
    return keys[order], answers[order]


def answer_mask(index: tuple[Tensor, Tensor], query_keys: Tensor, num_candidates: int) -> Tensor:
    """(Q, C) bool: True at every known answer of each query key (vectorized CSR lookup, no Python loop).

    Memory is O(Q * C): callers batch the queries.
    """
    sorted_keys, answers = index
    device = query_keys.device
    query_keys = query_keys.to(sorted_keys.device)
    start = torch.searchsorted(sorted_keys, query_keys, right=False)  # (Q,)
    count = torch.searchsorted(sorted_keys, query_keys, right=True) - start  # (Q,)
    q = torch.repeat_interleave(torch.arange(query_keys.numel(), device=count.device), count)  # (P_q,)
    offset = torch.arange(q.numel(), device=count.device) - torch.repeat_interleave(
        torch.cumsum(count, 0) - count, count)  # position of each answer within its query's run
    cols = answers[torch.repeat_interleave(start, count) + offset]
    mask = torch.zeros(query_keys.numel(), num_candidates, dtype=torch.bool, device=device)
    mask[q.to(device), cols.to(device)] = True
    return mask


def filter_mask(index: tuple[Tensor, Tensor], query_keys: Tensor, targets: Tensor,
                num_candidates: int) -> Tensor:
    """Filtered-ranking mask: True for every known true answer of the query EXCEPT the target itself.

    Pass it as ``exclude`` to ``rank_of_target`` to get filtered ranks (Bordes et al. 2013).

    Shapes: query_keys (Q,), targets (Q,) -> (Q, C) bool.
    """
    mask = answer_mask(index, query_keys, num_candidates)
    mask[torch.arange(targets.numel(), device=mask.device), targets.to(mask.device)] = False
    return mask


def mrr(ranks: Tensor) -> float:
    """Mean reciprocal rank mean(1 / rank). Shapes: ranks (Q,). NaN for Q = 0."""
    return _mean(1.0 / ranks.double())


def mean_rank(ranks: Tensor) -> float:
    """Mean rank (MR). Shapes: ranks (Q,). NaN for Q = 0."""
    return _mean(ranks.double())


def hits_at(ranks: Tensor, k: int) -> float:
    """Per-query Hits@K = mean(rank <= k) on tie-aware ranks (a realistic rank of 10.5 misses Hits@10)."""
    return _mean((ranks <= k).double())


def ogb_hits_at(pos: Tensor, neg: Tensor, k: int) -> float:
    """OGB shared-negative Hits@K: fraction of positives scored strictly above the K-th highest negative.

    Every positive is ranked against the SAME negative set (ogbl-ddi, -collab, -ppa), exactly as
    ``ogb.linkproppred.Evaluator``: with fewer than K negatives the result is 1.0, and a positive tied with
    the K-th negative does not count. Contrast ``hits_at`` (per-query ranks, each query its own negatives).

    Shapes: pos (P,), neg (M,).
    """
    pos, neg = pos.reshape(-1), neg.reshape(-1)
    if neg.numel() < k:
        return 1.0
    kth = torch.topk(neg, k).values[-1]
    return _mean((pos > kth).double())


# ---------------------------------------------------------------------------------- top-K recommendation
TOPK_GROUP = 64  # columns per group in topk_indices' candidate search


def topk_indices(scores: Tensor, k: int) -> Tensor:
    """Column indices of each row's k highest scores, best first; equal scores in ascending column order.

    Exactly ``torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]`` (NaN first), without
    sorting or top-k-ing the full rows: the columns are cut into groups of ``TOPK_GROUP``, and t = the k-th
    highest group maximum is <= the k-th highest score (the k best groups hold k scores >= t). So every
    score >= the k-th highest is >= t and lies in a group whose maximum is >= t; only the scores >= t of
    those groups (usually a little over k per row) are sorted. Row widths that are a multiple of
    ``TOPK_GROUP`` save one padding copy.

    Shapes: scores (U, I) floating point -> (U, min(k, I)) long.
    """
    rows, n = scores.shape
    k = min(k, n)
    groups = -(-n // TOPK_GROUP)
    if groups <= 2 * k or rows == 0 or k == 0:  # short rows: most groups would be candidates anyway
        return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    padded = scores
    if groups * TOPK_GROUP != n:  # padding ranks after every real column: -inf with larger indices
        padded = torch.nn.functional.pad(scores, (0, groups * TOPK_GROUP - n), value=-math.inf)
    blocks = padded.view(rows, groups, TOPK_GROUP)
    best = blocks.amax(2)  # (U, G)
    if torch.isnan(best).any():  # NaN ranks first in torch.sort; the threshold below would drop it
        return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    t = torch.topk(best, k, dim=1).values[:, -1:]  # (U, 1) <= each row's k-th highest score
    row, grp = torch.nonzero(best >= t, as_tuple=True)  # (P,) candidate groups, ascending within a row
    vals = blocks[row, grp]  # (P, TOPK_GROUP)
    sel, j = torch.nonzero(vals >= t[row], as_tuple=True)  # (Q,) scores >= t, ascending column per row
    row, col = row[sel], grp[sel] * TOPK_GROUP + j
    count = torch.bincount(row, minlength=rows)  # (U,) >= k
    first = torch.cumsum(count, 0) - count  # (U,) position of each row's first candidate
    slot = torch.arange(row.numel(), device=row.device) - torch.repeat_interleave(first, count)  # (Q,)
    width = int(count.max())
    cand = scores.new_full((rows, width), -math.inf)  # unused slots: -inf after the real columns
    cand[row, slot] = vals[sel, j]
    ids = torch.full((rows, width), groups * TOPK_GROUP, dtype=torch.long, device=scores.device)
    ids[row, slot] = col
    order = torch.sort(cand, dim=1, descending=True, stable=True).indices[:, :k]  # (U, k)
    return ids.gather(1, order)


def topk_hits(scores: Tensor, relevant: Tensor, k: int) -> Tensor:
    """Relevance of each user's top-k items: ``relevant[u, topk_indices(scores, k)[u]]``.

    Mask excluded items (the user's training items) to -inf in ``scores`` beforehand. Equal scores are
    ranked in ascending item order (``topk_indices``).

    Shapes: scores (U, I), relevant (U, I) bool -> (U, k) bool.
    """
    idx = topk_indices(scores, k)  # (U, min(k, I))
    hits = relevant.gather(1, idx)
    if hits.shape[1] < k:  # fewer items than k: the missing positions are misses
        hits = torch.cat([hits, hits.new_zeros(hits.shape[0], k - hits.shape[1])], 1)
    return hits


def _per_user(name: str, hits: Tensor, num_relevant: Tensor, k: int) -> tuple[Tensor, Tensor]:
    if hits.shape[1] < k:
        raise ValueError(f"{name}: expected hits with at least k={k} columns, got {tuple(hits.shape)}")
    keep = num_relevant > 0  # users without relevant items are left out (LightGCN evaluates test users only)
    return hits[keep, :k].double(), num_relevant[keep].double()


def recall_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> float:
    """Recall@K = mean_u |top-K(u) ∩ rel(u)| / |rel(u)| over users with |rel(u)| > 0 (LightGCN's protocol).

    Shapes: hits (U, >=K) bool from ``topk_hits``, num_relevant (U,).
    """
    h, n = _per_user("recall_at_k", hits, num_relevant, k)
    return _mean(h.sum(1) / n)


def precision_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> float:
    """Precision@K = mean_u |top-K(u) ∩ rel(u)| / K over users with |rel(u)| > 0."""
    h, _ = _per_user("precision_at_k", hits, num_relevant, k)
    return _mean(h.sum(1) / k)


def ndcg_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> float:
    """NDCG@K with binary relevance: DCG = sum_{i<K} hit_i / log2(i + 2), normalized by the ideal DCG of
    min(|rel(u)|, K) relevant items at the top (as LightGCN's ``NDCGatK_r``). Mean over users with
    |rel(u)| > 0.
    """
    h, n = _per_user("ndcg_at_k", hits, num_relevant, k)
    discount = 1.0 / torch.log2(torch.arange(k, device=h.device, dtype=torch.float64) + 2)  # (K,)
    dcg = (h * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(n.clamp(max=k) - 1).long()]  # sum of the first min(n, K) discounts
    return _mean(dcg / ideal)


def hit_rate_at_k(hits: Tensor, num_relevant: Tensor, k: int) -> float:
    """HitRate@K = fraction of users (with |rel(u)| > 0) having at least one relevant item in their top-K."""
    h, _ = _per_user("hit_rate_at_k", hits, num_relevant, k)
    return _mean((h.sum(1) > 0).double())


# ---------------------------------------------------------------------------------- regression
def _residuals(name: str, pred: Tensor, target: Tensor) -> Tensor:
    """pred - target in float64, both (M,): other shapes would broadcast (M, 1) - (M,) into (M, M) and
    give a wrong number instead of an error."""
    if pred.dim() != 1 or pred.shape != target.shape:
        raise ValueError(f"{name}: expected predictions and targets of the same shape (M,), got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    return pred.double() - target.double()


def rmse(pred: Tensor, target: Tensor) -> float:
    """Root mean squared error sqrt(mean((pred - target)^2)). Shapes: (M,), (M,)."""
    return math.sqrt(_mean(_residuals("rmse", pred, target) ** 2))


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error mean(|pred - target|). Shapes: (M,), (M,)."""
    return _mean(_residuals("mae", pred, target).abs())
