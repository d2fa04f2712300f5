"""Node-classification datasets: every one present in the offline mirror, loaded through graphnet.data.load
and checked against ../shared/data/README.md; the Planetoid, Shchur, MUSAE, networkx and generic loaders on
tiny fixtures; the restricted unpickler; error messages naming dataset, file and line."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet.data as data
from graphnet.data import catalog, generic, graph_stats, load, musae
from graphnet.data.musae import load_musae
from graphnet.data.planetoid import load_planetoid
from graphnet.data.safe_pickle import load_pickle
from graphnet.data.shchur import load_shchur
from graphnet.errors import ChecksumError, DataError
from tests._mirror import MIRROR, need_mirror

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data"

# ../shared/data/README.md, "verified statistics": nodes, undirected edges without self-loops, self-loops
# kept,
# features, classes, public split sizes. Facebook: 171,002 undirected edges *including* 179 self-loops.
# Amazon Photo: 119,081 undirected edges after symmetrizing and dropping self-loops (the loader drops them).
README = {
    "cora": dict(
        nodes=2708, undirected=5278, loops=0, features=1433, classes=7, train=140, val=500, test=1000
    ),
    "citeseer": dict(
        nodes=3327, undirected=4552, loops=124, features=3703, classes=6, train=120, val=500, test=1000
    ),
    "pubmed": dict(
        nodes=19717, undirected=44324, loops=3, features=500, classes=3, train=60, val=500, test=1000
    ),
    "amazon-photo": dict(nodes=7650, undirected=119081, loops=0, features=745, classes=8),
    "facebook": dict(nodes=22470, undirected=171002 - 179, loops=179, features=4714, classes=4),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    # one processed cache for the whole module: each dataset is parsed once
    return tmp_path_factory.mktemp("graphnet_data")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("GRAPHNET_OFFLINE", "1")
    monkeypatch.delenv("GRAPHNET_ALLOW_UNPINNED", raising=False)
    monkeypatch.delenv("GRAPHNET_MIRROR", raising=False)


def _check_structure(g) -> tuple[int, int]:
    """A is symmetric with 0/1 weights; returns (undirected non-loop edges, self-loops)."""
    row, col = g.A.row, g.A.col
    n = g.num_nodes
    k1, k2 = torch.sort(row * n + col)[0], torch.sort(col * n + row)[0]
    assert torch.equal(k1, k2), "A must be symmetric"
    assert torch.unique(k1).numel() == k1.numel(), "A must be coalesced"
    assert torch.all(g.A.val == 1)
    loops = int((row == col).sum())
    return (g.num_edges - loops) // 2, loops


def _check_against_card_and_readme(name: str, g, **readme_override) -> None:
    card = catalog.load_card(name)
    stats = graph_stats(g)
    for key in ("num_nodes", "num_edges", "num_features", "num_classes", "train", "val", "test"):
        if key in card["stats"] and not (key == "num_features" and "features" in readme_override):
            assert stats[key] == card["stats"][key], (
                f"{name}: {key} = {stats[key]}, card says {card['stats'][key]}"
            )
    exp = {**README[name], **readme_override}
    undirected, loops = _check_structure(g)
    assert (g.num_nodes, undirected, loops) == (exp["nodes"], exp["undirected"], exp["loops"])
    assert stats["num_features"] == exp["features"] and stats["num_classes"] == exp["classes"]
    for s in ("train", "val", "test"):
        if s in exp:
            assert stats[s] == exp[s]
    idx = torch.cat([g.splits["train"], g.splits["val"], g.splits["test"]])
    assert idx.unique().numel() == idx.numel(), "splits overlap"


# ------------------------------------------------------------------------------------------- mirror datasets
@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_planetoid_from_mirror_matches_readme(name, data_root):
    need_mirror(name)
    g = load(name, root=data_root, mirror=MIRROR)
    _check_against_card_and_readme(name, g)
    assert g.X.dtype == torch.float32 and g.y.dtype == torch.long
    # public split: 20 labelled nodes per class, val = the 500 nodes after them, test = test.index
    assert torch.bincount(g.y[g.splits["train"]]).tolist() == [20] * README[name]["classes"]
    assert torch.equal(g.splits["val"], torch.arange(README[name]["train"], README[name]["train"] + 500))


def test_planetoid_matches_pyg_reader(data_root):
    """Same X, y, splits and (self-loop-free) edge set as torch_geometric's Planetoid reader."""
    pyg_io = pytest.importorskip("torch_geometric.io.planetoid")
    for name in ("cora", "citeseer"):
        need_mirror(name)
        ref = pyg_io.read_planetoid_data(str(MIRROR / name), name)
        g = load(name, root=data_root, mirror=MIRROR, normalize_features=False)  # PyG reads raw 0/1
        assert torch.equal(g.X, ref.x)
        labelled = torch.ones(g.num_nodes, dtype=torch.bool)
        labelled[g.meta["unlabeled_nodes"]] = False
        assert torch.equal(g.y[labelled], ref.y[labelled])
        for s, mask in (("train", ref.train_mask), ("val", ref.val_mask), ("test", ref.test_mask)):
            assert torch.equal(g.splits[s], mask.nonzero().squeeze(1))
        ours = g.remove_self_loops().edge_index()
        n = g.num_nodes
        assert torch.equal(
            torch.sort(ours[0] * n + ours[1])[0], torch.sort(ref.edge_index[0] * n + ref.edge_index[1])[0]
        )


