"""graphnet.nn.heads: decoders against dense/complex-number references, float64."""

from __future__ import annotations

import pytest
import torch

from graphnet.nn import heads


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _complex(x):
    d = x.shape[-1] // 2
    return torch.complex(x[..., :d], x[..., d:])


def test_dot_product():
    h, t = _rand(5, 4), _rand(5, 4, seed=1)
    assert torch.allclose(heads.DotProduct()(h, t), torch.einsum("bd,bd->b", h, t))


def test_mlp_scorer_matches_manual_layers_and_is_symmetric():
    torch.manual_seed(0)
    m = heads.MLPScorer(4, hidden_dim=8, num_layers=3).double().eval()
    h, t = _rand(6, 4), _rand(6, 4, seed=1)
    x = h * t
    ref = m.lins[2](torch.relu(m.lins[1](torch.relu(m.lins[0](x))))).squeeze(-1)
    assert torch.allclose(m(h, t), ref)
    assert torch.allclose(m(h, t), m(t, h))  # Hadamard input: s(u, v) = s(v, u)
    with pytest.raises(ValueError, match="num_layers"):
        heads.MLPScorer(4, num_layers=0)


def _reference(name: str, scorer, h, r, t):
    if name == "distmult":
        return (h * scorer.rel[r] * t).sum(-1)
    if name == "complex":
        return (_complex(h) * _complex(scorer.rel[r]) * _complex(t).conj()).sum(-1).real
    rot = torch.polar(torch.ones_like(scorer.phase[r]), scorer.phase[r])  # e^{i theta}
    return scorer.gamma - (_complex(h) * rot - _complex(t)).abs().sum(-1)


@pytest.mark.parametrize("name", ["distmult", "complex", "rotate"])
def test_triple_scorers_match_reference_and_all_candidate_views(name):
    torch.manual_seed(0)
    N, R, d, B = 7, 3, 6, 5
    scorer = heads.make_triple_scorer(name, R, d, gamma=4.0).double()
    E = _rand(N, d)
    h_id, t_id = torch.tensor([0, 1, 2, 6, 3]), torch.tensor([4, 4, 0, 5, 3])
    r = torch.tensor([0, 2, 1, 1, 0])
    ref = _reference(name, scorer, E[h_id], r, E[t_id])
    assert torch.allclose(scorer(E[h_id], r, E[t_id]), ref)
    tails = scorer.score_tails(E[h_id], r, E)  # (B, N)
    heads_ = scorer.score_heads(r, E[t_id], E)
    assert tails.shape == heads_.shape == (B, N)
    for e in range(N):
        assert torch.allclose(tails[:, e], _reference(name, scorer, E[h_id], r, E[e].expand(B, d)))
        assert torch.allclose(heads_[:, e], _reference(name, scorer, E[e].expand(B, d), r, E[t_id]))


def test_rotate_chunked_candidates_equal_unchunked():
    torch.manual_seed(0)
    big = heads.RotatE(2, 8).double()
    small = heads.RotatE(2, 8, chunk_elements=5).double()  # one candidate per chunk
    small.load_state_dict(big.state_dict())
    E, r = _rand(9, 8), torch.tensor([0, 1, 1])
    assert torch.allclose(big.score_tails(E[:3], r, E), small.score_tails(E[:3], r, E))
    assert torch.allclose(big.score_heads(r, E[:3], E), small.score_heads(r, E[:3], E))


def test_complex_scorers_need_even_width():
    with pytest.raises(ValueError, match="even"):
        heads.ComplEx(2, 5)
    with pytest.raises(ValueError, match="expected one of"):
        heads.make_triple_scorer("transe", 2, 4)


def test_bilinear_decoder_matches_basis_sum():
    torch.manual_seed(0)
    dec = heads.BilinearDecoder(4, num_classes=5, num_basis=2).double()
    u, v = _rand(3, 4), _rand(3, 4, seed=1)
    bilinear = [(u @ dec.P[b] * v).sum(1) for b in range(2)]  # u^T P_b v, (3,)
    ref = torch.stack([sum(dec.coef[b, c] * bilinear[b] for b in range(2)) for c in range(5)], 1)
    assert torch.allclose(dec(u, v), ref)
    P = dec.P.detach()
    assert torch.allclose(P[0] @ P[0].T, torch.eye(4, dtype=torch.float64), atol=1e-6)  # orthogonal init
