"""Knowledge-graph loaders (graphnet.data.kg): mirror datasets against ../shared/data/README.md, vocabularies,
orientation, inverse relations, the filter set, and parse errors with file:line on tiny fixtures."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from graphnet.data import kg, load
from graphnet.data.catalog import load_card
from graphnet.errors import DataError
from tests._mirror import MIRROR, need_mirror

FIXTURES = Path(__file__).resolve().parents[1] / "data"

# ../shared/data/README.md: triples train/valid/test, entities, relations, valid/test entities not in train.
EXPECTED = {
    "nations": (1592, 199, 201, 14, 55, None),
    "kinship": (8544, 1068, 1074, 104, 25, None),
    "umls": (5216, 652, 661, 135, 46, (0, 0)),
    "fb15k-237": (272115, 17535, 20466, 14541, 237, (8, 29)),
}
ARCHIVE = {"nations": "nations.tar.gz", "kinship": "kinship.tar.gz", "umls": "umls.tar.gz",
           "fb15k-237": "FB15k-237.tar.gz"}


@pytest.fixture(scope="module", autouse=True)
def data_env(tmp_path_factory):
    """Every test of this module reads the mirror and caches into one temporary data root."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHNET_MIRROR", str(MIRROR))
        mp.setenv("GRAPHNET_DATA", str(tmp_path_factory.mktemp("graphnet-data")))
        yield


