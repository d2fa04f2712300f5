"""Small social graphs shipped with networkx (no download): Zachary's karate club and Les Misérables.

- ``karate``: ``nx.karate_club_graph()``, 34 members, 78 friendships, weight = the edge's ``weight``
  attribute (number of contexts in which the two interacted, Zachary 1977), label = ``club``
  ("Mr. Hi" -> 0, "Officer" -> 1), X = identity (one-hot node ids), seeded stratified split.
- ``les-miserables``: ``nx.les_miserables_graph()``, 77 characters, 254 co-appearance edges weighted by
  the number of shared chapters. It has **no labels**, so node classification is not possible: the
  graph holds structure, weights and X = identity only (use it for link prediction or embeddings).

Both are undirected: every edge is stored in both directions with the same weight (A symmetric,
``num_edges`` = 2 x undirected edges). Node names are kept in ``meta["node_names"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphnet.errors import DataError


def _graphs() -> dict[str, Any]:
    import networkx as nx

    return {"karate": nx.karate_club_graph, "les-miserables": nx.les_miserables_graph}


def load_networkx(
    card: dict, raw_dir: Path | None = None, seed: int = 0, train_frac: float = 0.5, val_frac: float = 0.25
) -> Any:
    """Build the card's networkx graph (see module docstring); split options apply when it has labels.

    Shapes: X (N, N) float32 identity, y (N,) long or None, A (N, N) symmetric weighted.
    """
    import torch

    from graphnet.data.splits import stratified_split
    from graphnet.graph import Graph

    name = card["name"]
    make = _graphs().get(name)
    if make is None:
        raise DataError(f"dataset {name!r}: no networkx graph of that name; known: {', '.join(_graphs())}")
    G = make()
    g = Graph.from_networkx(G, weight="weight")
    n = g.num_nodes
    y, splits = None, {}
    if name == "karate":
        clubs = {"Mr. Hi": 0, "Officer": 1}
        y = torch.tensor([clubs[G.nodes[v]["club"]] for v in G.nodes], dtype=torch.long)
        splits = stratified_split(y, train_frac=train_frac, val_frac=val_frac, seed=seed)
    meta = {**g.meta, "citation": card.get("citation", ""), "labels": "club" if y is not None else "none"}
    if y is not None:
        meta["class_names"] = ["Mr. Hi", "Officer"]
    meta["node_names"] = [str(v) for v in meta["node_names"]]
    return g.replace(X=torch.eye(n), y=y, splits=splits, name=name, meta=meta)
