"""Loaders for a user's own files (no catalog card, no download): edge lists / CSV, Shchur npz, triples,
interactions. From a config: ``[data] name = "edgelist"  path = "my_edges.csv"  weighted = true``.

Edge-list format (``load_edgelist``): one edge per line, ``src dst [weight]``, separated by commas (if the
first data line has one) or else by whitespace/tabs; blank lines and lines starting with ``#`` or ``%`` are
skipped; with integer ids, a first line whose ids are not numbers is a header (``header=None`` auto-detects).
With ``node_ids="names"`` no test can tell a header from an edge: the first line is an edge unless
``header=True`` (a warning names it when its two nodes occur nowhere else). Every error is a DataError naming
the file and the line.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from graphnet.errors import DataError

log = logging.getLogger(__name__)

MAX_NODE_ID = 2**31 - 1  # larger ids are almost surely a parse mistake and would overflow edge keys

# Python's int() also accepts "1_0", " 7 " and any Unicode digit ("\u0663" -> 3), so a garbled id would
# silently become another node: integers in data files must be plain ASCII digits with an optional sign.
_INT = re.compile(r"[+-]?[0-9]+")


def strict_int(tok: str) -> int:
    """``int(tok)`` for plain ASCII integers only; anything else raises ValueError (callers add file/line)."""
    if not _INT.fullmatch(tok):
        raise ValueError(f"not an integer: {tok!r}")
    return int(tok)


def not_found(what: str, path: Path, kind: str = "file") -> DataError:
    """The DataError for a missing user file or path; a relative one also shows where it was looked for."""
    where = "" if path.is_absolute() else f" (relative paths are read from the working directory: " \
                                           f"{path.resolve()})"
    return DataError(f"{what}: {kind} not found: {path}{where}")


def read_text(path: Path, what: str) -> str:
    """The file as UTF-8 text; a missing file or a bad byte is a DataError naming the file (and line)."""
    if not path.is_file():
        raise not_found(what, path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{what}, line {line}: not UTF-8 text (byte {data[e.start]:#x} at offset {e.start})"
        ) from None


def _parse_id(tok: str, what: str, lineno: int, line: str, num_nodes: int | None) -> int:
    try:
        v = strict_int(tok)
    except ValueError:
        raise DataError(
            f"{what}, line {lineno}: expected an integer node id, got {tok[:40]!r} in {line[:80]!r}"
        ) from None
    if v < 0 or v > MAX_NODE_ID or (num_nodes is not None and v >= num_nodes):
        hi = f"< {num_nodes}" if num_nodes is not None else f"<= {MAX_NODE_ID}"
        raise DataError(f"{what}, line {lineno}: node id {v} out of range (expected 0 <= id {hi})".rstrip())
    return v


def parse_edgelist(
    text: str,
    what: str,
    delimiter: str | None = None,
    header: bool | None = None,
    weighted: bool | None = None,
    node_ids: str = "int",
    num_nodes: int | None = None,
    allow_negative: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Parse edge-list text into (src, dst, weight or None, node names) (see module docstring).

    ``node_ids="int"``: ids are integers 0..N-1; ``"names"``: any tokens, numbered in order of first
    appearance (names returned). ``weighted=None``: a third column (fixed by the first data line) is the
    weight.
    """
    if node_ids not in ("int", "names"):
        raise DataError(f"{what}: node_ids must be 'int' or 'names', got {node_ids!r}")
    src: list[int] = []
    dst: list[int] = []
    wts: list[float] = []
    names: dict[str, int] = {}
    ncols = None
    first = True
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if delimiter is None:
            delimiter = "," if "," in line else " "
        parts = (
            [p.strip() for p in line.split(",")]
            if delimiter == ","
            else line.split()
            if delimiter == " "
            else [p.strip() for p in line.split(delimiter)]
        )
        if first:
            first, first_line = False, lineno
            is_header = header
            if header is None:  # auto: a header's first two fields are not numbers
                is_header = node_ids == "int" and len(parts) >= 2 and not all(is_int(p) for p in parts[:2])
            if is_header:
                continue
        if ncols is None:
            ncols = len(parts)
            if weighted is None:
                weighted = ncols == 3
            want = 3 if weighted else 2
            if ncols != want:
                raise DataError(
                    f"{what}, line {lineno}: expected {want} columns (src, dst"
                    f"{', weight' if weighted else ''}), got {ncols}: {line[:80]!r}"
                )
        if len(parts) != ncols:
            raise DataError(
                f"{what}, line {lineno}: expected {ncols} columns like the first edge line, got "
                f"{len(parts)}: {line[:80]!r}"
            )
        if node_ids == "int":
            u = _parse_id(parts[0], what, lineno, line, num_nodes)
            v = _parse_id(parts[1], what, lineno, line, num_nodes)
        else:
            if not parts[0] or not parts[1]:
                raise DataError(f"{what}, line {lineno}: empty node name in {line[:80]!r}")
            u = names.setdefault(parts[0], len(names))
            v = names.setdefault(parts[1], len(names))
            if num_nodes is not None and len(names) > num_nodes:
                k = u if u >= num_nodes else v
                raise DataError(f"{what}, line {lineno}: more than num_nodes={num_nodes} distinct node names "
                                f"({parts[0 if k == u else 1][:40]!r} is number {k + 1})")
        if weighted:
            try:
                w = float(parts[2])
            except ValueError:
                raise DataError(
                    f"{what}, line {lineno}: expected a numeric weight, got {parts[2][:40]!r}"
                ) from None
            if not math.isfinite(w):
                raise DataError(f"{what}, line {lineno}: weight must be finite, got {parts[2]!r}")
            if w < 0 and not allow_negative:
                raise DataError(
                    f"{what}, line {lineno}: negative weight {w} (pass allow_negative=True if intended)"
                )
            wts.append(w)
        src.append(u)
        dst.append(v)
    if not src:
        raise DataError(f"{what}: no edges found (empty file, or only comments/header)")
    s, d = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    if node_ids == "names" and header is None and len(s) > 1:
        # Names cannot tell a header from an edge; a header reads as an edge between two nodes that
        # occur nowhere else, which is worth a word (a real edge like that is rare).
        rest = np.concatenate([s[1:], d[1:]])
        if not np.isin([s[0], d[0]], rest).any():
            order = list(names)
            log.warning("%s, line %d: read as the edge %r -> %r, whose two nodes occur nowhere else; if it "
                        "is a header, pass header=true", what, first_line, order[s[0]], order[d[0]])
    return s, d, (np.asarray(wts, dtype=np.float64) if weighted else None), list(names)


