"""Node classification: cross-entropy on the labelled training nodes, accuracy on a split.

Data: X (N, F) (None -> learnable input embedding), y (N,) long (negative = unlabelled), splits "train",
"val", "test" index tensors. The model maps (A, X) to (N, C) logits, C = max label + 1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet.errors import GraphError
from graphnet.graph import Graph
from graphnet.metrics import accuracy
from graphnet.tasks import check_batch_size, encoder_names, make_encoder, require_split


def _check_labelled(split: str, idx: Tensor, y: Tensor) -> None:
    """A split must be non-empty and hold only labelled nodes (y >= 0): else NaN losses or torch errors."""
    if idx.numel() == 0:
        raise GraphError(f"task 'node': split {split!r} is empty")
    bad = idx[y[idx] < 0]
    if bad.numel():
        raise GraphError(f"task 'node': split {split!r} contains node {int(bad[0])} without a label "
                         f"(y = {int(y[bad[0]])})")


class NodeClassification:
    """Full-batch node classification (Kipf & Welling 2017 protocol).

    Each training step runs the model on the whole graph and takes the mean cross-entropy over the batch
    of training nodes. ``batch_size=None`` (default) gives one batch = all training nodes per epoch;
    an int gives shuffled subsets of the training nodes (the hook for mini-batch training; the model
    still runs on the full graph until neighbour sampling lands).

    Args:
        batch_size: training nodes per step, None = all.
        emb_dim: width of the learnable input embedding for graphs without X.
    Metrics: {"accuracy", "loss"} (loss = mean cross-entropy on the split).
    """

    name = "node"
    higher_is_better = True

    def __init__(self, batch_size: int | None = None, emb_dim: int = 64):
        check_batch_size("task.batch_size", batch_size)
        self.batch_size, self.emb_dim = batch_size, emb_dim
        self.monitor = "val_accuracy"

    def valid_models(self) -> list[str]:
        return encoder_names()

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        y = graph.y
        if y is None or y.dim() != 1 or y.dtype.is_floating_point:
            got = None if y is None else f"shape {tuple(y.shape)} dtype {y.dtype}"
            raise GraphError(f"task 'node': expected y of shape (N,) with integer labels, got {got}")
        require_split("node", graph.splits, "train", "node split")
        if not bool((y >= 0).any()):
            raise GraphError("task 'node': no node has a label (all y < 0)")
        for split in ("train", "val", "test"):
            if split in graph.splits:
                _check_labelled(split, graph.splits[split], y)
        num_classes = int(y.max()) + 1
        return make_encoder("node", graph, model_name, model_kwargs, num_classes, self.emb_dim,
                            self.valid_models(), seed)

    def batches(self, model: nn.Module, graph: Graph, epoch: int, generator: torch.Generator) -> list[Tensor]:
        idx = graph.splits["train"]
        if self.batch_size is None:
            return [idx]
        perm = torch.randperm(idx.numel(), generator=generator).to(idx.device)
        return list(idx[perm].split(self.batch_size))

    def loss(self, model: nn.Module, graph: Graph, batch: Tensor) -> Tensor:
        logits = model(graph)  # (N, C)
        return F.cross_entropy(logits[batch], graph.y[batch])

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.splits:
            return {}
        idx = graph.splits[split]
        logits = model(graph)[idx]
        return {"accuracy": accuracy(logits, graph.y[idx]),
                "loss": float(F.cross_entropy(logits, graph.y[idx])) if idx.numel() else float("nan")}
