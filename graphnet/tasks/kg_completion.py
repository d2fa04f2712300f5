"""Knowledge-graph completion: filtered, tie-aware ranking of heads AND tails.

Data: A (N_ent, N_ent) with one edge head -> tail per training triple and edge_type (E,) = relation;
edge_splits "train", "val", "test" (M, 3) (head, rel, tail); meta num_entities, num_relations.

Model: entity representations H (N, d) from either a plain KG embedding (model "distmult", "complex",
"rotate": free entity vectors, scorer included) or a GNN encoder over the training graph (e.g. "rgcn" with
edge_type) followed by the scorer named by ``decoder``. Scores f(h, r, t) come from graphnet.nn.heads.

GNN encoders run on the training graph plus inverse edges (relation r + R; ``add_inverse``), as R-GCN.

Head prediction: candidates e for (?, r, t) are scored explicitly as f(e, r, t) with the same scoring
function (``score_heads``); no inverse relations are added, so the relation count stays R.

Training:
  * "1-N" (ConvE, Dettmers et al. 2018): each batch holds distinct queries (h, r, ?) and (?, r, t) from
    the training triples; BCE over ALL entities against the multi-hot set of true training answers,
    with label smoothing y <- (1 - eps) y + eps / N.
  * "negative": each training triple with ``num_neg`` uniformly sampled corrupted heads or tails (coin flip
    per triple, from the task generator); loss = softplus(-f_pos) + sum_j w_j softplus(f_neg_j), w uniform
    (= BCE) or self-adversarial softmax(alpha f_neg) with ``adversarial_temperature`` alpha > 0 (RotatE).
Evaluation: for every test triple, rank the true tail among all entities for (h, r, ?) and the true head
for (?, r, t), filtering every other known true triple (train + val + test), realistic tie policy by
default; batches of ``eval_batch_size`` queries keep memory O(batch * N). Metrics over the 2M ranks:
mrr, mr, hits@1, hits@3, hits@10.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import distributed, metrics
from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph, adjacency
from graphnet.nn.heads import TRIPLE_SCORERS, make_triple_scorer
from graphnet.tasks import NodeEncoder, check_id_columns, encoder_names, make_encoder, require_split

KGE_MODELS = ("distmult", "complex", "rotate")


def with_inverse_edges(graph: Graph, num_relations: int) -> Graph:
    """Graph plus every edge reversed (tail -> head) with relation id r + num_relations (same weight)."""
    A = graph.A
    src = torch.cat([A.col, A.row])
    dst = torch.cat([A.row, A.col])
    A2 = adjacency(src, dst, A.shape[0], torch.cat([A.val, A.val]))
    return graph.replace(A=A2, edge_type=torch.cat([graph.edge_type, graph.edge_type + num_relations]),
                         edge_feat=None)


class KGModel(nn.Module):
    """Entity encoder + triple scorer. The scorer is the encoder's own for plain KG embeddings."""

    def __init__(self, encoder: NodeEncoder, decoder: nn.Module | None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    @property
    def scorer(self) -> nn.Module:
        return self.decoder if self.decoder is not None else self.encoder.model.scorer

    def forward(self, graph: Graph) -> Tensor:
        return self.encoder(graph)

    def score_candidates(self, H: Tensor, ent: Tensor, rel: Tensor, predict_head: bool) -> Tensor:
        """(B, N) scores: f(ent, rel, e) for every e (tails), or f(e, rel, ent) (heads)."""
        if predict_head:
            return self.scorer.score_heads(rel, H[ent], H)
        return self.scorer.score_tails(H[ent], rel, H)


class KGCompletion:
    """KG completion with 1-N or negative-sampling training and filtered head+tail ranking.

    Args:
        decoder: scorer on top of a GNN encoder: "distmult" | "complex" | "rotate" (ignored by the plain
            KG embeddings, which use their own).
        emb_dim: width d of entity representations (real numbers; complex models use d/2 complex
            components) and of the input embedding of GNN encoders.
        training: "1-N" (default) or "negative".
        label_smoothing: eps for 1-N training (0.1, ConvE).
        num_neg: negatives per triple for "negative" training.
        adversarial_temperature: alpha of self-adversarial negative weights (0 = uniform).
        gamma: RotatE margin of the ``decoder`` (the plain "rotate" model takes its own model.gamma).
        batch_size: queries (1-N) or triples (negative) per step.
        eval_batch_size: test queries ranked at once.
        ties: rank tie policy, "realistic" (default) | "optimistic" | "pessimistic".
        add_inverse: for GNN encoders, add every training edge reversed with relation r + R to the
            message-passing graph (R-GCN, Schlichtkrull et al. 2018), so information flows both ways;
            rgcn then gets num_relations = 2R. Scoring always uses the R original relations.
    Metrics: {"mrr", "mr", "hits@1", "hits@3", "hits@10"} over head and tail ranks.
    """

    name = "kg"
    higher_is_better = True

    def __init__(self, decoder: str = "distmult", emb_dim: int = 200, training: str = "1-N",
                 label_smoothing: float = 0.1, num_neg: int = 64, adversarial_temperature: float = 0.0,
                 gamma: float = 12.0, batch_size: int = 128, eval_batch_size: int = 256,
                 ties: str = "realistic", add_inverse: bool = True):
        if decoder not in TRIPLE_SCORERS:
            raise ConfigError(f"task.decoder: expected one of {sorted(TRIPLE_SCORERS)} for task 'kg', "
                              f"got {decoder!r}")
        if training not in ("1-N", "negative"):
            raise ConfigError(f"task.training: expected '1-N' or 'negative', got {training!r}")
        if ties not in metrics.TIE_POLICIES:
            raise ConfigError(f"task.ties: expected one of {metrics.TIE_POLICIES}, got {ties!r}")
        self.decoder, self.emb_dim, self.training = decoder, emb_dim, training
        self.label_smoothing, self.num_neg, self.adv = label_smoothing, num_neg, adversarial_temperature
        self.gamma, self.batch_size, self.eval_batch_size = gamma, batch_size, eval_batch_size
        self.ties = ties
        self.add_inverse = add_inverse
        self.monitor = "val_mrr"
        self.num_entities = self.num_relations = 0

    def valid_models(self) -> list[str]:
        return encoder_names() + list(KGE_MODELS)

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        train = require_split("kg", graph.edge_splits, "train", "triples", graph)
        n = int(graph.meta.get("num_entities", graph.num_nodes))
        if n != graph.num_nodes:
            raise GraphError(f"task 'kg': meta['num_entities']={n} but A has {graph.num_nodes} nodes")
        r = int(graph.meta.get("num_relations", int(train[:, 1].max()) + 1))
        check_id_columns("kg", graph.edge_splits, 3,
                         (("head entity", n), ("relation", r), ("tail entity", n)))
        self.num_entities, self.num_relations = n, r
        known = torch.cat([t for k, t in graph.edge_splits.items() if t.dim() == 2 and t.shape[1] == 3])
        # Filter indexes over ALL known triples (for evaluation), targets over training triples (for 1-N).
        self._filter_tail = metrics.build_answer_index(known[:, 0] * r + known[:, 1], known[:, 2])
        self._filter_head = metrics.build_answer_index(known[:, 2] * r + known[:, 1], known[:, 0])
        self._train_tail = metrics.build_answer_index(train[:, 0] * r + train[:, 1], train[:, 2])
        self._train_head = metrics.build_answer_index(train[:, 2] * r + train[:, 1], train[:, 0])
        tail_q = torch.unique(train[:, :2], dim=0)  # (h, r)
        head_q = torch.unique(train[:, [2, 1]], dim=0)  # (t, r)
        self._queries = torch.cat([  # (Q, 3): entity, relation, predict_head
            torch.cat([tail_q, torch.zeros(len(tail_q), 1, dtype=torch.long)], 1),
            torch.cat([head_q, torch.ones(len(head_q), 1, dtype=torch.long)], 1)])
        kge = model_name in KGE_MODELS
        # The loader's data.add_inverse may already have added the tail -> head edges (types R..2R-1):
        # adding them again would double every edge (and give R-GCN types beyond its 2R).
        inverse = bool(graph.meta.get("add_inverse"))
        if not kge and self.add_inverse and graph.edge_type is not None and not inverse:
            graph, inverse = with_inverse_edges(graph, r), True
        num_rel_graph = 2 * r if inverse else r
        extra: dict[str, Any] = {"num_relations": r} if kge else \
            {"num_relations": num_rel_graph} if model_name == "rgcn" else {}
        encoder, graph = make_encoder("kg", graph, model_name, model_kwargs, self.emb_dim, self.emb_dim,
                                      self.valid_models(), seed, extra)
        decoder = None
        if not kge:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                decoder = make_triple_scorer(self.decoder, r, self.emb_dim, self.gamma)
        return KGModel(encoder, decoder), graph

    # ------------------------------------------------------------------------------ training
    def batches(self, model: nn.Module, graph: Graph, epoch: int, generator: torch.Generator) -> list[Any]:
        # each process takes its shard of the queries / triples (all of them in one process)
        if self.training == "1-N":
            idx = distributed.shard(torch.arange(self._queries.shape[0]), generator)
            perm = idx[torch.randperm(idx.numel(), generator=generator)]
            return [self._queries[c] for c in perm.split(self.batch_size)]
        train = graph.edge_splits["train"].cpu()
        idx = distributed.shard(torch.arange(train.shape[0]), generator)
        perm = idx[torch.randperm(idx.numel(), generator=generator)]
        out = []
        for c in perm.split(self.batch_size):
            neg = torch.randint(0, self.num_entities, (c.numel(), self.num_neg), generator=generator)
            head = torch.rand(c.numel(), generator=generator) < 0.5  # corrupt the head (else the tail)
            out.append((train[c], neg, head))
        return out

    def loss(self, model: nn.Module, graph: Graph, batch: Any) -> Tensor:
        H = model(graph)
        if self.training == "1-N":
            return self._loss_1n(model, H, batch.to(H.device))
        triples, neg, head = (t.to(H.device) for t in batch)
        h, r, t = triples.unbind(1)
        pos = model.scorer(H[h], r, H[t])  # (B,)
        heads = torch.where(head[:, None], neg, h[:, None])  # (B, K)
        tails = torch.where(head[:, None], t[:, None], neg)
        s_neg = model.scorer(H[heads], r[:, None].expand_as(neg), H[tails])  # (B, K)
        if self.adv > 0:
            w = torch.softmax(self.adv * s_neg, 1).detach()
        else:
            w = torch.full_like(s_neg, 1.0 / s_neg.shape[1])
        return (F.softplus(-pos) + (w * F.softplus(s_neg)).sum(1)).mean()

    def _loss_1n(self, model: nn.Module, H: Tensor, queries: Tensor) -> Tensor:
        ent, rel, head = queries.unbind(1)
        total, n = H.new_zeros(()), self.num_entities
        for flag, index in ((0, self._train_tail), (1, self._train_head)):
            sel = (head == flag).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            scores = model.score_candidates(H, ent[sel], rel[sel], predict_head=bool(flag))  # (b, N)
            target = metrics.answer_mask(index, ent[sel] * self.num_relations + rel[sel], n).to(H.dtype)
            target = (1 - self.label_smoothing) * target + self.label_smoothing / n
            total = total + F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / n
        return total / queries.shape[0]

    # ------------------------------------------------------------------------------ evaluation
    def ranks(self, model: nn.Module, graph: Graph, triples: Tensor) -> tuple[Tensor, Tensor]:
        """Filtered tie-aware ranks (tail ranks (M,), head ranks (M,)) of the given (M, 3) triples."""
        H = model(graph)
        n, r_count = self.num_entities, self.num_relations
        tail_ranks, head_ranks = [], []
        for chunk in triples.split(self.eval_batch_size):
            h, r, t = chunk.to(H.device).unbind(1)
            s = model.score_candidates(H, h, r, predict_head=False)  # (B, N)
            tail_ranks.append(metrics.rank_of_target(
                s, t, metrics.filter_mask(self._filter_tail, h * r_count + r, t, n), self.ties))
            s = model.score_candidates(H, t, r, predict_head=True)
            head_ranks.append(metrics.rank_of_target(
                s, h, metrics.filter_mask(self._filter_head, t * r_count + r, h, n), self.ties))
        empty = torch.zeros(0, dtype=torch.float64)
        cat = lambda ranks: torch.cat(ranks) if ranks else empty  # noqa: E731
        return cat(tail_ranks), cat(head_ranks)

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.edge_splits:
            return {}
        triples = graph.edge_splits[split]
        # each process ranks its share of the triples (all of them in one process); every rank then
        # averages the same gathered ranks
        tail, head = self.ranks(model, graph, triples[distributed.eval_slice(triples.shape[0])])
        ranks = torch.cat([distributed.all_gather_cat(tail), distributed.all_gather_cat(head)])
        out = {"mrr": metrics.mrr(ranks), "mr": metrics.mean_rank(ranks)}
        for k in (1, 3, 10):
            out[f"hits@{k}"] = metrics.hits_at(ranks, k)
        return out
