"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the original ``ind.<name>.*`` pickles.

Files (Yang et al. 2016, https://github.com/kimiyoung/planetoid): ``x``/``y`` = the labelled training
nodes, ``allx``/``ally`` = every non-test node (the first ``len(y)`` rows are the training nodes),
``tx``/``ty`` = test nodes, ``test.index`` = the graph ids of the test rows (one per line), ``graph`` =
dict node -> neighbour list. Parsing follows Kipf's ``load_data`` (tkipf/gcn ``utils.py``):

- node features = ``vstack(allx, tx)`` with the test rows moved to their ids in ``test.index``;
- CiteSeer has test ids with no ``tx``/``ty`` row (isolated nodes missing from ``test.index``): ``tx``/``ty``
  are zero-padded to the full test range, so those nodes get all-zero features, label 0 (argmax of a zero
  row, as in Kipf's and PyG's loaders) and are in no split (listed in ``meta["unlabeled_nodes"]``);
- public split: train = the ``len(y)`` nodes (20 per class), val = the next 500, test = ``test.index``;
- adjacency from the dict, symmetrized with ``reduce="max"`` (0/1 weights: duplicate entries merge);
  self-loops present in the file are kept (CiteSeer 124, PubMed 3), none added.

Pickles are read with ``safe_pickle`` (no code execution). Option ``features=false`` skips ``allx``/``tx``
(X = None), so the structure and labels load from a folder that lacks the feature files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graphnet.data.safe_pickle import load_pickle
from graphnet.errors import DataError


def _read(card: dict, raw: Path, part: str) -> Any:
    fname = f"ind.{card['options'].get('prefix', card['name'])}.{part}"
    path = raw / fname
    if not path.is_file():
        raise DataError(f"dataset {card['name']!r}: file {fname} is missing from {raw}")
    return load_pickle(path, f"dataset {card['name']!r}: file {fname}")


def _sparse_rows(card: dict, obj: Any, part: str) -> Any:
    """A pickled feature matrix as a validated scipy CSR matrix (rebuilt from its arrays)."""
    import scipy.sparse as sp

    fname = f"ind.{card['options'].get('prefix', card['name'])}.{part}"
    try:
        if isinstance(obj, np.ndarray) and obj.ndim == 2:
            return sp.csr_matrix(obj.astype(np.float32))
        if not isinstance(obj, sp.csr_matrix):
            raise TypeError(f"expected a scipy CSR matrix, got {type(obj).__name__}")
        m = sp.csr_matrix((obj.data, obj.indices, obj.indptr), shape=obj.shape)
        m.check_format(full_check=True)
        return m
    except Exception as e:
        raise DataError(f"dataset {card['name']!r}: file {fname}: malformed feature matrix ({e})") from None


def _labels(card: dict, obj: Any, part: str) -> np.ndarray:
    fname = f"ind.{card['options'].get('prefix', card['name'])}.{part}"
    if not isinstance(obj, np.ndarray) or obj.ndim != 2 or obj.dtype.kind not in "iufb":
        raise DataError(
            f"dataset {card['name']!r}: file {fname}: expected a 2-D one-hot label array, got "
            f"{type(obj).__name__} {getattr(obj, 'shape', '')}"
        )
    return obj


def load_planetoid(
    card: dict,
    raw_dir: Path,
    features: bool = True,
    normalize_features: bool = False,
    prefix: str | None = None,
) -> Any:
    """Load a Planetoid dataset with the public split (see module docstring).

    Args:
        features: read ``allx``/``tx``; False gives X = None (structure + labels only).
        normalize_features: divide each feature row by its sum (Kipf's preprocessing). This function's
            default keeps the raw 0/1 (Cora/CiteSeer) or TF-IDF (PubMed) values; the catalog cards set it
            to true, so ``load("cora")`` and configs get row-normalized features.
        prefix: file prefix (``ind.<prefix>.*``), default the card name.

    Shapes: X (N, F) float32, y (N,) long, splits train (20 C,), val (500,), test (1000,).
    """
    import torch

    from graphnet.graph import Graph

    name = card["name"]
    card = {**card, "options": {**card.get("options", {}), "prefix": prefix or name}}
    p = card["options"]["prefix"]
    y = _labels(card, _read(card, raw_dir, "y"), "y")
    ally = _labels(card, _read(card, raw_dir, "ally"), "ally")
    ty = _labels(card, _read(card, raw_dir, "ty"), "ty")
    graph = _read(card, raw_dir, "graph")
    if not isinstance(graph, dict):
        raise DataError(
            f"dataset {name!r}: file ind.{p}.graph: expected a dict of adjacency lists, got "
            f"{type(graph).__name__}"
        )
    test_index = _read_index(name, raw_dir / f"ind.{p}.test.index", f"ind.{p}.test.index")
    if len(test_index) != ty.shape[0]:
        raise DataError(
            f"dataset {name!r}: file ind.{p}.test.index has {len(test_index)} ids but ind.{p}.ty "
            f"has {ty.shape[0]} rows"
        )
    test_sorted = np.sort(test_index)
    lo, hi = int(test_sorted[0]), int(test_sorted[-1])
    n_train, n_all = y.shape[0], ally.shape[0]
    if lo != n_all:
        raise DataError(
            f"dataset {name!r}: file ind.{p}.test.index: smallest test id {lo} should equal the "
            f"number of ally rows ({n_all})"
        )
    n_full = hi - lo + 1  # CiteSeer: more than len(test_index); the gaps are isolated nodes
    ty_ext = np.zeros((n_full, ty.shape[1]), dtype=ty.dtype)
    ty_ext[test_sorted - lo] = ty
    labels = np.concatenate([ally, ty_ext])
    labels[test_index] = labels[test_sorted]
    num_nodes = labels.shape[0]

    X = None
    if features:
        import scipy.sparse as sp

        allx = _sparse_rows(card, _read(card, raw_dir, "allx"), "allx")
        tx = _sparse_rows(card, _read(card, raw_dir, "tx"), "tx")
        if allx.shape[0] != n_all or tx.shape[0] != len(test_index) or allx.shape[1] != tx.shape[1]:
            raise DataError(
                f"dataset {name!r}: files ind.{p}.allx/tx: shapes {allx.shape}/{tx.shape} do not "
                f"match ally ({n_all} rows) and test.index ({len(test_index)} ids)"
            )
        tx_ext = sp.lil_matrix((n_full, tx.shape[1]), dtype=np.float32)
        tx_ext[test_sorted - lo, :] = tx
        feats = sp.vstack([allx, tx_ext.tocsr()]).tocsr()
        feats = feats[np.concatenate([np.arange(lo), _reorder(test_index, test_sorted, lo, n_full)])]
        dense = np.asarray(feats.todense(), dtype=np.float32)
        if normalize_features:
            s = dense.sum(1, keepdims=True)
            dense = np.divide(dense, s, out=np.zeros_like(dense), where=s > 0)
        X = torch.from_numpy(dense)

    src, dst = [], []
    for u, nbrs in graph.items():
        if not isinstance(u, int) or not isinstance(nbrs, list) or not all(isinstance(v, int) for v in nbrs):
            raise DataError(
                f"dataset {name!r}: file ind.{p}.graph: entry {u!r}: expected an integer node id "
                f"mapped to a list of integer ids"
            )
        for v in nbrs:
            src.append(u)
            dst.append(v)
    src_a, dst_a = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    bad = (src_a < 0) | (src_a >= num_nodes) | (dst_a < 0) | (dst_a >= num_nodes)
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise DataError(
            f"dataset {name!r}: file ind.{p}.graph: edge {src_a[i]} -> {dst_a[i]} out of range "
            f"0..{num_nodes - 1}"
        )
    missing = np.setdiff1d(np.arange(lo, hi + 1), test_index)
    g = Graph.from_edges(src_a, dst_a, num_nodes).symmetrize(reduce="max")
    splits = {
        "train": torch.arange(n_train),
        "val": torch.arange(n_train, min(n_train + 500, n_all)),  # Kipf: the 500 nodes after the train nodes
        "test": torch.from_numpy(test_sorted.astype(np.int64)),
    }
    meta = {
        "unlabeled_nodes": missing.tolist(),
        "citation": card.get("citation", ""),
        "symmetrized": "max",
        "self_loops": "kept from file",
    }
    return g.replace(
        X=X, y=torch.from_numpy(labels.argmax(1).astype(np.int64)), splits=splits, name=name, meta=meta
    )


def _reorder(test_index: np.ndarray, test_sorted: np.ndarray, lo: int, n_full: int) -> np.ndarray:
    """Gather order for the stacked test block, Kipf's ``features[test_index] = features[sorted]``.

    Stacked row ``test_sorted[k]`` holds ``tx[k]`` (tx_ext slot ``test_sorted[k] - lo``), and node
    ``test_index[k]`` must receive it; padded (missing) ids keep their own, all-zero slot.
    """
    order = np.arange(lo, lo + n_full)
    order[test_index - lo] = test_sorted
    return order


def _read_index(name: str, path: Path, fname: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"dataset {name!r}: file {fname} is missing from {path.parent}")
    ids = []
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        try:
            ids.append(int(s))
        except ValueError:
            raise DataError(
                f"dataset {name!r}: file {fname}, line {lineno}: expected an integer node id, got {s[:40]!r}"
            ) from None
    if not ids:
        raise DataError(f"dataset {name!r}: file {fname} holds no ids")
    return np.asarray(ids, dtype=np.int64)
