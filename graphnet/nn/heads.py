"""Decoders: score node pairs (links), triples (KG) or user-item pairs (rating classes) from node vectors.

Pair scorers map ``(h_src, h_dst)`` (B, d) to logits (B,). Triple scorers own the relation parameters and
offer three views of one scoring function f(h, r, t):
  ``forward(h, r, t)`` (B,), ``score_tails(h, r, E)`` (B, N) = f(h, r, e) for every candidate row e of E,
  and ``score_heads(r, t, E)`` (B, N) = f(e, r, t). Head prediction therefore scores candidate heads
  explicitly with the same function (no inverse relations are added).
Input dropout (``dropout``, ConvE's ``input_drop``, Dettmers et al. 2018): in training mode the scorers drop
entries of the query's entity vector and relation vector, never the candidate matrix E (it plays the part of
an output layer, as ``torch.mm(e1 * rel, emb_e.weight.T)`` in the ConvE code). ``forward(h, r, t)`` has no
candidate matrix and drops h, the relation and t.
Complex-valued scorers (ComplEx, RotatE) read a real vector of even width d as [real half | imaginary half].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ---------------------------------------------------------------------------------- pair scorers
class DotProduct(nn.Module):
    """Inner-product decoder (GAE, Kipf & Welling 2016): s(u, v) = <h_u, h_v>. No parameters.

    Shapes: h_src (B, d), h_dst (B, d) -> (B,).
    """

    def forward(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        return (h_src * h_dst).sum(-1)


class MLPScorer(nn.Module):
    """MLP on the Hadamard product (OGB's LinkPredictor): s(u, v) = MLP(h_u * h_v), ReLU between layers.

    Args:
        dim: width d of the node representations.
        hidden_dim: width of the hidden layers.
        num_layers: number of linear layers (>= 1; the last maps to one logit).
        dropout: dropout before every linear layer but the first.
    Shapes: h_src (B, d), h_dst (B, d) -> (B,).
    """

    def __init__(self, dim: int, hidden_dim: int = 256, num_layers: int = 3, dropout: float = 0.0):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLPScorer: expected num_layers >= 1, got {num_layers}")
        dims = [dim] + [hidden_dim] * (num_layers - 1) + [1]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.dropout = dropout

    def reset_parameters(self) -> None:
        for lin in self.lins:
            lin.reset_parameters()

    def forward(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        x = h_src * h_dst  # (B, d)
        for i, lin in enumerate(self.lins):
            if i > 0:
                x = nn.functional.dropout(torch.relu(x), self.dropout, self.training)
            x = lin(x)
        return x.squeeze(-1)


PAIR_SCORERS = {"dot": DotProduct, "mlp": MLPScorer}


# ---------------------------------------------------------------------------------- triple scorers
def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    d = x.shape[-1] // 2
    return x[..., :d], x[..., d:]


def _check_even(name: str, dim: int) -> None:
    if dim % 2:
        raise ValueError(f"{name}: expected an even dim (real | imaginary halves), got {dim}")


class DistMult(nn.Module):
    """DistMult (Yang et al. 2015, arXiv:1412.6575): f(h, r, t) = sum_k h_k w_rk t_k (symmetric in h, t).

    Args:
        num_relations: R; dim: d, width of entity representations.
        dropout: input dropout on the query entity and relation vectors (module docstring).
    Shapes: h, t (B, d), r (B,) long, E (N, d); forward -> (B,), score_tails/score_heads -> (B, N).
    """

    def __init__(self, num_relations: int, dim: int, dropout: float = 0.0):
        super().__init__()
        self.rel = nn.Parameter(torch.empty(num_relations, dim))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.rel)

    def extra_repr(self) -> str:
        return f"num_relations={self.rel.shape[0]}, dim={self.rel.shape[1]}, dropout={self.dropout}"

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training)

    def _query(self, e: Tensor, r: Tensor) -> Tensor:
        """drop(e) * drop(w_r): (B, d)."""
        return self._drop(e) * self._drop(self.rel[r])

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (self._query(h, r) * self._drop(t)).sum(-1)

    def score_tails(self, h: Tensor, r: Tensor, E: Tensor) -> Tensor:
        return self._query(h, r) @ E.T

    def score_heads(self, r: Tensor, t: Tensor, E: Tensor) -> Tensor:
        return self._query(t, r) @ E.T  # symmetric: f(e, r, t) = <t * w_r, e>


class ComplEx(nn.Module):
    """ComplEx (Trouillon et al. 2016, arXiv:1606.06357): f(h, r, t) = Re(sum_k h_k w_rk conj(t_k)).

    Entities and relations are complex vectors of d/2 components stored as [real | imaginary].

    Args:
        num_relations: R; dim: d (even).
        dropout: input dropout on the query entity and relation vectors (module docstring).
    Shapes: h, t (B, d), r (B,) long, E (N, d); forward -> (B,), score_tails/score_heads -> (B, N).
    """

    def __init__(self, num_relations: int, dim: int, dropout: float = 0.0):
        super().__init__()
        _check_even("ComplEx", dim)
        self.rel = nn.Parameter(torch.empty(num_relations, dim))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.rel)

    def extra_repr(self) -> str:
        return f"num_relations={self.rel.shape[0]}, dim={self.rel.shape[1]}, dropout={self.dropout}"

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training)

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (self._hr(h, r) * self._drop(t)).sum(-1)

    def _hr(self, h: Tensor, r: Tensor) -> Tensor:
        """drop(h) * drop(w_r) as [re | im] (B, d); then f = <h w_r, [t_re | t_im]> = Re(h w_r conj(t))."""
        (h_re, h_im), (r_re, r_im) = _halves(self._drop(h)), _halves(self._drop(self.rel[r]))
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], -1)

    def score_tails(self, h: Tensor, r: Tensor, E: Tensor) -> Tensor:
        return self._hr(h, r) @ E.T

    def score_heads(self, r: Tensor, t: Tensor, E: Tensor) -> Tensor:
        # Re(e * w) with w = w_r conj(t): Re(e w) = e_re w_re - e_im w_im.
        (t_re, t_im), (r_re, r_im) = _halves(self._drop(t)), _halves(self._drop(self.rel[r]))
        w = torch.cat([r_re * t_re + r_im * t_im, -(r_im * t_re - r_re * t_im)], -1)  # [w_re | -w_im]
        return w @ E.T


class RotatE(nn.Module):
    """RotatE (Sun et al. 2019, arXiv:1902.10197): f(h, r, t) = gamma - sum_k |h_k e^{i theta_rk} - t_k|.

    The distance is the sum of complex moduli (an L1 norm over complex components), as the reference code.
    Candidate scoring is chunked over entities so memory stays O(B * chunk * d).

    Args:
        num_relations: R; dim: d (even), entity width [re | im]; gamma: margin added to the negated distance.
        chunk_elements: max elements of the (B, chunk, d/2) distance buffer when scoring all candidates.
        dropout: input dropout on the query entity vector (and on t in ``forward``); the relation is a
            rotation angle and is never dropped.
    Shapes: h, t (B, d), r (B,) long, E (N, d); forward -> (B,), score_tails/score_heads -> (B, N).
    """

    def __init__(self, num_relations: int, dim: int, gamma: float = 12.0, chunk_elements: int = 2**24,
                 dropout: float = 0.0):
        super().__init__()
        _check_even("RotatE", dim)
        self.phase = nn.Parameter(torch.empty(num_relations, dim // 2))
        self.gamma = gamma
        self.chunk_elements = chunk_elements
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.phase, -math.pi, math.pi)

    def extra_repr(self) -> str:
        return (f"num_relations={self.phase.shape[0]}, dim={2 * self.phase.shape[1]}, gamma={self.gamma}, "
                f"dropout={self.dropout}")

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, self.training)

    def _rotate(self, x: Tensor, r: Tensor, inverse: bool = False) -> Tensor:
        """drop(x) * e^{+-i theta_r} as [re | im]."""
        (x_re, x_im), theta = _halves(self._drop(x)), self.phase[r]
        c, s = torch.cos(theta), torch.sin(theta) * (-1 if inverse else 1)
        return torch.cat([x_re * c - x_im * s, x_re * s + x_im * c], -1)

    def _dist(self, q: Tensor, E: Tensor) -> Tensor:
        """sum_k |q_k - e_k| for every (query, candidate): (B, d), (N, d) -> (B, N), chunked over N."""
        (q_re, q_im), (e_re, e_im) = _halves(q), _halves(E)
        step = max(1, self.chunk_elements // max(1, q.shape[0] * q_re.shape[1]))
        out = []
        for s in range(0, E.shape[0], step):
            d_re = q_re[:, None, :] - e_re[None, s:s + step]  # (B, chunk, d/2)
            d_im = q_im[:, None, :] - e_im[None, s:s + step]
            out.append(torch.sqrt(d_re**2 + d_im**2 + 1e-12).sum(-1))  # eps: finite grad at 0
        return torch.cat(out, 1) if out else q.new_zeros(q.shape[0], 0)

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        (d_re, d_im) = _halves(self._rotate(h, r) - self._drop(t))
        return self.gamma - torch.sqrt(d_re**2 + d_im**2 + 1e-12).sum(-1)

    def score_tails(self, h: Tensor, r: Tensor, E: Tensor) -> Tensor:
        return self.gamma - self._dist(self._rotate(h, r), E)

    def score_heads(self, r: Tensor, t: Tensor, E: Tensor) -> Tensor:
        # |e r - t| = |e - t conj(r)| because |r| = 1.
        return self.gamma - self._dist(self._rotate(t, r, inverse=True), E)


TRIPLE_SCORERS = {"distmult": DistMult, "complex": ComplEx, "rotate": RotatE}


def make_triple_scorer(name: str, num_relations: int, dim: int, gamma: float = 12.0,
                       dropout: float = 0.0) -> nn.Module:
    """Build a triple scorer by name ("distmult", "complex", "rotate"); ``gamma`` is used by RotatE only,
    ``dropout`` is the scorers' input dropout (module docstring)."""
    if name not in TRIPLE_SCORERS:
        raise ValueError(f"triple scorer: expected one of {sorted(TRIPLE_SCORERS)}, got {name!r}")
    if name == "rotate":
        return RotatE(num_relations, dim, gamma, dropout=dropout)
    return TRIPLE_SCORERS[name](num_relations, dim, dropout=dropout)


# ---------------------------------------------------------------------------------- rating decoder
class BilinearDecoder(nn.Module):
    """GC-MC bilinear mixture decoder (van den Berg et al. 2017, arXiv:1706.02263): a logit per rating class.

    logit_c(u, v) = sum_b a_{bc} h_u^T P_b h_v, with ``num_basis`` shared matrices P_b (orthogonal init)
    and class coefficients a (num_basis, C). p(rating = c) = softmax_c(logit); the expected rating is
    sum_c p_c value_c (computed by the task, which knows the rating values).

    Shapes: h_u (B, d), h_v (B, d) -> (B, C).
    """

    def __init__(self, dim: int, num_classes: int, num_basis: int = 2):
        super().__init__()
        self.P = nn.Parameter(torch.empty(num_basis, dim, dim))
        self.coef = nn.Parameter(torch.empty(num_basis, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for b in range(self.P.shape[0]):
            nn.init.orthogonal_(self.P.data[b])
        bound = math.sqrt(6.0 / sum(self.coef.shape))  # GC-MC: Glorot-uniform basis coefficients
        nn.init.uniform_(self.coef, -bound, bound)

    def extra_repr(self) -> str:
        return f"dim={self.P.shape[1]}, num_classes={self.coef.shape[1]}, num_basis={self.P.shape[0]}"

    def forward(self, h_u: Tensor, h_v: Tensor) -> Tensor:
        s = torch.einsum("bd,kde,be->bk", h_u, self.P, h_v)  # (B, num_basis)
        return s @ self.coef  # (B, C)
