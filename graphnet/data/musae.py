"""MUSAE graphs (Rozemberczki et al. 2021): Facebook page-page, Twitch (DE/EN/ES/FR/PT/RU), LastFM Asia,
GitHub.

Each dataset is three files (https://github.com/benedekrozemberczki/MUSAE, SNAP ``musae_*``):

- ``*_edges.csv``: header then ``u,v`` per line, each undirected edge listed once;
- ``*_target.csv``: header, one row per node; the node id column (``id``, or ``new_id`` for Twitch) and
  the label column (``page_type``, ``mature``, ``target``, ``ml_target``) are card options;
- ``*.json`` features: ``{"node id": [active feature ids]}`` -> multi-hot X (N, max id + 1), float32.

Graph: edges symmetrized with ``reduce="max"`` (0/1), self-loops kept as the file has them (Facebook: 179),
so ``num_edges`` = 2 x (undirected non-loop edges) + loops. Labels: the label column's distinct values,
sorted, numbered 0..C-1 (names in ``meta["class_names"]``). Split: ``stratified_split`` with
``train_frac`` / ``val_frac`` per class (default 0.1 / 0.1, the rest test) and ``seed``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.data.generic import MAX_NODE_ID, is_int, read_text, strict_int
from graphnet.errors import DataError


def _file(card: dict, suffix: str) -> str:
    for f in [*card.get("files", []), *card.get("unpinned", [])]:
        if f["name"].endswith(suffix):
            return f["name"]
    raise DataError(f"dataset {card['name']!r}: the card lists no file ending in {suffix!r}")


def read_edges_csv(path: Path, what: str) -> np.ndarray:
    """(E, 2) int64 from a ``u,v`` CSV with one header line; errors name the line."""
    text = read_text(path, what)
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{what}: file is empty, expected a header line and 'u,v' rows")
    head = [p.strip() for p in lines[0].split(",")]
    if len(head) == 2 and all(map(is_int, head)):  # skipping it would drop an edge without a word
        raise DataError(f"{what}, line 1: expected a header such as 'id_1,id_2', got the edge "
                        f"{lines[0][:60]!r}")
    try:  # fast path: a clean numeric body
        with warnings.catch_warnings():  # an empty body is handled below, not worth a UserWarning
            warnings.simplefilter("ignore", UserWarning)
            arr = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
        if arr.shape[1] == 2 and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= MAX_NODE_ID)):
            return arr.reshape(-1, 2)
    except Exception:  # anything unusual: the line-by-line parser below names the bad line
        pass
    out = []
    for lineno, line in enumerate(lines[1:], 2):  # slow path: find the bad line
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise DataError(
                f"{what}, line {lineno}: expected 2 comma-separated node ids, got {len(parts)} "
                f"fields: {line[:60]!r}"
            )
        try:
            u, v = strict_int(parts[0].strip()), strict_int(parts[1].strip())
        except ValueError:
            raise DataError(f"{what}, line {lineno}: expected integer node ids, got {line[:60]!r}") from None
        if min(u, v) < 0 or max(u, v) > MAX_NODE_ID:
            raise DataError(f"{what}, line {lineno}: node ids must be in 0..{MAX_NODE_ID}, got {line[:60]!r}")
        out.append((u, v))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _line_of_row(path: Path, k: int) -> int:
    """File line (1-based) of data row k of a CSV read by ``read_edges_csv``: the header and blank lines
    are skipped by both of its parsers, so row k is not simply line k + 2."""
    rows = (i for i, line in enumerate(path.read_text(errors="replace").splitlines()[1:], 2) if line.strip())
    return next(itertools.islice(rows, k, None))


def read_target_csv(path: Path, what: str, id_column: str, label_column: str) -> tuple[np.ndarray, list[str]]:
    """Node ids and raw label strings from a target CSV (header required)."""
    text = read_text(path, what)
    try:
        return _parse_target(io.StringIO(text, newline=""), what, id_column, label_column)
    except csv.Error as e:
        raise DataError(f"{what}: malformed CSV ({e})") from None


def _parse_target(f: Any, what: str, id_column: str, label_column: str) -> tuple[np.ndarray, list[str]]:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{what}: file is empty, expected a header with {id_column!r} and {label_column!r}")
    for col in (id_column, label_column):
        if col not in header:
            raise DataError(f"{what}, line 1: no column {col!r} in header {header}")
    i_id, i_lab = header.index(id_column), header.index(label_column)
    ids, labels = [], []
    for row in reader:
        lineno = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{what}, line {lineno}: expected {len(header)} fields, got {len(row)}")
        try:
            ids.append(strict_int(row[i_id].strip()))
            if not 0 <= ids[-1] <= MAX_NODE_ID:
                raise ValueError
        except ValueError:
            raise DataError(
                f"{what}, line {lineno}: column {id_column!r} must be an integer node id, got "
                f"{row[i_id][:40]!r}"
            ) from None
        labels.append(row[i_lab])
    return np.asarray(ids, dtype=np.int64), labels


def read_features_json(path: Path, what: str, num_nodes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, cols) of the active features and the feature count (max id + 1)."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{what}, line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DataError(
            f"{what}: expected a JSON object {{node id: [feature ids]}}, got {type(data).__name__}"
        )
    rows, cols = [], []
    for key, feats in data.items():
        try:
            node = strict_int(key)
        except ValueError:
            raise DataError(f"{what}: key {key!r} is not an integer node id") from None
        if not 0 <= node < num_nodes:
            raise DataError(f"{what}: node id {node} out of range 0..{num_nodes - 1}")
        if not isinstance(feats, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_NODE_ID for x in feats
        ):
            raise DataError(f"{what}: node {key}: expected a list of non-negative integer feature ids")
        rows.extend([node] * len(feats))
        cols.extend(feats)
    r, c = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    return r, c, int(c.max()) + 1 if c.size else 0


def _class_order(labels: set[str]) -> list[str]:
    """Class names in id order: by value when every label is an integer (LastFM's countries 0..17 keep
    their numbers, as in PyG), else as text (Facebook's page types, Twitch's True/False)."""
    try:
        return sorted(labels, key=strict_int)
    except ValueError:
        return sorted(labels)


def load_musae(
    card: dict,
    raw_dir: Path,
    id_column: str = "id",
    label_column: str = "target",
    seed: int = 0,
    train_frac: float = 0.1,
    val_frac: float = 0.1,
) -> Any:
    """Load a MUSAE dataset (module docstring). Shapes: X (N, F) float32 multi-hot, y (N,) long."""
    import torch

    from graphnet.data.splits import stratified_split
    from graphnet.graph import Graph

    name = card["name"]
    f_edges, f_target, f_feat = _file(card, "_edges.csv"), _file(card, "_target.csv"), _file(card, ".json")
    ids, raw_labels = read_target_csv(
        raw_dir / f_target, f"dataset {name!r}: file {f_target}", id_column, label_column
    )
    n = ids.size
    if n == 0 or not np.array_equal(np.sort(ids), np.arange(n)):
        raise DataError(
            f"dataset {name!r}: file {f_target}: column {id_column!r} must hold every id 0..N-1 "
            f"exactly once (got {n} rows)"
        )
    class_names = _class_order(set(raw_labels))
    index = {c: i for i, c in enumerate(class_names)}
    y = np.empty(n, dtype=np.int64)
    y[ids] = [index[c] for c in raw_labels]

    edges = read_edges_csv(raw_dir / f_edges, f"dataset {name!r}: file {f_edges}")
    if edges.size and edges.max() >= n:
        bad = int(np.flatnonzero((edges >= n).any(1))[0])
        raise DataError(
            f"dataset {name!r}: file {f_edges}, line {_line_of_row(raw_dir / f_edges, bad)}: node id "
            f"{int(edges[bad].max())} "
            f"out of range 0..{n - 1} (the target file has {n} nodes)"
        )
    rows, cols, F = read_features_json(raw_dir / f_feat, f"dataset {name!r}: file {f_feat}", n)
    if n * F > 2**31:  # a dense (N, F) float32 X beyond 8 GB means a bogus feature id, not a real dataset
        raise DataError(
            f"dataset {name!r}: file {f_feat}: largest feature id {F - 1} would make a dense X of "
            f"{n} x {F} floats; feature ids must be small consecutive integers"
        )
    X = torch.zeros(n, F)
    X[torch.from_numpy(rows), torch.from_numpy(cols)] = 1.0

    g = Graph.from_edges(edges[:, 0], edges[:, 1], n).symmetrize(reduce="max")
    yt = torch.from_numpy(y)
    splits = stratified_split(yt, train_frac=train_frac, val_frac=val_frac, seed=seed)
    meta = {
        "class_names": class_names,
        "label_column": label_column,
        "symmetrized": "max",
        "self_loops": "kept from file",
        "citation": card.get("citation", ""),
    }
    return g.replace(X=X, y=yt, splits=splits, name=name, meta=meta)
