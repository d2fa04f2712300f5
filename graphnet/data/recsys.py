"""Recommendation data: MovieLens-100K ratings, the LightGCN train/test format, a user's interactions file.

Conventions (shared by every loader here, consumed by the rec/rating tasks):

- users are 0..U-1 and items 0..I-1 (MovieLens' 1-based ids minus one; LightGCN files are already 0-based);
- ``A`` is the (U + I, U + I) symmetric bipartite graph of the *training* interactions, item j being node
  U + j: one edge u -> U + j and one U + j -> u per training pair (weight 1, duplicate pairs merged);
- ``edge_splits["train"|"test"(|"val")]`` are (M, 2) long ``(user, item)`` with item ids in 0..I-1;
  explicit ratings go in ``edge_splits["<split>_rating"]`` (M,) float32;
- ``meta``: num_users, num_items, num_interactions (all splits), implicit; ml-100k adds side features.

Every parse error names the dataset, the file and the line, e.g. ``ml-100k/u1.base line 3: ...``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphnet.data.generic import MAX_NODE_ID, strict_int
from graphnet.errors import DataError

ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
log = logging.getLogger(__name__)

# MovieLens-1M's age groups (its README), used to one-hot the raw ages of ml-100k.
AGE_BINS = (18, 25, 35, 45, 50, 56)
AGE_NAMES = ("age<18", "age18-24", "age25-34", "age35-44", "age45-49", "age50-55", "age56+")


# ----------------------------------------------------------------------------------------- parsing
def _label(card: dict, raw_dir: Path, path: Path) -> str:
    try:
        return f"{card['name']}/{path.relative_to(raw_dir).as_posix()}"
    except ValueError:
        return f"{card['name']}: {path}"


def _lines(path: Path, label: str, encoding: str = "utf-8") -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of ``path``; '\\r' stripped."""
    if not path.is_file():
        raise DataError(f"{label}: file not found ({path})")
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{label} line {line}: not {encoding} text ({e.reason})") from None
    return [(i, s.rstrip("\r")) for i, s in enumerate(text.split("\n"), 1) if s.strip()]


def _int(s: str, label: str, lineno: int, what: str, lo: int = 0, hi: int | None = None) -> int:
    """``int(s)`` checked to lie in [lo, hi) (hi=None: ids up to MAX_NODE_ID, which keeps pair keys
    ``user * num_items + item`` inside int64); errors name file, line and field."""
    try:
        v = strict_int(s)
    except ValueError:
        raise DataError(f"{label} line {lineno}: {what} must be an integer, got {s!r}") from None
    if v < lo or v >= (MAX_NODE_ID + 1 if hi is None else hi):
        rng = f"{lo} <= id < {hi}" if hi is not None else f"id >= {lo} (and <= {MAX_NODE_ID})"
        raise DataError(f"{label} line {lineno}: {what} {v} out of range, expected {rng}")
    return v


