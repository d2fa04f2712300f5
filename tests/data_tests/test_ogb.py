"""OGB loader (graphnet.data.ogb): ogbl-ddi from the mirror with its statistics and official splits, the
Hits@20 evaluator (hand-checked and against a numpy reference), and the safe reading of split .pt files
(torch's weights-only mode rejects OGB's legacy numpy pickles; a tampered file never runs code)."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from graphnet.data import load
from graphnet.data import ogb as gogb
from graphnet.data.catalog import load_card
from graphnet.errors import DataError
from tests._mirror import MIRROR, need_mirror

DDI = MIRROR / "ogbl-ddi"


@pytest.fixture(scope="module", autouse=True)
def data_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHNET_MIRROR", str(MIRROR))
        mp.setenv("GRAPHNET_DATA", str(tmp_path_factory.mktemp("graphnet-data")))
        mp.setenv("GRAPHNET_OFFLINE", "1")  # nothing here may touch the network
        yield


@pytest.fixture(scope="module")
def ddi():
    need_mirror("ogbl-ddi")
    return load("ogbl-ddi")


# ----------------------------------------------------------------------------------------- ogbl-ddi
def test_ddi_statistics(ddi):
    g = ddi
    assert g.num_nodes == 4267 and g.X is None
    shapes = {k: tuple(v.shape) for k, v in g.edge_splits.items()}
    assert shapes == {"train": (1067911, 2), "val": (133489, 2), "val_neg": (101882, 2),
                      "test": (133489, 2), "test_neg": (95599, 2)}
    assert g.meta["evaluator"] == "ogbl-ddi" and g.meta["eval_metric"] == "hits@20"
    assert g.meta["train_from_raw"] is True
    stats = load_card("ogbl-ddi")["stats"]
    keys = ("num_nodes", "train", "val", "val_neg", "test", "test_neg")
    assert tuple(stats[k] for k in keys) == (4267, 1067911, 133489, 101882, 133489, 95599)


def test_ddi_train_edges_are_raw_edges_and_graph_is_symmetric(ddi):
    g = ddi
    with gzip.open(DDI / "raw" / "edge.csv.gz", "rt") as f:  # independent parse: "src,dst" lines
        raw = torch.from_numpy(np.array(f.read().replace(",", " ").split(), dtype=np.int64).reshape(-1, 2))
    assert torch.equal(g.edge_splits["train"], raw)
    # A = both directions of every training edge, nothing else (numpy: steadier than torch on a busy machine)
    n, r = g.num_nodes, raw.numpy()
    a_keys = np.sort(g.A.col.numpy() * n + g.A.row.numpy())
    expect = np.sort(np.concatenate([r[:, 0] * n + r[:, 1], r[:, 1] * n + r[:, 0]]))
    assert np.array_equal(a_keys, expect) and bool((g.A.val == 1).all())
    # valid/test positives never appear in the message-passing graph (no leakage)
    for s in ("val", "test"):
        e = g.edge_splits[s].numpy()
        assert not np.isin(e[:, 0] * n + e[:, 1], a_keys, assume_unique=False).any()


def test_ddi_split_files_match_an_independent_read(ddi):
    # torch 2.2.1 refuses OGB's legacy numpy pickles in weights-only mode: the reason for read_split_file
    with pytest.raises(pickle.UnpicklingError, match="numpy.core.multiarray._reconstruct"):
        torch.load(DDI / "split" / "target" / "valid.pt", weights_only=True)
    d = gogb.read_split_file(DDI / "split" / "target" / "test.pt")
    assert sorted(d) == ["edge", "edge_neg"] and d["edge"].dtype == torch.int64
    assert torch.equal(d["edge"], ddi.edge_splits["test"])
    assert torch.equal(d["edge_neg"], ddi.edge_splits["test_neg"])


def test_ddi_evaluator_hits20(ddi):
    ev = gogb.evaluator(ddi)
    from ogb.linkproppred import Evaluator

    assert isinstance(ev, Evaluator) and ev.eval_metric == "hits@20" and ev.K == 20
    # hand-checked: negatives score 0..99, so the 20th best negative is 80; a positive counts if > 80
    neg = torch.arange(100, dtype=torch.float)
    pos = torch.tensor([81.0, 80.0, 100.0, 0.0])
    assert ev.eval({"y_pred_pos": pos, "y_pred_neg": neg}) == {"hits@20": 0.5}
    # a real score on the real validation split: preferential attachment deg(u) * deg(v) from A
    deg = torch.zeros(ddi.num_nodes).index_add_(0, ddi.A.row, ddi.A.val)
    score = lambda e: deg[e[:, 0]] * deg[e[:, 1]]  # noqa: E731
    p, q = score(ddi.edge_splits["val"]), score(ddi.edge_splits["val_neg"])
    got = ev.eval({"y_pred_pos": p, "y_pred_neg": q})["hits@20"]
    kth = np.sort(q.numpy())[-20]
    assert got == pytest.approx(float((p.numpy() > kth).mean()))
    assert 0.0 < got < 1.0
    # the same through the name, and random scores against the numpy formula
    gen = torch.Generator().manual_seed(0)
    p, q = torch.rand(1000, generator=gen), torch.rand(5000, generator=gen)
    ref = float((p.numpy() > np.sort(q.numpy())[-20]).mean())
    by_name = gogb.evaluator("ogbl-ddi").eval({"y_pred_pos": p, "y_pred_neg": q})["hits@20"]
    assert by_name == pytest.approx(ref)


def test_ddi_missing_split_file_is_named(tmp_path):
    need_mirror("ogbl-ddi")
    shutil.copytree(DDI, tmp_path / "raw")
    (tmp_path / "raw" / "split" / "target" / "valid.pt").unlink()
    card = load_card("ogbl-ddi")
    with pytest.raises(DataError, match=r"ogbl-ddi.*split/target/valid\.pt missing from"):
        gogb.load_ogb(card, tmp_path / "raw")


def test_ddi_official_train_file_is_used_when_present(tmp_path):
    need_mirror("ogbl-ddi")
    shutil.copytree(DDI, tmp_path / "raw")
    few = torch.tensor([[0, 1], [2, 3]])
    torch.save({"edge": few}, tmp_path / "raw" / "split" / "target" / "train.pt")
    g = gogb.load_ogb(load_card("ogbl-ddi"), tmp_path / "raw")
    assert torch.equal(g.edge_splits["train"], few) and g.meta["train_from_raw"] is False
    assert not any(p.name == "processed" for p in (tmp_path / "raw").iterdir())  # ogb's pickle never lingers


def test_symmetrize_adds_missing_reverses_without_doubling_weights():
    """collab-like input: 0->1 listed twice (years, weights 2 and 1), its reverse 1->0 (3), and 0->2 (4)
    without reverse. Per-year weights add up (0->1: 3); symmetrize adds 2->0 (4) and leaves the pair that is
    already stored both ways at 3 (it gave 6: A + A^T counted ogb's own reverses twice)."""
    g = {"num_nodes": 3, "edge_index": np.array([[0, 0, 1, 0], [1, 1, 0, 2]]),
         "edge_weight": np.array([[2.0], [1.0], [3.0], [4.0]])}
    info = {"eval metric": "acc", "split": "toy", "num classes": "2"}
    split = {"train": np.array([0]), "valid": np.array([1]), "test": np.array([2])}
    for symmetrize, expected in ((False, [[0, 3, 0], [3, 0, 0], [4, 0, 0]]),
                                 (True, [[0, 3, 4], [3, 0, 0], [4, 0, 0]])):
        graph = gogb._to_graph({"name": "toy"}, info, Path("."), g, np.array([0, 1, 0]), split, symmetrize,
                               True)
        assert graph.A.to_dense().tolist() == expected  # A[dst, src]
        assert not graph.A.has_duplicate()


# ----------------------------------------------------------------------------------------- safe .pt reading
def test_legacy_numpy_file_round_trip(tmp_path):
    arrays = {"edge": np.arange(10, dtype=np.int64).reshape(5, 2), "weight": np.ones(5, dtype=np.float32)}
    path = tmp_path / "legacy.pt"
    torch.save(arrays, path, _use_new_zipfile_serialization=False)  # the format of OGB's split files
    d = gogb.read_split_file(path)
    assert torch.equal(d["edge"], torch.from_numpy(arrays["edge"]))
    assert d["weight"].dtype == torch.float32


def test_zip_file_with_tensors_loads_weights_only(tmp_path):
    torch.save({"edge": torch.tensor([[1, 2]])}, tmp_path / "new.pt")
    assert gogb.read_split_file(tmp_path / "new.pt")["edge"].tolist() == [[1, 2]]


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [True, False])
def test_tampered_split_file_runs_no_code(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"edge": np.zeros((1, 2), dtype=np.int64), "x": _Exploit(marker)}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(DataError, match=r"evil|refus"):
        gogb.read_split_file(path, "ogbl-ddi/split/target/evil.pt")
    assert not marker.exists()


