"""Seeded node splits and leak-free link splits (graphnet.data.splits)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphnet.data.splits import link_split, sample_negatives, shchur_split, stratified_split
from graphnet.errors import GraphError
from graphnet.graph import Graph


def _disjoint_cover(splits: dict, idx: torch.Tensor) -> None:
    allidx = torch.cat([splits["train"], splits["val"], splits["test"]])
    assert allidx.unique().numel() == allidx.numel(), "splits overlap"
    assert torch.equal(torch.sort(allidx)[0], torch.sort(idx)[0])


# ------------------------------------------------------------------------------------------- node splits
def test_stratified_split_counts_per_class_and_cover():
    y = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)
    s = stratified_split(y, train_per_class=2, val_per_class=3, seed=1)
    assert torch.bincount(y[s["train"]], minlength=3).tolist() == [2, 2, 2]
    assert torch.bincount(y[s["val"]], minlength=3).tolist() == [3, 3, 1]  # class 2 has 1 left after train
    assert torch.bincount(y[s["test"]], minlength=3).tolist() == [5, 2, 0]
    _disjoint_cover(s, torch.arange(20))
    for v in s.values():
        assert torch.equal(v, torch.sort(v)[0])


def test_stratified_split_fractions_round_per_class():
    y = torch.tensor([0] * 25 + [1] * 15)
    s = stratified_split(y, train_frac=0.1, val_frac=0.2, seed=0)
    assert torch.bincount(y[s["train"]]).tolist() == [round(2.5), round(1.5)]  # banker's rounding: 2, 2
    assert torch.bincount(y[s["val"]]).tolist() == [5, 3]
    assert s["test"].numel() == 40 - 4 - 8


def test_stratified_split_seeded_and_deterministic():
    y = torch.arange(100) % 4
    a, b = stratified_split(y, train_frac=0.3, seed=5), stratified_split(y, train_frac=0.3, seed=5)
    c = stratified_split(y, train_frac=0.3, seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["train"], c["train"])
    state = torch.random.get_rng_state()
    stratified_split(y, train_frac=0.3, seed=7)
    assert torch.equal(state, torch.random.get_rng_state()), "global RNG must not be touched"


def test_stratified_split_skips_unlabeled_and_test_limit():
    y = torch.tensor([0, 0, -1, 1, 1, -1, 0, 1])
    s = stratified_split(y, train_per_class=1, val_per_class=1, test_per_class=1, seed=0)
    for v in s.values():
        assert (y[v] >= 0).all()
        assert v.numel() == 2
    with pytest.raises(GraphError, match="either"):
        stratified_split(y, train_per_class=1, train_frac=0.5)
    with pytest.raises(GraphError, match="train_frac"):
        stratified_split(y, train_frac=1.5)


def test_shchur_split_20_30_per_class_rest_test():
    y = torch.tensor([0] * 60 + [1] * 55 + [2] * 80)
    s = shchur_split(y, seed=3)
    assert torch.bincount(y[s["train"]]).tolist() == [20, 20, 20]
    assert torch.bincount(y[s["val"]]).tolist() == [30, 30, 30]
    assert torch.bincount(y[s["test"]]).tolist() == [10, 5, 30]
    _disjoint_cover(s, torch.arange(195))
    with pytest.raises(GraphError, match="class 1 has 40 nodes"):
        shchur_split(torch.tensor([0] * 60 + [1] * 40))


# ------------------------------------------------------------------------------------------- link splits
def _random_undirected(n: int, p: float, seed: int, loops: int = 0) -> Graph:
    g = torch.Generator().manual_seed(seed)
    M = torch.rand(n, n, generator=g) < p
    M = torch.triu(M, 1)
    src, dst = M.nonzero().t()
    w = torch.rand(src.numel(), generator=g) + 0.5
    loop_nodes = torch.arange(loops)
    src = torch.cat([src, dst, loop_nodes])
    dst2 = torch.cat([dst, src[: dst.numel()], loop_nodes])
    w = torch.cat([w, w, torch.ones(loops)])
    return Graph.from_edges(src, dst2, n, w)


def _pairs(A) -> set[tuple[int, int]]:
    return set(zip(A.col.tolist(), A.row.tolist(), strict=True))  # (src, dst)


def _check_link_split(g: Graph, out: Graph, undirected: bool) -> None:
    n = g.num_nodes
    es = out.edge_splits
    before = _pairs(g.A)
    after = _pairs(out.A)
    assert after <= before
    key = (lambda u, v: (min(u, v), max(u, v))) if undirected else (lambda u, v: (u, v))
    pos = {k: {key(u, v) for u, v in es[k].tolist()} for k in ("train", "val", "test")}
    # the three positive sets partition the non-loop pairs of the input graph
    all_pairs = {key(u, v) for u, v in before if u != v}
    assert pos["train"] | pos["val"] | pos["test"] == all_pairs
    assert len(pos["train"]) + len(pos["val"]) + len(pos["test"]) == len(all_pairs)
    # held-out pairs are gone from A in both directions; training pairs are in A (both directions)
    for k in ("val", "test"):
        for u, v in pos[k]:
            assert (u, v) not in after and (v, u) not in after
    for u, v in pos["train"]:
        assert (u, v) in after and (not undirected or (v, u) in after)
    # self-loops stay in the training graph
    assert {(u, v) for u, v in before if u == v} <= after
    # negatives: no positive of any split, no self-loop, no duplicates, disjoint across val/test
    negs = {k: [key(u, v) for u, v in es[k].tolist()] for k in ("val_neg", "test_neg")}
    for lst in negs.values():
        assert len(lst) == len(set(lst))
        assert all(u != v for u, v in lst)
        assert not set(lst) & all_pairs
        assert all(0 <= u < n and 0 <= v < n for u, v in lst)
    assert not set(negs["val_neg"]) & set(negs["test_neg"])


def test_link_split_undirected_no_leak_and_weights_kept():
    g = _random_undirected(40, 0.2, seed=0, loops=3)
    out = link_split(g, val_frac=0.1, test_frac=0.2, seed=4)
    _check_link_split(g, out, undirected=True)
    es = out.edge_splits
    P = len({(min(u, v), max(u, v)) for u, v in _pairs(g.A) if u != v})
    assert es["test"].shape[0] == round(0.2 * P) and es["val"].shape[0] == round(0.1 * P)
    assert es["val_neg"].shape == es["val"].shape and es["test_neg"].shape == es["test"].shape
    assert (es["train"][:, 0] < es["train"][:, 1]).all()  # undirected pairs stored once as (min, max)
    # message-passing A is symmetric and keeps the original weights of its edges
    D, Dt = g.A.to_dense(), out.A.to_dense()
    assert torch.equal(Dt, Dt.t())
    kept = Dt != 0
    assert torch.equal(Dt[kept], D[kept])
    assert out.meta["undirected"] is True


def test_link_split_directed_graph():
    src = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2, 4, 1, 3, 5, 6, 7, 8, 9])
    dst = torch.tensor([1, 2, 3, 4, 5, 6, 2, 4, 6, 0, 1, 3, 7, 8, 9, 0])
    g = Graph.from_edges(src, dst, 10)
    out = link_split(g, val_frac=0.2, test_frac=0.2, seed=0)
    assert out.meta["undirected"] is False
    _check_link_split(g, out, undirected=False)
    # reversed positives are legitimate negatives for directed data, but positives never are
    pos = set(zip(src.tolist(), dst.tolist(), strict=True))
    for k in ("val_neg", "test_neg"):
        assert not {tuple(p) for p in out.edge_splits[k].tolist()} & pos


def test_link_split_deterministic_and_seeded():
    g = _random_undirected(30, 0.3, seed=1)
    a, b = link_split(g, seed=7), link_split(g, seed=7)
    c = link_split(g, seed=8)
    for k in a.edge_splits:
        assert torch.equal(a.edge_splits[k], b.edge_splits[k])
    assert torch.equal(a.A.row, b.A.row) and torch.equal(a.A.col, b.A.col)
    assert not torch.equal(a.edge_splits["test"], c.edge_splits["test"])


def test_link_split_num_neg_and_errors():
    g = _random_undirected(30, 0.3, seed=2)
    out = link_split(g, seed=0, num_neg=50)
    assert out.edge_splits["val_neg"].shape == (50, 2) and out.edge_splits["test_neg"].shape == (50, 2)
    tiny = Graph.from_edges([0, 1], [1, 0], 2)
    with pytest.raises(GraphError, match="too few"):
        link_split(tiny, val_frac=0.5, test_frac=0.4)
    with pytest.raises(GraphError, match="val_frac"):
        link_split(g, val_frac=1.5)
    with pytest.raises(GraphError, match="symmetric"):
        link_split(Graph.from_edges([0, 1], [1, 2], 3), undirected=True)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(5, 25), p=st.floats(0.2, 0.6), seed=st.integers(0, 10_000), loops=st.integers(0, 3))
def test_link_split_never_leaks_property(n, p, seed, loops):
    g = _random_undirected(n, p, seed, loops=min(loops, n))
    P = len({(min(u, v), max(u, v)) for u, v in _pairs(g.A) if u != v})
    non_edges = n * (n - 1) // 2 - P
    n_val, n_test = round(0.1 * P), round(0.2 * P)
    if n_val == 0 or n_test == 0 or n_val + n_test >= P or n_val + n_test > non_edges:
        return
    out = link_split(g, val_frac=0.1, test_frac=0.2, seed=seed)
    _check_link_split(g, out, undirected=True)


# ------------------------------------------------------------------------------------------- negatives
def test_sample_negatives_exhausts_exactly_the_complement():
    n = 6
    pos = torch.tensor([[0, 1], [1, 2], [2, 3], [4, 5], [0, 5]])
    total = n * (n - 1) // 2 - pos.shape[0]
    neg = sample_negatives(n, total, exclude=pos, seed=0)
    got = {tuple(p) for p in neg.tolist()}
    want = {(u, v) for u in range(n) for v in range(u + 1, n)} - {tuple(p) for p in pos.tolist()}
    assert got == want
    with pytest.raises(GraphError, match="only 10 node pairs"):
        sample_negatives(n, total + 1, exclude=pos, seed=0)
    # reversed exclusions count too when undirected
    neg2 = sample_negatives(n, total, exclude=pos.flip(1), seed=1)
    assert {tuple(p) for p in neg2.tolist()} == want


def test_sample_negatives_directed_and_generator():
    pos = torch.tensor([[0, 1], [1, 0], [2, 0]])
    neg = sample_negatives(3, 3, exclude=pos, undirected=False, seed=0)
    assert {tuple(p) for p in neg.tolist()} == {(0, 2), (1, 2), (2, 1)}
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_negatives(50, 20, generator=g1), sample_negatives(50, 20, generator=g2))