def raw_triples(name: str, member: str) -> list[list[str]]:
    """Independent reference parse straight from the mirror's archive."""
    with tarfile.open(MIRROR / name / ARCHIVE[name]) as tf:
        text = tf.extractfile(member).read().decode()
    return [line.split("\t") for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------- mirror data
@pytest.mark.parametrize("name", list(EXPECTED))
def test_mirror_statistics(name):
    need_mirror(name)
    n_tr, n_va, n_te, n_ent, n_rel, unseen = EXPECTED[name]
    g = load(name)
    assert {k: v.shape for k, v in g.edge_splits.items()} == {
        "train": (n_tr, 3), "val": (n_va, 3), "test": (n_te, 3)}
    assert g.meta["num_entities"] == n_ent == g.num_nodes == len(g.meta["entity_names"])
    assert g.meta["num_relations"] == n_rel == len(g.meta["relation_names"])
    assert g.A.shape == (n_ent, n_ent) and g.A.nnz == n_tr and g.edge_type.shape == (n_tr,)
    if unseen is not None:
        assert (g.meta["unseen"]["val"], g.meta["unseen"]["test"]) == unseen
    card = load_card(name)["stats"]
    assert (card["train"], card["val"], card["test"], card["num_entities"], card["num_relations"]) == \
        (n_tr, n_va, n_te, n_ent, n_rel)


@pytest.mark.parametrize("name", ["nations", "umls"])
def test_vocabulary_is_sorted_and_ids_round_trip(name):
    need_mirror(name)
    g = load(name)
    ents, rels = g.meta["entity_names"], g.meta["relation_names"]
    assert ents == sorted(ents) and rels == sorted(rels)
    for split, member in (("train", "train.txt"), ("val", "valid.txt"), ("test", "test.txt")):
        ref = raw_triples(name, member)
        got = [[ents[h], rels[r], ents[t]] for h, r, t in g.edge_splits[split].tolist()]
        assert got == ref  # file order kept, names recovered exactly


def test_orientation_head_to_tail():
    need_mirror("nations")
    g = load("nations")
    T = g.edge_splits["train"]
    dense = torch.zeros(14, 14, 55)
    dense[T[:, 2], T[:, 0], T[:, 1]] = 1  # A[tail, head] = 1 for relation r
    got = torch.zeros(14, 14, 55)
    got[g.A.row, g.A.col, g.edge_type] = g.A.val
    assert torch.equal(got, dense)
    # A @ X sums over in-neighbours: node t receives from every head h of a training triple (h, r, t)
    X = torch.eye(14)
    H = g.A @ X
    assert torch.equal(H > 0, dense.sum(2) > 0)


def test_add_inverse_relations():
    need_mirror("nations")
    g = load("nations", add_inverse=True)
    T = g.edge_splits["train"]
    R = g.meta["num_relations"]
    assert g.meta["num_edge_types"] == 2 * R and g.A.nnz == 2 * T.shape[0]
    fwd = {(int(t), int(h), int(r)) for h, r, t in T}
    inv = {(int(h), int(t), int(r) + R) for h, r, t in T}
    got = {(int(i), int(j), int(e)) for i, j, e in zip(g.A.row, g.A.col, g.edge_type, strict=True)}
    assert got == fwd | inv
    assert g.edge_splits["train"].shape == (1592, 3)  # splits never include the inverse edges


def test_fb15k237_unseen_entities_and_drop_unseen():
    need_mirror("fb15k-237")
    g = load("fb15k-237")
    seen = torch.zeros(g.num_nodes, dtype=torch.bool)
    seen[g.edge_splits["train"][:, [0, 2]].reshape(-1)] = True
    for split, n in (("val", 8), ("test", 29)):
        ents = torch.unique(g.edge_splits[split][:, [0, 2]])
        assert int((~seen[ents]).sum()) == n
        # unseen entities have no training edge in A
        assert not bool(torch.isin(ents[~seen[ents]], torch.cat([g.A.row, g.A.col])).any())
    # PyKEEN's rule: vocabularies from train alone (its FB15k-237: 14,505 entities, 310,079 triples)
    d = load("fb15k-237", drop_unseen=True)
    assert d.num_nodes == d.meta["num_entities"] == 14505 and d.meta["num_relations"] == 237
    assert [d.edge_splits[s].shape[0] for s in ("train", "val", "test")] == [272115, 17526, 20438]
    assert d.meta["dropped_unseen"] == {"val": 9, "test": 28}
    names = g.meta["entity_names"]
    assert d.meta["entity_names"] == [names[i] for i in torch.nonzero(seen).view(-1).tolist()]

    def by_name(G, T):
        ent, rel = G.meta["entity_names"], G.meta["relation_names"]
        return [(ent[h], rel[r], ent[t]) for h, r, t in T.tolist()]

    for split in ("train", "val", "test"):  # the same triples by name, in file order, where kept
        kept = {tuple(x) for x in by_name(d, d.edge_splits[split])}
        full = by_name(g, g.edge_splits[split])
        assert [x for x in full if x in kept] == by_name(d, d.edge_splits[split])


def test_filter_index_matches_brute_force():
    need_mirror("nations")
    g = load("nations")
    index = kg.filter_index(g)
    true = {tuple(t) for s in ("train", "val", "test") for t in g.edge_splits[s].tolist()}
    queries = g.edge_splits["test"]
    for side in ("tail", "head"):
        mask = kg.filter_mask(index[side], queries)
        assert mask.shape == (queries.shape[0], 14)
        for q, (h, r, t) in enumerate(queries.tolist()):
            if side == "tail":
                expect = {e for e in range(14) if (h, r, e) in true and e != t}
            else:
                expect = {e for e in range(14) if (e, r, t) in true and e != h}
            assert set(mask[q].nonzero().squeeze(1).tolist()) == expect
    # answers_of: the known tails of one (h, r) query
    h, r, t = g.edge_splits["train"][0].tolist()
    assert set(index["tail"].answers_of(h * 55 + r).tolist()) == {e for e in range(14) if (h, r, e) in true}


def test_parse_error_names_dataset_file_and_line(tmp_path):
    need_mirror("nations")
    card = load_card("nations")
    with tarfile.open(MIRROR / "nations" / "nations.tar.gz") as tf:
        tf.extractall(tmp_path, filter="data")
    lines = (tmp_path / "train.txt").read_text().split("\n")
    h, r, t = lines[16].split("\t")
    lines[16] = f"{h}\t{r} {t}"  # line 17 loses a tab
    (tmp_path / "train.txt").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"^nations/train\.txt line 17: expected 3 tab-separated fields, "
                                        r"got 2"):
        kg.load_triples(card, tmp_path)