def _float(s: str, label: str, lineno: int, what: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise DataError(f"{label} line {lineno}: {what} must be a number, got {s!r}") from None
    if not math.isfinite(v):
        raise DataError(f"{label} line {lineno}: {what} must be finite, got {s!r}")
    return v


def _fields(line: str, sep: str | None, n: int | tuple[int, ...], label: str, lineno: int) -> list[str]:
    parts = line.split(sep) if sep is not None else line.split()
    ok = (n,) if isinstance(n, int) else n
    if len(parts) not in ok:
        kind = "whitespace" if sep is None else {"\t": "tab", "|": "'|'", ",": "comma"}.get(sep, repr(sep))
        want = " or ".join(str(k) for k in ok)
        raise DataError(f"{label} line {lineno}: expected {want} {kind}-separated fields, got {len(parts)}")
    return [p.strip() for p in parts]


def _check_unique(users: Tensor, items: Tensor, linenos: list[int], num_items: int, label: str) -> None:
    """Raise on a (user, item) pair listed twice in one ratings file (which rating would be meant?)."""
    key = (users * num_items + items).numpy()
    sorted_key = np.sort(key)  # numpy: single-threaded, faster than torch.sort on a busy machine
    same = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if same.size:
        first, second = np.flatnonzero(key == sorted_key[same[0]])[:2].tolist()
        raise DataError(f"{label} line {linenos[second]}: the same (user, item) pair as line "
                        f"{linenos[first]}; a ratings file must list each pair once")


def _fast_ints(lines: list[tuple[int, str]], sep: str | None, ncols: int) -> np.ndarray | None:
    """Vectorised parse of lines of exactly ``ncols`` integer fields -> (M, ncols) int64, or None when any
    line does not fit (the caller then re-parses line by line to report the exact file:line error)."""
    try:
        arr = np.array([line.split(sep) for _, line in lines], dtype=np.int64)
    except (ValueError, OverflowError, TypeError):  # ragged rows, non-integer tokens
        return None
    return arr if arr.ndim == 2 and arr.shape[1] == ncols else None


# ----------------------------------------------------------------------------------------- graph
def bipartite_graph(users: Tensor, items: Tensor, num_users: int, num_items: int,
                    edge_type: Tensor | None = None) -> tuple[Any, Tensor | None]:
    """The symmetric user-item graph: edges u -> U + i and U + i -> u for every (u, i), weight 1.

    Duplicate pairs are merged (when ``edge_type`` is given the pairs must be unique already).
    Returns ``(A, edge_type)`` with edge_type repeated for both directions (or None).

    Shapes: users, items (M,) -> A (U + I, U + I) with nnz = 2 * M_unique.
    """
    from graphnet.graph import adjacency

    if edge_type is None and users.numel():
        # merge duplicates, sorted by (user, item); numpy's single-threaded sort is steadier than torch.unique
        key = torch.from_numpy(np.unique((users * num_items + items).numpy()))
        users, items = key // num_items, key % num_items
    n = num_users + num_items
    src = torch.cat([users, items + num_users])
    dst = torch.cat([items + num_users, users])
    et = None if edge_type is None else torch.cat([edge_type, edge_type])
    return adjacency(src, dst, n), et


def _graph(card: dict, train: Tensor, splits: dict[str, Tensor], num_users: int, num_items: int,
           meta: dict[str, Any], edge_type: Tensor | None = None) -> Any:
    from graphnet.graph import Graph

    A, et = bipartite_graph(train[:, 0], train[:, 1], num_users, num_items, edge_type)
    total = sum(int(v.shape[0]) for k, v in splits.items() if k in ("train", "val", "test"))
    meta = {"num_users": num_users, "num_items": num_items, "num_interactions": total, **meta}
    return Graph(A=A, edge_type=et, edge_splits=splits, name=card["name"], meta=meta)


# ----------------------------------------------------------------------------------------- ml-100k
def _ml_ratings(path: Path, label: str, num_users: int, num_items: int) -> tuple[Tensor, Tensor]:
    """u.data / uN.base / uN.test: ``user<TAB>item<TAB>rating<TAB>timestamp`` with 1-based ids."""
    lines = _lines(path, label)
    arr = _fast_ints(lines, "\t", 4)
    lo, hi = np.array([1, 1, 1]), np.array([num_users, num_items, 5])
    if arr is None or (arr.size and ((arr[:, :3] < lo).any() or (arr[:, :3] > hi).any())):
        rows = []  # slow path: finds the offending line and raises with file:line
        for lineno, line in lines:
            u, i, r, t = _fields(line, "\t", 4, label, lineno)
            rows.append((_int(u, label, lineno, "user id", 1, num_users + 1),
                         _int(i, label, lineno, "item id", 1, num_items + 1),
                         _int(r, label, lineno, "rating", 1, 6),
                         _int(t, label, lineno, "timestamp", 0, 2**62)))
        arr = np.array(rows, dtype=np.int64).reshape(-1, 4)
    pairs = torch.from_numpy(arr[:, :2] - 1)
    _check_unique(pairs[:, 0], pairs[:, 1], [n for n, _ in lines], num_items, label)
    return pairs, torch.from_numpy(arr[:, 2].astype(np.float32))


def _ml_users(raw_dir: Path, card: dict) -> tuple[Tensor, list[str]]:
    """u.user (``id|age|gender|occupation|zip``) -> (U, 7 + 2 + 21) one-hot age group, gender, occupation."""
    occ_path = raw_dir / "u.occupation"
    occupations = [s.strip() for _, s in _lines(occ_path, _label(card, raw_dir, occ_path))]
    occ_id = {o: k for k, o in enumerate(occupations)}
    path = raw_dir / "u.user"
    label = _label(card, raw_dir, path)
    lines = _lines(path, label)
    n_age, n_occ = len(AGE_NAMES), len(occupations)
    X = torch.zeros(len(lines), n_age + 2 + n_occ)
    for k, (lineno, line) in enumerate(lines):
        uid, age, gender, occ, _zip = _fields(line, "|", 5, label, lineno)
        if _int(uid, label, lineno, "user id", 1) != k + 1:
            raise DataError(f"{label} line {lineno}: expected user id {k + 1} (ids are listed in order), "
                            f"got {uid}")
        a = _int(age, label, lineno, "age", 0, 200)
        X[k, sum(a >= b for b in AGE_BINS)] = 1
        if gender not in ("M", "F"):
            raise DataError(f"{label} line {lineno}: gender must be 'M' or 'F', got {gender!r}")
        X[k, n_age + (gender == "F")] = 1
        if occ not in occ_id:
            raise DataError(f"{label} line {lineno}: occupation {occ!r} is not listed in u.occupation")
        X[k, n_age + 2 + occ_id[occ]] = 1
    return X, [*AGE_NAMES, "gender=M", "gender=F", *(f"occupation={o}" for o in occupations)]


def _ml_items(raw_dir: Path, card: dict) -> tuple[Tensor, list[str], list[str]]:
    """u.item (Latin-1; ``id|title|release|video release|IMDb URL|19 genre flags``) -> (I, 19) multi-hot."""
    gpath = raw_dir / "u.genre"
    glabel = _label(card, raw_dir, gpath)
    genres = [_fields(line, "|", 2, glabel, n)[0] for n, line in _lines(gpath, glabel)]
    path = raw_dir / "u.item"
    label = _label(card, raw_dir, path)
    lines = _lines(path, label, encoding="latin-1")  # e.g. "Misérables" is one Latin-1 byte, not UTF-8
    rows, titles = [], []
    for k, (lineno, line) in enumerate(lines):
        f = _fields(line, "|", 5 + len(genres), label, lineno)
        if _int(f[0], label, lineno, "movie id", 1) != k + 1:
            raise DataError(f"{label} line {lineno}: expected movie id {k + 1} (ids are listed in order), "
                            f"got {f[0]}")
        for g, flag in enumerate(f[5:]):
            if flag not in ("0", "1"):
                raise DataError(f"{label} line {lineno}: genre flag {genres[g]!r} must be 0 or 1, "
                                f"got {flag!r}")
        rows.append([flag == "1" for flag in f[5:]])
        titles.append(f[1])
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, len(genres)), genres, titles


