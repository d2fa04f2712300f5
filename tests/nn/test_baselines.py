"""graphnet.nn.baselines: MF, LightGCN, KG embeddings, GC-MC against dense float64 references."""

from __future__ import annotations

import pytest
import torch

from graphnet.graph import adjacency
from graphnet.nn import baselines as B


def _bipartite(seed=0):
    """4 users, 5 items: symmetric (9, 9) graph, edge_type = rating class 0..2, dense copies."""
    u = torch.tensor([0, 0, 1, 1, 2, 3, 3, 2])
    i = torch.tensor([0, 2, 1, 2, 3, 4, 0, 1]) + 4
    cls = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    A = adjacency(torch.cat([u, i]), torch.cat([i, u]), 9, dtype=torch.float64)
    return A, torch.cat([cls, cls])


def test_registry_names():
    assert set(B.BASELINES) == {"lightgcn", "mf", "distmult", "complex", "rotate", "gcmc"}
    assert all(getattr(c, "takes_node_ids", False) for c in B.BASELINES.values())


def test_mf_returns_its_embedding_and_ignores_graph():
    torch.manual_seed(0)
    m = B.MF(0, 8, num_nodes=5)
    A, _ = _bipartite()
    assert m(A, None) is m.embedding.weight
    assert m.preprocess(A) is A
    assert 0.05 < float(m.embedding.weight.std()) < 0.2  # normal(0, 0.1) init


def test_lightgcn_equals_dense_layer_mean():
    torch.manual_seed(0)
    A, _ = _bipartite()
    m = B.LightGCN(0, 3, num_nodes=9, num_layers=3).double()
    A_hat = m.preprocess(A)
    D = A.to_dense()
    deg = D.sum(1)
    norm = D / torch.sqrt(deg[:, None] * deg[None, :])  # D^-1/2 A D^-1/2, no self-loops
    E = m.embedding.weight
    layers = [E]
    for _ in range(3):
        layers.append(norm @ layers[-1])
    assert torch.allclose(m(A_hat, None), torch.stack(layers).mean(0))


@pytest.mark.parametrize("name", ["distmult", "complex", "rotate"])
def test_kg_embedding_has_scorer_and_init(name):
    torch.manual_seed(0)
    m = B.BASELINES[name](0, 8, num_nodes=6, num_relations=3, **({"gamma": 6.0} if name == "rotate" else {}))
    A, _ = _bipartite()
    H = m(A, None)
    assert H.shape == (6, 8) and m.score == name
    assert m.scorer.__class__.__name__.lower() == name
    h = torch.tensor([0, 1])
    assert m.scorer.score_tails(H[h], torch.tensor([0, 2]), H).shape == (2, 6)
    if name == "rotate":
        assert float(H.abs().max()) <= (6.0 + 2.0) / 4 + 1e-6


@pytest.mark.parametrize("name", ["distmult", "complex", "rotate"])
def test_kg_embedding_dropout_spares_the_candidate_matrix(name):
    """ConvE's input dropout: only the query entity and relation are dropped in 1-N scoring.

    Entity rows e_j = c_j * u for j < N - 1 and e_{N-1} = e_0. With the candidate matrix intact, two equal
    candidate rows get equal score columns for every scorer, and the bilinear scorers (DistMult, ComplEx)
    give s[i, j] = c_j * g_i (g_i depends on the query only, whatever its dropout mask). Dropping entries
    of E would give every candidate its own mask and break both.
    """
    torch.manual_seed(0)
    N, d, p = 6, 8, 0.5
    m = B.BASELINES[name](0, d, num_nodes=N, num_relations=3, dropout=p).double().train()
    c = torch.tensor([1.0, 2.0, 3.0, -1.0, 0.5, 1.0], dtype=torch.float64)  # c_5 = c_0: e_5 = e_0
    u = torch.randn(d, dtype=torch.float64)
    m.entity.data = c[:, None] * u  # (N, d)
    A, _ = _bipartite()
    H = m(A, None)
    assert torch.equal(H, m.entity)  # the table itself: no dropout on the rows that are also candidates
    ent, rel = torch.tensor([0, 1, 2, 3, 4, 5] * 20), torch.tensor([0, 1, 2] * 40)
    m.eval()
    s_eval = m.scorer.score_tails(H[ent], rel, H), m.scorer.score_heads(rel, H[ent], H)
    m.train()
    s_train = m.scorer.score_tails(H[ent], rel, H), m.scorer.score_heads(rel, H[ent], H)
    for s, s_ev in zip(s_train, s_eval, strict=True):
        torch.testing.assert_close(s[:, N - 1], s[:, 0], rtol=1e-12, atol=1e-12)  # equal candidates, scores
        if name != "rotate":
            assert torch.allclose(s, s[:, :1] * c / c[0])  # (B, N): column j = c_j * column 0
        assert not torch.allclose(s, s_ev)  # and the query side is dropped in training


