"""Seeded node and edge splits that cannot leak.

Node splits: ``stratified_split`` (per-class counts or fractions) and ``shchur_split`` (20 train / 30 val per
class, the rest test; Shchur et al. 2018). Edge splits: ``link_split`` holds out whole undirected pairs,
removes them from the message-passing adjacency and samples negatives that avoid every positive of every
split, self-loops and each other. Everything is deterministic given ``seed`` (a private torch.Generator;
global RNG state is never touched).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from graphnet.errors import GraphError


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _per_class(y: Tensor) -> tuple[Tensor, list[Tensor]]:
    if y.dim() != 1:
        raise GraphError(f"y: expected a 1-D label vector, got shape {tuple(y.shape)}")
    classes = torch.unique(y[y >= 0])  # negative labels = unlabeled, never in a split
    return classes, [(y == c).nonzero().squeeze(1) for c in classes]


def _count(n: int, per_class: int | None, frac: float | None, what: str) -> int:
    if per_class is not None and frac is not None:
        raise GraphError(f"{what}: give either a per-class count or a fraction, not both")
    if per_class is not None:
        if per_class < 0:
            raise GraphError(f"{what}_per_class: expected >= 0, got {per_class}")
        return min(int(per_class), n)
    if frac is not None:
        if not 0.0 <= frac <= 1.0:
            raise GraphError(f"{what}_frac: expected a fraction in [0, 1], got {frac}")
        return int(round(frac * n))
    return 0


def stratified_split(
    y: Tensor,
    train_per_class: int | None = None,
    train_frac: float | None = None,
    val_per_class: int | None = None,
    val_frac: float | None = None,
    test_per_class: int | None = None,
    test_frac: float | None = None,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Per class, shuffle the nodes of that class and take train, then val, then test from the front.

    Counts are ``*_per_class`` (capped at the class size) or ``round(*_frac * class size)``; when neither
    test argument is given, every remaining node of the class is test. Nodes with a negative label are
    never used. Returns sorted index tensors; train, val and test are disjoint.

    Shapes: y (N,) -> {"train": (n_tr,), "val": (n_va,), "test": (n_te,)} long.
    """
    y = torch.as_tensor(y)
    _, members = _per_class(y)
    g = _generator(seed)
    out: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for idx in members:
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n = idx.numel()
        n_tr = _count(n, train_per_class, train_frac, "train")
        n_va = min(_count(n, val_per_class, val_frac, "val"), n - n_tr)
        rest = n - n_tr - n_va
        n_te = (
            rest
            if test_per_class is None and test_frac is None
            else min(_count(n, test_per_class, test_frac, "test"), rest)
        )
        out["train"].append(idx[:n_tr])
        out["val"].append(idx[n_tr : n_tr + n_va])
        out["test"].append(idx[n_tr + n_va : n_tr + n_va + n_te])
    return {k: torch.sort(torch.cat(v))[0] if v else torch.zeros(0, dtype=torch.long) for k, v in out.items()}


def shchur_split(
    y: Tensor, seed: int = 0, train_per_class: int = 20, val_per_class: int = 30
) -> dict[str, Tensor]:
    """Shchur et al. (2018) split: per class ``train_per_class`` train and ``val_per_class`` val nodes drawn
    at random, every other labelled node is test. A class smaller than train + val raises GraphError (it
    would leave the class out of test; Shchur et al. drop such classes beforehand).
    """
    y = torch.as_tensor(y)
    classes, members = _per_class(y)
    for c, idx in zip(classes.tolist(), members, strict=True):
        if idx.numel() < train_per_class + val_per_class:
            raise GraphError(
                f"shchur_split: class {c} has {idx.numel()} nodes, fewer than "
                f"train_per_class + val_per_class = {train_per_class + val_per_class}"
            )
    return stratified_split(y, train_per_class=train_per_class, val_per_class=val_per_class, seed=seed)


# ------------------------------------------------------------------------------------------- edges
def is_symmetric(A: Any) -> bool:
    """Whether ``A`` (N, N, sparse) stores edge j -> i exactly when it stores i -> j (weights aside)."""
    n = A.shape[0]
    k1 = torch.sort(A.row * n + A.col)[0]
    k2 = torch.sort(A.col * n + A.row)[0]
    return bool(torch.equal(k1, k2))