def test_citeseer_isolated_test_nodes_are_zero_padded(data_root):
    need_mirror("citeseer")
    g = load("citeseer", root=data_root, mirror=MIRROR)
    lost = torch.tensor(g.meta["unlabeled_nodes"])
    assert lost.numel() == 15 and bool(((lost >= 2312) & (lost <= 3326)).all())
    assert torch.all(g.X[lost] == 0) and torch.all(g.y[lost] == 0)
    in_split = torch.cat(list(g.splits.values()))
    assert not torch.isin(lost, in_split).any()
    # Not isolated in the graph, despite the usual description (PyG's comment, the mirror README): each has
    # 1-2 neighbours in ind.citeseer.graph; what they lack is a tx/ty row.
    nonloop = g.A.row != g.A.col
    assert torch.isin(lost, g.A.row[nonloop]).all()


def test_pubmed_missing_allx_says_exactly_that(data_root):
    need_mirror("pubmed")
    if (MIRROR / "pubmed" / "ind.pubmed.allx").exists():
        pytest.skip("this mirror has ind.pubmed.allx")
    with pytest.raises(DataError) as e:
        load("pubmed", root=data_root, mirror=MIRROR)
    msg = str(e.value)
    for part in (
        "dataset 'pubmed'",
        "file ind.pubmed.allx is missing",
        "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
        str(data_root / "pubmed" / "raw" / "ind.pubmed.allx"),
        str(MIRROR / "pubmed"),
        "option features=true",
    ):
        assert part in msg, part
    # structure, labels and the public split load without the feature files
    g = load("pubmed", root=data_root, mirror=MIRROR, features=False)
    assert g.X is None
    _check_against_card_and_readme("pubmed", g, features=0)
    assert graph_stats(g)["num_nodes"] == catalog.load_card("pubmed")["stats"]["num_nodes"]


def test_amazon_photo_from_mirror_matches_readme(data_root):
    need_mirror("amazon-photo")
    g = load("amazon-photo", root=data_root, mirror=MIRROR)
    _check_against_card_and_readme("amazon-photo", g)
    assert torch.bincount(g.y[g.splits["train"]]).tolist() == [20] * 8
    assert torch.bincount(g.y[g.splits["val"]]).tolist() == [30] * 8
    assert g.splits["test"].numel() == 7650 - 8 * 50


def test_amazon_photo_lcc_and_options(data_root):
    need_mirror("amazon-photo")
    g = load("amazon-photo", root=data_root, mirror=MIRROR, lcc=True)
    card = catalog.load_card("amazon-photo")
    assert (g.num_nodes, g.num_edges) == (card["stats"]["lcc_num_nodes"], card["stats"]["lcc_num_edges"])
    M = sp.csr_matrix((np.ones(g.num_edges), (g.A.row.numpy(), g.A.col.numpy())), shape=(g.num_nodes,) * 2)
    assert sp.csgraph.connected_components(M)[0] == 1
    full = load("amazon-photo", root=data_root, mirror=MIRROR)
    kept = torch.tensor(g.meta["node_ids"])
    assert torch.equal(g.X, full.X[kept]) and torch.equal(g.y, full.y[kept])
    other = load("amazon-photo", root=data_root, mirror=MIRROR, seed=1)
    assert not torch.equal(other.splits["train"], full.splits["train"])
    loops = load("amazon-photo", root=data_root, mirror=MIRROR, remove_self_loops=False)
    assert loops.num_edges == full.num_edges + 1  # the stored adjacency has one self-loop


