"""Datasets: ``load(name, **options) -> Graph`` from the catalog, plus loaders for a user's own files.

``load`` reads the card ``datasets/<name>.toml``, merges ``options`` over the card's ``[options]`` (an
unknown option is an error listing the valid ones), returns the processed cache
(``$GRAPHNET_DATA/<name>/processed/<key>.pt``, key = hash of card + options) when it is valid, and otherwise
fetches and verifies the raw files (``fetch.fetch``), calls
``LOADERS[card["loader"]](card, raw_dir, **options)``
and caches the result. Loader modules are imported on first use, so ``import graphnet.data`` and
``list_datasets()`` stay cheap (no dgl import).

Generic loaders for a user's own files are reached from a config as ``{"name": "edgelist", "path": ...}``
(see ``GENERIC``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphnet.data.catalog import list_cards, load_card

# ``fetch`` stays the submodule (graphnet.data.fetch); the function is imported under another name.
from graphnet.data.fetch import cache_key, load_processed, save_processed, unpinned_pins
from graphnet.data.fetch import fetch as fetch_files
from graphnet.errors import DataError

__all__ = ["LOADERS", "GENERIC", "load", "load_config", "list_datasets", "info", "load_card", "fetch_files"]


def _lazy(module: str, func: str) -> Callable[..., Any]:
    """A loader that imports ``graphnet.data.<module>`` only when called (keeps dgl off cheap paths)."""

    def loader(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"graphnet.data.{module}"), func)(*args, **kwargs)

    loader.__name__ = loader.__qualname__ = f"{module}.{func}"
    return loader


# Catalog loaders: card["loader"] -> function (card: dict, raw_dir: Path, **options) -> Graph.
LOADERS: dict[str, Callable[..., Any]] = {
    "networkx": _lazy("social", "load_networkx"),
    "planetoid": _lazy("planetoid", "load_planetoid"),
    "shchur": _lazy("shchur", "load_shchur"),
    "musae": _lazy("musae", "load_musae"),
    "ml100k": _lazy("recsys", "load_ml100k"),
    "lightgcn": _lazy("recsys", "load_lightgcn"),
    "interactions": _lazy("recsys", "load_interactions"),
    "triples": _lazy("kg", "load_triples"),
    "ogb": _lazy("ogb", "load_ogb"),
}

# Loaders for a user's own files: name -> function (path, **options) -> Graph (no card, no cache).
GENERIC: dict[str, Callable[..., Any]] = {
    "edgelist": _lazy("generic", "load_edgelist"),
    "npz": _lazy("generic", "load_npz"),
    "triples": _lazy("generic", "load_triples"),
    "interactions": _lazy("generic", "load_interactions"),
}


def list_datasets() -> list[str]:
    """Every dataset name in the catalog."""
    return list_cards()


def resolve_options(card: dict, options: dict[str, Any]) -> dict[str, Any]:
    """Card ``[options]`` overridden by ``options``; a key the card does not list is a DataError."""
    defaults = dict(card.get("options", {}))
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "(none)"
        raise DataError(
            f"dataset {card['name']!r}: unknown option(s) {', '.join(unknown)}; valid options: {valid}"
        )
    for k, v in options.items():
        d = defaults[k]
        # Same type as the default (ints accepted for floats); None in the card means "any".
        same = isinstance(v, type(d)) or (isinstance(d, float) and isinstance(v, int))
        if d is not None and v is not None and (not same or isinstance(v, bool) != isinstance(d, bool)):
            raise DataError(
                f"dataset {card['name']!r}: option {k!r} expects {type(d).__name__} like the "
                f"default {d!r}, got {v!r}"
            )
    return {**defaults, **options}


def _needed_files(card: dict, options: dict[str, Any]) -> list[str]:
    # A [[files]] entry with option = "features" is needed only when that option is true
    # (e.g. PubMed's allx, so the structure loads without the features when they are absent).
    entries = [*card.get("files", []), *card.get("unpinned", [])]
    return [f["name"] for f in entries if options.get(f.get("option", ""), True)]


def load(name: str, root: str | Path | None = None, mirror: str | Path | None = None, **options: Any) -> Any:
    """Load catalog dataset ``name`` as a Graph (cached; files fetched and verified as needed).

    Args:
        name: a catalog name (``list_datasets()``), or a loader of the user's own files (``GENERIC``:
            edgelist, npz, triples, interactions; ``path`` names the file, nothing is fetched or cached).
        root: data directory (default ``$GRAPHNET_DATA`` or ``~/.cache/graphnet``).
        mirror: offline mirror holding ``<name>/<file>`` (default ``$GRAPHNET_MIRROR``).
        **options: loader options, overriding the card's ``[options]``.
    """
    if name in GENERIC:
        if root is not None or mirror is not None:
            raise DataError(f"load({name!r}): reads the user's file at 'path'; root and mirror apply to "
                            "catalog datasets only")
        return load_config({"name": name, **options})
    card = load_card(name)
    opts = resolve_options(card, options)
    loader = LOADERS.get(card["loader"])
    if loader is None:
        raise DataError(
            f"dataset {name!r}: card names loader {card['loader']!r}; valid loaders: "
            f"{', '.join(sorted(LOADERS))}"
        )
    needed, raw = _needed_files(card, opts), None
    pins = unpinned_pins(card, needed, root)
    if pins is None:  # an unpinned file not seen yet: fetch (and pin) it, so the cache key can name its hash
        raw = fetch_files(card, root, mirror, files=needed)
        pins = unpinned_pins(card, needed, root)
    key = cache_key(card, opts, pins)
    cached = load_processed(card, key, root)
    if cached is not None:
        try:
            return graph_from_dict(cached)
        except Exception:  # stale or malformed cache: rebuild below
            pass
    if raw is None:
        raw = fetch_files(card, root, mirror, files=needed)
    graph = loader(card, raw, **opts)
    data = graph_to_dict(graph)
    if data is not None:
        save_processed(card, key, data, root)
    return graph


def load_config(data_cfg: dict[str, Any]) -> Any:
    """The runner's entry: ``{"name": <catalog name or GENERIC key>, **options}`` -> Graph.

    Generic loaders take ``path`` (e.g. ``{"name": "edgelist", "path": "edges.csv", "weighted": True}``).
    """
    cfg = dict(data_cfg)
    name = cfg.pop("name", None)
    if not isinstance(name, str):
        raise DataError(
            f"data config: key 'name' must be a dataset name, got {name!r}; valid: "
            f"{', '.join(list_cards() + sorted(GENERIC))}"
        )
    if name in GENERIC:
        if "path" not in cfg:
            raise DataError(f"data config: loader {name!r} needs key 'path' (the file to read)")
        return GENERIC[name](**cfg)
    if name not in list_cards():
        raise DataError(
            f"data config: unknown dataset {name!r}; valid: {', '.join(list_cards() + sorted(GENERIC))}"
        )
    return load(name, **cfg)


def info(name: str, **options: Any) -> dict[str, Any]:
    """Statistics of a loaded dataset, JSON-ready (see ``graph_stats``)."""
    return graph_stats(load(name, **options))


def graph_stats(g: Any) -> dict[str, Any]:
    """num_nodes, num_edges (stored directed edges = A.nnz; an undirected pair counts twice),
    num_features, num_classes and split sizes train/val/test (node splits, else edge splits).
    KGs add num_entities/num_relations; recommendation data num_users/num_items/num_interactions."""
    meta = g.meta
    y = g.y
    if y is None:
        num_classes = 0
    elif y.dim() == 1:
        num_classes = int(y.max()) + 1 if y.numel() else 0
    else:
        num_classes = int(y.shape[1])
    out: dict[str, Any] = {
        "name": g.name,
        "num_nodes": int(g.num_nodes),
        "num_edges": int(g.num_edges),
        "num_features": int(g.X.shape[1]) if g.X is not None and g.X.dim() == 2 else 0,
        "num_classes": num_classes,
    }
    for split in ("train", "val", "test"):
        if split in g.splits:
            out[split] = int(g.splits[split].numel())
        elif split in g.edge_splits:
            out[split] = int(g.edge_splits[split].shape[0])
        else:
            out[split] = 0
    if "num_relations" in meta:
        out["num_entities"] = int(meta.get("num_entities", g.num_nodes))
        out["num_relations"] = int(meta["num_relations"])
    if "num_users" in meta:
        out["num_users"] = int(meta["num_users"])
        out["num_items"] = int(meta["num_items"])
        out["num_interactions"] = int(
            meta.get(
                "num_interactions",
                sum(int(g.edge_splits[s].shape[0]) for s in ("train", "val", "test") if s in g.edge_splits),
            )
        )
    return out


# ------------------------------------------------------------------------------ processed-cache codec
def _plain(obj: Any) -> bool:
    """True if torch.load(weights_only=True) can read ``obj`` back (tensors, scalars, str, containers)."""
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return not isinstance(obj, torch.Tensor) or obj.layout == torch.strided
    if isinstance(obj, (list, tuple)):
        return all(_plain(x) for x in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in obj.items())
    return False


def graph_to_dict(g: Any) -> dict[str, Any] | None:
    """A Graph as a dict of plain tensors (None if its meta holds objects the cache cannot store)."""
    import torch

    X = g.X
    X_coo = None
    if X is not None and X.dim() == 2 and X.layout == torch.strided and X.numel() > 0:
        nz = X.nonzero()
        if (
            nz.shape[0] * 3 < X.numel()
        ):  # store sparse features (bag-of-words, multi-hot) as COO: 10-100x smaller
            X_coo = {
                "index": nz.t().contiguous(),
                "value": X[nz[:, 0], nz[:, 1]],
                "shape": list(X.shape),
                "dtype": str(X.dtype).removeprefix("torch."),
            }
            X = None
    d = {
        "row": g.A.row,
        "col": g.A.col,
        "val": g.A.val,
        "shape": list(g.A.shape),
        "X": X,
        "X_coo": X_coo,
        "y": g.y,
        "splits": dict(g.splits),
        "edge_splits": dict(g.edge_splits),
        "edge_feat": g.edge_feat,
        "edge_type": g.edge_type,
        "name": g.name,
        "meta": dict(g.meta),
    }
    return d if _plain(d) else None


def graph_from_dict(d: dict[str, Any]) -> Any:
    import dgl.sparse as dglsp
    import torch

    from graphnet.graph import Graph

    A = dglsp.spmatrix(torch.stack([d["row"], d["col"]]), d["val"], tuple(d["shape"]))
    X = d["X"]
    if d.get("X_coo") is not None:
        c = d["X_coo"]
        X = torch.zeros(tuple(c["shape"]), dtype=getattr(torch, c["dtype"]))
        X[c["index"][0], c["index"][1]] = c["value"]
    return Graph(
        A=A,
        X=X,
        y=d["y"],
        splits=d["splits"],
        edge_splits=d["edge_splits"],
        edge_feat=d["edge_feat"],
        edge_type=d["edge_type"],
        name=d["name"],
        meta=d["meta"],
    )
