"""Top-K recommendation from implicit feedback: BPR training, full-sort evaluation with training items masked.

Data: users 0..U-1, items 0..I-1, A the (U+I, U+I) symmetric bipartite graph of training interactions
(item j is node U+j); edge_splits "train", "test" (, "val") (M, 2) (user, item); meta num_users, num_items.

Model: node representations H (U+I, d) from MF, LightGCN or any GNN encoder (on a learnable input
embedding); score(u, i) = <H[u], H[U+i]>.

Training (LightGCN's protocol): each epoch visits every training interaction (u, i) once in a random order
(task generator) and pairs it with ONE uniformly sampled item j that is not a training item of u (redrawn
up to a few rounds). loss = mean softplus(-(s_ui - s_uj)) + reg_weight * ||[e_u, e_i, e_j]||^2 / (2 B),
with e the layer-0 ("ego") embeddings of the batch (``NodeEncoder.ego``), as LightGCN's code.
Evaluation: for every user with at least one interaction in the split, score ALL items, set the user's
training items (and validation items, when evaluating "test") to -inf, take the top max(ks) and compute
recall@K, ndcg@K, precision@K, hit_rate@K (graphnet.metrics; users with no relevant item are skipped).
Users are processed ``eval_batch_size`` at a time, so memory is O(batch * I).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import metrics
from graphnet.errors import GraphError
from graphnet.graph import Graph, adjacency
from graphnet.tasks import (
    NodeEncoder,
    check_batch_size,
    encoder_names,
    holdout_val,
    isin_sorted,
    make_encoder,
    require_split,
)


class RecModel(nn.Module):
    """Encoder over the user-item graph; users are nodes 0..U-1, items U..U+I-1."""

    def __init__(self, encoder: NodeEncoder, num_users: int):
        super().__init__()
        self.encoder, self.num_users = encoder, num_users

    def forward(self, graph: Graph) -> Tensor:
        return self.encoder(graph)

    def ego(self) -> Tensor:
        return self.encoder.ego()


class Recommendation:
    """BPR training and full-sort top-K evaluation (He et al. 2020 protocol).

    Args:
        ks: cut-offs K for the metrics (default [20]); the monitor is ``val_recall@{ks[0]}``.
        emb_dim: embedding width d (64 in LightGCN), also the encoder's output width.
        batch_size: (user, pos, neg) triples per step (2048 in LightGCN's code).
        reg_weight: L2 weight on the batch's ego embeddings (1e-4 in LightGCN).
        eval_batch_size: users scored at once in evaluation.
        val_frac: if > 0 and the data has no "val" split, hold out this seeded fraction of the training
            interactions as "val" (removed from A). 0 (default) keeps LightGCN's train/test protocol.
    Metrics: {"recall@K", "ndcg@K", "precision@K", "hit_rate@K"} for each K.
    """

    name = "rec"
    higher_is_better = True

    def __init__(self, ks: list[int] | tuple = (20,), emb_dim: int = 64, batch_size: int = 2048,
                 reg_weight: float = 1e-4, eval_batch_size: int = 1024, val_frac: float = 0.0):
        check_batch_size("task.batch_size", batch_size, allow_none=False)
        check_batch_size("task.eval_batch_size", eval_batch_size, allow_none=False)
        self.ks = [int(k) for k in ks]
        self.val_frac = val_frac
        self.emb_dim, self.batch_size, self.reg_weight = emb_dim, batch_size, reg_weight
        self.eval_batch_size = eval_batch_size
        self.monitor = f"val_recall@{self.ks[0]}"
        self.num_users = self.num_items = 0

    def valid_models(self) -> list[str]:
        return encoder_names() + ["mf", "lightgcn"]

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        require_split("rec", graph.edge_splits, "train", "interactions")
        for key in ("num_users", "num_items"):
            if key not in graph.meta:
                raise GraphError(f"task 'rec': expected meta[{key!r}], got meta keys {sorted(graph.meta)}")
        u, i = int(graph.meta["num_users"]), int(graph.meta["num_items"])
        if graph.num_nodes != u + i:
            raise GraphError(f"task 'rec': expected A with num_users + num_items = {u + i} nodes, "
                             f"got {graph.num_nodes}")
        if self.val_frac > 0 and "val" not in graph.edge_splits:
            graph = holdout_val(graph, self.val_frac, seed)
            tr = graph.edge_splits["train"]
            graph = graph.replace(A=adjacency(torch.cat([tr[:, 0], tr[:, 1] + u]),
                                              torch.cat([tr[:, 1] + u, tr[:, 0]]), u + i),
                                  edge_type=None, edge_feat=None)
        train = graph.edge_splits["train"]
        self.num_users, self.num_items = u, i
        self._index = {k: metrics.build_answer_index(v[:, 0], v[:, 1])
                       for k, v in graph.edge_splits.items() if v.dim() == 2 and v.shape[1] == 2}
        self._train_keys = torch.unique(train[:, 0] * i + train[:, 1])
        encoder, graph = make_encoder("rec", graph, model_name, model_kwargs, self.emb_dim, self.emb_dim,
                                      self.valid_models(), seed)
        return RecModel(encoder, u), graph

    # ------------------------------------------------------------------------------ training
    def sample_items(self, users: Tensor, generator: torch.Generator, rounds: int = 10) -> Tensor:
        """One uniform item per user that is not among the user's training items (redrawn while it is)."""
        items = torch.randint(0, self.num_items, (users.numel(),), generator=generator)
        for _ in range(rounds):
            bad = isin_sorted(users * self.num_items + items, self._train_keys)
            k = int(bad.sum())
            if k == 0:
                break
            items[bad] = torch.randint(0, self.num_items, (k,), generator=generator)
        return items

    def batches(self, model: nn.Module, graph: Graph, epoch: int, generator: torch.Generator) -> list[Tensor]:
        train = graph.edge_splits["train"].cpu()
        perm = torch.randperm(train.shape[0], generator=generator)
        out = []
        for c in perm.split(self.batch_size):
            users, pos = train[c, 0], train[c, 1]
            out.append(torch.stack([users, pos, self.sample_items(users, generator)], 1))  # (B, 3)
        return out

    def loss(self, model: nn.Module, graph: Graph, batch: Tensor) -> Tensor:
        H = model(graph)
        batch = batch.to(H.device)
        u, i, j = batch[:, 0], batch[:, 1] + self.num_users, batch[:, 2] + self.num_users
        hu = H[u]
        bpr = F.softplus(-((hu * H[i]).sum(1) - (hu * H[j]).sum(1))).mean()
        E = model.ego()
        reg = (E[u].pow(2).sum() + E[i].pow(2).sum() + E[j].pow(2).sum()) / (2 * batch.shape[0])
        return bpr + self.reg_weight * reg

    # ------------------------------------------------------------------------------ evaluation
    def topk(self, model: nn.Module, graph: Graph, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """(users (U',), hits (U', max K) bool, number of relevant items (U',)) for the split's users."""
        H = model(graph)
        n_u, n_i, kmax = self.num_users, self.num_items, max(self.ks)
        users = torch.unique(graph.edge_splits[split][:, 0])
        masked = ["train"] + (["val"] if split == "test" and "val" in self._index else [])
        hits, counts = [], []
        for chunk in users.split(self.eval_batch_size):
            chunk = chunk.to(H.device)
            scores = H[chunk] @ H[n_u:].T  # (B, I)
            for name in masked:
                scores = scores.masked_fill(metrics.answer_mask(self._index[name], chunk, n_i), float("-inf"))
            relevant = metrics.answer_mask(self._index[split], chunk, n_i)
            hits.append(metrics.topk_hits(scores, relevant, kmax))
            counts.append(relevant.sum(1))
        if not hits:
            return users, torch.zeros(0, kmax, dtype=torch.bool), torch.zeros(0, dtype=torch.long)
        return users, torch.cat(hits), torch.cat(counts)

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.edge_splits:
            return {}
        _, hits, counts = self.topk(model, graph, split)
        out = {}
        for k in self.ks:
            out[f"recall@{k}"] = metrics.recall_at_k(hits, counts, k)
            out[f"ndcg@{k}"] = metrics.ndcg_at_k(hits, counts, k)
            out[f"precision@{k}"] = metrics.precision_at_k(hits, counts, k)
            out[f"hit_rate@{k}"] = metrics.hit_rate_at_k(hits, counts, k)
        return out