def test_bad_split_contents_are_refused(tmp_path):
    torch.save({"edge": np.array(["a", "b"], dtype=object)}, tmp_path / "obj.pt",
               _use_new_zipfile_serialization=False)
    with pytest.raises(DataError, match="entry 'edge' has dtype object, expected integers or floats"):
        gogb.read_split_file(tmp_path / "obj.pt")
    torch.save([np.zeros(2)], tmp_path / "list.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(DataError, match="expected a dict of arrays"):
        gogb.read_split_file(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="junk.pt"):
        gogb.read_split_file(tmp_path / "junk.pt")
    with pytest.raises(DataError, match="file not found"):
        gogb.read_split_file(tmp_path / "absent.pt")


# ----------------------------------------------------------------------------------------- other OGB cards
@pytest.mark.parametrize("name", ["ogbn-arxiv", "ogbn-products", "ogbl-collab", "ogbl-citation2"])
def test_unmirrored_ogb_error_says_what_to_do(name):
    card = load_card(name)
    assert card["loader"] == "ogb" and card["files"] == [] and card["unpinned"][0]["name"].endswith(".zip")
    with pytest.raises(DataError, match=rf"{name}.*is missing.*snap\.stanford\.edu/ogb/data.*"
                                        r"GRAPHNET_ALLOW_UNPINNED"):
        load(name)


def test_official_zip_is_unzipped_and_loaded(tmp_path):
    """The unpinned path (an official OGB zip in the raw directory), exercised with ddi's files zipped up."""
    need_mirror("ogbl-ddi")
    raw = tmp_path / "raw"
    raw.mkdir()
    with zipfile.ZipFile(raw / "ddi.zip", "w") as zf:
        for f in DDI.rglob("*"):
            if f.is_file():
                zf.write(f, "ddi/" + f.relative_to(DDI).as_posix())
    card = {**load_card("ogbl-ddi"), "files": [],
            "unpinned": [{"name": "ddi.zip", "url": "http://snap.stanford.edu/ogb/data/linkproppred/ddi.zip"}],
            }
    g = gogb.load_ogb(card, raw)
    assert (raw / "raw" / "edge.csv.gz").is_file() and not list(raw.glob(".ogb-*"))
    assert g.edge_splits["val_neg"].shape == (101882, 2) and g.edge_splits["train"].shape == (1067911, 2)
    # a zip whose members escape the folder is refused
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("ddi/../../escape.txt", "x")
    with pytest.raises(DataError, match=r"refusing archive member"):
        gogb._extract_dataset(tmp_path / "evil.zip", "ddi", raw, "ogbl-ddi/evil.zip")
    assert not (tmp_path / "escape.txt").exists()
