"""Malformed files fed to every loader a user can point at their own data: each gives one graphnet error
whose message names the file and the line (or the option), raised by graphnet code.

Files are written into a fresh tmp directory per case. A case marked xfail(strict) is a bug found by this
suite; its reason says what is wrong and the lead removes the mark once it is fixed (see docs/robustness.md).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphnet.data import generic, kg, musae, planetoid, recsys
from graphnet.errors import DataError
from tests.robustness._support import raises_clear


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


def case(cid: str, files: dict[str, str | bytes], call: Callable[[Path], Any], exc: type, *fragments: str,
         marks: Any = ()) -> Any:
    return pytest.param(files, call, exc, fragments, id=cid, marks=marks)


def write_files(d: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


# ------------------------------------------------------------------------------------------ edge lists
def edges(text: str | bytes, **kw: Any) -> tuple[dict, Callable[[Path], Any]]:
    return {"edges.txt": text}, lambda d: generic.load_edgelist(d / "edges.txt", **kw)


def labelled(labels: str, **kw: Any) -> tuple[dict, Callable[[Path], Any]]:
    files = {"edges.txt": "0 1\n1 2\n2 3\n3 0\n", "labels.txt": labels}
    return files, lambda d: generic.load_edgelist(d / "edges.txt", labels=d / "labels.txt", **kw)


EDGE_LIST_CASES = [
    case("edgelist-empty-file", *edges(""), DataError, "edges.txt", "no edges"),
    case("edgelist-header-only", *edges("src,dst\n"), DataError, "edges.txt", "no edges"),
    case("edgelist-truncated-last-line", *edges("0,1\n1,2\n2,"), DataError, "edges.txt", "line 3", "'2,'"),
    case("edgelist-missing-column", *edges("0 1\n2\n"), DataError, "edges.txt", "line 2", "got 1"),
    case("edgelist-too-many-columns", *edges("0 1 1 1\n"), DataError, "edges.txt", "line 1", "got 4"),
    case("edgelist-ragged-weight-column", *edges("0 1 1.0\n1 2\n"), DataError, "edges.txt", "line 2",
         "expected 3 columns"),
    case("edgelist-non-numeric-id", *edges("0 1\n2 x\n"), DataError, "edges.txt", "line 2", "'x'"),
    case("edgelist-float-id", *edges("0 1\n1.5 1\n"), DataError, "edges.txt", "line 2", "'1.5'"),
    case("edgelist-negative-id", *edges("0 1\n-2 1\n"), DataError, "edges.txt", "line 2", "-2"),
    case("edgelist-id-beyond-int32", *edges("0 1\n99999999999 1\n"), DataError, "edges.txt", "line 2",
         "99999999999"),
    case("edgelist-id-beyond-num-nodes", *edges("0 1\n1 5\n", num_nodes=3), DataError, "edges.txt",
         "line 2", "< 3"),
    case("edgelist-nan-weight", *edges("0 1 1.0\n1 2 nan\n"), DataError, "edges.txt", "line 2", "finite"),
    case("edgelist-inf-weight", *edges("0 1 1.0\n1 2 -inf\n"), DataError, "edges.txt", "line 2", "finite"),
    case("edgelist-negative-weight", *edges("0 1 1.0\n1 2 -3\n"), DataError, "edges.txt", "line 2",
         "negative weight", "allow_negative"),
    case("edgelist-non-numeric-weight", *edges("0 1 heavy\n", weighted=True), DataError, "edges.txt",
         "line 1", "'heavy'"),
    case("edgelist-not-utf8", *edges(b"0 1\n\xff\xfe 2\n"), DataError, "edges.txt", "line 2", "UTF-8"),
    case("edgelist-nul-byte", *edges("0 1\n\x00 1\n"), DataError, "edges.txt", "line 2"),
    case("edgelist-empty-node-name", *edges("a,b\n,c\n", node_ids="names"), DataError, "edges.txt",
         "line 2", "empty node name"),
    case("edgelist-names-beyond-num-nodes", *edges("a b\nb c\n", node_ids="names", num_nodes=2), DataError,
         "edges.txt", "line 2", "num_nodes"),
    case("edgelist-missing-file", {}, lambda d: generic.load_edgelist(d / "nope.txt"), DataError,
         "nope.txt", "not found"),
    case("edgelist-bad-reduce-option", *edges("0 1\n", reduce="mean"), DataError, "edges.txt", "reduce",
         "'mean'"),
    case("edgelist-underscore-in-id", *edges("0 1\n1_0 1\n"), DataError, "edges.txt", "line 2", "'1_0'"),
    case("edgelist-non-ascii-digit", *edges("0 1\n\u0663 1\n"), DataError, "edges.txt", "line 2"),
    case("labels-node-out-of-range", *labelled("0,1\n9,1\n"), DataError, "labels.txt", "line 2", "9"),
    case("labels-negative-class", *labelled("0,1\n1,-1\n"), DataError, "labels.txt", "line 2", "-1"),
    case("labels-non-integer-class", *labelled("0,1\n1,x\n"), DataError, "labels.txt", "line 2", "'x'"),
    case("labels-three-columns", *labelled("0,1\n1,1,1\n"), DataError, "labels.txt", "line 2", "got 3"),
    case("labels-class-id-overflows-int64", *labelled("0,1\n1,99999999999999999999\n"), DataError,
         "labels.txt", "line 2"),
    case("labels-class-id-far-beyond-node-count", *labelled("0,1\n1,1000000000\n"), DataError,
         "labels.txt", "line 2", "1000000000"),
    case("labels-conflicting-duplicate", *labelled("0,1\n0,0\n"), DataError, "labels.txt", "line 2",
         "line 1"),
    case("labels-file-without-labels", *labelled("# nothing\n"), DataError, "labels.txt"),
]


# ------------------------------------------------------------------------------------------ triples
KG_CARD = {"name": "mykg", "loader": "triples", "files": [], "options": {}}


def triples(train: str | bytes, valid: str = "a\tr\tb\n", test: str = "a\tr\tb\n",
            **kw: Any) -> tuple[dict, Callable[[Path], Any]]:
    return ({"train.txt": train, "valid.txt": valid, "test.txt": test},
            lambda d: kg.load_triples(KG_CARD, d, **kw))


TRIPLES_CASES = [
    case("triples-two-fields", *triples("a\tr\tb\nc\td\n"), DataError, "mykg/train.txt", "line 2",
         "got 2"),
    case("triples-four-fields", *triples("a\tr\tb\tx\n"), DataError, "mykg/train.txt", "line 1", "got 4"),
    case("triples-empty-relation", *triples("a\t\tb\n"), DataError, "mykg/train.txt", "line 1",
         "empty relation"),
    case("triples-spaces-not-tabs", *triples("a r b\n"), DataError, "mykg/train.txt", "line 1",
         "tab-separated"),
    case("triples-truncated-last-line", *triples("a\tr\tb\nb\tr"), DataError, "mykg/train.txt", "line 2"),
    case("triples-not-utf8", *triples(b"a\tr\tb\n\xff\tr\tb\n"), DataError, "mykg/train.txt", "line 2",
         "UTF-8"),
    case("triples-empty-training-file", *triples("\n\n"), DataError, "mykg/train.txt", "no triples"),
    case("triples-bad-line-in-test-file", *triples("a\tr\tb\n", test="a\tr\tb\nx\n"), DataError,
         "mykg/test.txt", "line 2"),
    case("triples-missing-valid-file", {"train.txt": "a\tr\tb\n", "test.txt": "a\tr\tb\n"},
         lambda d: kg.load_triples(KG_CARD, d), DataError, "mykg/valid.txt", "not found"),
    case("triples-generic-path-missing", {}, lambda d: generic.load_triples(d / "nokg"), DataError,
         "nokg", "not found"),
]


# ------------------------------------------------------------------------------------------ interactions
def inter(text: str | bytes, **kw: Any) -> tuple[dict, Callable[[Path], Any]]:
    return {"ratings.csv": text}, lambda d: generic.load_interactions(d / "ratings.csv", **kw)


INTERACTION_CASES = [
    case("interactions-non-integer-user", *inter("0 1\nx 1\n"), DataError, "ratings.csv", "line 2",
         "user id", "'x'"),
    case("interactions-float-item", *inter("0 1\n1 1.0\n"), DataError, "ratings.csv", "line 2", "item id"),
    case("interactions-one-column", *inter("0 1\n2\n"), DataError, "ratings.csv", "line 2", "got 1"),
    case("interactions-four-columns", *inter("0 1 1 1\n"), DataError, "ratings.csv", "line 1", "got 4"),
    case("interactions-rating-column-dropped", *inter("0 1 3\n0 2\n"), DataError, "ratings.csv", "line 2",
         "expected 3"),
    case("interactions-negative-id", *inter("0 1\n-1 1\n"), DataError, "ratings.csv", "line 2", "-1"),
    case("interactions-id-beyond-num-users", *inter("0 1\n5 1\n", num_users=3), DataError, "ratings.csv",
         "line 2", "5"),
    case("interactions-zero-id-when-one-based", *inter("0 1\n", one_based=True), DataError, "ratings.csv",
         "line 1", "user id 0"),
    case("interactions-nan-rating", *inter("0 1 3\n1 1 nan\n"), DataError, "ratings.csv", "line 2",
         "finite"),
    case("interactions-non-numeric-rating", *inter("0 1 3\n1 1 good\n"), DataError, "ratings.csv",
         "line 2", "'good'"),
    case("interactions-duplicate-rated-pair", *inter("0 1 3\n0 1 4\n"), DataError, "ratings.csv", "line 2",
         "line 1"),
    case("interactions-comma-file-with-bad-item", *inter("0,1\n1,x\n", sep=","), DataError, "ratings.csv",
         "line 2", "'x'"),
    case("interactions-not-utf8", *inter(b"0 1\n\xff 1\n"), DataError, "ratings.csv", "line 2"),
    case("interactions-empty-file", *inter(""), DataError, "ratings.csv", "no interactions"),
    case("interactions-bad-test-fraction", *inter("0 1\n1 2\n", test_fraction=1.5), DataError,
         "test_fraction", "1.5"),
    case("interactions-id-overflows-int64", *inter("0 1\n99999999999999999999999 1\n"), DataError,
         "ratings.csv", "line 2"),
    case("interactions-huge-ids-overflow-pair-key", *inter("0 1\n4000000000 4000000000\n"), DataError,
         "ratings.csv", "line 2"),
    case("interactions-holdout-leaves-train-empty", *inter("0 1\n", test_fraction=0.9), DataError,
         "ratings.csv", "train"),
]


# ------------------------------------------------------------------------------------------ npz (Shchur)
def npz_bytes(**arrays: Any) -> bytes:
    import io

    base = {"adj_data": np.ones(2), "adj_indices": np.array([1, 0]), "adj_indptr": np.array([0, 1, 2]),
            "adj_shape": np.array([2, 2]), "attr_matrix": np.ones((2, 3), dtype=np.float32),
            "labels": np.array([0, 1])}
    base.update(arrays)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in base.items() if v is not None})
    return buf.getvalue()


def npz(data: bytes, **kw: Any) -> tuple[dict, Callable[[Path], Any]]:
    return {"graph.npz": data}, lambda d: generic.load_npz(d / "graph.npz", **{"split": False, **kw})


NPZ_CASES = [
    case("npz-truncated", *npz(npz_bytes()[:100]), DataError, "graph.npz", "cannot read"),
    case("npz-not-a-zip", *npz(b"0 1\n1 2\n"), DataError, "graph.npz"),
    case("npz-object-array-pickle", *npz(npz_bytes(labels=np.array([{}, {}], dtype=object))), DataError,
         "graph.npz", "allow_pickle"),
    case("npz-missing-labels", *npz(npz_bytes(labels=None)), DataError, "graph.npz", "labels"),
    case("npz-nan-attribute", *npz(npz_bytes(attr_matrix=np.array([[np.nan, 1, 1], [1, 1, 1]]))), DataError,
         "graph.npz", "NaN"),
    case("npz-inf-edge-weight", *npz(npz_bytes(adj_data=np.array([np.inf, 1.0]))), DataError, "graph.npz",
         "inf"),
    case("npz-non-square-adjacency", *npz(npz_bytes(adj_shape=np.array([2, 3]))), DataError, "graph.npz",
         "square"),
    case("npz-attribute-rows", *npz(npz_bytes(attr_matrix=np.ones((3, 3)))), DataError, "graph.npz",
         "3 rows"),
    case("npz-labels-2d", *npz(npz_bytes(labels=np.ones((2, 2), dtype=int))), DataError, "graph.npz",
         "labels"),
    case("npz-index-out-of-range", *npz(npz_bytes(adj_indices=np.array([5, 0]))), DataError, "graph.npz"),
    case("npz-corrupt-indptr", *npz(npz_bytes(adj_indptr=np.array([0, 5, 2]))), DataError, "graph.npz",
         "indptr"),
    case("npz-string-labels", *npz(npz_bytes(labels=np.array(["a", "b"]))), DataError, "graph.npz",
         "labels"),
    case("npz-fractional-labels", *npz(npz_bytes(labels=np.array([0.5, 1.0]))), DataError, "graph.npz",
         "labels"),
    case("npz-class-too-small-for-split", *npz(npz_bytes(), split=True), DataError, "graph.npz",
         "train_per_class"),
]


# ------------------------------------------------------------------------------------------ MUSAE
MUSAE_CARD = {"name": "mymusae", "loader": "musae",
              "files": [{"name": "x_edges.csv"}, {"name": "x_target.csv"}, {"name": "x_features.json"}],
              "options": {}}
GOOD_MUSAE = {"x_edges.csv": "id_1,id_2\n0,1\n1,2\n", "x_target.csv": "id,target\n0,a\n1,b\n2,a\n",
              "x_features.json": '{"0": [0], "1": [1], "2": [0, 1]}'}


def musae_files(**changes: str | bytes) -> tuple[dict, Callable[[Path], Any]]:
    files = {**GOOD_MUSAE, **{k.replace("__", "."): v for k, v in changes.items()}}
    return files, lambda d: musae.load_musae(MUSAE_CARD, d)


MUSAE_CASES = [
    case("musae-edge-not-integer", *musae_files(x_edges__csv="id_1,id_2\n0,1\n1,b\n"), DataError,
         "x_edges.csv", "line 3"),
    case("musae-edge-three-fields", *musae_files(x_edges__csv="id_1,id_2\n0,1,2\n"), DataError,
         "x_edges.csv", "line 2"),
    case("musae-edge-node-beyond-targets", *musae_files(x_edges__csv="id_1,id_2\n0,1\n1,7\n"), DataError,
         "x_edges.csv", "line 3", "7"),
    case("musae-target-missing-column", *musae_files(x_target__csv="id,label\n0,a\n"), DataError,
         "x_target.csv", "line 1", "'target'"),
    case("musae-target-duplicate-id", *musae_files(x_target__csv="id,target\n0,a\n0,b\n2,a\n"), DataError,
         "x_target.csv", "every id"),
    case("musae-features-invalid-json", *musae_files(x_features__json='{"0": [0],\n "1": [1'), DataError,
         "x_features.json", "line 2"),
    case("musae-features-negative-id", *musae_files(x_features__json='{"0": [-1]}'), DataError,
         "x_features.json", "node 0"),
]


# ------------------------------------------------------------------------------------------ Planetoid
def planetoid_files(**changes: bytes | str) -> tuple[dict, Callable[[Path], Any]]:
    objs = {"x": sp.csr_matrix(np.eye(2, 3, dtype=np.float32)), "y": np.eye(2, dtype=np.int32),
            "allx": sp.csr_matrix(np.eye(3, 3, dtype=np.float32)),
            "ally": np.eye(2, dtype=np.int32)[[0, 1, 1]],
            "tx": sp.csr_matrix(np.ones((1, 3), dtype=np.float32)), "ty": np.eye(2, dtype=np.int32)[[1]],
            "graph": {0: [1], 1: [2], 2: [3], 3: [0]}}
    files: dict[str, str | bytes] = {f"ind.toy.{k}": pickle.dumps(v, protocol=4) for k, v in objs.items()}
    files["ind.toy.test.index"] = "3\n"
    files.update({f"ind.toy.{k.replace('__', '.')}": v for k, v in changes.items()})
    return files, lambda d: planetoid.load_planetoid({"name": "toy", "options": {}}, d)


PLANETOID_CASES = [
    case("planetoid-test-index-not-integer", *planetoid_files(test__index="3\nthree\n"), DataError,
         "ind.toy.test.index", "line 2"),
    case("planetoid-truncated-pickle", *planetoid_files(ally=pickle.dumps(np.eye(2), protocol=4)[:40]),
         DataError, "ind.toy.ally", "not a valid pickle"),
    case("planetoid-graph-not-a-dict", *planetoid_files(graph=pickle.dumps([[0, 1]], protocol=2)), DataError,
         "ind.toy.graph", "dict"),
    case("planetoid-edge-out-of-range", *planetoid_files(graph=pickle.dumps({0: [9]}, protocol=2)),
         DataError, "ind.toy.graph", "9"),
    case("planetoid-labels-not-one-hot", *planetoid_files(y=pickle.dumps(np.arange(2), protocol=4)),
         DataError, "ind.toy.y"),
]

ALL_CASES = EDGE_LIST_CASES + TRIPLES_CASES + INTERACTION_CASES + NPZ_CASES + MUSAE_CASES + PLANETOID_CASES


@pytest.mark.parametrize(("files", "call", "exc", "fragments"), ALL_CASES)
def test_malformed_file_gives_a_clear_error(tmp_path, files, call, exc, fragments):
    write_files(tmp_path, files)
    with raises_clear(exc, *fragments):
        call(tmp_path)


def test_planetoid_missing_file_is_named(tmp_path):
    files, call = planetoid_files()
    del files["ind.toy.graph"]
    write_files(tmp_path, files)
    with raises_clear(DataError, "dataset 'toy'", "ind.toy.graph", "missing"):
        call(tmp_path)


# ------------------------------------------------------------------------------------------ valid edge cases
def test_edge_list_duplicates_self_loops_and_isolated_nodes_load_as_documented(tmp_path):
    """Valid but unusual input works: a pair listed twice and in both directions stays one 0/1 edge pair
    (undirected, reduce="max"), a self-loop is kept once, node 3 (num_nodes=4) stays isolated."""
    p = tmp_path / "e.txt"
    p.write_text("# comment\n0 1\n0 1\n1 0\n2 2\n2 2\n")
    g = generic.load_edgelist(p, num_nodes=4)
    expected = torch.zeros(4, 4)
    expected[0, 1] = expected[1, 0] = expected[2, 2] = 1
    assert torch.equal(g.A.to_dense(), expected)
    g_sum = generic.load_edgelist(p, num_nodes=4, directed=True, reduce="sum")
    expected = torch.zeros(4, 4)
    expected[1, 0], expected[0, 1], expected[2, 2] = 2, 1, 2  # A[dst, src]: 0->1 twice, 1->0 once, 2->2 twice
    assert torch.equal(g_sum.A.to_dense(), expected)


def test_negative_weights_load_only_when_allowed(tmp_path):
    p = tmp_path / "e.txt"
    p.write_text("0 1 2.5\n1 2 -1.5\n")
    g = generic.load_edgelist(p, allow_negative=True, directed=True)
    assert sorted(g.A.val.tolist()) == [-1.5, 2.5]


def test_triples_with_self_loops_and_repeats_keep_every_training_triple(tmp_path):
    write_files(tmp_path, {"train.txt": "a\tr\ta\na\tr\ta\na\ts\tb\n", "valid.txt": "",
                           "test.txt": "b\ts\ta\n"})
    g = kg.load_triples(KG_CARD, tmp_path)
    assert g.edge_splits["train"].shape == (3, 3) and g.A.nnz == 3
    assert g.meta["entity_names"] == ["a", "b"] and g.edge_splits["val"].shape == (0, 3)


def test_implicit_interactions_merge_duplicates(tmp_path):
    p = tmp_path / "i.txt"
    p.write_text("0 1\n0 1\n1 0\n")
    g = generic.load_interactions(p, test_fraction=0.0)
    assert g.meta["num_users"] == 2 and g.meta["num_items"] == 2
    assert g.A.nnz == 4  # two distinct (user, item) pairs, both directions


def test_musae_good_files_load(tmp_path):
    write_files(tmp_path, GOOD_MUSAE)
    g = musae.load_musae(MUSAE_CARD, tmp_path)
    assert g.num_nodes == 3 and g.X.shape == (3, 2) and g.y.tolist() == [0, 1, 0]
    assert json.loads(GOOD_MUSAE["x_features.json"])["2"] == [0, 1] and g.X[2].tolist() == [1.0, 1.0]


def test_recsys_card_loader_names_the_dataset_file_and_line(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 x\n")
    (tmp_path / "test.txt").write_text("0 3\n")
    card = {"name": "mylgcn", "loader": "lightgcn", "files": [], "options": {}}
    with raises_clear(DataError, "mylgcn/train.txt", "line 2", "'x'"):
        recsys.load_lightgcn(card, tmp_path)