def load_ml100k(card: dict, raw_dir: Path, split: str = "u1", implicit: bool = False,
                threshold: float = 1.0) -> Any:
    """MovieLens-100K with a GroupLens split and user/item side features.

    Args:
        split: ``"u1"``..``"u5"`` (5-fold 80k/20k), ``"ua"``/``"ub"`` (10 test ratings per user, 90570/9430),
            or ``"all"`` (every rating of u.data in train, empty test).
        implicit: keep only interactions with rating >= ``threshold`` and drop the ratings (an implicit
            bipartite graph for top-K recommendation). ``threshold=1`` keeps every rating (NCF convention);
            ``threshold=4`` keeps the positive ones.
        threshold: see ``implicit``; ignored when ``implicit=False``.

    Explicit mode (default): ``edge_splits["train_rating"/"test_rating"]`` hold the ratings (float32, 1..5)
    and ``edge_type`` = rating - 1 on each edge of ``A`` (the per-rating graphs GC-MC uses).

    Side features: ``meta["user_features"]`` (943, 30) one-hot age group (MovieLens-1M bins) + gender +
    occupation (u.occupation order); ``meta["item_features"]`` (1682, 19) genre multi-hot (u.genre order);
    column names in ``meta["user_feature_names"]`` / ``meta["item_feature_names"]``, titles in
    ``meta["item_names"]``.
    """
    raw_dir = Path(raw_dir)
    if split not in (*ML100K_SPLITS, "all"):
        raise DataError(f"dataset {card['name']!r}: option split must be one of "
                        f"{', '.join((*ML100K_SPLITS, 'all'))}, got {split!r}")
    user_x, user_names = _ml_users(raw_dir, card)
    item_x, genres, titles = _ml_items(raw_dir, card)
    U, I = user_x.shape[0], item_x.shape[0]
    files = {"train": "u.data"} if split == "all" else {"train": f"{split}.base", "test": f"{split}.test"}
    splits: dict[str, Tensor] = {"test": torch.zeros(0, 2, dtype=torch.long),
                                 "test_rating": torch.zeros(0, dtype=torch.float32)}
    for s, fname in files.items():
        path = raw_dir / fname
        splits[s], splits[f"{s}_rating"] = _ml_ratings(path, _label(card, raw_dir, path), U, I)
    meta: dict[str, Any] = {
        "split": split, "implicit": implicit, "user_features": user_x, "item_features": item_x,
        "user_feature_names": user_names, "item_feature_names": genres, "item_names": titles,
    }
    if implicit:
        for s in ("train", "test"):
            keep = splits.pop(f"{s}_rating") >= threshold
            splits[s] = splits[s][keep]
        meta["threshold"] = threshold
        return _graph(card, splits["train"], splits, U, I, meta)
    edge_type = splits["train_rating"].long() - 1  # ratings 1..5 -> relation 0..4
    meta["num_edge_types"] = 5
    return _graph(card, splits["train"], splits, U, I, meta, edge_type)


