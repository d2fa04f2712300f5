"""Recommendation loaders (graphnet.data.recsys): ml-100k and gowalla from the mirror against
../shared/data/README.md, the bipartite graph convention, user subsets, and a user's interactions file with
file:line errors."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from graphnet.data import load, recsys
from graphnet.data.catalog import load_card
from graphnet.errors import DataError
from tests._mirror import MIRROR, need_mirror

FIXTURES = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module", autouse=True)
def data_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHNET_MIRROR", str(MIRROR))
        mp.setenv("GRAPHNET_DATA", str(tmp_path_factory.mktemp("graphnet-data")))
        yield


def check_bipartite(g, U, I):
    """A is the symmetric (U+I) graph of exactly the training pairs, user u <-> node U + item."""
    assert g.A.shape == (U + I, U + I)
    tr = g.edge_splits["train"]
    dense = torch.zeros(U + I, U + I)
    dense[tr[:, 0], U + tr[:, 1]] = 1
    dense[U + tr[:, 1], tr[:, 0]] = 1
    assert torch.equal(g.A.to_dense(), dense)


# ----------------------------------------------------------------------------------------- ml-100k
def ml_file(name: str) -> np.ndarray:
    return np.loadtxt(MIRROR / "ml-100k" / name, dtype=np.int64)


@pytest.mark.parametrize("split,n_train,n_test", [
    ("u1", 80000, 20000), ("u3", 80000, 20000), ("ua", 90570, 9430), ("ub", 90570, 9430), ("all", 100000, 0)])
def test_ml100k_splits(split, n_train, n_test):
    need_mirror("ml-100k")
    g = load("ml-100k", split=split)
    assert g.meta["num_users"] == 943 and g.meta["num_items"] == 1682 and g.num_nodes == 2625
    assert g.edge_splits["train"].shape == (n_train, 2) and g.edge_splits["test"].shape == (n_test, 2)
    assert g.edge_splits["train_rating"].dtype == torch.float32
    assert g.meta["num_interactions"] == n_train + n_test
    if split != "all":  # against an independent numpy parse: 1-based ids shifted to 0-based, file order
        ref = ml_file(f"{split}.base")
        assert torch.equal(g.edge_splits["train"], torch.from_numpy(ref[:, :2] - 1))
        assert torch.equal(g.edge_splits["train_rating"], torch.from_numpy(ref[:, 2].astype(np.float32)))
        test = ml_file(f"{split}.test")
        assert torch.equal(g.edge_splits["test"], torch.from_numpy(test[:, :2] - 1))
    if split in ("ua", "ub"):
        assert torch.equal(torch.bincount(g.edge_splits["test"][:, 0], minlength=943), torch.full((943,), 10))
    assert g.A.nnz == 2 * n_train  # training pairs only, both directions
    # edge_type = rating - 1 on both directions of each training edge
    assert torch.equal(torch.bincount(g.edge_type, minlength=5),
                       2 * torch.bincount(g.edge_splits["train_rating"].long() - 1, minlength=5))


def test_ml100k_all_ratings_histogram_and_graph():
    need_mirror("ml-100k")
    g = load("ml-100k", split="all")
    hist = torch.bincount(g.edge_splits["train_rating"].long(), minlength=6)[1:].tolist()
    assert hist == [6110, 11370, 27145, 34174, 21201]  # README's rating histogram
    check_bipartite(g, 943, 1682)


def test_ml100k_side_features():
    need_mirror("ml-100k")
    g = load("ml-100k")
    U, Ifeat = g.meta["user_features"], g.meta["item_features"]
    assert U.shape == (943, 30) and Ifeat.shape == (1682, 19)
    assert torch.equal(U.sum(1), torch.full((943,), 3.0))  # one age group, one gender, one occupation
    assert int(U[:, 7:9].sum()) == 943 and int(U[:, 9:].sum(0).gt(0).sum()) == 21
    # user 1 of u.user: "1|24|M|technician|85711"
    names = g.meta["user_feature_names"]
    assert {names[j] for j in U[0].nonzero().squeeze(1).tolist()} == {"age18-24", "gender=M",
                                                                        "occupation=technician"}
    # Toy Story: Animation, Children's, Comedy
    assert [g.meta["item_feature_names"][j] for j in Ifeat[0].nonzero().squeeze(1).tolist()] == \
        ["Animation", "Children's", "Comedy"]
    titles = g.meta["item_names"]
    assert len(titles) == 1682 and titles[0] == "Toy Story (1995)"
    assert any("Misérables" in t for t in titles)  # decoded as Latin-1


@pytest.mark.parametrize("threshold", [1.0, 4.0])
def test_ml100k_implicit(threshold):
    need_mirror("ml-100k")
    g = load("ml-100k", split="u1", implicit=True, threshold=threshold)
    ref = ml_file("u1.base")
    keep = ref[:, 2] >= threshold
    assert torch.equal(g.edge_splits["train"], torch.from_numpy(ref[keep, :2] - 1))
    assert "train_rating" not in g.edge_splits and g.edge_type is None
    assert g.edge_splits["test"].shape[0] == int((ml_file("u1.test")[:, 2] >= threshold).sum())
    assert g.A.nnz == 2 * int(keep.sum())


def test_ml100k_card_and_errors(tmp_path):
    need_mirror("ml-100k")
    card = load_card("ml-100k")
    assert "not redistribute" in card["license"].lower() or "may not redistribute" in card["license"]
    with pytest.raises(DataError, match="option split must be one of u1, u2"):
        load("ml-100k", split="u9")
    for f in card["files"]:
        (tmp_path / f["name"]).write_bytes((MIRROR / "ml-100k" / f["name"]).read_bytes())
    lines = (tmp_path / "u1.base").read_text().split("\n")
    lines[2] = "1\t3\t4"  # 3 fields instead of 4
    (tmp_path / "u1.base").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"^ml-100k/u1\.base line 3: expected 4 tab-separated fields, got 3"):
        recsys.load_ml100k(card, tmp_path)
    lines[2] = "1\t1683\t4\t1"  # item id beyond u.item
    (tmp_path / "u1.base").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"ml-100k/u1\.base line 3: item id 1683 out of range, "
                                        r"expected 1 <= id < 1683"):
        recsys.load_ml100k(card, tmp_path)
    lines[2] = lines[0]  # a repeated pair
    (tmp_path / "u1.base").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"ml-100k/u1\.base line 3: the same \(user, item\) pair as line 1"):
        recsys.load_ml100k(card, tmp_path)


# ----------------------------------------------------------------------------------------- LightGCN format
@pytest.fixture(scope="module")
def gowalla():
    need_mirror("gowalla")
    return load("gowalla")


def test_gowalla_statistics(gowalla):
    g = gowalla
    assert g.meta["num_users"] == 29858 and g.meta["num_items"] == 40981
    assert g.edge_splits["train"].shape == (810128, 2) and g.edge_splits["test"].shape == (217242, 2)
    assert g.meta["num_interactions"] == 1027370
    assert g.A.shape == (29858 + 40981,) * 2 and g.A.nnz == 2 * 810128
    # every user in both files; every test item also in train (README)
    assert torch.unique(g.edge_splits["train"][:, 0]).numel() == 29858
    assert torch.unique(g.edge_splits["test"][:, 0]).numel() == 29858
    assert bool(torch.isin(g.edge_splits["test"][:, 1], g.edge_splits["train"][:, 1]).all())
    # first line of train.txt, parsed independently from the mirror's zip
    with zipfile.ZipFile(MIRROR / "gowalla" / "light_gcn_gowalla.zip") as zf:
        first = [int(x) for x in zf.read("light_gcn_gowalla/train.txt").split(b"\n", 1)[0].split()]
    assert g.edge_splits["train"][: len(first) - 1].tolist() == [[first[0], i] for i in first[1:]]


def test_gowalla_user_subset(gowalla):
    a = load("gowalla", max_users=200, seed=3)
    U, I = a.meta["num_users"], a.meta["num_items"]
    assert U == 200 and I == a.meta["item_ids"].numel()
    check_bipartite(a, U, I)
    uid, iid = a.meta["user_ids"], a.meta["item_ids"]
    sub = a.edge_splits["train"]
    full = gowalla.edge_splits["train"]
    n_items = gowalla.meta["num_items"]
    back = uid[sub[:, 0]] * n_items + iid[sub[:, 1]]
    assert bool(torch.isin(back, full[:, 0] * n_items + full[:, 1]).all())  # renumbered pairs are real pairs
    # all training pairs of the chosen users are kept
    keep = torch.isin(gowalla.edge_splits["train"][:, 0], uid)
    assert int(keep.sum()) == sub.shape[0]


def test_lightgcn_fixture_and_errors():
    card = {"name": "tiny-lgcn"}
    with pytest.raises(DataError, match=r"^tiny-lgcn/test\.txt line 3: item id \(field 3\) must be an "
                                        r"integer, got 'x3'"):
        recsys.load_lightgcn(card, FIXTURES / "recsys_lightgcn")


def test_lightgcn_tiny_by_hand(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 0\n\n2 2 0\n")
    (tmp_path / "test.txt").write_text("0 0\n1\n2 1\n3\n")  # users 1 and 3 have no test item
    g = recsys.load_lightgcn({"name": "tiny"}, tmp_path)
    assert g.meta["num_users"] == 4 and g.meta["num_items"] == 3  # user 3 counts, as in LightGCN's loader
    assert g.edge_splits["train"].tolist() == [[0, 1], [0, 2], [1, 0], [2, 2], [2, 0]]
    assert g.edge_splits["test"].tolist() == [[0, 0], [2, 1]]
    check_bipartite(g, 4, 3)


def test_lightgcn_repeated_items_count_once_in_the_splits(tmp_path):
    """An item listed twice on a user's line is one interaction in A and in edge_splits, so a validation
    hold-out of the training pairs cannot send one copy to val and keep the other in training."""
    (tmp_path / "train.txt").write_text("0 1 2 1\n1 0 0\n")
    (tmp_path / "test.txt").write_text("0 0 0\n1 2\n")
    g = recsys.load_lightgcn({"name": "tiny"}, tmp_path)
    assert g.edge_splits["train"].tolist() == [[0, 1], [0, 2], [1, 0]]  # first occurrences, file order
    assert g.edge_splits["test"].tolist() == [[0, 0], [1, 2]]
    assert g.A.nnz == 2 * 3 and g.meta["num_interactions"] == 5
    check_bipartite(g, 2, 3)


def test_lightgcn_subset_is_seeded(tmp_path):
    (tmp_path / "train.txt").write_text("".join(f"{u} {u % 7} {(u + 3) % 7}\n" for u in range(20)))
    (tmp_path / "test.txt").write_text("".join(f"{u} {(u + 1) % 7}\n" for u in range(20)))
    card = {"name": "tiny"}
    a, b = (recsys.load_lightgcn(card, tmp_path, max_users=5, seed=3) for _ in range(2))
    c = recsys.load_lightgcn(card, tmp_path, max_users=5, seed=4)
    assert torch.equal(a.meta["user_ids"], b.meta["user_ids"]) and torch.equal(a.edge_splits["train"],
                                                                               b.edge_splits["train"])
    assert not torch.equal(a.meta["user_ids"], c.meta["user_ids"])
    assert a.meta["num_users"] == 5 and a.edge_splits["train"].shape == (10, 2)
    expect = torch.randperm(20, generator=torch.Generator().manual_seed(3))[:5].sort().values
    assert torch.equal(a.meta["user_ids"], expect)


def test_unpinned_lightgcn_dataset(tmp_path):
    with pytest.raises(DataError, match=r"yelp2018.*train\.txt is missing.*LightGCN-PyTorch.*"
                                        r"GRAPHNET_ALLOW_UNPINNED"):
        load("yelp2018")
    mirror = tmp_path / "mirror" / "yelp2018"  # a user's mirror holding the two files
    mirror.mkdir(parents=True)
    (mirror / "train.txt").write_text("0 0 1\n1 1\n")
    (mirror / "test.txt").write_text("0 2\n1 0\n")
    g = load("yelp2018", mirror=tmp_path / "mirror")
    assert g.edge_splits["train"].tolist() == [[0, 0], [0, 1], [1, 1]] and g.meta["num_items"] == 3


# ----------------------------------------------------------------------------------------- user files
def test_interactions_with_ratings_and_test_file():
    g = recsys.load_interactions({"name": "mine"}, FIXTURES, path="recsys_ratings.tsv",
                                 test_path="recsys_ratings_test.tsv")
    assert g.meta["num_users"] == 4 and g.meta["num_items"] == 4
    assert g.edge_splits["train"].tolist() == [[0, 0], [0, 2], [1, 1], [2, 0], [2, 3], [3, 1]]
    assert g.edge_splits["train_rating"].tolist() == [5, 3, 4, 1, 2, 5]
    assert g.edge_splits["test"].tolist() == [[0, 1], [1, 0]]
    assert g.edge_splits["test_rating"].tolist() == [4, 2]
    check_bipartite(g, 4, 4)


def test_test_file_pairs_also_in_the_training_file(tmp_path, caplog):
    """Rated: the test rating would be trained on -> DataError naming the test line. Implicit: the pair is
    masked as a training item yet relevant, so it can never be hit -> a warning with the count."""
    (tmp_path / "train.tsv").write_text("0\t0\t5\n0\t2\t3\n1\t1\t4\n")
    (tmp_path / "test.tsv").write_text("0\t1\t4\n1\t1\t2\n")
    with pytest.raises(DataError, match=r"m/test\.tsv line 2: \(user 1, item 1\) is also in m/train\.tsv; a "
                                        r"rated pair in both files would leak"):
        recsys.load_interactions({"name": "m"}, tmp_path, path="train.tsv", test_path="test.tsv")
    (tmp_path / "train.txt").write_text("0 0\n0 2\n1 1\n2 2\n")
    (tmp_path / "test.txt").write_text("0 1\n1 1\n2 2\n")
    with caplog.at_level(logging.WARNING, logger="graphnet.data.recsys"):
        g = recsys.load_interactions({"name": "m"}, tmp_path, path="train.txt", test_path="test.txt")
    assert "m/test.txt line 2: (user 1, item 1) is also in m/train.txt (2 such test pairs)" in caplog.text
    assert g.edge_splits["test"].tolist() == [[0, 1], [1, 1], [2, 2]]  # kept: the data is the user's
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphnet.data.recsys"):
        recsys.load_interactions({"name": "m"}, FIXTURES, path="recsys_ratings.tsv",
                                 test_path="recsys_ratings_test.tsv")
    assert "also in" not in caplog.text  # disjoint files: silent


def test_interactions_seeded_split():
    kw = dict(path="recsys_ratings.tsv", test_fraction=0.5)
    a = recsys.load_interactions({"name": "m"}, FIXTURES, seed=1, **kw)
    b = recsys.load_interactions({"name": "m"}, FIXTURES, seed=1, **kw)
    assert torch.equal(a.edge_splits["test"], b.edge_splits["test"]) and a.edge_splits["test"].shape == (3, 2)
    pairs = a.edge_splits["train"].tolist() + a.edge_splits["test"].tolist()
    assert sorted(pairs) == [[0, 0], [0, 2], [1, 1], [2, 0], [2, 3], [3, 1]]  # a partition
    check_bipartite(a, 4, 4)


def test_interactions_implicit_duplicates_merged(tmp_path):
    (tmp_path / "x.csv").write_text("u,i\n1,1\n1,1\n2,3\n")
    g = recsys.load_interactions({"name": "m"}, tmp_path, path="x.csv", sep=",", header=True, one_based=True,
                                 test_fraction=0.0)
    assert g.edge_splits["train"].tolist() == [[0, 0], [1, 2]]  # the duplicate line is merged
    assert g.A.nnz == 4 and g.meta["implicit"]  # both directions of the two pairs


def test_interactions_test_file_implicit_duplicates_merged_in_the_splits(tmp_path):
    (tmp_path / "train.txt").write_text("0 0\n0 2\n0 0\n1 1\n")
    (tmp_path / "test.txt").write_text("1 2\n1 2\n")
    g = recsys.load_interactions({"name": "m"}, tmp_path, path="train.txt", test_path="test.txt")
    assert g.edge_splits["train"].tolist() == [[0, 0], [0, 2], [1, 1]]
    assert g.edge_splits["test"].tolist() == [[1, 2]] and g.A.nnz == 6


def test_interactions_implicit_duplicates_never_straddle_the_split(tmp_path):
    """Each line listed twice: the random split is the one of the file without repeats (same seed), so
    no (user, item) pair is both trained on and tested (it would be masked yet counted as relevant)."""
    pairs = [(u, i) for u in range(20) for i in range(6) if (u + i) % 3]
    (tmp_path / "once.txt").write_text("".join(f"{u} {i}\n" for u, i in pairs))
    (tmp_path / "twice.txt").write_text("".join(f"{u} {i}\n{u} {i}\n" for u, i in pairs))
    once, twice = (recsys.load_interactions({"name": "m"}, tmp_path, path=f, test_fraction=0.2, seed=3)
                   for f in ("once.txt", "twice.txt"))
    for split in ("train", "test"):
        assert torch.equal(twice.edge_splits[split], once.edge_splits[split])
    train = {tuple(p) for p in twice.edge_splits["train"].tolist()}
    test = {tuple(p) for p in twice.edge_splits["test"].tolist()}
    assert not train & test and len(train | test) == len(pairs) and len(test) == round(0.2 * len(pairs))


def test_interactions_errors(tmp_path):
    card = {"name": "mine"}
    with pytest.raises(DataError, match=r"^mine/recsys_bad_id\.csv line 4: user id must be an integer, "
                                        r"got 'bob'"):
        recsys.load_interactions(card, FIXTURES, path="recsys_bad_id.csv", sep=",", header=True)
    with pytest.raises(DataError, match=r"mine/recsys_bad_id\.csv line 1: user id must be an integer, "
                                        r"got 'user'"):
        recsys.load_interactions(card, FIXTURES, path="recsys_bad_id.csv", sep=",")
    with pytest.raises(DataError, match=r"mine/recsys_ratings\.tsv line 6: user id 3 out of range, "
                                        r"expected 0 <= id < 3"):
        recsys.load_interactions(card, FIXTURES, path="recsys_ratings.tsv", num_users=3)
    with pytest.raises(DataError, match=r"line 1: user id 0 out of range, expected id >= 1"):
        recsys.load_interactions(card, FIXTURES, path="recsys_ratings.tsv", one_based=True)
    with pytest.raises(DataError, match=r"recsys_ratings\.tsv line 5: item id 3 out of range, "
                                        r"expected 0 <= id < 3"):
        recsys.load_interactions(card, FIXTURES, path="recsys_ratings.tsv", num_items=3)
    (tmp_path / "neg.txt").write_text("0 1\n-1 2\n")
    with pytest.raises(DataError, match=r"mine/neg\.txt line 2: user id -1 out of range, expected id >= 0"):
        recsys.load_interactions(card, tmp_path, path="neg.txt")
    (tmp_path / "cols.txt").write_text("0 1 5\n1 2\n")
    with pytest.raises(DataError, match=r"mine/cols\.txt line 2: expected 3 whitespace-separated fields, "
                                        r"got 2"):
        recsys.load_interactions(card, tmp_path, path="cols.txt")
    (tmp_path / "nan.txt").write_text("0 1 5\n1 2 nan\n")
    with pytest.raises(DataError, match=r"mine/nan\.txt line 2: rating must be finite, got 'nan'"):
        recsys.load_interactions(card, tmp_path, path="nan.txt")
    (tmp_path / "dup.txt").write_text("0 1 5\n1 2 3\n0 1 4\n")
    with pytest.raises(DataError, match=r"mine/dup\.txt line 3: the same \(user, item\) pair as line 1"):
        recsys.load_interactions(card, tmp_path, path="dup.txt")
    with pytest.raises(DataError, match=r"mine/missing\.txt: file not found"):
        recsys.load_interactions(card, tmp_path, path="missing.txt")


def test_generic_single_interactions_file_is_read_by_name():
    from graphnet.data import generic

    path = Path(__file__).parents[1] / "data" / "recsys_ratings.tsv"
    g = generic.load_interactions(path)
    rows = [x for x in path.read_text().splitlines() if x.strip()]
    assert g.edge_splits["train"].shape[0] + g.edge_splits["test"].shape[0] == len(rows)
