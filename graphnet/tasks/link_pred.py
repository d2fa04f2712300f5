"""Link prediction: a node encoder + a pair decoder trained with BCE against uniformly sampled negatives.

Data (graphnet.data conventions): A holds the *training* edges only (the message-passing graph);
edge_splits "train", "val", "test" (M, 2) positive (src, dst) pairs and "val_neg", "test_neg" negatives,
either shared (M', 2) or per query (M, K, 2) (each positive ranked against its own K negatives).
Without edge_splits, ``setup`` calls graphnet.data.splits.link_split (seeded, leak-free).

Protocol:
  * Training: every epoch, each batch of training positives gets ``num_neg`` fresh uniform negatives per
    positive, drawn from the task generator; pairs that are known training positives (either direction
    for undirected data, only the stored one for directed data) or self-loops are redrawn (up to 5 rounds,
    the last draw kept as it is; val/test edges are never consulted, which would leak them).
    Loss = mean softplus(-s_pos) + mean softplus(s_neg) (BCE).
  * Evaluation with shared negatives: roc_auc, ap (all positives vs all negatives) and OGB-style Hits@K
    for K in ``hits_k`` (a positive counts if it scores above the K-th best negative).
    With per-query negatives: mrr, hits@1/3/10 on realistic tie-aware ranks (OGB citation2 style).
  * OGB protocol: if ``graph.meta["evaluator"]`` names an OGB link dataset (e.g. "ogbl-ddi"), its official
    ``ogb.linkproppred.Evaluator`` metric (hits@20 for ddi, mrr for citation2) is reported under its own
    key and becomes the monitor ("val_hits@20").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import distributed, metrics
from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph
from graphnet.nn.heads import PAIR_SCORERS, MLPScorer
from graphnet.sampling import EdgeMiniBatch
from graphnet.tasks import (
    NodeEncoder,
    check_batch_size,
    check_id_columns,
    encoder_names,
    isin_sorted,
    make_encoder,
    make_sampler,
    require_split,
)

# The official metric of each OGB link dataset, under graphnet's key (OGB's Evaluator calls roc_auc "rocauc").
OGB_LINK_METRICS = {"ogbl-ppa": "hits@100", "ogbl-collab": "hits@50", "ogbl-ddi": "hits@20",
                    "ogbl-citation2": "mrr", "ogbl-vessel": "roc_auc"}


class LinkModel(nn.Module):
    """Encoder (node representations) + pair decoder. ``score(H, pairs)`` -> (B,) logits."""

    def __init__(self, encoder: NodeEncoder, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, graph: Graph, batch: EdgeMiniBatch | None = None) -> Tensor:
        return self.encoder(graph, batch)

    def score(self, H: Tensor, pairs: Tensor) -> Tensor:
        return self.decoder(H[pairs[..., 0]], H[pairs[..., 1]])


class LinkPrediction:
    """Link prediction with sampled negatives or the OGB protocol.

    Args:
        decoder: "dot" (default) or "mlp" (MLP on h_u * h_v, OGB's LinkPredictor).
        out_dim: width of the node representations.
        emb_dim: width of the learnable input embedding for graphs without X (e.g. ogbl-ddi).
        num_neg: sampled negatives per training positive.
        batch_size: training positives per step (None = all in one step).
        fanouts: per-layer neighbour fanouts (input layer first, -1 = all): each batch's encoder runs on
            blocks sampled around the endpoints of its positive and negative pairs
            (``NeighborSampler.sample_edges``); None (default) = the encoder runs on the full graph.
        exclude: with fanouts, which message-passing edges a batch's positives remove from its blocks:
            "reverse" (u->v and v->u, for undirected graphs; DGL's exclude="reverse_id"), "self" or None.
        infer_batch_size: nodes per step of layer-wise full-neighbour inference of the node representations
            in evaluation; None = one full-graph forward.
        sampler: "graphnet" (default) or "dgl" (dgl.dataloading's NeighborSampler with the same exclusion;
            repeatable only with OMP_NUM_THREADS=1).
        eval_batch_size: pairs scored at once in evaluation.
        hits_k: K values for Hits@K with shared negatives.
        mlp_hidden_dim, mlp_num_layers, mlp_dropout: the "mlp" decoder.
        val_frac, test_frac: held-out fractions when the data has no edge_splits.
    Metrics: roc_auc, ap, hits@K (shared negatives) or mrr, hits@1/3/10 (per-query negatives), plus the
    official OGB metric when meta["evaluator"] is set.
    """

    name = "link"
    higher_is_better = True

    def __init__(self, decoder: str = "dot", out_dim: int = 64, emb_dim: int = 64, num_neg: int = 1,
                 batch_size: int | None = None, eval_batch_size: int = 65536,
                 hits_k: list[int] | tuple = (20, 50, 100),
                 mlp_hidden_dim: int = 256, mlp_num_layers: int = 3, mlp_dropout: float = 0.0,
                 val_frac: float = 0.05, test_frac: float = 0.1, fanouts: list[int] | None = None,
                 exclude: str | None = "reverse", infer_batch_size: int | None = None,
                 sampler: str = "graphnet"):
        if decoder not in PAIR_SCORERS:
            raise ConfigError(f"task.decoder: expected one of {sorted(PAIR_SCORERS)} for task 'link', "
                              f"got {decoder!r}")
        if num_neg < 1:
            raise ConfigError(f"task.num_neg: expected >= 1, got {num_neg}")
        self.decoder, self.out_dim, self.emb_dim, self.num_neg = decoder, out_dim, emb_dim, num_neg
        self.batch_size, self.eval_batch_size, self.hits_k = batch_size, eval_batch_size, list(hits_k)
        self.mlp = dict(hidden_dim=mlp_hidden_dim, num_layers=mlp_num_layers, dropout=mlp_dropout)
        self.val_frac, self.test_frac = val_frac, test_frac
        if exclude not in ("reverse", "self", None):
            raise ConfigError(f"task.exclude: expected 'reverse', 'self' or none, got {exclude!r}")
        check_batch_size("task.infer_batch_size", infer_batch_size)
        self.fanouts, self.exclude, self.infer_batch_size = fanouts, exclude, infer_batch_size
        self.sampler_name = sampler
        self.sampler = None
        self.monitor = "val_roc_auc"
        self.ogb_name: str | None = None
        self._known: Tensor | None = None  # sorted keys src * N + dst of training positives

    def valid_models(self) -> list[str]:
        return encoder_names() + ["mf", "lightgcn"]

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        if "train" not in graph.edge_splits:
            from graphnet.data.splits import link_split

            for key, frac in (("task.val_frac", self.val_frac), ("task.test_frac", self.test_frac)):
                if not frac > 0:  # an empty split would only fail at its first evaluation, with no name
                    raise ConfigError(f"{key}: expected > 0 (the task selects epochs on val and reports "
                                      f"test), got {frac}")
            graph = link_split(graph, val_frac=self.val_frac, test_frac=self.test_frac, seed=seed)
        for split in ("val", "test"):
            if split in graph.edge_splits and len(graph.edge_splits[split]) == 0:
                raise GraphError(f"task 'link': edge split {split!r} is empty; expected positive pairs "
                                 "to evaluate on")
        name = graph.meta.get("evaluator")
        if name is not None:
            if name not in OGB_LINK_METRICS:
                raise ConfigError(f"meta['evaluator']: expected an OGB link dataset "
                                  f"{sorted(OGB_LINK_METRICS)}, got {name!r}")
            self.ogb_name = name
            self.monitor = "val_" + OGB_LINK_METRICS[name]
        n = graph.num_nodes
        check_id_columns("link", graph.edge_splits, None, (("node", n),))
        train = graph.edge_splits["train"]
        # Known positives for negative sampling: training pairs and message-passing edges (A[i, j] is the
        # edge j -> i), in both directions for undirected data only: on directed data the reverse of an edge
        # is a valid negative. Without link_split's flag (OGB's own splits), a symmetric A means undirected.
        undirected = graph.meta.get("undirected")
        if undirected is None:
            from graphnet.data.splits import is_symmetric

            undirected = is_symmetric(graph.A)
        src, dst = torch.cat([train[:, 0], graph.A.col]), torch.cat([train[:, 1], graph.A.row])
        if undirected:
            src, dst = torch.cat([src, dst]), torch.cat([dst, src])
        self._known = torch.unique(src * n + dst)
        encoder, graph = make_encoder("link", graph, model_name, model_kwargs, self.out_dim, self.emb_dim,
                                      self.valid_models(), seed)
        self.sampler = make_sampler("link", encoder, model_name, self.fanouts, self.infer_batch_size,
                                    self.sampler_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            if self.decoder == "mlp":
                decoder = MLPScorer(self.out_dim, **self.mlp)
            else:
                decoder = PAIR_SCORERS[self.decoder]()
        return LinkModel(encoder, decoder), graph

    # ------------------------------------------------------------------------------ training
    def sample_negatives(self, n: int, num: int, generator: torch.Generator, rounds: int = 5) -> Tensor:
        """(num, 2) uniform pairs; those that hit a known training positive or a self-loop are redrawn, up to
        ``rounds`` times, and what the last redraw gives is kept unchecked (approximate, as DGL's and PyG's
        samplers: with edge density d a pair survives as a false negative with probability about
        d^(rounds + 1), e.g. 3e-6 on ogbl-ddi, d = 0.12; only dense toy graphs see a visible share)."""
        pairs = torch.randint(0, n, (num, 2), generator=generator)
        for _ in range(rounds):
            bad = (pairs[:, 0] == pairs[:, 1]) | isin_sorted(pairs[:, 0] * n + pairs[:, 1], self._known)
            k = int(bad.sum())
            if k == 0:
                break
            pairs[bad] = torch.randint(0, n, (k, 2), generator=generator)
        return pairs

    def batches(self, model: nn.Module, graph: Graph, epoch: int,
                generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor] | EdgeMiniBatch]:
        pos = distributed.shard(graph.edge_splits["train"], generator)  # this process's positives
        perm = torch.randperm(pos.shape[0], generator=generator).to(pos.device)
        size = pos.shape[0] if self.batch_size is None else self.batch_size
        for chunk in perm.split(size):  # lazily: one batch's negatives (and blocks) in memory at a time
            neg = self.sample_negatives(graph.num_nodes, chunk.numel() * self.num_neg, generator)
            neg = neg.to(pos.device)
            if self.sampler is None:
                yield pos[chunk], neg
            else:
                yield self.sampler.sample_edges(graph.A, pos[chunk], generator, neg=neg, exclude=self.exclude)

    def loss(self, model: nn.Module, graph: Graph, batch: tuple[Tensor, Tensor] | EdgeMiniBatch) -> Tensor:
        if isinstance(batch, EdgeMiniBatch):
            H = model(graph, batch)  # (num endpoints, out_dim); pos/neg hold local indices into its rows
            pos, neg = batch.pos, batch.neg
        else:
            (pos, neg), H = batch, model(graph)
        return F.softplus(-model.score(H, pos)).mean() + F.softplus(model.score(H, neg)).mean()

    # ------------------------------------------------------------------------------ evaluation
    def _scores(self, model: nn.Module, H: Tensor, pairs: Tensor) -> Tensor:
        flat = pairs.reshape(-1, 2)
        out = [model.score(H, chunk) for chunk in flat.split(self.eval_batch_size)]
        s = torch.cat(out) if out else H.new_zeros(0)
        return s.reshape(pairs.shape[:-1])

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.edge_splits:
            return {}
        pos_pairs = graph.edge_splits[split]
        if split + "_neg" not in graph.edge_splits and split + "_neg_dst" in graph.edge_splits:
            # ogbl-citation2's layout: (M, K) negative targets for the source of each positive pair
            neg_dst = graph.edge_splits[split + "_neg_dst"]
            neg_pairs = torch.stack([pos_pairs[:, :1].expand_as(neg_dst), neg_dst], -1)  # (M, K, 2)
        else:
            neg_pairs = require_split("link", graph.edge_splits, split + "_neg", "negative pairs")
        if self.infer_batch_size is None:
            H = model(graph)
        else:
            H = model.encoder.infer(graph, self.infer_batch_size)

        def scores(pairs: Tensor) -> Tensor:
            # each process scores its share (all of it in one process); the gathered scores are in the
            # split's order, so every rank computes the (non-decomposable) metrics from the same values
            mine = pairs[distributed.eval_slice(pairs.shape[0])]
            return distributed.all_gather_cat(self._scores(model, H, mine).float())

        pos, neg = scores(pos_pairs), scores(neg_pairs)
        labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).to(pos.device)
        out = {"roc_auc": metrics.roc_auc(torch.cat([pos, neg.reshape(-1)]), labels),
               "ap": metrics.average_precision(torch.cat([pos, neg.reshape(-1)]), labels)}
        if neg.dim() == 1:
            for k in self.hits_k:
                out[f"hits@{k}"] = metrics.ogb_hits_at(pos, neg, k)
        else:
            ranks = metrics.rank_of_positive(pos, neg)
            out["mrr"] = metrics.mrr(ranks)
            for k in (1, 3, 10):
                out[f"hits@{k}"] = metrics.hits_at(ranks, k)
        if self.ogb_name is not None:
            out.update(ogb_evaluate(self.ogb_name, pos, neg))
        return out



def ogb_evaluate(name: str, pos: Tensor, neg: Tensor) -> dict[str, float]:
    """The official ogb.linkproppred.Evaluator metric for dataset ``name`` (lazy import: it loads dgl/pyg)."""
    import os

    os.environ.setdefault("OUTDATED_IGNORE", "1")  # ogb checks PyPI for a newer version on import otherwise
    from ogb.linkproppred import Evaluator

    ev = Evaluator(name)
    metric = OGB_LINK_METRICS[name]
    if metric == "mrr":
        res = ev.eval({"y_pred_pos": pos, "y_pred_neg": neg.reshape(pos.numel(), -1)})
        return {"mrr": float(res["mrr_list"].mean())}
    res = ev.eval({"y_pred_pos": pos, "y_pred_neg": neg.reshape(-1)})
    return {metric: float(res["rocauc" if metric == "roc_auc" else metric])}