def test_facebook_from_mirror_matches_readme(data_root):
    need_mirror("facebook")
    g = load("facebook", root=data_root, mirror=MIRROR)
    _check_against_card_and_readme("facebook", g)
    counts = dict(zip(g.meta["class_names"], torch.bincount(g.y).tolist(), strict=True))
    assert counts == {"government": 6880, "company": 6495, "politician": 5768, "tvshow": 3327}
    feats = json.loads((MIRROR / "facebook" / "facebook_features.json").read_text())
    lengths = torch.zeros(g.num_nodes)
    for k, v in feats.items():
        lengths[int(k)] = len(set(v))
    assert torch.equal(g.X.sum(1), lengths)
    train_expected = sum(round(0.1 * c) for c in counts.values())
    assert g.splits["train"].numel() == train_expected == g.splits["val"].numel()


def test_processed_cache_is_used_and_rebuilt_when_invalid(data_root, monkeypatch):
    need_mirror("cora")
    first = load("cora", root=data_root, mirror=MIRROR)

    def no_parse(*a, **k):
        raise AssertionError("the processed cache should have been used")

    monkeypatch.setitem(data.LOADERS, "planetoid", no_parse)
    again = load("cora", root=data_root, mirror=MIRROR)
    assert torch.equal(again.X, first.X) and torch.equal(again.y, first.y)
    assert torch.equal(again.A.row, first.A.row) and torch.equal(again.A.col, first.A.col)
    assert all(torch.equal(again.splits[k], first.splits[k]) for k in first.splits)
    monkeypatch.undo()
    cache = next((data_root / "cora" / "processed").glob("*.pt"))
    cache.write_bytes(b"garbage")
    rebuilt = load("cora", root=data_root, mirror=MIRROR)
    assert torch.equal(rebuilt.X, first.X)


def test_tampered_mirror_file_is_a_checksum_error(tmp_path):
    need_mirror("cora")
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR / "cora", mirror / "cora")
    p = mirror / "cora" / "ind.cora.x"
    p.chmod(0o644)
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 1
    p.write_bytes(bytes(b))
    with pytest.raises(ChecksumError) as e:
        load("cora", root=tmp_path / "root", mirror=mirror)
    assert "dataset 'cora'" in str(e.value) and "ind.cora.x" in str(e.value)
    assert "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab" in str(e.value)


def test_all_mirror_pickles_pass_the_restricted_unpickler():
    files = sorted(
        p
        for d in ("cora", "citeseer", "pubmed")
        if (MIRROR / d).is_dir()
        for p in (MIRROR / d).iterdir()
        if not p.name.endswith("test.index")
    )
    if not files:
        pytest.skip(f"no Planetoid folders in {MIRROR}")
    for p in files:
        load_pickle(p)


# ------------------------------------------------------------------------------------------- networkx graphs
def test_karate_and_les_miserables(data_root):
    g = load("karate", root=data_root)
    _check_weighted_symmetric(g)
    assert (g.num_nodes, g.num_edges) == (34, 156) and float(g.A.val.sum()) == 2 * 231
    assert torch.equal(g.X, torch.eye(34))
    assert torch.bincount(g.y).tolist() == [17, 17] and g.y[0] == 0 and g.y[33] == 1
    stats = graph_stats(g)
    assert {k: stats[k] for k in catalog.load_card("karate")["stats"] if k in stats} == {
        k: v for k, v in catalog.load_card("karate")["stats"].items() if k in stats
    }
    lm = load("les-miserables", root=data_root)
    _check_weighted_symmetric(lm)
    assert (lm.num_nodes, lm.num_edges) == (77, 508) and float(lm.A.val.sum()) == 2 * 820
    assert lm.y is None and lm.splits == {} and lm.meta["node_names"][0] == "Napoleon"


def _check_weighted_symmetric(g) -> None:
    D = g.A.to_dense()
    assert torch.equal(D, D.t())


