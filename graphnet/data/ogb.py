"""OGB datasets through the ``ogb`` package's own loaders, with the official splits and evaluator attached.

Names: ogbn-arxiv, ogbn-products (node classification), ogbl-collab, ogbl-ddi, ogbl-citation2 (link
prediction). The graph comes from ``ogb.nodeproppred.NodePropPredDataset`` /
``ogb.linkproppred.LinkPropPredDataset``; ``meta["evaluator"]`` is the OGB name and ``evaluator(graph)``
returns the matching ``ogb`` Evaluator (Hits@20 for ogbl-ddi, Hits@50 collab, MRR citation2, accuracy ogbn-*).

Where the files come from. ``raw_dir`` ends up in the OGB dataset folder layout (``RELEASE_v1.txt``,
``raw/``, ``split/<type>/``, ``mapping/``). For ogbl-ddi the card pins every file and graphnet's fetch put
them there (from ``$GRAPHNET_MIRROR/ogbl-ddi/`` or the pinned URLs). OGB publishes no checksums, so the
other cards list the official zip as ``[[unpinned]]``: fetch takes it from the raw directory or the mirror
(downloads only with ``GRAPHNET_ALLOW_UNPINNED=1``, pinning its sha256 on first use) and this module unzips
its dataset folder next to it. ogb is then pointed at a temporary root holding links to those files, so it
finds everything and never tries the network (its downloader would also prompt on stdin for files over 1
GB), and its ``processed/`` pickle is deleted with that root: ogb loads an existing
``processed/data_processed`` with an unrestricted ``torch.load``, which must never see a file that outlived
this call.

Split files (``.pt``) are NOT read with ogb's ``get_edge_split``: it calls ``torch.load`` without
``weights_only`` (arbitrary code execution on a tampered file). ``read_split_file`` is the safe path:
``torch.load(weights_only=True)`` first; OGB's files are pickles of *numpy* arrays in torch's legacy
(non-zip) format, which torch 2.2.1 rejects in weights-only mode
(``Unsupported class numpy.core.multiarray._reconstruct``), so they fall back to ``_read_legacy_arrays``: a
parser of the legacy container (magic number, protocol 1001, sys-info, object, empty storage list) whose
unpickler admits exactly the four globals such a file needs (numpy ``_reconstruct``/``ndarray``/``dtype``,
``_codecs.encode``) and no persistent ids (torch storages), then checks that the object is a dict of numeric
arrays. Anything else is refused with a DataError.

ogbl-ddi in ../shared/data is partial: ``split/target/train.pt`` is missing. Its ``raw/edge.csv.gz`` *is* the
training edge set (OGB builds the ddi graph from the training edges only; the mirror README checks that
valid/test positives are disjoint from it), so ``edge_splits["train"]`` is rebuilt from it (the first of each
interleaved pair of ogb's ``edge_index``) and ``meta["train_from_raw"] = True``. An official ``train.pt`` in
the raw directory is used instead when present (read with ``read_split_file``).

Graph layout:
- link: ``A`` = the official message-passing graph (training edges; ogb adds the reverse of every edge for
  ddi/collab; ``symmetrize=True`` does it for citation2), duplicates merged (collab lists a pair once per
  year: ``edge_weight=True`` sums their weights, else 1). ``edge_splits``: "train", "val", "test" (M, 2)
  (src, dst); "val_neg", "test_neg" (M', 2) shared negatives (ddi, collab); citation2 has per-query negatives
  instead: "val_neg_dst", "test_neg_dst" (M, 1000) = the negative destinations ranked against each
  positive's dst. collab adds "<split>_weight" and "<split>_year" (M,).
- node: X (N, F) float32, y (N,) long, splits "train"/"val"/"test" from ogb's ``get_idx_split`` (CSV files).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphnet.errors import DataError

log = logging.getLogger(__name__)

LINK = ("ogbl-collab", "ogbl-ddi", "ogbl-citation2")
NODE = ("ogbn-arxiv", "ogbn-products")

# ----------------------------------------------------------------------------------------- safe .pt reading
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001


def _array_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy.core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy >= 2
        from numpy._core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2 (the array buffer)
    }


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only numpy-array globals; refuses torch storages (persistent ids) and everything else."""

    def __init__(self, file: Any, label: str) -> None:
        super().__init__(file, encoding="latin1")
        self.label = label
        self.allowed = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self.label}: refusing to unpickle global {module}.{name} (an OGB split file "
                            f"holds only numpy arrays); the file may have been tampered with") from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.label}: refusing persistent id {pid!r} (a torch storage) in a legacy split "
                        f"file")


