"""Rating prediction (explicit feedback, e.g. ml-100k): GC-MC-style encoder + bilinear decoder, RMSE / MAE.

Data: users 0..U-1, items 0..I-1 (node U+j); edge_splits "train", "test" (, "val") (M, 2) (user, item) with
ratings in edge_splits["<split>_rating"] (M,) float; meta num_users, num_items.

``setup`` rebuilds the message-passing graph from the TRAINING ratings only: A (U+I, U+I) symmetric with
weight 1 and ``edge_type`` = rating class (index of the rating among the sorted distinct training ratings),
so rating-aware encoders (gcmc; rgcn with one relation per rating) see one graph per rating level and no
val/test rating can leak into message passing.

Model (van den Berg et al. 2017): node representations z from the encoder, class logits from
graphnet.nn.heads.BilinearDecoder, p(c | u, v) = softmax(logits), prediction = expected rating
sum_c p_c value_c. Loss: "ce" (default, GC-MC) = cross-entropy over rating classes, or "mse" = squared error
of the expected rating. Metrics: rmse, mae of the expected rating.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import distributed, metrics
from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph, adjacency
from graphnet.nn.heads import BilinearDecoder
from graphnet.tasks import (
    NodeEncoder,
    check_batch_size,
    check_id_columns,
    check_val_frac,
    encoder_names,
    holdout_val,
    make_encoder,
    require_split,
)


class RatingModel(nn.Module):
    """Encoder + bilinear decoder; ``logits(H, pairs)`` (B, C), ``predict`` the expected rating (B,)."""

    def __init__(self, encoder: NodeEncoder, decoder: BilinearDecoder, rating_values: Tensor, num_users: int):
        super().__init__()
        self.encoder, self.decoder, self.num_users = encoder, decoder, num_users
        self.register_buffer("rating_values", rating_values)  # (C,) sorted distinct training ratings

    def forward(self, graph: Graph) -> Tensor:
        return self.encoder(graph)

    def logits(self, H: Tensor, pairs: Tensor) -> Tensor:
        return self.decoder(H[pairs[:, 0]], H[pairs[:, 1] + self.num_users])

    def predict(self, H: Tensor, pairs: Tensor) -> Tensor:
        return torch.softmax(self.logits(H, pairs), -1) @ self.rating_values


class RatingPrediction:
    """GC-MC-style rating prediction.

    Args:
        loss: "ce" (cross-entropy over rating classes, GC-MC) or "mse" (on the expected rating).
        emb_dim: width of the node representations fed to the decoder (75 in GC-MC), and of the learnable
            input embedding of non-GC-MC encoders.
        num_basis: basis matrices of the bilinear decoder (2 in GC-MC).
        batch_size: training ratings per step (None = full batch, as GC-MC).
        eval_batch_size: ratings scored at once in evaluation.
        val_frac: if > 0 and the data has no "val" split, hold out this seeded fraction of the training
            ratings as "val"; 0 (default) = no val split. (GC-MC's code tunes on a 20% hold-out of u1.base
            and, for its reported test numbers, trains on all of it and tests the last epoch.)
    Metrics: {"rmse", "mae"}.
    """

    name = "rating"
    higher_is_better = False

    def __init__(self, loss: str = "ce", emb_dim: int = 75, num_basis: int = 2, batch_size: int | None = None,
                 eval_batch_size: int = 65536, val_frac: float = 0.0):
        if loss not in ("ce", "mse"):
            raise ConfigError(f"task.loss: expected 'ce' or 'mse' for task 'rating', got {loss!r}")
        check_batch_size("task.batch_size", batch_size)
        check_batch_size("task.eval_batch_size", eval_batch_size, allow_none=False)
        check_val_frac(val_frac)
        self.loss_type, self.emb_dim, self.num_basis = loss, emb_dim, num_basis
        self.batch_size, self.eval_batch_size, self.val_frac = batch_size, eval_batch_size, val_frac
        self.monitor = "val_rmse"
        self.num_users = self.num_items = 0

    def valid_models(self) -> list[str]:
        return ["gcmc"] + encoder_names()

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        require_split("rating", graph.edge_splits, "train", "interactions", graph)
        require_split("rating", graph.edge_splits, "train_rating", "ratings")
        for key in ("num_users", "num_items"):
            if key not in graph.meta:
                raise GraphError(f"task 'rating': expected meta[{key!r}], got meta keys {sorted(graph.meta)}")
        u, i = int(graph.meta["num_users"]), int(graph.meta["num_items"])
        check_id_columns("rating", graph.edge_splits, 2, (("user", u), ("item", i)))
        graph = holdout_val(graph, self.val_frac, seed, aligned=("train_rating",))
        pairs, ratings = graph.edge_splits["train"], graph.edge_splits["train_rating"].float()
        self.num_users, self.num_items = u, i
        values = torch.unique(ratings)  # (C,) sorted
        self._classes = torch.searchsorted(values, ratings)  # (M,) class index of each training rating
        src = torch.cat([pairs[:, 0], pairs[:, 1] + u])
        dst = torch.cat([pairs[:, 1] + u, pairs[:, 0]])
        graph = graph.replace(A=adjacency(src, dst, u + i),
                              edge_type=torch.cat([self._classes, self._classes]), edge_feat=None)
        c = values.numel()
        extra = {"gcmc": {"num_ratings": c}, "rgcn": {"num_relations": c}}.get(model_name, {})
        encoder, graph = make_encoder("rating", graph, model_name, model_kwargs, self.emb_dim, self.emb_dim,
                                      self.valid_models(), seed, extra)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            decoder = BilinearDecoder(self.emb_dim, c, self.num_basis)
        return RatingModel(encoder, decoder, values, u), graph

    def batches(self, model: nn.Module, graph: Graph, epoch: int, generator: torch.Generator) -> list[Tensor]:
        idx = distributed.shard(torch.arange(graph.edge_splits["train"].shape[0]), generator)  # this rank's
        if self.batch_size is None:
            return [idx]
        return list(idx[torch.randperm(idx.numel(), generator=generator)].split(self.batch_size))

    def loss(self, model: nn.Module, graph: Graph, batch: Tensor) -> Tensor:
        H = model(graph)
        pairs = graph.edge_splits["train"][batch.to(graph.edge_splits["train"].device)]
        logits = model.logits(H, pairs)
        if self.loss_type == "ce":
            return F.cross_entropy(logits, self._classes.to(logits.device)[batch.to(logits.device)])
        target = graph.edge_splits["train_rating"][batch.to(logits.device)].float()
        return F.mse_loss(torch.softmax(logits, -1) @ model.rating_values, target)

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.edge_splits:
            return {}
        pairs = graph.edge_splits[split]
        target = require_split("rating", graph.edge_splits, split + "_rating", "ratings").float()
        H = model(graph)
        mine = pairs[distributed.eval_slice(pairs.shape[0])]  # this process's share (all in one process)
        chunks = [model.predict(H, c) for c in mine.split(self.eval_batch_size)]
        pred = distributed.all_gather_cat(torch.cat(chunks) if chunks else H.new_zeros(0))
        return {"rmse": metrics.rmse(pred, target), "mae": metrics.mae(pred, target)}