# ------------------------------------------------------------------------------------ Planetoid fixtures
def _write_planetoid(d: Path, prefix: str = "toy") -> dict:
    """A CiteSeer-like toy: 8 nodes, 2 train, ally = nodes 0..4, test ids [7, 5] (6 missing), 3 features."""
    rng = np.random.default_rng(0)
    objs = {
        "x": sp.csr_matrix(rng.integers(0, 2, (2, 3)).astype(np.float32)),
        "y": np.eye(2, dtype=np.int32)[[0, 1]],
        "allx": sp.csr_matrix(rng.integers(0, 2, (5, 3)).astype(np.float32)),
        "ally": np.eye(2, dtype=np.int32)[[0, 1, 1, 0, 1]],
        "tx": sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32)),
        "ty": np.eye(2, dtype=np.int32)[[1, 0]],
        "graph": {0: [1, 1, 2], 1: [0], 2: [0, 2], 3: [4], 4: [3], 5: [7], 6: [], 7: [5]},
    }
    d.mkdir(parents=True, exist_ok=True)
    for k, v in objs.items():
        (d / f"ind.{prefix}.{k}").write_bytes(pickle.dumps(v, protocol=4))
    (d / f"ind.{prefix}.test.index").write_text("7\n5\n")
    return objs


def _kipf_reference(objs: dict, test_index: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """tkipf/gcn utils.load_data, transcribed: features/labels with the test rows reordered."""
    test_range = np.sort(test_index)
    full = range(min(test_index), max(test_index) + 1)
    tx_ext = sp.lil_matrix((len(full), objs["tx"].shape[1]))
    tx_ext[test_range - min(test_range), :] = objs["tx"]
    ty_ext = np.zeros((len(full), objs["y"].shape[1]))
    ty_ext[test_range - min(test_range), :] = objs["ty"]
    features = sp.vstack((objs["allx"], tx_ext)).tolil()
    features[test_index, :] = features[test_range, :]
    labels = np.vstack((objs["ally"], ty_ext))
    labels[test_index, :] = labels[test_range, :]
    return np.asarray(features.todense()), labels.argmax(1)


def test_planetoid_toy_matches_kipf_reference(tmp_path):
    objs = _write_planetoid(tmp_path)
    g = load_planetoid({"name": "toy", "options": {}}, tmp_path)
    X_ref, y_ref = _kipf_reference(objs, [7, 5])
    assert np.array_equal(g.X.numpy(), X_ref.astype(np.float32))
    assert np.array_equal(g.y.numpy(), y_ref)
    assert g.splits["train"].tolist() == [0, 1] and g.splits["val"].tolist() == [2, 3, 4]
    assert g.splits["test"].tolist() == [5, 7] and g.meta["unlabeled_nodes"] == [6]
    D = g.A.to_dense()
    assert torch.equal(D, D.t()) and D[2, 2] == 1 and D[0, 1] == 1 and D.sum() == 2 * 4 + 1
    Xn = load_planetoid({"name": "toy", "options": {}}, tmp_path, normalize_features=True).X
    rows = g.X.sum(1) > 0
    assert torch.allclose(Xn[rows].sum(1), torch.ones(int(rows.sum())))


class _Evil:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_planetoid_pickle_is_rejected_without_executing(tmp_path):
    _write_planetoid(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "ind.toy.graph").write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(DataError) as e:
        load_planetoid({"name": "toy", "options": {}}, tmp_path)
    msg = str(e.value)
    assert "dataset 'toy'" in msg and "ind.toy.graph" in msg and "system" in msg and "refusing" in msg
    assert not marker.exists()
    # an unrestricted pickle.load of the same file would run the command (the test's premise holds)
    pickle.loads((tmp_path / "ind.toy.graph").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # eval via GLOBAL + REDUCE
        b"\x80\x02csubprocess\ncheck_output\nq\x00.",  # any other module
        b"\x80\x02cnumpy\nload\nq\x00.",  # numpy, but not an allowed name
        b"\x80\x02c__builtin__\ngetattr\nq\x00.",  # py2 builtins other than list
    ],
)
def test_restricted_unpickler_refuses_other_globals(tmp_path, payload):
    p = tmp_path / "ind.toy.x"
    p.write_bytes(payload)
    with pytest.raises(DataError, match="refusing to unpickle global"):
        load_pickle(p, "dataset 'toy': file ind.toy.x")