# ----------------------------------------------------------------------------------------- LightGCN format
def _member(card: dict, raw_dir: Path, base: str) -> Path:
    """The file named ``base`` in the raw directory (fetch puts archive members at ``raw/<member>``, plain and
    ``[[unpinned]]`` files at ``raw/<name>``)."""
    for entry in [*card.get("files", []), *card.get("unpinned", [])]:
        for rel in [entry["name"], *entry.get("members", {})]:
            if Path(rel).name == base:
                return raw_dir / rel
    return raw_dir / base


def _lightgcn_file(path: Path, label: str) -> tuple[Tensor, Tensor, int]:
    """``user item item ...`` lines (0-based ids, whitespace-separated) -> (users, items) of every pair and
    the largest user id (a line may list a user without items; LightGCN's loader still counts that user)."""
    users, items, max_user = [], [], -1
    for lineno, line in _lines(path, label):
        parts = line.split()
        u = _int(parts[0], label, lineno, "user id")
        its = [_int(p, label, lineno, f"item id (field {k + 2})") for k, p in enumerate(parts[1:])]
        users.extend([u] * len(its))
        items.extend(its)
        max_user = max(max_user, u)
    return torch.tensor(users, dtype=torch.long), torch.tensor(items, dtype=torch.long), max_user


def load_lightgcn(card: dict, raw_dir: Path, max_users: int = 0, seed: int = 0) -> Any:
    """A dataset in the LightGCN / NGCF format: ``train.txt`` and ``test.txt``, one ``user item item ...``
    line per user, 0-based ids. U and I are max id + 1 over both files (as LightGCN's loader computes them).
    An item listed twice on a user's line counts once (in ``A`` and in ``edge_splits``).

    Args:
        max_users: keep a seeded random subset of this many users (0 = all), for fast tests and CI. Users
            are renumbered 0..k-1 in increasing original id, items likewise over the items those users touch
            in train or test; the original ids are in ``meta["user_ids"]`` / ``meta["item_ids"]``.
        seed: seed of the subset (``torch.Generator``).
    """
    raw_dir = Path(raw_dir)
    parts, U = {}, 0
    for s in ("train", "test"):
        path = _member(card, raw_dir, f"{s}.txt")
        users, items, max_user = _lightgcn_file(path, _label(card, raw_dir, path))
        parts[s] = (users, items)
        U = max(U, max_user + 1)
    I = 1 + max(int(i.max()) if i.numel() else -1 for _, i in parts.values())
    meta: dict[str, Any] = {"implicit": True}
    if max_users and max_users < U:
        keep = torch.randperm(U, generator=torch.Generator().manual_seed(seed))[:max_users].sort().values
        new_u = torch.full((U,), -1, dtype=torch.long)
        new_u[keep] = torch.arange(keep.numel())
        parts = {s: (u[new_u[u] >= 0], i[new_u[u] >= 0]) for s, (u, i) in parts.items()}
        used = torch.unique(torch.cat([i for _, i in parts.values()]))
        new_i = torch.full((I,), -1, dtype=torch.long)
        new_i[used] = torch.arange(used.numel())
        parts = {s: (new_u[u], new_i[i]) for s, (u, i) in parts.items()}
        U, I = keep.numel(), used.numel()
        meta.update(user_ids=keep, item_ids=used, max_users=max_users, seed=seed)
    # A pair listed twice (an item repeated on a user's line) is one interaction: A merges it, and so must
    # the splits, or a validation hold-out could send one copy to val and keep the other in training.
    splits = {s: _first_occurrences(torch.stack([u, i], 1), I) for s, (u, i) in parts.items()}
    return _graph(card, splits["train"], splits, U, I, meta)


