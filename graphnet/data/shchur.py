"""Shchur et al. (2018) npz graphs: Amazon Computers/Photo, Coauthor CS/Physics (and any npz in that format).

File format (https://github.com/shchur/gnn-benchmark, ``data/npz``): CSR arrays ``adj_data, adj_indices,
adj_indptr, adj_shape`` (``adj[u, v]`` = edge u -> v), ``attr_*`` (node features, CSR) or a dense
``attr_matrix``, ``labels`` (N,), optional ``class_names``. Read with ``allow_pickle=False``.

Processing, as Shchur et al.'s ``standardize`` and PyG's ``read_npz``:

- the stored adjacency is directed and not symmetric (Amazon Photo: 143,663 entries): symmetrize with
  ``reduce="max"`` (weights stay 0/1) and drop self-loops (``remove_self_loops=true``, default; Photo has 1);
- ``lcc=true`` keeps the largest connected component (nodes renumbered in their original order; the paper
  uses the LCC; the default ``lcc=false`` keeps every node, like PyG, so statistics match PyG's);
- split ``shchur_split``: per class 20 train / 30 val at random (``seed``), all other nodes test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graphnet.data.generic import not_found
from graphnet.errors import DataError


def _npz_member(card: dict) -> str:
    """The npz a card points at: an archive member or a plain file ending in .npz."""
    for f in [*card.get("files", []), *card.get("unpinned", [])]:
        for rel in [*f.get("members", {}), f["name"]]:
            if rel.endswith(".npz"):
                return rel
    raise DataError(f"dataset {card['name']!r}: the card lists no .npz file")


def read_npz(path: Path, what: str) -> dict[str, Any]:
    """Arrays of a Shchur-format npz as scipy matrices: {"adj", "attr" (or None), "labels", "class_names"}."""
    import scipy.sparse as sp

    if not path.is_file():
        raise not_found(what, path)
    try:
        with np.load(path, allow_pickle=False) as d:
            keys = set(d.files)

            def csr(prefix: str) -> Any:
                return sp.csr_matrix(
                    (d[f"{prefix}_data"], d[f"{prefix}_indices"], d[f"{prefix}_indptr"]),
                    shape=tuple(d[f"{prefix}_shape"]),
                )

            missing = [
                k for k in ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "labels") if k not in keys
            ]
            if missing:
                raise DataError(
                    f"{what}: not a Shchur-format npz, missing arrays {missing} (has {sorted(keys)})"
                )
            adj = csr("adj")
            adj.check_format(full_check=True)  # out-of-range indices, non-monotone indptr: refused here
            if "attr_data" in keys:
                attr = csr("attr")
                attr.check_format(full_check=True)
            elif "attr_matrix" in keys:
                attr = sp.csr_matrix(d["attr_matrix"])
            else:
                attr = None
            labels = d["labels"]
            class_names = [str(c) for c in d["class_names"]] if "class_names" in keys else None
    except DataError:
        raise
    except Exception as e:  # zip/format errors, object arrays (pickles), bad CSR arrays
        raise DataError(f"{what}: cannot read npz ({type(e).__name__}: {e})") from None
    n = adj.shape[0]
    if adj.shape[0] != adj.shape[1]:
        raise DataError(f"{what}: adjacency must be square, got shape {adj.shape}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(f"{what}: labels must have shape ({n},), got {labels.shape}")
    integral = labels.dtype.kind in "iu" or (
        labels.dtype.kind == "f" and np.isfinite(labels).all() and np.all(labels == np.round(labels)))
    if not integral:
        raise DataError(f"{what}: labels must be integers, got dtype {labels.dtype}"
                        + (" with fractional or non-finite values" if labels.dtype.kind == "f" else ""))
    if attr is not None and attr.shape[0] != n:
        raise DataError(f"{what}: attributes have {attr.shape[0]} rows, expected {n}")
    if not np.isfinite(adj.data).all() or (attr is not None and not np.isfinite(attr.data).all()):
        raise DataError(f"{what}: adjacency or attributes contain NaN or inf")
    return {"adj": adj, "attr": attr, "labels": labels, "class_names": class_names}


def graph_from_npz(
    arrays: dict[str, Any],
    name: str,
    lcc: bool = False,
    remove_self_loops: bool = True,
    seed: int = 0,
    train_per_class: int = 20,
    val_per_class: int = 30,
) -> Any:
    """Build the Graph from ``read_npz`` arrays (see module docstring)."""
    import scipy.sparse as sp
    import torch

    from graphnet.data.splits import shchur_split
    from graphnet.graph import Graph

    adj, attr, labels = arrays["adj"], arrays["attr"], arrays["labels"]
    coo = adj.tocoo()
    n = adj.shape[0]
    g = Graph.from_edges(coo.row, coo.col, n, torch.as_tensor(coo.data, dtype=torch.float32))
    g = g.symmetrize(reduce="max")
    if remove_self_loops:
        g = g.remove_self_loops()
    keep = np.arange(n)
    if lcc:
        sym = sp.csr_matrix((np.ones(g.num_edges), (g.A.row.numpy(), g.A.col.numpy())), shape=(n, n))
        _, comp = sp.csgraph.connected_components(sym, directed=False)
        sizes = np.bincount(comp)
        keep = np.flatnonzero(comp == sizes.argmax())
        new_id = np.full(n, -1, dtype=np.int64)
        new_id[keep] = np.arange(keep.size)
        row, col = new_id[g.A.row.numpy()], new_id[g.A.col.numpy()]
        m = (row >= 0) & (col >= 0)
        g = Graph.from_edges(col[m], row[m], keep.size, g.A.val[torch.from_numpy(m)])
    X = None
    if attr is not None:
        X = torch.from_numpy(np.asarray(attr[keep].todense(), dtype=np.float32))
    y = torch.from_numpy(labels[keep].astype(np.int64))
    splits = shchur_split(y, seed=seed, train_per_class=train_per_class, val_per_class=val_per_class)
    meta = {
        "class_names": arrays["class_names"],
        "lcc": lcc,
        "symmetrized": "max",
        "self_loops": "removed" if remove_self_loops else "kept from file",
        "node_ids": keep.tolist() if lcc else None,
    }
    return g.replace(X=X, y=y, splits=splits, name=name, meta=meta)


def load_shchur(
    card: dict,
    raw_dir: Path,
    lcc: bool = False,
    remove_self_loops: bool = True,
    seed: int = 0,
    train_per_class: int = 20,
    val_per_class: int = 30,
) -> Any:
    """Load a catalog npz dataset (module docstring). Shapes: X (N, F) float32, y (N,) long."""
    rel = _npz_member(card)
    arrays = read_npz(raw_dir / rel, f"dataset {card['name']!r}: file {rel}")
    g = graph_from_npz(arrays, card["name"], lcc, remove_self_loops, seed, train_per_class, val_per_class)
    return g.replace(meta={**g.meta, "citation": card.get("citation", "")})