def is_int(s: str) -> bool:
    """Whether ``strict_int`` accepts ``s`` (header detection: a header's fields are not integers)."""
    return _INT.fullmatch(s) is not None


def _read_labels(path: Path, n: int, node_index: dict[str, int] | None) -> np.ndarray:
    """``node,label`` lines (comma or whitespace; optional header) -> (N,) int64, -1 = unlabeled."""
    what = f"labels file {path}"
    text = read_text(Path(path), what)
    y = np.full(n, -1, dtype=np.int64)
    seen: dict[int, tuple[int, int]] = {}  # node -> (label, line): a conflicting repeat is an error
    first = True
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        parts = [p.strip() for p in line.split(",")] if "," in line else line.split()
        if first:
            first = False
            if len(parts) == 2 and not is_int(parts[1]):
                continue  # header
        if len(parts) != 2:
            raise DataError(f"{what}, line {lineno}: expected 2 columns (node, label), got {len(parts)}")
        if node_index is None:
            node = _parse_id(parts[0], what, lineno, line, n)
        elif parts[0] in node_index:
            node = node_index[parts[0]]
        else:
            raise DataError(f"{what}, line {lineno}: node {parts[0]!r} does not occur in the edge list")
        try:
            lab = strict_int(parts[1])
        except ValueError:
            raise DataError(
                f"{what}, line {lineno}: expected an integer class id, got {parts[1][:40]!r}"
            ) from None
        if lab < 0:
            raise DataError(f"{what}, line {lineno}: class ids must be >= 0, got {lab}")
        if lab >= n:  # also keeps huge ids out of int64 and out of a num_classes-wide output layer
            raise DataError(f"{what}, line {lineno}: class id {lab} >= number of nodes {n} "
                            "(class ids must be 0..C-1)")
        if node in seen and seen[node][0] != lab:
            old, old_line = seen[node]
            raise DataError(f"{what}, line {lineno}: node {parts[0]} already has label {old} "
                            f"(line {old_line}), got {lab}")
        seen[node] = (lab, lineno)
        y[node] = lab
    if (y < 0).all():
        raise DataError(f"{what}: no labels found (expected 'node,label' lines)")
    return y