# ----------------------------------------------------------------------------------------- user files
def _interactions_file(path: Path, label: str, sep: str | None, header: bool, one_based: bool,
                       num_users: int, num_items: int) -> tuple[Tensor, Tensor | None, list[int]]:
    """``user item [rating]`` lines -> (M, 2) pairs (0-based), (M,) ratings or None, line numbers."""
    lines = _lines(path, label)
    if header and lines:
        lines = lines[1:]
    base = 1 if one_based else 0
    rows, ratings, linenos = [], [], []
    ncols = None
    for lineno, line in lines:
        f = _fields(line, sep, (2, 3) if ncols is None else ncols, label, lineno)
        ncols = ncols or len(f)  # the first line fixes whether the file has ratings
        u = _int(f[0], label, lineno, "user id", base, num_users + base if num_users else None) - base
        i = _int(f[1], label, lineno, "item id", base, num_items + base if num_items else None) - base
        rows.append((u, i))
        linenos.append(lineno)
        if ncols == 3:
            ratings.append(_float(f[2], label, lineno, "rating"))
    pairs = torch.tensor(rows, dtype=torch.long).reshape(-1, 2)
    return pairs, (torch.tensor(ratings, dtype=torch.float32) if ncols == 3 else None), linenos


def _first_occurrences(pairs: Tensor, num_items: int) -> Tensor:
    """(M, 2) (user, item) pairs without repeats, each kept at its first line (file order preserved)."""
    key = pairs[:, 0] * num_items + pairs[:, 1]
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1 if key.numel() else 0,), key.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(key.numel()), "amin")
    return pairs[first.sort().values]


def _check_disjoint(train: tuple, test: tuple, num_items: int, rated: bool) -> None:
    """A (user, item) pair of the test file that the training file also lists: with ratings its rating was
    trained on (DataError naming the line); implicit, it is masked as a training item at evaluation yet
    counted as relevant, so it can never be hit (a warning with the count)."""
    (train_pairs, *_), (test_pairs, _, linenos, label) = train, test
    seen = torch.isin(test_pairs[:, 0] * num_items + test_pairs[:, 1],
                      train_pairs[:, 0] * num_items + train_pairs[:, 1])
    if not bool(seen.any()):
        return
    k = int(seen.nonzero()[0])
    u, i = test_pairs[k].tolist()
    where = f"{label} line {linenos[k]}: (user {u}, item {i}) is also in {train[3]}"
    if rated:
        raise DataError(f"{where}; a rated pair in both files would leak its test rating into training")
    log.warning("%s (%d such test pairs): they are masked as training items at evaluation, so they can "
                "never be hit", where, int(seen.sum()))