def test_planetoid_errors_name_dataset_and_file(tmp_path):
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.ally").write_bytes(b"\x80\x02}q\x00(")  # truncated pickle
    with pytest.raises(DataError, match=r"dataset 'toy': file ind.toy.ally: not a valid pickle"):
        load_planetoid({"name": "toy", "options": {}}, tmp_path)
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.test.index").write_text("7\nfive\n")
    with pytest.raises(
        DataError, match=r"dataset 'toy': file ind.toy.test.index, line 2: expected an integer"
    ):
        load_planetoid({"name": "toy", "options": {}}, tmp_path)
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.tx").unlink()
    with pytest.raises(DataError, match="file ind.toy.tx is missing"):
        load_planetoid({"name": "toy", "options": {}}, tmp_path)
    _write_planetoid(tmp_path)
    (tmp_path / "ind.toy.graph").write_bytes(pickle.dumps({0: [99]}, protocol=4))
    with pytest.raises(DataError, match=r"file ind.toy.graph: edge 0 -> 99 out of range"):
        load_planetoid({"name": "toy", "options": {}}, tmp_path)


# ------------------------------------------------------------------------------------------- MUSAE fixtures
TINY_FILES = ["tiny_edges.csv", "tiny_target.csv", "tiny_features.json"]
TINY_CARD = {
    "name": "tiny",
    "files": [{"name": "tiny_edges.csv"}, {"name": "tiny_target.csv"}, {"name": "tiny_features.json"}],
}


def test_musae_tiny():
    g = load_musae(TINY_CARD, FIXTURES / "musae_tiny", label_column="page_type", train_frac=0.5, val_frac=0.0)
    assert g.num_nodes == 6 and g.meta["class_names"] == ["a", "b", "c"]
    assert g.y.tolist() == [0, 0, 1, 1, 2, 2]  # rows of the target file are not in id order
    assert g.num_edges == 2 * 7 + 1  # 7 undirected edges listed once + the self-loop 2-2
    _check_structure(g)
    assert (
        g.X.shape == (6, 4) and g.X.sum(1).tolist() == [2, 1, 0, 3, 1, 2] and g.X[3].tolist() == [1, 1, 1, 0]
    )
    assert torch.bincount(g.y[g.splits["train"]]).tolist() == [1, 1, 1]


def test_musae_integer_labels_keep_their_numbers(tmp_path):
    """LastFM's targets are country numbers: class 10 must be id 10, not id 2 (the text order of '10')."""
    target = "id,target\n" + "".join(f"{i},{i % 12}\n" for i in range(24))
    d = _tiny_copy(tmp_path, "tiny_target.csv", target)
    (d / "tiny_edges.csv").write_text("id_1,id_2\n" + "".join(f"{i},{i + 1}\n" for i in range(23)))
    (d / "tiny_features.json").write_text(json.dumps({str(i): [i % 3] for i in range(24)}))
    g = load_musae(TINY_CARD, d, train_frac=0.5, val_frac=0.0)
    assert g.y.tolist() == [i % 12 for i in range(24)]
    assert g.meta["class_names"] == [str(c) for c in range(12)]


def test_musae_edges_file_without_a_header_is_refused(tmp_path):
    """Line 1 is skipped as the header: a headerless file would lose its first edge without a word."""
    path = tmp_path / "edges.csv"
    path.write_text("0,1\n1,2\n2,3\n")
    with pytest.raises(DataError, match=r"edges.csv, line 1: expected a header such as 'id_1,id_2', got "
                                         r"the edge '0,1'"):
        musae.read_edges_csv(path, f"edges file {path}")
    path.write_text("id_1,id_2\n0,1\n1,2\n2,3\n")
    assert musae.read_edges_csv(path, "edges").tolist() == [[0, 1], [1, 2], [2, 3]]


def test_processed_cache_of_an_unpinned_dataset_follows_its_files(tmp_path, monkeypatch):
    """The card cannot hash [[unpinned]] files, so the cache key holds their pinned sha256: a replaced (and
    re-pinned) file rebuilds the graph instead of serving the cache of the old one."""
    import graphnet.data as data

    card = {"name": "tiny-musae", "loader": "musae", "files": [],
            "unpinned": [{"name": f, "url": f"https://example.org/{f}"} for f in TINY_FILES],
            "options": {"id_column": "id", "label_column": "page_type", "seed": 0, "train_frac": 0.5,
                        "val_frac": 0.0}}
    monkeypatch.setattr(data, "load_card", lambda name: card)
    mirror = tmp_path / "mirror"
    shutil.copytree(FIXTURES / "musae_tiny", mirror / "tiny-musae")
    first = data.load("tiny-musae", root=tmp_path / "root", mirror=mirror)
    assert first.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.load("tiny-musae", root=tmp_path / "root", mirror=mirror).y.tolist() == first.y.tolist()
    raw = tmp_path / "root" / "tiny-musae" / "raw"
    text = (raw / "tiny_target.csv").read_text()
    (raw / "tiny_target.csv").write_text(text.replace(",a\n", ",z\n"))  # class a -> z: ids shift down
    (raw / ".tiny_target.csv.sha256").unlink()  # a new file, pinned on its first use
    assert data.load("tiny-musae", root=tmp_path / "root", mirror=mirror).y.tolist() == [2, 2, 0, 0, 1, 1]


def _tiny_copy(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "tiny"
    shutil.copytree(FIXTURES / "musae_tiny", d)
    (d / name).write_text(text)
    return d


@pytest.mark.parametrize(
    "fname, text, match",
    [
        (
            "tiny_edges.csv",
            "id_1,id_2\n0,1\n1,2\n2;3\n",
            r"file tiny_edges.csv, line 4: expected 2 comma-separated",
        ),
        (
            "tiny_edges.csv",
            "id_1,id_2\n0,1\n1,x\n",
            r"file tiny_edges.csv, line 3: expected integer node ids",
        ),
        ("tiny_edges.csv", "id_1,id_2\n0,1\n1,9\n", r"file tiny_edges.csv, line 3: node id 9 out of range"),
        (  # blank lines are skipped by the parser, not by the line count (it said line 4)
            "tiny_edges.csv",
            "id_1,id_2\n0,1\n\n\n1,2\n2,99\n",
            r"file tiny_edges.csv, line 6: node id 99 out of range",
        ),
        ("tiny_target.csv", "id,name,type\n0,a,b\n", r"file tiny_target.csv, line 1: no column 'page_type'"),
        ("tiny_target.csv", "id,name,page_type\n0,a\n", r"file tiny_target.csv, line 2: expected 3 fields"),
        (
            "tiny_target.csv",
            "id,name,page_type\nzero,a,b\n",
            r"file tiny_target.csv, line 2: column 'id' must be",
        ),
        ("tiny_features.json", '{"0": [1],\n "1": [2,]}', r"file tiny_features.json, line 2: invalid JSON"),
        ("tiny_features.json", '{"0": ["a"]}', r"file tiny_features.json: node 0: expected a list"),
    ],
)
def test_musae_errors_name_dataset_file_and_line(tmp_path, fname, text, match):
    d = _tiny_copy(tmp_path, fname, text)
    with pytest.raises(DataError, match=match) as e:
        load_musae(TINY_CARD, d, label_column="page_type")
    assert "dataset 'tiny'" in str(e.value)


# ------------------------------------------------------------------------------------------- Shchur npz
def _write_npz(path: Path, labels=None, pickled: bool = False) -> None:
    # 0->1, 1->2 (directed), 2->2 self-loop, 3->4; node 5 isolated; 2 classes
    adj = sp.csr_matrix((np.ones(4, np.float32), ([0, 1, 2, 3], [1, 2, 2, 4])), shape=(6, 6))
    attr = sp.csr_matrix(np.arange(12, dtype=np.float32).reshape(6, 2))
    arrays = dict(
        adj_data=adj.data,
        adj_indices=adj.indices,
        adj_indptr=adj.indptr,
        adj_shape=adj.shape,
        attr_data=attr.data,
        attr_indices=attr.indices,
        attr_indptr=attr.indptr,
        attr_shape=attr.shape,
        labels=np.array([0, 0, 1, 1, 0, 1]) if labels is None else labels,
    )
    if pickled:
        arrays["class_names"] = np.array([object(), "b"], dtype=object)
    np.savez(path, **arrays)


def test_generic_npz_symmetrizes_drops_loops_and_lcc(tmp_path):
    p = tmp_path / "toy.npz"
    _write_npz(p)
    g = generic.load_npz(p, train_per_class=1, val_per_class=1)
    assert g.num_nodes == 6 and g.num_edges == 6 and _check_structure(g) == (3, 0)
    assert torch.equal(g.X, torch.arange(12.0).reshape(6, 2))
    lcc = generic.load_npz(p, lcc=True, split=False)
    assert lcc.num_nodes == 3 and lcc.meta["node_ids"] == [0, 1, 2] and lcc.num_edges == 4
    assert torch.equal(lcc.y, torch.tensor([0, 0, 1]))
    card = {"name": "toy", "files": [{"name": "toy.npz"}]}
    g2 = load_shchur(card, tmp_path, train_per_class=1, val_per_class=1, remove_self_loops=False)
    assert g2.num_edges == 7


def test_npz_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.npz"
    _write_npz(p, labels=np.array([0, 1]))
    with pytest.raises(DataError, match=r"npz file .*bad.npz: labels must have shape \(6,\)"):
        generic.load_npz(p)
    _write_npz(p, pickled=True)
    with pytest.raises(DataError, match=r"bad.npz: cannot read npz"):
        generic.load_npz(p)
    p.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad.npz: cannot read npz"):
        generic.load_npz(p)


# ------------------------------------------------------------------------------------ generic edge lists
def test_edgelist_weighted_undirected_max_sum_and_directed():
    p = FIXTURES / "node_edgelist_weighted.csv"
    g = generic.load_edgelist(p)
    D = g.A.to_dense()
    assert g.num_nodes == 4 and torch.equal(D, D.t())
    assert D[0, 1] == 4.0 and D[1, 2] == 1.0 and D[0, 2] == 0.5 and D[3, 3] == 1.0 and g.num_edges == 7
    Ds = generic.load_edgelist(p, reduce="sum").A.to_dense()
    assert Ds[0, 1] == Ds[1, 0] == 6.5  # 2.5 (0->1) + 4.0 (1->0), each direction
    Dd = generic.load_edgelist(p, directed=True).A.to_dense()
    assert Dd[1, 0] == 2.5 and Dd[0, 1] == 4.0 and Dd[0, 2] == 1.0 * 0 + 0.5 and Dd[2, 0] == 0  # A[dst, src]
    via_config = data.load_config({"name": "edgelist", "path": str(p), "directed": True})
    assert torch.equal(via_config.A.to_dense(), Dd)


def test_edgelist_names_header_is_an_edge_unless_said_and_a_lone_first_edge_is_named(tmp_path, caplog):
    path = tmp_path / "names.csv"
    path.write_text("source,target\nalice,bob\nbob,carol\n")
    with caplog.at_level("WARNING", logger="graphnet.data.generic"):
        g = generic.load_edgelist(path, node_ids="names")
    assert g.meta["node_names"] == ["source", "target", "alice", "bob", "carol"]  # as documented
    assert f"edge list {path}, line 1: read as the edge 'source' -> 'target', whose two nodes occur " \
           "nowhere else; if it is a header, pass header=true" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="graphnet.data.generic"):
        g = generic.load_edgelist(path, node_ids="names", header=True)
        assert g.meta["node_names"] == ["alice", "bob", "carol"] and g.num_edges == 4
        generic.load_edgelist(FIXTURES / "node_edgelist_names.tsv", node_ids="names")  # a connected line 1
    assert caplog.text == ""


def test_load_takes_the_generic_loaders_by_name(tmp_path):
    """graphnet.load("edgelist", path=...) is load_config's route, as [data] name = "edgelist" is."""
    import graphnet

    g = graphnet.load("edgelist", path=str(FIXTURES / "node_edgelist_names.tsv"), node_ids="names")
    ref = generic.load_edgelist(FIXTURES / "node_edgelist_names.tsv", node_ids="names")
    assert g.meta["node_names"] == ref.meta["node_names"] and torch.equal(g.A.to_dense(), ref.A.to_dense())
    with pytest.raises(DataError, match=r"load\('edgelist'\): reads the user's file at 'path'; root and "
                                         "mirror apply to catalog datasets only"):
        graphnet.load("edgelist", root=tmp_path, path="x.csv")
    with pytest.raises(DataError, match="loader 'edgelist' needs key 'path'"):
        graphnet.load("edgelist")
    for name, kind in (("edgelist", "file"), ("npz", "file"), ("triples", "path"), ("interactions", "path")):
        with pytest.raises(DataError, match=rf"{kind} not found: no/such.csv \(relative paths are read from "
                                             r"the working directory: /.*/no/such.csv\)"):
            graphnet.load(name, path="no/such.csv")


def test_edgelist_names_labels_and_comments():
    g = generic.load_edgelist(FIXTURES / "node_edgelist_names.tsv", node_ids="names")
    assert g.meta["node_names"] == ["alice", "bob", "carol", "dave"]
    assert g.num_edges == 2 * 3 + 1
    lab = generic.load_edgelist(
        FIXTURES / "node_edgelist_weighted.csv",
        labels=FIXTURES / "node_labels.csv",
        train_frac=0.5,
        val_frac=0.0,
    )
    assert lab.y.tolist() == [0, 1, 0, 1] and lab.splits["train"].numel() == 2


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        (None, {}, r"node_edgelist_bad_line.csv, line 4: expected an integer node id, got 'x'"),
        ("0 1\n1 2 3\n", {}, r"line 2: expected 2 columns like the first edge line, got 3"),
        ("0,1,nan\n", {}, r"line 1: weight must be finite"),
        ("0,1,1\n1,2,inf\n", {}, r"line 2: weight must be finite"),
        ("0,1,-2\n", {}, r"line 1: negative weight -2.0"),
        ("0,1,abc\n", {"weighted": True}, r"line 1: expected a numeric weight"),
        ("0 1\n", {"weighted": True}, r"line 1: expected 3 columns"),
        ("0 -1\n", {}, r"line 1: node id -1 out of range"),
        ("0 1\n5 1\n", {"num_nodes": 3}, r"line 2: node id 5 out of range \(expected 0 <= id < 3\)"),
        ("# only a comment\n\n", {}, r"no edges found"),
        ("", {}, r"no edges found"),
    ],
)
def test_edgelist_errors_name_file_and_line(tmp_path, text, kwargs, match):
    if text is None:
        p = FIXTURES / "node_edgelist_bad_line.csv"
    else:
        p = tmp_path / "edges.txt"
        p.write_text(text)
    with pytest.raises(DataError, match=match) as e:
        generic.load_edgelist(p, **kwargs)
    assert str(p) in str(e.value)


