"""Tasks: each owns its model head, loss, training batches and metrics; the one Trainer calls them blindly.

Protocol (every task; built as ``TASKS[name](**task_kwargs)``, all kwargs with defaults):
    monitor: str, higher_is_better: bool      default early-stopping metric "val_<metric>" (final after setup)
    setup(graph, model_name, model_kwargs, seed) -> (model, prepared graph)
    batches(model, graph, epoch, generator) -> iterable of batches (all randomness from ``generator``)
    loss(model, graph, batch) -> scalar tensor
    evaluate(model, graph, split) -> {metric: float} without the split prefix; {} if the data lacks the split

This module also holds the two helpers all tasks share: the registry lookup ``build_model`` (checks the
name is valid for the task, then looks it up in graphnet.nn.MODELS) and ``NodeEncoder``, which feeds a
model its input features, or a learnable input embedding when the graph has none, and applies the
model's ``preprocess`` once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from dgl.sparse import SparseMatrix
from torch import Tensor, nn

from graphnet.errors import ConfigError, GraphError
from graphnet.graph import Graph


def model_registry() -> dict[str, Any]:
    """All model constructors by name (graphnet.nn.MODELS: GNN stacks and dense baselines)."""
    from graphnet.nn import MODELS

    return MODELS


def encoder_names() -> list[str]:
    """Names of the GNN stacks (usable by every task on top of a learnable input embedding if needed)."""
    from graphnet.nn import ENCODERS

    return list(ENCODERS)


def build_model(task: str, name: str, valid: Iterable[str], in_dim: int, out_dim: int,
                **kwargs: Any) -> nn.Module:
    """``registry[name](in_dim, out_dim, **kwargs)`` after checking ``name`` is valid for ``task``.

    Raises ConfigError naming the task and its valid models for an unknown/unsuitable name, for keyword
    arguments the model does not take, and, prefixed with ``model.<key>``, for a value the model refuses.
    """
    registry = model_registry()
    valid = [n for n in valid if n in registry]
    if name not in valid:
        raise ConfigError(f"model.name: {name!r} is not a model for task {task!r}; valid models for "
                          f"{task!r}: {', '.join(sorted(valid))}")
    try:
        return registry[name](in_dim, out_dim, **kwargs)
    except TypeError as e:
        if "argument" not in str(e):
            raise
        raise ConfigError(f"model {name!r} (task {task!r}): {e}") from e
    except ConfigError as e:  # "GCN: expected num_layers to be ...": name the config key, as every error does
        key = next((k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", str(e))), None)
        if key is None:
            raise
        raise ConfigError(f"model.{key}: {e}") from e


class NodeEncoder(nn.Module):
    """A model from the registry plus, for featureless graphs, a learnable input embedding.

    ``forward(graph)`` returns the model's node representations (N, out_dim) computed from the prepared
    graph's A, X (or ``self.emb.weight`` when X is None), edge_type and edge_feat. ``forward(graph, batch)``
    with a ``graphnet.sampling.MiniBatch`` runs the model on the batch's blocks and returns the rows of
    ``batch.output_nodes`` only; ``infer(graph, batch_size)`` is layer-wise full-neighbour inference of all
    rows (``graphnet.sampling.layerwise_inference``). ``ego()`` is the layer-0 table of free node vectors
    (the input embedding, or the model's own ``embedding`` for MF/LightGCN), which recommendation
    regularizes.
    """

    def __init__(self, model: nn.Module, emb: nn.Embedding | None = None):
        super().__init__()
        self.model, self.emb = model, emb

    @property
    def supports_blocks(self) -> bool:
        return bool(getattr(self.model, "supports_blocks", False))

    def forward(self, graph: Graph, batch: Any = None) -> Tensor:
        if batch is None:
            X = graph.X if self.emb is None else self.emb.weight
            return self.model(graph.A, X, edge_type=graph.edge_type, edge_feat=graph.edge_feat)
        ids = batch.input_nodes
        X = graph.X[ids] if self.emb is None else self.emb(ids)  # (N_src_0, F)

        def per_block(data: Tensor | None) -> list[Tensor] | None:
            return None if data is None else [data[e] for e in batch.eids]

        return self.model(batch.blocks, X, edge_type=per_block(graph.edge_type),
                          edge_feat=per_block(graph.edge_feat))

    def infer(self, graph: Graph, batch_size: int) -> Tensor:
        """All nodes' outputs (N, out_dim), one layer at a time over ``batch_size`` destination nodes."""
        from graphnet.sampling import layerwise_inference

        X = graph.X if self.emb is None else self.emb.weight
        return layerwise_inference(self.model, graph.A, X, batch_size, edge_type=graph.edge_type,
                                   edge_feat=graph.edge_feat)

    def ego(self) -> Tensor:
        if self.emb is not None:
            return self.emb.weight
        table = getattr(self.model, "embedding", None)
        if table is None:
            raise ConfigError(f"{type(self.model).__name__} has no node embedding table to regularize")
        return table.weight


SAMPLERS = ("graphnet", "dgl")


def make_sampler(task: str, encoder: NodeEncoder, model_name: str, fanouts: list[int] | None,
                 infer_batch_size: int | None = None, sampler: str = "graphnet") -> Any:
    """The neighbour sampler for a model that runs on blocks; None without fanouts.

    ``sampler``: "graphnet" (``graphnet.sampling.NeighborSampler``, seeded by the run on any number of
    threads) or "dgl" (``graphnet.sampling_dgl.DGLNeighborSampler``: dgl.dataloading's sampler, repeatable
    only with one OpenMP thread). ConfigError when sampled training (``task.fanouts``) or layer-wise
    inference (``task.infer_batch_size``) is asked of a model that propagates over the full graph (SGC,
    APPNP, Cheb, LightGCN, MF, ...), when ``task.fanouts`` does not give one fanout per layer, for an
    unknown ``task.sampler``, or for ``sampler="dgl"`` without fanouts (it would be silently ignored).
    """
    from graphnet.sampling import NeighborSampler

    if sampler not in SAMPLERS:
        raise ConfigError(f"task.sampler: expected one of {', '.join(map(repr, SAMPLERS))}, got {sampler!r}")

    for key, value in (("fanouts", fanouts), ("infer_batch_size", infer_batch_size)):
        if value is not None and not encoder.supports_blocks:
            ok = sorted(n for n, c in model_registry().items() if getattr(c, "supports_blocks", False))
            raise ConfigError(f"task.{key}: model {model_name!r} (task {task!r}) propagates over the whole "
                              f"graph, not layer by layer on blocks; models that can: {', '.join(ok)}")
    if fanouts is None:
        if sampler != "graphnet":
            # Without fanouts there is nothing to sample; silently training full-batch would hide a typo.
            raise ConfigError(f"task.sampler = {sampler!r} applies to sampled training only: set "
                              "task.fanouts (one fanout per layer) or drop task.sampler")
        return None
    if not isinstance(fanouts, (list, tuple)) or len(fanouts) != encoder.model.num_layers:
        raise ConfigError(f"task.fanouts: expected one fanout per layer ({encoder.model.num_layers} for "
                          f"{model_name!r}, input layer first, -1 = all in-edges), got {fanouts!r}")
    if sampler == "dgl":
        from graphnet.sampling_dgl import DGLNeighborSampler as NeighborSampler  # noqa: N814
    try:
        return NeighborSampler(list(fanouts))
    except ConfigError as e:
        raise ConfigError(f"task.{e}") from None  # "task.fanouts: expected ..."


def make_encoder(task: str, graph: Graph, name: str, model_kwargs: dict[str, Any], out_dim: int, emb_dim: int,
                 valid: Iterable[str], seed: int,
                 extra: dict[str, Any] | None = None) -> tuple[NodeEncoder, Graph]:
    """Build ``NodeEncoder`` for ``name`` and the graph with the model's ``preprocess`` applied once.

    Models with their own node embeddings (``takes_node_ids``: MF, LightGCN, KG embeddings, GC-MC) get
    ``num_nodes``; other models read X, or an ``nn.Embedding(N, emb_dim)`` input when X is None.
    ``extra`` holds data-dependent constructor arguments (``num_relations``, ``num_ratings``) that the task
    passes only to the models that take them; rgcn on a graph with edge_type defaults to
    num_relations = max(edge_type) + 1. edge_type and edge_feat are kept while the preprocessed A has the
    same edges in the same order, edge_feat is zero-padded for appended edges (``pad_appended_edges``), and
    both are dropped otherwise. Parameters are initialized from ``seed`` alone (global RNG
    state is restored afterwards).
    """
    if graph.X is not None and not graph.X.is_floating_point():
        raise GraphError(f"X: expected floating-point features, got {graph.X.dtype} (convert with X.float())")
    registry = model_registry()
    cls = registry.get(name)
    n = graph.num_nodes
    kwargs = {**(extra or {}), **model_kwargs}
    if name == "rgcn" and "num_relations" not in kwargs and graph.edge_type is not None:
        kwargs["num_relations"] = int(graph.edge_type.max()) + 1 if graph.edge_type.numel() else 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cls is not None and getattr(cls, "takes_node_ids", False):
            model = build_model(task, name, valid, emb_dim, out_dim, num_nodes=n, **kwargs)
            emb = None
        else:
            emb = nn.Embedding(n, emb_dim) if graph.X is None else None
            if emb is not None:
                nn.init.xavier_uniform_(emb.weight)
            in_dim = emb_dim if graph.X is None else graph.X.shape[1]
            model = build_model(task, name, valid, in_dim, out_dim, **kwargs)
    A = model.preprocess(graph.A, graph.edge_type)
    # Edge data follows A only while the edges stay where they were: a preprocess may keep nnz but re-sort
    # (gcn_norm's coalesced A + I on a graph that already has every self-loop).
    if A.nnz == graph.A.nnz and torch.equal(A.row, graph.A.row) and torch.equal(A.col, graph.A.col):
        graph = graph.replace(A=A)
    else:
        graph = graph.replace(A=A, edge_type=None, edge_feat=pad_appended_edges(graph, A))
    return NodeEncoder(model, emb), graph


def pad_appended_edges(graph: Graph, A: SparseMatrix) -> Tensor | None:
    """``graph.edge_feat`` realigned with a preprocessed ``A`` that has more nonzeros, or None.

    When ``A`` keeps the original nonzeros first, in order, and appends new ones (``ops.add_self_loops``, as
    GAT's preprocess does), the appended edges get zero features: (E, d) -> (A.nnz, d), the convention
    GAT documents. Any other change of the edge set (``gcn_norm``'s coalesced A + I) leaves no alignment
    and gives None; edge_type is never padded (no relation is "no relation").
    """
    ef, E = graph.edge_feat, graph.A.nnz
    if ef is None or A.nnz < E:
        return None
    if not (torch.equal(A.row[:E], graph.A.row) and torch.equal(A.col[:E], graph.A.col)):
        return None
    return torch.cat([ef, ef.new_zeros(A.nnz - E, ef.shape[1])])


def isin_sorted(x: Tensor, sorted_keys: Tensor) -> Tensor:
    """Elementwise ``x in sorted_keys`` by binary search (rejects sampled negatives that are positives)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(x, dtype=torch.bool)
    i = torch.searchsorted(sorted_keys, x).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[i] == x


def check_val_frac(frac: Any) -> None:
    """ConfigError unless ``task.val_frac`` is a fraction in [0, 1) (0: no hold-out)."""
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
        raise ConfigError(f"task.val_frac: expected a fraction in [0, 1), got {frac!r}")


def holdout_val(graph: Graph, frac: float, seed: int, aligned: tuple[str, ...] = ()) -> Graph:
    """Move a seeded random ``frac`` of edge_splits["train"] (and the ``aligned`` per-pair arrays, e.g.
    "train_rating" -> "val_rating") into a new "val" split. The caller rebuilds A from the remaining
    training pairs, so the held-out pairs never reach message passing. No-op if "val" exists or frac = 0.
    Training pairs must be unique (GraphError otherwise): a pair listed twice could be split between val
    and train, so the held-out pair would still be trained on and passed messages along.
    """
    check_val_frac(frac)
    if frac == 0 or "val" in graph.edge_splits:
        return graph
    train = graph.edge_splits["train"]
    if torch.unique(train, dim=0).shape[0] != train.shape[0]:
        raise GraphError(f"task.val_frac={frac}: edge_splits['train'] of {graph.name!r} lists a pair more "
                         "than once; merge repeated pairs before holding out a validation split")
    perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(int(seed)))
    k = int(round(frac * train.shape[0]))
    val_idx, train_idx = torch.sort(perm[:k])[0], torch.sort(perm[k:])[0]
    es = dict(graph.edge_splits)
    for key in ("train",) + aligned:
        t = es[key]
        es[key.replace("train", "val", 1)] = t[val_idx]
        es[key] = t[train_idx]
    return graph.replace(edge_splits=es)


def require_split(task: str, splits: dict[str, Tensor], key: str, what: str,
                  graph: Graph | None = None) -> Tensor:
    """splits[key] or a GraphError naming the task, the key and the keys present (and, given the graph,
    the task its data suits)."""
    if key not in splits:
        hint = suited_task_hint(graph, task) if graph is not None else ""
        raise GraphError(f"task {task!r}: expected {what} {key!r}, got keys {sorted(splits)}{hint}")
    return splits[key]


def suited_task_hint(graph: Graph, task: str) -> str:
    """"; dataset 'x' suits task.name = 'kg'" for the task the graph's data is laid out for, or ""."""
    es = graph.edge_splits
    if any(t.dim() == 2 and t.shape[1] == 3 for t in es.values()):
        suited = "kg"
    elif "train_rating" in es:
        suited = "rating"
    elif "num_users" in graph.meta:
        suited = "rec"
    elif graph.y is not None:
        suited = "node"
    else:
        suited = "link"  # any graph: held-out edges are split off
    name = f"dataset {graph.name!r}" if graph.name else "this graph"
    return "" if suited == task else f"; {name} suits task.name = {suited!r}"


def check_id_columns(task: str, splits: dict[str, Tensor], width: int | None,
                     columns: tuple[tuple[str, int], ...]) -> None:
    """GraphError unless every 2-D ``splits[key]`` with ``width`` columns (any width: None) holds integer
    ids in range; 1-D per-pair arrays (ratings, weights) are not ids and are skipped.

    ``columns[j] = (what, n)``: column j holds ``what`` ids in 0..n-1; a single entry applies to every
    column (e.g. ``(("node", N),)`` for pairs and (M, K) per-query negatives). Indexing would otherwise
    wrap a -1 around to the last row, and an id past the end would collide in the ``a * n + b`` keys that
    the filters and known-positive sets use.
    """
    for key, t in splits.items():
        if t.dim() != 2 or (width is not None and t.shape[1] != width) or t.numel() == 0:
            continue
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise GraphError(f"task {task!r}: edge_splits[{key!r}]: expected integer ids, got {t.dtype}")
        cols = columns if len(columns) > 1 else columns * t.shape[1]  # one (what, n) per column
        names, n = [c[0] for c in cols], torch.tensor([c[1] for c in cols])
        lo, hi = t.min(0).values.cpu(), t.max(0).values.cpu()  # per column
        bad = ((lo < 0) | (hi >= n)).nonzero()
        if bad.numel():
            j = int(bad[0])
            val = int(lo[j]) if lo[j] < 0 else int(hi[j])
            row = int((t[:, j] == val).nonzero()[0])
            raise GraphError(f"task {task!r}: edge_splits[{key!r}] row {row} column {j}: {names[j]} id "
                             f"{val} out of range, expected 0..{int(n[j]) - 1}")


def check_batch_size(key: str, value: Any, allow_none: bool = True) -> None:
    """ConfigError unless ``value`` is an int >= 1 (or None when allowed); ``key`` is e.g. task.batch_size."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        none = " (or none)" if allow_none else ""
        raise ConfigError(f"{key}: expected an integer >= 1{none}, got {value!r}")


from graphnet.tasks.kg_completion import KGCompletion  # noqa: E402  (helpers above are imported by tasks)
from graphnet.tasks.link_pred import LinkPrediction  # noqa: E402
from graphnet.tasks.node_cls import NodeClassification  # noqa: E402
from graphnet.tasks.rating import RatingPrediction  # noqa: E402
from graphnet.tasks.recommendation import Recommendation  # noqa: E402

TASKS = {
    "node": NodeClassification,
    "link": LinkPrediction,
    "kg": KGCompletion,
    "rec": Recommendation,
    "rating": RatingPrediction,
}
