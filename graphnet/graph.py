"""The Graph dataclass: one dgl.sparse adjacency plus node/edge data and named splits.

Orientation (the one convention in graphnet): ``A[i, j]`` is the weight of the edge ``j -> i``.
``A`` has shape ``(N_dst, N_src)`` and ``A @ X`` sums, for each node, over its *in*-neighbours.
An edge list ``(src, dst)`` therefore becomes ``row = dst, col = src``. scipy and networkx use the
opposite convention (``M[u, v]`` = edge ``u -> v``); ``from_scipy``/``to_scipy`` translate.

Duplicate entries (the same (i, j) stored twice) are allowed until ``coalesce()``: ``ops.spmm`` and the
degree functions sum them, but dgl.sparse's ``SparseMatrix.to_dense()`` keeps only one of them, so
compare against dense references only after ``coalesce()`` (or build them with
``index_put(accumulate=True)``).

Edge data (``edge_feat`` (E, d), ``edge_type`` (E,)) is aligned with the order of ``A``'s nonzeros
(``A.row[e], A.col[e]``); every method that reorders or drops edges carries them along.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import dgl.sparse as dglsp
import numpy as np
import torch
from dgl.sparse import SparseMatrix
from torch import Tensor

from graphnet.errors import GraphError


def _as_long(name: str, t: Any) -> Tensor:
    """Node ids as a 1-D long tensor; anything else (strings, None, 2-D, inf, > int64) is a GraphError."""
    if not isinstance(t, Tensor):
        try:
            arr = np.asarray(t)
        except (TypeError, ValueError, OverflowError) as e:
            raise GraphError(f"{name}: expected a 1-D sequence of integer node ids, got {type(t).__name__} "
                             f"({e})") from None
        if arr.dtype.kind not in "iubfc":  # str, object (None, ints >= 2**63), datetime, ...
            raise GraphError(f"{name}: expected integer node ids, got dtype {arr.dtype} "
                             f"({type(t).__name__})")
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise GraphError(f"{name}: node id {int(arr.max())} out of range, expected 0 <= id < 2**63")
        t = torch.as_tensor(arr.astype(np.int64) if arr.dtype.kind == "u" else arr)
    if t.dim() > 1:
        raise GraphError(f"{name}: expected a 1-D sequence of node ids, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point:
        if not torch.isfinite(t).all():
            bad = t[~torch.isfinite(t)][0].item()
            raise GraphError(f"{name}: expected integer node ids, got non-finite value {bad}")
        if not torch.all(t == t.round()):
            raise GraphError(f"{name}: expected integer node ids, got non-integer floats")
        t = t.long()
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise GraphError(f"{name}: expected integer node ids, got dtype {t.dtype}")
    return t.long().reshape(-1)


_INT64_MAX = torch.iinfo(torch.long).max


def _as_shape(num_nodes: Any) -> tuple[int, int] | None:
    """``num_nodes`` (None, N or (N_dst, N_src), ints only) as a shape; else a GraphError."""
    is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))  # noqa: E731
    if num_nodes is None:
        return None
    if is_int(num_nodes):
        return (int(num_nodes), int(num_nodes))
    if isinstance(num_nodes, (tuple, list)) and len(num_nodes) == 2 and all(map(is_int, num_nodes)):
        return (int(num_nodes[0]), int(num_nodes[1]))
    raise GraphError(f"num_nodes: expected an int or (N_dst, N_src), got {num_nodes!r}")


def _as_weight(weight: Any, num_edges: int, dtype: torch.dtype) -> Tensor:
    """Edge weights (E,) or (E, H): real, finite numbers, one row per edge."""
    if isinstance(weight, Tensor):
        val = weight
    else:
        try:
            # Lists/arrays (often float64 from numpy/scipy) become ``dtype``; Tensors keep their float dtype.
            arr = np.asarray(weight)
            if np.iscomplexobj(arr):
                raise GraphError("weight: complex edge weights are not supported")
            val = torch.as_tensor(arr.astype(np.float64))
        except (TypeError, ValueError, OverflowError) as e:
            raise GraphError(f"weight: expected numbers, got {type(weight).__name__} ({e})") from None
    if val.is_complex():
        raise GraphError("weight: complex edge weights are not supported")
    if val.dim() == 0:
        raise GraphError(f"weight: expected one value per edge ({num_edges} values), got a scalar")
    if val.dtype == torch.bool:
        raise GraphError("weight: expected numbers, got dtype torch.bool")
    val = val.to(dtype) if not (isinstance(weight, Tensor) and val.is_floating_point()) else val
    if val.shape[0] != num_edges:
        raise GraphError(f"weight: expected {num_edges} values (one per edge), got shape {tuple(val.shape)}")
    check_weights("weight", val)
    return val


def check_weights(name: str, w: Tensor) -> None:
    """Raise GraphError if edge weights contain NaN or inf (they would poison every aggregation)."""
    if w.is_floating_point() and not torch.isfinite(w).all():
        bad = int((~torch.isfinite(w)).reshape(w.shape[0], -1).any(1).nonzero()[0])
        raise GraphError(f"{name}: expected finite edge weights, got {w[bad].tolist()} at edge {bad}")


def adjacency(src: Any, dst: Any, num_nodes: int | tuple[int, int] | None = None,
              weight: Any = None, dtype: torch.dtype = torch.float32) -> SparseMatrix:
    """Build ``A`` with ``A[dst, src] = weight`` (edge src -> dst), validating ids and weights.

    Args:
        src, dst: (E,) integer node ids.
        num_nodes: N for a square A, ``(N_dst, N_src)`` for a bipartite one; default max id + 1.
        weight: (E,) or (E, H) edge weights; default ones. Duplicate edges are kept (see ``coalesce``).
    """
    src, dst = _as_long("src", src), _as_long("dst", dst)
    if src.shape != dst.shape:
        raise GraphError(f"src and dst: expected the same length, got {src.numel()} and {dst.numel()}")
    shape = _as_shape(num_nodes)
    if shape is None:
        n = int(max(src.max(), dst.max())) + 1 if src.numel() else 0
        if n > _INT64_MAX:  # torch (and dgl.sparse) shapes are int64: N = max id + 1 must fit
            raise GraphError(f"src/dst: node id {n - 1} out of range: the node count max id + 1 must fit "
                             "int64, expected ids < 2**63 - 1")
        shape = (n, n)
    if max(shape) > _INT64_MAX:
        raise GraphError(f"num_nodes: expected at most 2**63 - 1 nodes (int64), got shape {shape}")
    if shape[0] <= 0 or shape[1] <= 0:
        raise GraphError(f"num_nodes: expected a graph with at least one node, got shape {shape}")
    for name, ids, n in (("src", src, shape[1]), ("dst", dst, shape[0])):
        if ids.numel() and (ids.min() < 0 or ids.max() >= n):
            bad = int(ids[(ids < 0) | (ids >= n)][0])
            raise GraphError(f"{name}: node id {bad} out of range, expected 0 <= id < {n}")
    val = torch.ones(src.numel(), dtype=dtype) if weight is None else _as_weight(weight, src.numel(), dtype)
    return dglsp.spmatrix(torch.stack([dst, src]), val, shape)


def _check_tensor(name: str, t: Any, expected: str, dims: tuple[int, ...]) -> None:
    if not isinstance(t, Tensor):
        raise GraphError(f"{name}: expected {expected} (a torch.Tensor), got {type(t).__name__}")
    if t.dim() not in dims:
        raise GraphError(f"{name}: expected {expected}, got shape {tuple(t.shape)}")


def _check_finite(name: str, t: Tensor) -> None:
    """One pass at construction: NaN/inf features would otherwise surface only as NaN losses."""
    if t.is_floating_point() and not torch.isfinite(t).all():
        r = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(1).nonzero()[0])
        raise GraphError(f"{name}: expected finite values, got nan/inf in row {r}")


def _check_index(name: str, idx: Any, n: int | None, what: str) -> None:
    """A 1-D integer tensor with ids >= 0 (and < n when n is given)."""
    if not isinstance(idx, Tensor) or idx.dim() != 1 or idx.is_floating_point() or idx.is_complex() \
            or idx.dtype == torch.bool:
        got = f"shape {tuple(idx.shape)} dtype {idx.dtype}" if isinstance(idx, Tensor) else type(idx).__name__
        raise GraphError(f"{name}: expected a 1-D integer index tensor, got {got}")
    if idx.numel() and idx.min() < 0:
        raise GraphError(f"{name}: {what} {int(idx.min())} out of range, expected >= 0")
    if n is not None and idx.numel() and idx.max() >= n:
        raise GraphError(f"{name}: {what} out of range 0..{n - 1}, got {int(idx.max())}")


def _number(val: Any, what: str) -> float:
    try:
        return float(val)
    except (TypeError, ValueError):
        raise GraphError(f"{what} = {val!r} is not a number") from None


@dataclass
class Graph:
    """A graph for graphnet: adjacency, features, labels and splits.

    Attributes:
        A: (N_dst, N_src) dgl.sparse matrix, ``A[i, j]`` = weight of edge j -> i. Square for most data;
            (num_users + num_items) square for recommendation, built symmetric.
        X: (N, F) node features or None (featureless graphs, e.g. KGs, recommendation).
        y: (N,) integer labels, (N, C) multi-label targets, or None.
        splits: named node index tensors, e.g. ``{"train": (n_tr,), "val": ..., "test": ...}``.
        edge_splits: named edge sets for link tasks: (M, 2) ``(src, dst)`` pairs, or (M, 3)
            ``(head, rel, tail)`` triples for KGs; negatives under ``"<split>_neg"``.
        edge_feat: (E, d) features aligned with A's nonzeros, or None.
        edge_type: (E,) relation ids aligned with A's nonzeros, or None.
        name: dataset name; meta: small plain dict (num_users, vocabularies, citation, ...).
    """

    A: SparseMatrix
    X: Tensor | None = None
    y: Tensor | None = None
    splits: dict[str, Tensor] = field(default_factory=dict)
    edge_splits: dict[str, Tensor] = field(default_factory=dict)
    edge_feat: Tensor | None = None
    edge_type: Tensor | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.A, SparseMatrix):
            raise GraphError(f"A: expected a dgl.sparse.SparseMatrix, got {type(self.A).__name__}")
        n_dst, n_src = self.A.shape
        if self.X is not None:
            _check_tensor("X", self.X, "a (N, F) tensor", dims=(2,))
            if self.X.shape[0] != n_src:
                raise GraphError(f"X: expected {n_src} rows (one per node), got shape {tuple(self.X.shape)}")
            _check_finite("X", self.X)
        if self.y is not None:
            _check_tensor("y", self.y, "an (N,) or (N, C) tensor", dims=(1, 2))
            if self.y.shape[0] != n_dst:
                raise GraphError(f"y: expected {n_dst} entries (one per node), got shape "
                                 f"{tuple(self.y.shape)}")
        for name, t in (("edge_feat", self.edge_feat), ("edge_type", self.edge_type)):
            if t is not None:
                if name == "edge_type":
                    _check_tensor(name, t, "an (E,) tensor, one relation id per edge", dims=(1,))
                else:  # layers read edge_feat.shape[1]
                    _check_tensor(name, t, "an (E, d) tensor, one row per edge (1-D: reshape to (E, 1))",
                                  dims=(2,))
                if t.shape[0] != self.A.nnz:
                    raise GraphError(f"{name}: expected {self.A.nnz} rows (one per edge), got "
                                     f"{tuple(t.shape)}")
        if self.edge_feat is not None:
            _check_finite("edge_feat", self.edge_feat)
        if self.edge_type is not None:
            _check_index("edge_type", self.edge_type, None, "relation id")
        for name, idx in self.splits.items():
            _check_index(f"splits[{name!r}]", idx, n_dst, "node index")

    # ------------------------------------------------------------------ basic properties
    @property
    def num_nodes(self) -> int:
        return self.A.shape[0]

    @property
    def num_edges(self) -> int:
        """Stored (directed) edges, i.e. nonzeros of A; an undirected pair counts twice."""
        return self.A.nnz

    @property
    def src(self) -> Tensor:
        return self.A.col

    @property
    def dst(self) -> Tensor:
        return self.A.row

    @property
    def edge_weight(self) -> Tensor:
        return self.A.val

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (dataclasses.replace, re-validated)."""
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str) -> Graph:
        """Move every tensor (and A) to ``device``."""
        move = lambda t: t.to(device) if isinstance(t, Tensor) else t  # noqa: E731
        return dataclasses.replace(
            self, A=self.A.to(device), X=move(self.X), y=move(self.y),
            splits={k: move(v) for k, v in self.splits.items()},
            edge_splits={k: move(v) for k, v in self.edge_splits.items()},
            edge_feat=move(self.edge_feat), edge_type=move(self.edge_type))

    # ------------------------------------------------------------------ edge-set transforms
    def _with_edges(self, row: Tensor, col: Tensor, val: Tensor, keep: Tensor | None = None) -> Graph:
        """New graph with A built from (row, col, val); ``keep`` indexes old edge data for the new edges."""
        A = dglsp.spmatrix(torch.stack([row, col]), val, self.A.shape)
        pick = lambda t: None if t is None else (t if keep is None else t[keep])  # noqa: E731
        return dataclasses.replace(self, A=A, edge_feat=pick(self.edge_feat), edge_type=pick(self.edge_type))

    def symmetrize(self, reduce: str = "max") -> Graph:
        """Make every edge go both ways and merge duplicates (edges come out coalesced, row-major).

        ``reduce="max"`` (default): A <- entrywise max over the copies of each (i, j) in A and A^T,
        so an unweighted graph stays 0/1 however its file lists a pair (once, twice, or repeated).
        ``reduce="sum"``: A <- A + A^T - diag(A) with duplicates summed (a pair listed once with
        weight w in each direction ends up with 2w; a self-loop is its own reverse and keeps w).
        """
        if self.A.shape[0] != self.A.shape[1]:
            raise GraphError(f"symmetrize: expected a square adjacency, got shape {self.A.shape}")
        if self.edge_feat is not None or self.edge_type is not None:
            raise GraphError("symmetrize: edge features/types have no defined reverse; add reverse "
                             "relations explicitly")
        row, col, val = self.A.row, self.A.col, self.A.val
        rev = row != col  # self-loops are not copied: they are their own reverse
        both = (torch.cat([row, col[rev]]), torch.cat([col, row[rev]]), torch.cat([val, val[rev]]))
        g = self._with_edges(*both)
        return g.coalesce(reduce=reduce)

    def add_self_loops(self, weight: float = 1.0) -> Graph:
        """Add a self-loop of ``weight`` to every node that has none (existing self-loops are kept)."""
        from graphnet import ops

        if self.edge_feat is not None or self.edge_type is not None:
            raise GraphError("add_self_loops: graphs with edge features/types need explicit loop data")
        return dataclasses.replace(self, A=ops.add_self_loops(self.A, weight))

    def remove_self_loops(self) -> Graph:
        """Drop every edge i -> i (and its edge data)."""
        keep = (self.A.row != self.A.col).nonzero().squeeze(1)
        return self._with_edges(self.A.row[keep], self.A.col[keep], self.A.val[keep], keep)

    def coalesce(self, reduce: str = "sum") -> Graph:
        """Merge duplicate edges, sorting edges row-major. Weights of duplicates are summed (the
        convention of torch/dgl ``coalesce``), or their maximum with ``reduce="max"``.

        Multi-relational graphs keep one edge per (dst, src, type); edge features cannot be merged.
        """
        if reduce not in ("sum", "max"):
            raise GraphError(f"coalesce: reduce must be 'sum' or 'max', got {reduce!r}")
        if self.edge_feat is not None:
            raise GraphError("coalesce: edge features of duplicate edges cannot be merged")
        n_dst, n_src = self.A.shape
        row, col, val = self.A.row, self.A.col, self.A.val
        key = row * n_src + col
        if self.edge_type is not None:
            key = key * (int(self.edge_type.max()) + 1 if self.edge_type.numel() else 1) + self.edge_type
        uniq, inv = torch.unique(key, return_inverse=True)  # sorted: row-major order
        first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
        first = first.scatter_reduce(0, inv, torch.arange(key.numel(), device=key.device), "amin")
        out_shape = (uniq.numel(),) + tuple(val.shape[1:])
        agg = torch.zeros(out_shape, dtype=val.dtype, device=val.device)
        if reduce == "sum":
            agg = agg.index_add(0, inv, val)
        else:
            index = inv.view((-1,) + (1,) * (val.dim() - 1)).expand_as(val)
            agg = agg.scatter_reduce(0, index, val, "amax", include_self=False)
        g = self._with_edges(row[first], col[first], agg, first)
        return g

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_edges(cls, src: Any, dst: Any, num_nodes: int | None = None, weight: Any = None,
                   **fields: Any) -> Graph:
        """Graph with one edge src[e] -> dst[e] of weight ``weight[e]`` (default 1)."""
        return cls(A=adjacency(src, dst, num_nodes, weight), **fields)

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int | None = None, edge_weight: Any = None,
                        **fields: Any) -> Graph:
        """From a PyG-style ``edge_index`` (2, E): row 0 = source, row 1 = target (flow source_to_target)."""
        edge_index = torch.as_tensor(edge_index)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise GraphError(f"edge_index: expected shape (2, E), got {tuple(edge_index.shape)}")
        return cls.from_edges(edge_index[0], edge_index[1], num_nodes, edge_weight, **fields)

    @classmethod
    def from_networkx(cls, G: Any, weight: str | None = "weight", **fields: Any) -> Graph:
        """From a networkx graph; nodes are numbered in ``G.nodes`` order (stored in meta["node_names"]).

        Undirected graphs get both directions of every edge. ``weight`` names the edge attribute used
        as the weight (missing -> 1); ``weight=None`` ignores attributes.
        """
        if not all(hasattr(G, a) for a in ("nodes", "edges", "is_directed")):
            raise GraphError(f"from_networkx: expected a networkx graph, got {type(G).__name__}")
        nodes = list(G.nodes)
        index = {v: i for i, v in enumerate(nodes)}
        src, dst, w = [], [], []
        for u, v, data in G.edges(data=True):
            wt = _number(data.get(weight, 1.0), f"from_networkx: edge ({u!r}, {v!r}): attribute {weight!r}") \
                if weight is not None else 1.0
            src.append(index[u]), dst.append(index[v]), w.append(wt)
            if not G.is_directed() and u != v:
                src.append(index[v]), dst.append(index[u]), w.append(wt)
        meta = dict(fields.pop("meta", {}))
        meta.setdefault("node_names", nodes)
        return cls.from_edges(src, dst, len(nodes), torch.tensor(w), meta=meta, **fields)

    @classmethod
    def from_scipy(cls, M: Any, **fields: Any) -> Graph:
        """From a scipy.sparse matrix with ``M[u, v]`` = weight of edge u -> v (networkx convention)."""
        import scipy.sparse

        if not scipy.sparse.issparse(M):
            raise GraphError(f"from_scipy: expected a scipy.sparse matrix, got {type(M).__name__} "
                             "(wrap a dense array in scipy.sparse.coo_array)")
        coo = M.tocoo()
        if coo.shape[0] != coo.shape[1]:
            raise GraphError(f"from_scipy: expected a square matrix, got shape {coo.shape}")
        # the numpy array, not a Tensor: from_edges converts arrays (scipy's float64) to the float32 default
        return cls.from_edges(coo.row, coo.col, coo.shape[0], coo.data, **fields)

    @classmethod
    def from_dgl(cls, g: Any, weight: str | None = None, **fields: Any) -> Graph:
        """From a homogeneous DGLGraph; ``weight`` names an edge feature in g.edata used as the weight.

        DGL's dataset conventions (the names ``to_dgl`` writes) are adopted unless ``fields`` gives the
        field: ``ndata["feat"]`` -> X, ``ndata["label"]`` -> y, every boolean (N,) ``ndata["<s>_mask"]``
        -> ``splits[s]`` (the ids where the mask is true; s = train/val/test in DGL's datasets),
        ``edata["feat"]`` -> edge_feat ((E,) taken as (E, 1)), ``edata["etype"]`` -> edge_type. Edge order
        is kept, so edge data stays aligned. ``to_dgl`` stores the weights under "w": pass ``weight="w"``
        to get them back (by default every weight is 1, as for a DGL graph without weights).
        """
        if not all(hasattr(g, a) for a in ("ntypes", "canonical_etypes", "edata", "edges")):
            raise GraphError(f"from_dgl: expected a DGLGraph, got {type(g).__name__}")
        if len(g.ntypes) != 1 or len(g.canonical_etypes) != 1:
            raise GraphError(f"from_dgl: expected a homogeneous graph, got node types {list(g.ntypes)} and "
                             f"edge types {list(g.canonical_etypes)} (convert with dgl.to_homogeneous)")
        if weight is not None and weight not in g.edata:
            raise GraphError(f"from_dgl: no edge feature {weight!r} in g.edata (has {list(g.edata.keys())})")
        src, dst = g.edges()
        w = g.edata[weight] if weight is not None else None
        adopted: dict[str, Any] = {}
        for data, key, name in ((g.ndata, "feat", "X"), (g.ndata, "label", "y"),
                                (g.edata, "feat", "edge_feat"), (g.edata, "etype", "edge_type")):
            if key in data and name not in fields:
                adopted[name] = data[key]
        if adopted.get("edge_feat") is not None and adopted["edge_feat"].dim() == 1:
            adopted["edge_feat"] = adopted["edge_feat"].unsqueeze(1)
        splits = {k[:-len("_mask")]: m.nonzero().view(-1) for k, m in g.ndata.items()
                  if k.endswith("_mask") and m.dtype == torch.bool and m.dim() == 1}
        if splits and "splits" not in fields:
            adopted["splits"] = splits
        return cls.from_edges(src, dst, g.num_nodes(), w, **adopted, **fields)

    # ------------------------------------------------------------------ exporters
    def edge_index(self) -> Tensor:
        """PyG-style (2, E) long tensor, row 0 = source, row 1 = target."""
        return torch.stack([self.A.col, self.A.row])

    def to_scipy(self) -> Any:
        """scipy.sparse.coo_array with M[u, v] = weight of edge u -> v (duplicates kept)."""
        import scipy.sparse as sp

        v = self.A.val.detach().cpu().numpy()
        if v.ndim != 1:
            raise GraphError(f"to_scipy: expected scalar edge weights, got values of shape {v.shape}")
        return sp.coo_array((v, (self.A.col.cpu().numpy(), self.A.row.cpu().numpy())),
                            shape=(self.A.shape[1], self.A.shape[0]))

    def to_networkx(self, weight: str = "weight") -> Any:
        """networkx.DiGraph (or MultiDiGraph when duplicate edges exist) with the weight as attribute."""
        import networkx as nx

        multi = self.A.has_duplicate()
        G = nx.MultiDiGraph() if multi else nx.DiGraph()
        G.add_nodes_from(range(self.num_nodes))
        w = self.A.val.detach().cpu().tolist()
        edges = zip(self.A.col.tolist(), self.A.row.tolist(), w, strict=True)
        G.add_weighted_edges_from(edges, weight=weight)
        return G

    def to_dgl(self, weight: str = "w") -> Any:
        """DGLGraph with edges src -> dst (in A's order), the weights in ``g.edata[weight]``, edge_feat and
        edge_type in ``edata["feat"]`` / ``["etype"]``, X and y in ``ndata["feat"]`` / ``["label"]``, and
        each node split s in a boolean ``ndata["<s>_mask"]`` (DGL's dataset names; ``from_dgl`` reads them).
        """
        import dgl

        g = dgl.graph((self.A.col, self.A.row), num_nodes=self.num_nodes)
        g.edata[weight] = self.A.val
        if self.edge_feat is not None:
            g.edata["feat"] = self.edge_feat
        if self.edge_type is not None:
            g.edata["etype"] = self.edge_type
        if self.X is not None:
            g.ndata["feat"] = self.X
        if self.y is not None:
            g.ndata["label"] = self.y
        for name, idx in self.splits.items():
            mask = torch.zeros(self.num_nodes, dtype=torch.bool, device=idx.device)
            g.ndata[f"{name}_mask"] = mask.index_fill(0, idx, True)
        return g
