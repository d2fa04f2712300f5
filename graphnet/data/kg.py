"""Knowledge graphs from triples files: ``head<TAB>relation<TAB>tail``, one triple per line.

Catalog datasets (fb15k-237, wn18rr, nations, kinship, umls) ship ``train.txt``, ``valid.txt`` and
``test.txt``; a user's own triples TSV goes through the same function (``train``/``valid``/``test`` options).

Vocabularies (deterministic, independent of file order): entity ids are the positions of the entity names in
the *sorted* (Python ``str`` order) union of the heads and tails of all three files; relation ids likewise for
relation names. Entities that occur only in valid/test (FB15k-237: 8 in valid, 29 in test) therefore have ids
and no training edge; they are counted in ``meta["unseen"]`` and kept by default, as in ConvE and DGL
(FB15k-237: 14,541 entities, every one a ranking candidate). ``drop_unseen=True`` is PyKEEN's rule instead:
the vocabularies come from the training file alone and valid/test triples with a name outside them are
dropped (counted in ``meta["dropped_unseen"]``; FB15k-237: 14,505 entities, 17,526 / 20,438 triples left).

The returned Graph follows the KG convention of graphnet.data:

- ``A`` (N_ent, N_ent): one edge head -> tail per *training* triple (``A[tail, head] = 1``), with
  ``edge_type`` (E,) = relation id. ``add_inverse=True`` also adds tail -> head with type ``r + R`` (the
  message-passing graph of R-GCN / CompGCN); scoring still uses the R original relations.
- ``edge_splits``: ``"train"``, ``"val"``, ``"test"`` (M, 3) long ``(head, rel, tail)`` in file order.
- ``meta``: num_entities, num_relations (R, the vocabulary), num_edge_types (R or 2R), entity_names,
  relation_names, unseen ({"val", "test"}: entities absent from train), add_inverse.

The filter set of the filtered ranking protocol (Bordes et al. 2013) is ``filter_index(graph)``: every known
true triple of train/val/test, indexed by query; ``filter_mask`` turns it into a (B, N_ent) mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphnet.errors import DataError

SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}  # edge_splits key -> option name


# ----------------------------------------------------------------------------------------- parsing
def _label(card: dict, raw_dir: Path, path: Path) -> str:
    """``<dataset>/<file>`` for error messages (the full path for files outside the raw directory)."""
    try:
        return f"{card['name']}/{path.relative_to(raw_dir).as_posix()}"
    except ValueError:
        return f"{card['name']}: {path}"


def read_triples(path: Path, label: str) -> list[tuple[str, str, str]]:
    """Parse ``head<TAB>relation<TAB>tail`` lines; blank lines are skipped, names are kept verbatim.

    Raises:
        DataError: missing file, non-UTF-8 text, or a line without exactly 3 non-empty fields
            (``"nations/train.txt line 17: expected 3 tab-separated fields, got 2"``).
    """
    if not path.is_file():
        raise DataError(f"{label}: file not found ({path})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{label} line {line}: not UTF-8 text ({e.reason})") from None
    triples = []
    # split("\n") rather than splitlines(): names may contain \x1c, \x85 ... which splitlines breaks on.
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"{label} line {lineno}: expected 3 tab-separated fields, got {len(fields)} "
                            f"(head<TAB>relation<TAB>tail): {line[:80]!r}")
        h, r, t = fields  # names are taken verbatim (no stripping): they are vocabulary keys
        if not (h and r and t):
            which = ("head", "relation", "tail")[[h, r, t].index("")]
            raise DataError(f"{label} line {lineno}: empty {which} field")
        triples.append((h, r, t))
    return triples


def _resolve(raw_dir: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else raw_dir / p


# ----------------------------------------------------------------------------------------- loader
def load_triples(card: dict, raw_dir: Path, train: str = "train.txt", valid: str = "valid.txt",
                 test: str = "test.txt", add_inverse: bool = False, drop_unseen: bool = False) -> Any:
    """Load a triples dataset as a multi-relational Graph (see the module docstring for the layout).

    Args:
        card: catalog card (its ``name`` labels errors and the graph).
        raw_dir: directory holding the files.
        train, valid, test: file names (relative to ``raw_dir``) or absolute paths; ``""`` for valid/test
            means "no such split" (an empty (0, 3) tensor).
        add_inverse: also add tail -> head edges of relation ``r + R`` to ``A`` (not to the splits).
        drop_unseen: PyKEEN's rule: entity and relation ids for the names in the training file only, and
            valid/test triples whose head, relation or tail never occurs there dropped. Their entities are
            then no ranking candidates, so the dropped triples have nothing left to filter.

    Shapes:
        A: (N_ent, N_ent), nnz = M_train (2 M_train with add_inverse); edge_type: (nnz,);
        edge_splits[s]: (M_s, 3).
    """
    from graphnet.graph import Graph, adjacency

    raw_dir = Path(raw_dir)
    if not train:
        raise DataError(f"dataset {card['name']!r}: option 'train' must name the training triples file")
    names = {"train": train, "val": valid, "test": test}
    parsed: dict[str, list[tuple[str, str, str]]] = {}
    for split, fname in names.items():
        if fname:
            path = _resolve(raw_dir, fname)
            parsed[split] = read_triples(path, _label(card, raw_dir, path))
        else:
            parsed[split] = []
    if not parsed["train"]:
        raise DataError(f"{_label(card, raw_dir, _resolve(raw_dir, train))}: no triples in the training file")

    # Entities and relations seen in training; with drop_unseen (PyKEEN's rule) they are the vocabulary.
    train_ent = {e for h, _, t in parsed["train"] for e in (h, t)}
    train_rel = {r for _, r, _ in parsed["train"]}
    unseen, dropped = {}, {}
    for s in ("val", "test"):
        unseen[s] = len({e for h, _, t in parsed[s] for e in (h, t)} - train_ent)
        if drop_unseen:
            kept = [x for x in parsed[s] if x[0] in train_ent and x[2] in train_ent and x[1] in train_rel]
            dropped[s] = len(parsed[s]) - len(kept)
            parsed[s] = kept
    entities = sorted({e for ts in parsed.values() for h, _, t in ts for e in (h, t)})
    relations = sorted({r for ts in parsed.values() for _, r, _ in ts})
    ent_id = {e: i for i, e in enumerate(entities)}
    rel_id = {r: i for i, r in enumerate(relations)}
    ids = {s: torch.tensor([(ent_id[h], rel_id[r], ent_id[t]) for h, r, t in ts], dtype=torch.long)
           .reshape(-1, 3) for s, ts in parsed.items()}
    n_ent, n_rel = len(entities), len(relations)

    h, r, t = ids["train"].unbind(1)
    src, dst, etype = h, t, r
    if add_inverse:
        src, dst, etype = torch.cat([h, t]), torch.cat([t, h]), torch.cat([r, r + n_rel])
    A = adjacency(src, dst, n_ent)  # A[tail, head] = 1: messages flow head -> tail
    meta = {
        "num_entities": n_ent, "num_relations": n_rel, "num_edge_types": 2 * n_rel if add_inverse else n_rel,
        "entity_names": entities, "relation_names": relations, "vocab_order": "sorted",
        "unseen": unseen, "add_inverse": add_inverse,
    }
    if drop_unseen:
        meta["dropped_unseen"] = dropped
    return Graph(A=A, edge_type=etype, edge_splits=ids, name=card["name"], meta=meta)


# ----------------------------------------------------------------------------------------- filter set
@dataclass(frozen=True)
class FilterIndex:
    """Known answers of link-prediction queries, stored CSR-style over sorted query keys.

    For ``side="tail"`` a query is (h, r, ?) with key ``h * R + r``; for ``side="head"`` it is (?, r, t) with
    key ``t * R + r``. The known answers of ``keys[q]`` are ``answers[ptr[q]:ptr[q + 1]]`` (sorted).

    Shapes: keys (Q,), ptr (Q + 1,), answers (M_unique,).
    """

    side: str
    keys: Tensor
    ptr: Tensor
    answers: Tensor
    num_entities: int
    num_relations: int

    def answers_of(self, key: int) -> Tensor:
        """Known answers of one query key (empty if the query never occurs)."""
        q = int(torch.searchsorted(self.keys, torch.tensor(key)))
        if q >= self.keys.numel() or int(self.keys[q]) != key:
            return self.answers[:0]
        return self.answers[self.ptr[q]: self.ptr[q + 1]]


def _query_key(triples: Tensor, side: str, num_relations: int) -> tuple[Tensor, Tensor]:
    """(key, answer) per triple: tail queries key on (h, r) and answer t; head queries the reverse."""
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    if side == "tail":
        return h * num_relations + r, t
    if side == "head":
        return t * num_relations + r, h
    raise DataError(f"filter side must be 'head' or 'tail', got {side!r}")


def filter_index(graph: Any, splits: tuple[str, ...] | None = None) -> dict[str, FilterIndex]:
    """The filter set: every true triple of ``splits``, indexed for head and tail queries.

    Filtered ranking ranks the target of (h, r, ?) against all entities except the *other* known tails of
    (h, r) in train/val/test (and symmetrically for heads). ``splits=None``: train, val, test and every
    other (M, 3) triple split, as the kg task filters (e.g. the "val_dropped" / "test_dropped" triples
    ``drop_unseen`` took out of evaluation, which are still true).
    Returns ``{"tail": FilterIndex, "head": ...}``.
    """
    if splits is None:
        splits = ("train", "val", "test")
        splits += tuple(k for k, t in graph.edge_splits.items()
                        if k not in splits and t.dim() == 2 and t.shape[1] == 3)
    missing = [s for s in splits if s not in graph.edge_splits]
    if missing:
        raise DataError(f"filter_index: graph {graph.name!r} has no edge split(s) {missing}; it has "
                        f"{sorted(graph.edge_splits)}")
    n_ent, n_rel = int(graph.meta["num_entities"]), int(graph.meta["num_relations"])
    T = torch.cat([graph.edge_splits[s].cpu() for s in splits])  # (M, 3); duplicates removed below
    out = {}
    for side in ("tail", "head"):
        key, ans = _query_key(T, side, n_rel)
        pair = torch.from_numpy(np.unique((key * n_ent + ans).numpy()))  # sorted by key, then answer; unique
        key, ans = pair // n_ent, pair % n_ent
        keys, counts = torch.unique_consecutive(key, return_counts=True)
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        out[side] = FilterIndex(side, keys, ptr, ans, n_ent, n_rel)
    return out


def filter_mask(index: FilterIndex, queries: Tensor) -> Tensor:
    """Mask of the known true answers of each query *other than its own target*.

    ``scores.masked_fill(filter_mask(idx, batch), -inf)`` gives the filtered setting.

    Args:
        index: ``filter_index(graph)["tail"]`` or ``["head"]``.
        queries: (B, 3) (head, rel, tail) triples; the target is the tail (or head) of each row.

    Shapes: queries (B, 3) -> (B, N_ent) bool.
    """
    queries = queries.cpu()
    B = queries.shape[0]
    key, target = _query_key(queries, index.side, index.num_relations)
    mask = torch.zeros(B, index.num_entities, dtype=torch.bool)
    if index.keys.numel() and B:
        q = torch.searchsorted(index.keys, key).clamp(max=index.keys.numel() - 1)
        found = index.keys[q] == key
        start = index.ptr[q]
        count = (index.ptr[q + 1] - start) * found  # 0 answers for unknown queries
        rows = torch.repeat_interleave(torch.arange(B), count)
        # position of each gathered answer inside its query's run: global arange minus the run's offset
        offset = torch.arange(int(count.sum())) - torch.repeat_interleave(count.cumsum(0) - count, count)
        mask[rows, index.answers[torch.repeat_interleave(start, count) + offset]] = True
    mask[torch.arange(B), target] = False
    return mask