def _read_legacy_arrays(path: Path, label: str) -> Any:
    """Read a legacy-format (torch < 1.6) ``.pt`` file whose object contains only numpy arrays."""
    with open(path, "rb") as f:
        def load(what: str) -> Any:
            try:
                return _ArrayUnpickler(f, label).load()
            except DataError:
                raise
            except Exception as e:
                raise DataError(f"{label}: not a torch legacy-format file ({what}: {type(e).__name__}: "
                                f"{e})") from None

        if load("magic number") != _LEGACY_MAGIC:
            raise DataError(f"{label}: not a torch legacy-format file (wrong magic number)")
        if load("protocol") != _LEGACY_PROTOCOL:
            raise DataError(f"{label}: unsupported torch legacy protocol version (expected "
                            f"{_LEGACY_PROTOCOL})")
        if not isinstance(load("sys info"), dict):
            raise DataError(f"{label}: malformed torch legacy header (sys info is not a dict)")
        obj = load("object")
        if load("storage keys") != []:
            raise DataError(f"{label}: legacy file lists torch storages; expected numpy arrays only")
        if f.read(1):
            raise DataError(f"{label}: unexpected trailing bytes after the legacy torch payload")
    return obj


def read_split_file(path: Path, label: str | None = None) -> dict[str, Tensor]:
    """Safely read an OGB split ``.pt`` file into ``{key: tensor}`` (see the module docstring).

    Raises:
        DataError: missing file, a file holding anything but a dict of numeric arrays/tensors, or a global
            outside the allowlist (a tampered file is refused before anything is called).
    """
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise DataError(f"{label}: file not found ({path})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if zipfile.is_zipfile(path):  # new format but not plain tensors: nothing safe to fall back to
            reason = str(e).splitlines()[-1]
            raise DataError(f"{label}: torch.load(weights_only=True) refused it ({reason})") from None
        obj = _read_legacy_arrays(path, label)
    except Exception as e:
        raise DataError(f"{label}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise DataError(f"{label}: expected a dict of arrays keyed by name, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "iuf":
                raise DataError(f"{label}: entry {k!r} has dtype {v.dtype}, expected integers or floats")
            v = torch.from_numpy(np.ascontiguousarray(v))
        if not isinstance(v, Tensor) or v.is_complex() or v.dtype == torch.bool:
            raise DataError(f"{label}: entry {k!r} is {type(v).__name__}, expected a numeric array")
        out[k] = v
    return out


# ----------------------------------------------------------------------------------------- file layout
def _meta_info(name: str) -> Any:
    """ogb's master.csv row for ``name`` (version, url, split type, add_inverse_edge, ...)."""
    import pandas as pd

    sub = "linkproppred" if name.startswith("ogbl-") else "nodeproppred"
    import ogb

    master = pd.read_csv(Path(ogb.__file__).parent / sub / "master.csv", index_col=0, keep_default_na=False)
    if name not in master:
        raise DataError(f"dataset {name!r}: not an OGB dataset known to ogb {ogb.__version__}; "
                        f"valid: {', '.join(master.keys())}")
    return master[name]


def _required(name: str, info: Any) -> list[str]:
    split = f"split/{info['split']}"
    files = [f"RELEASE_v{info['version']}.txt", "raw/edge.csv.gz", "raw/num-node-list.csv.gz",
             "raw/num-edge-list.csv.gz"]
    if name.startswith("ogbl-"):
        files += [f"{split}/valid.pt", f"{split}/test.pt"]  # train.pt: see _link_splits
    else:
        files += [f"{split}/{s}.csv.gz" for s in ("train", "valid", "test")]
    return files


def _extract_dataset(zpath: Path, prefix: str, dest: Path, label: str) -> None:
    """Unzip the regular files under ``<prefix>/`` of an official OGB zip into ``dest`` (prefix stripped).

    Members are extracted into a temporary sibling directory first and moved into place entry by entry, so an
    interrupted extraction leaves no partial file under a real name. Links, absolute paths and ``..`` are
    refused (ogb's own ``extract_zip`` would call ``extractall``).
    """
    import stat

    try:
        zf = zipfile.ZipFile(zpath)
    except zipfile.BadZipFile as e:
        raise DataError(f"{label}: not a zip archive ({e})") from None
    with zf, tempfile.TemporaryDirectory(dir=dest, prefix=".ogb-extract-") as tmp:
        n = 0
        for info in zf.infolist():
            name = info.filename
            if not name.startswith(prefix + "/") or info.is_dir():
                continue
            rel = Path(name[len(prefix) + 1:])
            mode = info.external_attr >> 16
            if rel.is_absolute() or ".." in rel.parts or (mode and not stat.S_ISREG(mode)):
                raise DataError(f"{label}: refusing archive member {name!r} (absolute path, '..' or a link)")
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(Path(tmp) / rel, "wb") as out:
                shutil.copyfileobj(src, out)
            n += 1
        if n == 0:
            raise DataError(f"{label}: the archive has no folder {prefix}/ (expected the official OGB zip)")
        for entry in Path(tmp).iterdir():
            target = dest / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)


def _dataset_dir(card: dict, raw_dir: Path, info: Any) -> Path:
    """``raw_dir`` with every file ogb needs, in the OGB layout (see the module docstring).

    Pinned cards (ogbl-ddi): fetch put the files there. Unpinned cards: fetch put the official zip there
    (raw dir, mirror, or a download allowed by GRAPHNET_ALLOW_UNPINNED); its dataset folder is unzipped once.
    """
    name = card["name"]
    required = _required(name, info)
    missing = [r for r in required if not (raw_dir / r).is_file()]
    zips = [raw_dir / e["name"] for e in card.get("unpinned", []) if e["name"].endswith(".zip")]
    if missing and zips and zips[0].is_file():
        _extract_dataset(zips[0], info["download_name"], raw_dir, f"{name}/{zips[0].name}")
        missing = [r for r in required if not (raw_dir / r).is_file()]
    if missing:
        raise DataError(f"dataset {name!r}: {', '.join(missing)} missing from {raw_dir} (the OGB layout of "
                        f"folder {info['download_name']}/ in {info['url']})")
    return raw_dir


@contextlib.contextmanager
def _ogb_root(dataset_dir: Path, info: Any) -> Iterator[Path]:
    """A temporary ogb root: ``<root>/<ogb dir name>/`` links every entry of ``dataset_dir`` except
    ``processed`` and gets an empty ``processed/``; the whole root is deleted on exit."""
    dir_name = "_".join(info.name.split("-"))  # ogb's own rule: ogbl-ddi -> ogbl_ddi
    base = dataset_dir.parent if os.access(dataset_dir.parent, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base, prefix=".ogb-root-") as tmp:
        root = Path(tmp)
        ds = root / dir_name
        ds.mkdir()
        for entry in dataset_dir.iterdir():
            if entry.name == "processed" or entry.name.startswith("."):
                continue
            try:
                (ds / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
            except OSError:  # no symlinks (e.g. Windows without privilege): copy instead
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, ds / entry.name)
        (ds / "processed").mkdir()
        yield root


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ogb prints progress ("Loading necessary files...", tqdm) on stdout/stderr; keep it in the log."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield
    log.debug("ogb output: %s %s", out.getvalue().strip(), err.getvalue().strip())


# ----------------------------------------------------------------------------------------- loader
def load_ogb(card: dict, raw_dir: Path, symmetrize: bool = False, edge_weight: bool = False) -> Any:
    """Load an OGB dataset (see the module docstring for where files come from and the Graph layout).

    Args:
        symmetrize: add the reverse of every edge to ``A`` (ogbn-arxiv, ogbl-citation2 are directed;
            the OGB GNN baselines symmetrize them): A <- max(A, A^T) after duplicates are merged, so a
            pair ogb already stores both ways (ddi, collab) keeps its weight. Splits are unchanged.
        edge_weight: ogbl-collab only: A's values are the summed collaboration weights instead of 1.

    Shapes: A (N, N); X (N, F) or None (ogbl-ddi); y (N,) for node datasets.
    """
    name = card["name"]
    if name not in LINK + NODE:
        raise DataError(f"dataset {name!r}: the ogb loader handles {', '.join(LINK + NODE)}")
    info = _meta_info(name)  # a pandas Series named after the dataset
    raw_dir = Path(raw_dir)
    dataset_dir = _dataset_dir(card, raw_dir, info)
    split_dir = dataset_dir / "split" / info["split"]
    if (split_dir / "split_dict.pt").exists():  # ogb would torch.load it without weights_only
        raise DataError(f"dataset {name!r}: unexpected {split_dir / 'split_dict.pt'}; refusing to let ogb "
                        f"unpickle it (remove it: the official splits are the train/valid/test files)")
    with _ogb_root(dataset_dir, info) as root, _quiet():
        if name.startswith("ogbl-"):
            from ogb.linkproppred import LinkPropPredDataset

            ds = LinkPropPredDataset(name, root=str(root))
            node_split = None
        else:
            from ogb.nodeproppred import NodePropPredDataset

            ds = NodePropPredDataset(name, root=str(root))
            node_split = ds.get_idx_split()  # reads split/<type>/{train,valid,test}.csv.gz with pandas
        g = ds.graph
        labels = getattr(ds, "labels", None)
    return _to_graph(card, info, dataset_dir, g, labels, node_split, symmetrize, edge_weight)


def _to_graph(card: dict, info: Any, dataset_dir: Path, g: dict, labels: Any, node_split: Any,
              symmetrize: bool, edge_weight: bool) -> Any:
    from graphnet.graph import Graph, adjacency

    name = card["name"]
    n = int(g["num_nodes"])
    ei = torch.from_numpy(np.ascontiguousarray(g["edge_index"])).long()  # (2, E), row 0 = source
    weight = None
    if edge_weight and g.get("edge_weight") is not None:
        weight = torch.from_numpy(np.asarray(g["edge_weight"], dtype=np.float32)).reshape(-1)
    graph = Graph(A=adjacency(ei[0], ei[1], n, weight), name=name)
    if graph.A.has_duplicate():  # collab lists a pair once per year: their weights add up
        graph = graph.coalesce(reduce="sum" if weight is not None else "max")
    if symmetrize:  # adds each missing reverse; a pair stored both ways (ogb's own reverses) is unchanged
        graph = graph.symmetrize(reduce="max")
    X = None if g.get("node_feat") is None else torch.from_numpy(np.asarray(g["node_feat"], dtype=np.float32))
    meta: dict[str, Any] = {"evaluator": name, "eval_metric": info["eval metric"],
                            "split_type": info["split"], "symmetrized": symmetrize}
    if node_split is not None:
        y = torch.from_numpy(np.asarray(labels)).reshape(-1).long()
        splits = {k2: torch.as_tensor(np.asarray(node_split[k]), dtype=torch.long)
                  for k, k2 in (("train", "train"), ("valid", "val"), ("test", "test"))}
        meta["num_classes"] = int(info["num classes"])
        return graph.replace(X=X, y=y, splits=splits, meta=meta)
    edge_splits, train_from_raw = _link_splits(name, dataset_dir / "split" / info["split"], ei,
                                               info["add_inverse_edge"] == "True", n)
    meta["train_from_raw"] = train_from_raw
    return graph.replace(X=X, edge_splits=edge_splits, meta=meta)


def _link_splits(name: str, split_dir: Path, edge_index: Tensor, inverse_added: bool,
                 n: int) -> tuple[dict[str, Tensor], bool]:
    """Official link splits read with ``read_split_file``; keys renamed to graphnet's (valid -> val)."""
    parts, train_from_raw = {}, False
    for s, fname in (("train", "train.pt"), ("val", "valid.pt"), ("test", "test.pt")):
        path = split_dir / fname
        label = f"{name}/split/{split_dir.name}/{fname}"
        if s == "train" and not path.is_file() and name == "ogbl-ddi":
            # raw/edge.csv.gz is the training edge set; ogb interleaves each edge with its reverse
            parts[s] = {"edge": edge_index[:, 0::2].t().contiguous() if inverse_added else edge_index.t()}
            train_from_raw = True
            continue
        parts[s] = read_split_file(path, label)
    out: dict[str, Tensor] = {}
    for s, d in parts.items():
        label = f"{name} {s} split"
        if "edge" in d:
            out[s] = _pairs(d["edge"], label, n)
            if "edge_neg" in d:
                out[f"{s}_neg"] = _pairs(d["edge_neg"], label + " (negatives)", n)
            for extra in ("weight", "year"):
                if extra in d:
                    out[f"{s}_{extra}"] = d[extra].reshape(-1)
        elif "source_node" in d:  # citation2: per-query negatives
            pairs = torch.stack([d["source_node"].reshape(-1), d["target_node"].reshape(-1)], 1)
            out[s] = _pairs(pairs, label, n)
            if "target_node_neg" in d:
                neg = d["target_node_neg"].long()
                _check_ids(neg, label + " (negatives)", n)
                out[f"{s}_neg_dst"] = neg
        else:
            raise DataError(f"{label}: expected keys 'edge' or 'source_node', got {sorted(d)}")
    return out, train_from_raw


def _check_ids(t: Tensor, label: str, n: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise DataError(f"{label}: node id out of range, expected 0 <= id < {n}, got [{int(t.min())}, "
                        f"{int(t.max())}]")


def _pairs(t: Tensor, label: str, n: int) -> Tensor:
    if t.dim() != 2 or t.shape[1] != 2 or t.dtype.is_floating_point:
        raise DataError(f"{label}: expected an (M, 2) integer array of node pairs, got {tuple(t.shape)} "
                        f"{t.dtype}")
    t = t.long()
    _check_ids(t, label, n)
    return t


# ----------------------------------------------------------------------------------------- evaluator
def evaluator(graph: Any) -> Any:
    """The ogb Evaluator of ``graph.meta["evaluator"]`` (or of a dataset name given directly).

    ``evaluator(g).eval({"y_pred_pos": pos, "y_pred_neg": neg})`` -> ``{"hits@20": ...}`` for ogbl-ddi.
    """
    name = graph if isinstance(graph, str) else graph.meta.get("evaluator")
    if not isinstance(name, str) or not name.startswith(("ogbl-", "ogbn-")):
        raise DataError(f"evaluator: expected a graph with meta['evaluator'] naming an OGB dataset, "
                        f"got {name!r}")
    if name.startswith("ogbl-"):
        from ogb.linkproppred import Evaluator
    else:
        from ogb.nodeproppred import Evaluator
    with _quiet():
        return Evaluator(name)