# ----------------------------------------------------------------------------------------- tiny fixtures
def test_tiny_fixture_by_hand():
    g = kg.load_triples({"name": "tiny"}, FIXTURES / "kg_tiny")
    assert g.meta["entity_names"] == ["a", "b", "c", "d"]  # d occurs only in test
    assert g.meta["relation_names"] == ["r1", "r2"]
    assert g.edge_splits["train"].tolist() == [[0, 0, 1], [0, 0, 2], [1, 1, 2], [2, 0, 0]]
    assert g.edge_splits["val"].tolist() == [[1, 0, 2]]
    assert g.edge_splits["test"].tolist() == [[0, 1, 3]]  # the trailing blank line is skipped
    assert g.meta["unseen"] == {"val": 0, "test": 1}
    dense = torch.tensor([[0., 0, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])  # A[tail, head]
    assert torch.equal(g.A.to_dense(), dense)
    idx = kg.filter_index(g)
    # query (a, r1, ?) with target b: c is another known tail -> masked; b itself is not
    assert kg.filter_mask(idx["tail"], torch.tensor([[0, 0, 1]])).tolist() == [[False, False, True, False]]
    # query (?, r1, c) with target a (train) : b is another known head (valid) -> masked
    assert kg.filter_mask(idx["head"], torch.tensor([[0, 0, 2]])).tolist() == [[False, True, False, False]]
    # unknown query: nothing masked
    assert not kg.filter_mask(idx["tail"], torch.tensor([[3, 1, 0]])).any()
    # drop_unseen (PyKEEN's rule): d occurs only in the dropped test triple (a, r2, d), so it is no entity,
    # no ranking candidate, and nothing is left to filter for it
    d = kg.load_triples({"name": "tiny"}, FIXTURES / "kg_tiny", drop_unseen=True)
    assert d.edge_splits["test"].shape == (0, 3) and d.meta["dropped_unseen"] == {"val": 0, "test": 1}
    assert d.meta["entity_names"] == ["a", "b", "c"] and d.num_nodes == 3 and set(d.edge_splits) == {
        "train", "val", "test"}
    assert torch.equal(d.A.to_dense(), dense[:3, :3]) and d.edge_splits["val"].tolist() == [[1, 0, 2]]


def test_user_triples_file_errors(tmp_path):
    card = {"name": "mykg"}
    with pytest.raises(DataError, match=r"^mykg/kg_bad_fields\.txt line 3: expected 3 tab-separated "
                                        r"fields, got 2"):
        kg.load_triples(card, FIXTURES, train="kg_bad_fields.txt", valid="", test="")
    (tmp_path / "t.tsv").write_text("a\t\tb\n")
    with pytest.raises(DataError, match=r"mykg/t\.tsv line 1: empty relation field"):
        kg.load_triples(card, tmp_path, train="t.tsv", valid="", test="")
    (tmp_path / "u.tsv").write_bytes(b"a\tr\tb\n\xff\tr\tc\n")
    with pytest.raises(DataError, match=r"mykg/u\.tsv line 2: not UTF-8"):
        kg.load_triples(card, tmp_path, train="u.tsv", valid="", test="")
    shutil.copy(FIXTURES / "kg_tiny" / "train.txt", tmp_path / "mine.tsv")
    with pytest.raises(DataError, match=r"mykg/valid\.txt: file not found"):
        kg.load_triples(card, tmp_path, train="mine.tsv")
    # a user's file with no valid/test: empty splits, graph from train
    g = kg.load_triples(card, tmp_path, train="mine.tsv", valid="", test="")
    assert g.edge_splits["val"].shape == (0, 3) and g.A.nnz == 4


def test_generic_single_triples_file_is_the_training_set():
    from graphnet.data import generic

    g = generic.load_triples(Path(__file__).parents[1] / "data" / "kg_tiny" / "train.txt")
    lines = (Path(__file__).parents[1] / "data" / "kg_tiny" / "train.txt").read_text().split("\n")
    assert g.edge_splits["train"].shape == (sum(1 for x in lines if x.strip()), 3)
    assert g.edge_splits["val"].shape[0] == 0 and g.edge_splits["test"].shape[0] == 0
