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
training items (and validation items, when evaluating "test") to -inf, take the top max(ks) (equal scores:
lower item id first, ``metrics.topk_indices``) and compute recall@K, ndcg@K, precision@K, hit_rate@K
(graphnet.metrics; users with no relevant item are skipped). Users are processed ``eval_batch_size`` at a
time in one reused (batch, I) score buffer; the masked and relevant items are looked up in per-split CSRs
of the (user, item) pairs built once in ``setup``, so no dense (batch, I) mask is built.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import distributed, metrics
from graphnet.errors import GraphError
from graphnet.graph import Graph, adjacency
from graphnet.tasks import (
    NodeEncoder,
    check_batch_size,
    check_id_columns,
    check_val_frac,
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
        check_val_frac(val_frac)
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
        require_split("rec", graph.edge_splits, "train", "interactions", graph)
        for key in ("num_users", "num_items"):
            if key not in graph.meta:
                raise GraphError(f"task 'rec': expected meta[{key!r}], got meta keys {sorted(graph.meta)}")
        u, i = int(graph.meta["num_users"]), int(graph.meta["num_items"])
        if graph.num_nodes != u + i:
            raise GraphError(f"task 'rec': expected A with num_users + num_items = {u + i} nodes, "
                             f"got {graph.num_nodes}")
        check_id_columns("rec", graph.edge_splits, 2, (("user", u), ("item", i)))
        if self.val_frac > 0 and "val" not in graph.edge_splits:
            graph = holdout_val(graph, self.val_frac, seed)
            tr = graph.edge_splits["train"]
            graph = graph.replace(A=adjacency(torch.cat([tr[:, 0], tr[:, 1] + u]),
                                              torch.cat([tr[:, 1] + u, tr[:, 0]]), u + i),
                                  edge_type=None, edge_feat=None)
        self.num_users, self.num_items = u, i
        # per split: sorted unique keys user * I + item (the CSR of the user x item matrix) and the row
        # pointers ptr (U + 1,): user u's items are keys[ptr[u]:ptr[u + 1]] % I, ascending
        self._keys = {k: torch.unique(v[:, 0] * i + v[:, 1])
                      for k, v in graph.edge_splits.items() if v.dim() == 2 and v.shape[1] == 2}
        self._ptr = {k: torch.searchsorted(v, torch.arange(u + 1) * i) for k, v in self._keys.items()}
        self._train_keys = self._keys["train"]
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
        idx = distributed.shard(torch.arange(train.shape[0]), generator)  # this process's interactions
        perm = idx[torch.randperm(idx.numel(), generator=generator)]
        out = []
        for c in perm.split(self.batch_size):
            users, pos = train[c, 0], train[c, 1]
            out.append(torch.stack([users, pos, self.sample_items(users, generator)], 1))  # (B, 3)
        return out

    def loss(self, model: nn.Module, graph: Graph, batch: Tensor) -> Tensor:
        H = model(graph)
        batch = batch.to(H.device)
        b = batch.shape[0]
        nodes = torch.cat([batch[:, 0], batch[:, 1:].T.reshape(-1) + self.num_users])  # (3B,) users, pos, neg
        # one gather per table: each indexing op costs a dense (N, d) zero-fill and add in backward
        h = H[nodes].view(3, b, -1)  # (3, B, d)
        bpr = F.softplus(-((h[0] * h[1]).sum(1) - (h[0] * h[2]).sum(1))).mean()
        E = model.ego()
        e = h if E is H else E[nodes]  # MF: the ego table is the output itself
        return bpr + self.reg_weight * e.pow(2).sum() / (2 * b)

    # ------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def topk(self, model: nn.Module, graph: Graph, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """(users (U',), hits (U', max K) bool, number of relevant items (U',)) for the split's users
        (with several processes: this process's contiguous share of them, ``distributed.eval_slice``).

        Per batch of B users: scores = H_users @ H_items^T written into one reused (B, I') buffer (I' = I
        rounded up to ``metrics.TOPK_GROUP``, the extra columns -inf), -inf at the masked items (one
        index_put_ from the CSR), ``metrics.topk_indices`` and a binary search of (user, item) in the
        split's sorted keys. No dense (B, I) mask is built.
        """
        H = model(graph)
        n_u, n_i, kmax, bs = self.num_users, self.num_items, max(self.ks), self.eval_batch_size
        dev = H.device
        users = torch.unique(graph.edge_splits[split][:, 0].cpu())  # (U',) ascending
        users = users[distributed.eval_slice(users.numel())]  # this process's share (all in one process)
        counts = self._ptr[split][users + 1] - self._ptr[split][users]  # (U',)
        starts = list(range(0, users.numel(), bs))
        masked = ["train"] + (["val"] if split == "test" and "val" in self._keys else [])
        excluded = []  # per masked split: (row in users, item) pairs, rows ascending, and each batch's slice
        for name in masked:
            rows, cols = self._user_items(name, users)
            cuts = torch.searchsorted(rows, torch.tensor(starts + [users.numel()])).tolist()
            excluded.append((rows.to(dev), cols.to(dev), cuts))
        width = -(-n_i // metrics.TOPK_GROUP) * metrics.TOPK_GROUP
        items = torch.cat([H[n_u:], H.new_zeros(width - n_i, H.shape[1])])  # (I', d)
        buf = H.new_empty(min(bs, users.numel()), width)  # reused: no fresh (B, I') allocation per batch
        keys, inf = self._keys[split].to(dev), H.new_tensor(float("-inf"))
        hits = []
        for b, start in enumerate(starts):  # batch b: users[start:start + bs]
            chunk = users[start:start + bs].to(dev)
            scores = torch.mm(H[chunk], items.T, out=buf[:chunk.numel()])  # (B, I')
            scores[:, n_i:] = inf
            for rows, cols, cuts in excluded:
                lo, hi = cuts[b], cuts[b + 1]
                scores.index_put_((rows[lo:hi] - start, cols[lo:hi]), inf)
            idx = metrics.topk_indices(scores, kmax)  # (B, min(kmax, I'))
            hit = (idx < n_i) & isin_sorted(chunk[:, None] * n_i + idx, keys)  # padding columns never hit
            if hit.shape[1] < kmax:  # fewer items than K: the missing positions are misses
                hit = torch.cat([hit, hit.new_zeros(hit.shape[0], kmax - hit.shape[1])], 1)
            hits.append(hit.cpu())
        if not hits:
            return users, torch.zeros(0, kmax, dtype=torch.bool), torch.zeros(0, dtype=torch.long)
        return users, torch.cat(hits), counts

    def _user_items(self, split: str, users: Tensor) -> tuple[Tensor, Tensor]:
        """(rows, items) of every (users[r], item) pair of the split, rows ascending, from its CSR.

        Shapes: users (B,) -> rows (P,), items (P,).
        """
        ptr = self._ptr[split]
        start, count = ptr[users], ptr[users + 1] - ptr[users]  # (B,)
        rows = torch.repeat_interleave(torch.arange(users.numel()), count)  # (P,)
        shift = start - (torch.cumsum(count, 0) - count)  # (B,) key position - output position, per user
        pos = torch.arange(rows.numel()) + torch.repeat_interleave(shift, count)  # (P,)
        return rows, self._keys[split][pos] % self.num_items

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.edge_splits:
            return {}
        _, hits, counts = self.topk(model, graph, split)  # this process's users
        hits, counts = distributed.all_gather_cat(hits), distributed.all_gather_cat(counts)
        out = {}
        for k in self.ks:
            out[f"recall@{k}"] = metrics.recall_at_k(hits, counts, k)
            out[f"ndcg@{k}"] = metrics.ndcg_at_k(hits, counts, k)
            out[f"precision@{k}"] = metrics.precision_at_k(hits, counts, k)
            out[f"hit_rate@{k}"] = metrics.hit_rate_at_k(hits, counts, k)
        return out