def sample_negatives(
    num_nodes: int,
    num: int,
    exclude: Tensor | None = None,
    seed: int = 0,
    undirected: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``num`` distinct node pairs (u, v), u != v, none in ``exclude`` (in either direction if undirected).

    Uniform over the allowed pairs (rejection sampling). Undirected pairs come out as (min, max).

    Args:
        exclude: (M, 2) pairs that must not be returned (all positives; earlier negatives).
        generator: overrides ``seed`` (tasks pass their per-epoch generator).

    Shapes: -> (num, 2) long.
    """
    n = int(num_nodes)
    g = generator if generator is not None else _generator(seed)
    canon = (
        (lambda u, v: torch.minimum(u, v) * n + torch.maximum(u, v))
        if undirected
        else (lambda u, v: u * n + v)
    )
    ex = torch.zeros(0, dtype=torch.long)
    if exclude is not None and exclude.numel():
        exclude = torch.as_tensor(exclude).long().reshape(-1, 2)
        ex = torch.unique(canon(exclude[:, 0], exclude[:, 1]))
    total = n * (n - 1) // 2 if undirected else n * (n - 1)
    # exclusions that are self-loops do not reduce the pool (self-loops are never candidates anyway)
    ex_pairs = int((ex // n != ex % n).sum())
    if num > total - ex_pairs:
        raise GraphError(
            f"sample_negatives: asked for {num} negatives but only {total - ex_pairs} node pairs "
            f"are not positives (num_nodes={n})"
        )
    chosen = torch.zeros(0, dtype=torch.long)
    while chosen.numel() < num:
        need = num - chosen.numel()
        m = max(2 * need, 64)
        u = torch.randint(0, n, (m,), generator=g)
        v = torch.randint(0, n, (m,), generator=g)
        key = canon(u, v)[u != v]
        key = key[~torch.isin(key, ex)]
        key = key[~torch.isin(key, chosen)]
        # keep the first occurrence of each key, in draw order (determinism without sorting bias)
        uniq, inv = torch.unique(key, return_inverse=True)
        first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long).scatter_reduce(
            0, inv, torch.arange(key.numel()), "amin"
        )
        chosen = torch.cat([chosen, key[torch.sort(first)[0]][:need]])
    return torch.stack([chosen // n, chosen % n], dim=1)


def link_split(
    graph: Any,
    val_frac: float = 0.05,
    test_frac: float = 0.1,
    seed: int = 0,
    num_neg: int | None = None,
    undirected: bool | None = None,
) -> Any:
    """Hold out edges for link prediction, without leakage.

    - Undirected graphs (``undirected=None`` detects a symmetric A): each pair {u, v} is one unit; both
      directions go to the same split. Self-loops always stay in training (they are not predictable links).
    - val/test pairs are removed from the message-passing A (training edges keep their weights).
    - ``edge_splits``: "train", "val", "test" (M, 2) positive pairs (undirected: once, as (min, max)), and
      "val_neg", "test_neg": ``num_neg`` pairs each (default: as many as the positives) that are no positive
      of any split, no self-loop, and distinct across val and test.

    Shapes: graph.A (N, N) -> A (N, N) with the training edges only; edge_splits as above.
    """
    A = graph.A
    n = A.shape[0]
    if A.shape[0] != A.shape[1]:
        raise GraphError(f"link_split: expected a square adjacency, got shape {tuple(A.shape)}")
    for name, f in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= f < 1.0:
            raise GraphError(f"link_split: {name} must be in [0, 1), got {f}")
    if val_frac + test_frac >= 1.0:
        raise GraphError(f"link_split: val_frac + test_frac must be < 1, got {val_frac + test_frac}")
    if undirected is None:
        undirected = is_symmetric(A)
    row, col, val = A.row, A.col, A.val
    src, dst = col, row  # A[dst, src] = edge src -> dst
    loop = src == dst
    cand = ~loop & (src < dst) if undirected else ~loop
    if undirected and not is_symmetric(A):
        raise GraphError("link_split: undirected=True needs a symmetric adjacency; call graph.symmetrize()")
    pairs = torch.stack([src[cand], dst[cand]], 1)
    pairs = torch.unique(pairs, dim=0)  # duplicates in A become one pair
    P = pairs.shape[0]
    n_test, n_val = int(round(test_frac * P)), int(round(val_frac * P))
    if P == 0 or (n_test + n_val) >= P or (val_frac > 0 and n_val == 0) or (test_frac > 0 and n_test == 0):
        raise GraphError(
            f"link_split: {P} candidate edges are too few for val_frac={val_frac}, "
            f"test_frac={test_frac} (each requested split needs >= 1 edge, train too)"
        )
    g = _generator(seed)
    pairs = pairs[torch.randperm(P, generator=g)]
    test, valid, train = pairs[:n_test], pairs[n_test : n_test + n_val], pairs[n_test + n_val :]

    # Message-passing graph: drop every stored edge whose (unordered, if undirected) pair is held out.
    key = (torch.minimum(src, dst) * n + torch.maximum(src, dst)) if undirected else src * n + dst
    held = torch.cat([test, valid])
    held_key = (held.min(1)[0] * n + held.max(1)[0]) if undirected else held[:, 0] * n + held[:, 1]
    keep = ~torch.isin(key, held_key)
    import dgl.sparse as dglsp

    A_train = dglsp.spmatrix(torch.stack([row[keep], col[keep]]), val[keep], A.shape)
    edge_feat = graph.edge_feat[keep] if graph.edge_feat is not None else None
    edge_type = graph.edge_type[keep] if graph.edge_type is not None else None

    positives = torch.stack([src, dst], 1)  # every stored edge, incl. self-loops, all splits
    n_neg_val = n_val if num_neg is None else int(num_neg)
    n_neg_test = n_test if num_neg is None else int(num_neg)
    neg = sample_negatives(n, n_neg_val + n_neg_test, exclude=positives, undirected=undirected, generator=g)
    edge_splits = {
        "train": train,
        "val": valid,
        "val_neg": neg[:n_neg_val],
        "test": test,
        "test_neg": neg[n_neg_val:],
    }
    meta = {
        **graph.meta,
        "undirected": bool(undirected),
        "link_split": {"val_frac": val_frac, "test_frac": test_frac, "seed": seed},
    }
    return graph.replace(
        A=A_train, edge_feat=edge_feat, edge_type=edge_type, edge_splits=edge_splits, meta=meta
    )
