"""Node classification: cross-entropy on the labelled training nodes, accuracy on a split.

Data: X (N, F) (None -> learnable input embedding), y (N,) long (negative = unlabelled), splits "train",
"val", "test" index tensors. The model maps (A, X) to (N, C) logits, C = max label + 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphnet import distributed
from graphnet.errors import GraphError
from graphnet.graph import Graph
from graphnet.metrics import accuracy
from graphnet.sampling import MiniBatch
from graphnet.tasks import (
    check_batch_size,
    encoder_names,
    make_encoder,
    make_sampler,
    require_split,
    suited_task_hint,
)


def _check_labelled(split: str, idx: Tensor, y: Tensor) -> None:
    """A split must be non-empty and hold only labelled nodes (y >= 0): else NaN losses or torch errors."""
    if idx.numel() == 0:
        raise GraphError(f"task 'node': split {split!r} is empty")
    bad = idx[y[idx] < 0]
    if bad.numel():
        raise GraphError(f"task 'node': split {split!r} contains node {int(bad[0])} without a label "
                         f"(y = {int(y[bad[0]])})")


class NodeClassification:
    """Node classification (Kipf & Welling 2017 protocol), full-batch or on neighbour-sampled blocks.

    Full batch (``fanouts=None``, default): each step runs the model on the whole graph and takes the mean
    cross-entropy over a batch of training nodes (``batch_size=None``: all of them, one step per epoch).
    Sampled (GraphSAGE-style, ``fanouts=[k_1, ..., k_L]``, input layer first, -1 = all in-edges): each
    batch of ``batch_size`` training nodes gets L blocks from ``graphnet.sampling.NeighborSampler`` drawn
    from the task generator, and the model runs on those blocks only. Evaluation is one full-graph forward,
    or layer-wise full-neighbour inference over ``infer_batch_size`` nodes at a time, which never holds
    more than two (N, F) activations (``graphnet.sampling.layerwise_inference``).
    Data-parallel: each process takes its shard of the training nodes (``graphnet.distributed.shard``).

    Args:
        batch_size: training nodes per step, None = all.
        emb_dim: width of the learnable input embedding for graphs without X.
        fanouts: per-layer neighbour fanouts for sampled training; None = full batch.
        infer_batch_size: nodes per step of layer-wise inference in evaluation; None = full batch.
        sampler: "graphnet" (default; repeatable on any number of threads) or "dgl" (dgl.dataloading's
            NeighborSampler, ``graphnet.sampling_dgl``; repeatable only with OMP_NUM_THREADS=1).
    Metrics: {"accuracy", "loss"} (loss = mean cross-entropy on the split).
    """

    name = "node"
    higher_is_better = True

    def __init__(self, batch_size: int | None = None, emb_dim: int = 64, fanouts: list[int] | None = None,
                 infer_batch_size: int | None = None, sampler: str = "graphnet"):
        check_batch_size("task.batch_size", batch_size)
        check_batch_size("task.infer_batch_size", infer_batch_size)
        self.batch_size, self.emb_dim = batch_size, emb_dim
        self.fanouts, self.infer_batch_size, self.sampler_name = fanouts, infer_batch_size, sampler
        self.sampler = None
        self.monitor = "val_accuracy"

    def valid_models(self) -> list[str]:
        return encoder_names()

    def setup(self, graph: Graph, model_name: str, model_kwargs: dict[str, Any],
              seed: int) -> tuple[nn.Module, Graph]:
        y = graph.y
        if y is None or y.dim() != 1 or y.dtype.is_floating_point:
            got = None if y is None else f"shape {tuple(y.shape)} dtype {y.dtype}"
            hint = suited_task_hint(graph, "node") if y is None else ""
            raise GraphError(f"task 'node': expected y of shape (N,) with integer labels, got {got}{hint}")
        require_split("node", graph.splits, "train", "node split")
        if not bool((y >= 0).any()):
            raise GraphError("task 'node': no node has a label (all y < 0)")
        for split in ("train", "val", "test"):
            if split in graph.splits:
                _check_labelled(split, graph.splits[split], y)
        num_classes = int(y.max()) + 1
        model, graph = make_encoder("node", graph, model_name, model_kwargs, num_classes, self.emb_dim,
                                    self.valid_models(), seed)
        self.sampler = make_sampler("node", model, model_name, self.fanouts, self.infer_batch_size,
                                    self.sampler_name)
        return model, graph

    def batches(self, model: nn.Module, graph: Graph, epoch: int,
                generator: torch.Generator) -> Iterator[Tensor | MiniBatch]:
        idx = distributed.shard(graph.splits["train"], generator)  # this process's training nodes
        if self.batch_size is None:
            chunks = [idx]
        else:
            perm = torch.randperm(idx.numel(), generator=generator).to(idx.device)
            chunks = list(idx[perm].split(self.batch_size))
        for chunk in chunks:  # sampled lazily: one batch's blocks in memory at a time
            yield chunk if self.sampler is None else self.sampler.sample(graph.A, chunk, generator)

    def loss(self, model: nn.Module, graph: Graph, batch: Tensor | MiniBatch) -> Tensor:
        if isinstance(batch, MiniBatch):
            logits = model(graph, batch)  # (num_seeds, C), rows in seed order
            return F.cross_entropy(logits, graph.y[batch.output_nodes])
        logits = model(graph)  # (N, C)
        return F.cross_entropy(logits[batch], graph.y[batch])

    def evaluate(self, model: nn.Module, graph: Graph, split: str) -> dict[str, float]:
        if split not in graph.splits:
            return {}
        idx = graph.splits[split]
        out = model(graph) if self.infer_batch_size is None else model.infer(graph, self.infer_batch_size)
        # each process scores its share of the split (all of it in one process); means combine exactly
        idx = distributed.shard(idx, 0, drop_last=False)
        logits = out[idx]
        part = {"accuracy": accuracy(logits, graph.y[idx]),
                "loss": float(F.cross_entropy(logits, graph.y[idx])) if idx.numel() else float("nan")}
        return distributed.all_reduce_weighted(part, idx.numel())