def load_edgelist(
    path: str | Path,
    directed: bool = False,
    weighted: bool | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    node_ids: str = "int",
    num_nodes: int | None = None,
    reduce: str = "max",
    allow_negative: bool = False,
    labels: str | Path | None = None,
    seed: int = 0,
    train_frac: float = 0.1,
    val_frac: float = 0.1,
) -> Any:
    """A Graph from an edge-list / CSV file (module docstring).

    Undirected (default): symmetrized with ``reduce`` ("max": a pair listed in both directions or
    repeated keeps one weight; "sum": weights add up). Directed: duplicates merged with ``reduce``.
    Self-loops are kept. ``labels``: optional ``node,label`` file; labelled nodes get a seeded stratified
    split (``train_frac``/``val_frac`` per class, rest test). X = None (featureless).

    Shapes: A (N, N) with A[dst, src] = weight; y (N,) long with -1 for unlabeled nodes.
    """
    import torch

    from graphnet.data.splits import stratified_split
    from graphnet.graph import Graph

    path = Path(path)
    what = f"edge list {path}"
    if reduce not in ("max", "sum"):
        raise DataError(f"{what}: reduce must be 'max' or 'sum', got {reduce!r}")
    text = read_text(path, what)
    s, d, w, names = parse_edgelist(
        text, what, delimiter, header, weighted, node_ids, num_nodes, allow_negative
    )
    n = (
        num_nodes
        if num_nodes is not None
        else (len(names) if node_ids == "names" else int(max(s.max(), d.max())) + 1)
    )
    g = Graph.from_edges(s, d, n, None if w is None else torch.as_tensor(w, dtype=torch.float32))
    g = g.coalesce(reduce=reduce) if directed else g.symmetrize(reduce=reduce)
    meta: dict[str, Any] = {"source": str(path), "directed": directed}
    if names:
        meta["node_names"] = names
    y, splits = None, {}
    if labels is not None:
        y_np = _read_labels(Path(labels), n, {k: i for i, k in enumerate(names)} if names else None)
        y = torch.from_numpy(y_np)
        splits = stratified_split(y, train_frac=train_frac, val_frac=val_frac, seed=seed)
    return g.replace(y=y, splits=splits, name=path.stem, meta=meta)


def load_npz(
    path: str | Path,
    lcc: bool = False,
    remove_self_loops: bool = True,
    seed: int = 0,
    train_per_class: int = 20,
    val_per_class: int = 30,
    split: bool = True,
) -> Any:
    """A Graph from a Shchur-format npz (see graphnet.data.shchur); ``split=False`` skips the 20/30 split."""
    from graphnet.data.shchur import graph_from_npz, read_npz
    from graphnet.errors import GraphError

    path = Path(path)
    arrays = read_npz(path, f"npz file {path}")
    if not split:
        train_per_class = val_per_class = 0
    try:
        return graph_from_npz(arrays, path.stem, lcc, remove_self_loops, seed, train_per_class, val_per_class)
    except GraphError as e:  # e.g. a class too small for the per-class split: name the file and the way out
        raise DataError(f"npz file {path}: {e}; use train_per_class/val_per_class or split=False") from None


def load_triples(path: str | Path, train: str | None = None, valid: str | None = None,
                 test: str | None = None, add_inverse: bool = False, drop_unseen: bool = False) -> Any:
    """Triples TSV files (``head<TAB>relation<TAB>tail``) read by ``graphnet.data.kg.load_triples``.

    ``path`` is a directory holding train/valid/test files (names default to ``train.txt``, ``valid.txt``,
    ``test.txt``), or a single file used as the training set (then valid/test are empty unless given).
    The other arguments are ``kg.load_triples``'s; they are spelled out (not ``**options``) so that a config
    key that is none of them is a ConfigError naming it, not a TypeError at load time.
    """
    from graphnet.data import kg

    path = Path(path)
    if not path.exists():
        raise not_found("triples", path, "path")
    card = {"name": path.stem, "loader": "triples", "files": [], "options": {}}
    names = {"train": path.name, "valid": "", "test": ""} if path.is_file() else {}
    names.update({k: v for k, v in (("train", train), ("valid", valid), ("test", test)) if v is not None})
    return kg.load_triples(card, path if path.is_dir() else path.parent, add_inverse=add_inverse,
                           drop_unseen=drop_unseen, **names)


def load_interactions(path: str | Path, test_path: str = "", sep: str = "", header: bool = False,
                      one_based: bool = False, num_users: int = 0, num_items: int = 0,
                      test_fraction: float = 0.2, seed: int = 0) -> Any:
    """Interaction files (``user item [rating]``) read by ``graphnet.data.recsys.load_interactions``.

    ``path`` is the interactions file itself, or a directory holding ``interactions.txt``; ``test_path``
    (relative to that directory) is an optional test file. The other arguments are
    ``recsys.load_interactions``'s, spelled out for the config check as in :func:`load_triples`.
    """
    from graphnet.data import recsys

    path = Path(path)
    if not path.exists():
        raise not_found("interactions", path, "path")
    card = {"name": path.stem, "loader": "interactions", "files": [], "options": {}}
    file = {"path": path.name} if path.is_file() else {}
    return recsys.load_interactions(card, path if path.is_dir() else path.parent, test_path=test_path,
                                    sep=sep, header=header, one_based=one_based, num_users=num_users,
                                    num_items=num_items, test_fraction=test_fraction, seed=seed, **file)