def test_edgelist_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes(b"0 1\n1 2\nMis\xe9rables 3\n")
    with pytest.raises(DataError, match=r"latin1.txt, line 3: not UTF-8"):
        generic.load_edgelist(p, node_ids="names")
    with pytest.raises(DataError, match="file not found"):
        generic.load_edgelist(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------ fuzz: only DataError
_TOKENS = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "17",
        "-3",
        "x",
        "nan",
        "inf",
        "1e400",
        "2.5",
        "99999999999999999999",
        ",",
        " ",
        "\t",
        "\n",
        "\r\n",
        "#",
        "%",
        "src",
        "é",
        "\x00",
        "1_0",
        "٣",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(_TOKENS, max_size=40).map("".join),
    weighted=st.sampled_from([None, True, False]),
    node_ids=st.sampled_from(["int", "names"]),
)
def test_edgelist_parser_fuzz_raises_only_data_error(text, weighted, node_ids):
    try:
        s, d, w, names = generic.parse_edgelist(text, "fuzz", weighted=weighted, node_ids=node_ids)
    except DataError:
        return
    assert s.shape == d.shape and s.min() >= 0 and d.min() >= 0
    assert w is None or np.isfinite(w).all()


@settings(max_examples=150, deadline=None)
@given(edges=st.lists(_TOKENS, max_size=30).map("".join), target=st.lists(_TOKENS, max_size=30).map("".join))
def test_musae_readers_fuzz_raise_only_data_error(tmp_path_factory, edges, target):
    d = tmp_path_factory.mktemp("fuzz")
    (d / "e.csv").write_text("id_1,id_2\n" + edges, encoding="utf-8")
    (d / "t.csv").write_text("id,page_type\n" + target, encoding="utf-8")
    for call in (
        lambda: musae.read_edges_csv(d / "e.csv", "fuzz"),
        lambda: musae.read_target_csv(d / "t.csv", "fuzz", "id", "page_type"),
    ):
        try:
            call()
        except DataError:
            pass