def load_interactions(card: dict, raw_dir: Path, path: str = "interactions.txt", test_path: str = "",
                      sep: str = "", header: bool = False, one_based: bool = False, num_users: int = 0,
                      num_items: int = 0, test_fraction: float = 0.2, seed: int = 0) -> Any:
    """A user's own interactions file: one ``user item [rating]`` per line.

    Ids are non-negative integers used as they are (``one_based=True``: 1-based ids, shifted down by one).
    ``num_users``/``num_items`` (0 = max id + 1) bound the ids: a larger id is a DataError naming file and
    line. With ratings (3 columns; the first line decides), the ratings go to ``edge_splits["*_rating"]``
    and a pair listed twice is an error; without, duplicates are merged (in ``A``, in ``edge_splits`` and
    before the random test split, so that no pair is both a training and a test interaction, and a
    validation hold-out of the training pairs cannot leave a copy of a held-out pair in training).

    Args:
        path: the interactions file (relative to ``raw_dir`` or absolute).
        test_path: a separate test file in the same format (a pair it shares with ``path``: DataError with
            ratings, a warning without); "" = hold out a seeded random ``test_fraction`` of the
            interactions (0 = no test split).
        sep: field separator ("" = any whitespace; e.g. "," or "\\t").
        header: skip the first non-blank line.
    """
    raw_dir = Path(raw_dir)
    sep_ = sep or None
    files = {"train": path, **({"test": test_path} if test_path else {})}
    parsed = {}
    for s, fname in files.items():
        p = Path(fname).expanduser()
        p = p if p.is_absolute() else raw_dir / p
        label = _label(card, raw_dir, p)
        parsed[s] = (*_interactions_file(p, label, sep_, header, one_based, num_users, num_items), label)
    if len({r is None for _, r, _, _ in parsed.values()}) > 1:
        raise DataError(f"dataset {card['name']!r}: {path} and {test_path} must both have ratings or both "
                        f"not")
    U = num_users or 1 + max((int(p[:, 0].max()) for p, *_ in parsed.values() if p.numel()), default=-1)
    I = num_items or 1 + max((int(p[:, 1].max()) for p, *_ in parsed.values() if p.numel()), default=-1)
    if U <= 0 or I <= 0:
        raise DataError(f"dataset {card['name']!r}: {path} holds no interactions")
    rated = parsed["train"][1] is not None
    if rated:
        for pairs, _, linenos, label in parsed.values():
            _check_unique(pairs[:, 0], pairs[:, 1], linenos, I, label)
    splits: dict[str, Tensor] = {}
    if test_path:
        _check_disjoint(parsed["train"], parsed["test"], I, rated)
        for s, (pairs, r, _, _) in parsed.items():
            # implicit: merge repeats in the splits as A does (see the random split below for why)
            splits[s] = pairs if rated else _first_occurrences(pairs, I)
            if rated:
                splits[f"{s}_rating"] = r
    else:
        if not 0.0 <= test_fraction < 1.0:
            raise DataError(f"dataset {card['name']!r}: option test_fraction must be in [0, 1), "
                            f"got {test_fraction}")
        pairs, r, _, _ = parsed["train"]
        if not rated:  # split unique pairs: a pair listed twice must not land in both train and test
            pairs = _first_occurrences(pairs, I)
        perm = torch.randperm(pairs.shape[0], generator=torch.Generator().manual_seed(seed))
        n_test = int(round(test_fraction * pairs.shape[0]))
        for s, idx in (("test", perm[:n_test].sort().values), ("train", perm[n_test:].sort().values)):
            splits[s] = pairs[idx]
            if rated:
                splits[f"{s}_rating"] = r[idx]
        if splits["train"].shape[0] == 0:
            raise DataError(f"{parsed['train'][3]}: test_fraction={test_fraction} of {pairs.shape[0]} "
                            "interactions leaves no training interaction")
    meta = {"implicit": not rated, "test_fraction": 0.0 if test_path else test_fraction, "seed": seed}
    return _graph(card, splits["train"], splits, U, I, meta)