def test_distmult_kge_dropout_hand_computed():
    """DistMult, d = 3, p = 1/2: every train-mode score is c_j * 4 * sum_{k in S} h_k w_rk u_k for some kept
    set S (the product of the entity and relation masks, each kept entry scaled by 1/(1-p) = 2)."""
    torch.manual_seed(1)
    N, d = 4, 3
    m = B.DistMultKGE(0, d, num_nodes=N, num_relations=1, dropout=0.5).double().train()
    c = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    u = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    m.entity.data = c[:, None] * u
    m.scorer.rel.data = w[None]
    H = m(None, None)
    ent = torch.zeros(64, dtype=torch.long)  # query (entity 0, relation 0) 64 times: e_0 = u
    s = m.scorer.score_tails(H[ent], torch.zeros_like(ent), H)  # (64, N)
    terms = u * w * u  # h_k w_k u_k with h = e_0 = u
    allowed = torch.tensor([4 * sum(float(terms[k]) for k in range(d) if S >> k & 1) for S in range(2**d)],
                           dtype=torch.float64)
    g = s / c  # (64, N): must be the same allowed value in every column of a row
    assert torch.allclose(g, g[:, :1].expand_as(g))
    assert torch.isclose(g[:, :1], allowed).any(1).all()
    assert len(torch.unique(g[:, 0])) > 2  # several masks were drawn


@pytest.mark.parametrize("accum", ["stack", "sum"])
@pytest.mark.parametrize("norm", ["symmetric", "left"])
def test_gcmc_equals_dense_reference(accum, norm):
    torch.manual_seed(0)
    A, etype = _bipartite()
    m = B.GCMC(0, 4, num_nodes=9, num_ratings=3, hidden_dim=6, dropout=0.7, accum=accum,
               norm=norm).double().eval()
    A_n = m.preprocess(A, etype)
    D = A.to_dense()
    deg = D.sum(1)  # over all ratings
    norm = D / torch.sqrt(deg[:, None] * deg[None, :]) if norm == "symmetric" else D / deg[:, None]
    rows, cols = A.row, A.col
    per_rating = []
    W = m.W if accum == "stack" else torch.cumsum(m.W, 0)
    for r in range(3):
        mask = torch.zeros(9, 9, dtype=torch.float64)
        sel = etype == r
        mask[rows[sel], cols[sel]] = 1.0
        per_rating.append((norm * mask) @ W[r])
    H = torch.cat(per_rating, 1) if accum == "stack" else sum(per_rating)
    ref = torch.relu(H) @ m.dense.weight.T
    assert torch.allclose(m(A_n, None, edge_type=etype), ref)


def test_gcmc_dropout_drops_whole_node_rows_in_training():
    torch.manual_seed(0)
    A, etype = _bipartite()
    m = B.GCMC(0, 4, num_nodes=9, num_ratings=3, hidden_dim=6, dropout=0.5).double().train()
    A_n = m.preprocess(A, etype)
    m_eval = B.GCMC(0, 4, num_nodes=9, num_ratings=3, hidden_dim=6, dropout=0.5).double().eval()
    m_eval.load_state_dict(m.state_dict())
    m_eval.dense = torch.nn.Identity()
    torch.manual_seed(1)
    out = m(A_n, None, edge_type=etype)
    # reference: the same random stream, consumed in the same order (node mask, then feature dropout)
    torch.manual_seed(1)
    keep = (torch.rand(9, 1) >= 0.5).double()
    assert 0 < keep.sum() < 9  # some node rows dropped, some kept
    m_eval.W.data = m.W.data * keep / 0.5
    H = m_eval(A_n, None, edge_type=etype)  # relu(concat_r A_r W_r) with the dropped rows
    ref = torch.nn.functional.dropout(H, 0.5, True) @ m.dense.weight.T
    assert torch.allclose(out, ref)
    with pytest.raises(ValueError, match="edge_type"):
        m(A, None)
    # a class >= num_ratings or a short edge_type used to drop those edges silently
    for bad in (torch.where(etype == 2, 3, etype), etype[:-1], etype.float()):
        with pytest.raises(ValueError, match="GCMC: expected"):
            m(A_n, None, edge_type=bad)
    with pytest.raises(ValueError, match="divisible"):
        B.GCMC(0, 4, num_nodes=9, num_ratings=3, hidden_dim=7)
    with pytest.raises(ValueError, match="GCMC norm: expected 'symmetric' or 'left', got 'right'"):
        B.GCMC(0, 4, num_nodes=9, num_ratings=3, hidden_dim=6, norm="right")
