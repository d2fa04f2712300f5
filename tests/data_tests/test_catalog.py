"""The dataset catalog (datasets/*.toml) and the graphnet.data entry points: names, card schema, options."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import graphnet.data as data
from graphnet.data import catalog
from graphnet.errors import DataError
from tests._mirror import need_mirror

REPO = Path(__file__).resolve().parents[2]

# Names fixed by issue 3.
ISSUE_NAMES = """
karate les-miserables cora citeseer pubmed amazon-photo amazon-computers coauthor-cs coauthor-physics facebook
twitch-de twitch-en twitch-es twitch-fr twitch-pt twitch-ru lastfm-asia github ml-100k gowalla yelp2018
amazon-book fb15k-237 wn18rr nations kinship umls ogbn-arxiv ogbn-products ogbl-collab ogbl-ddi ogbl-citation2
""".split()

NODE_CARDS = """
karate les-miserables cora citeseer pubmed amazon-photo amazon-computers coauthor-cs coauthor-physics facebook
twitch-de twitch-en twitch-es twitch-fr twitch-pt twitch-ru lastfm-asia github
""".split()


def test_catalog_dir_is_the_checkout_datasets_folder():
    assert Path(catalog.CATALOG_DIR) == REPO / "datasets"


def test_installed_catalog_is_the_package_data_not_another_datasets_package(tmp_path):
    """Installed, catalog.py sits in site-packages/graphnet/data: the folder two levels up is site-packages,
    whose ``datasets`` may be Hugging Face's package. The wheel's graphnet.catalog must win."""
    import shutil
    import subprocess
    import sys

    site = tmp_path / "site"
    shutil.copytree(REPO / "graphnet", site / "graphnet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "datasets", site / "graphnet" / "catalog")
    (site / "datasets").mkdir()
    (site / "datasets" / "__init__.py").write_text("# stand-in for another package named datasets\n")
    code = "from graphnet.data import catalog; print(catalog.CATALOG_DIR); print(len(catalog.list_cards()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert str(site / "graphnet" / "catalog") in out[0]  # (a MultiplexedPath: datasets/ has no __init__)
    assert int(out[1]) == len(catalog.list_cards()) > 0


def test_every_issue_name_has_a_card_and_names_match_files():
    assert data.list_datasets() == sorted(ISSUE_NAMES)


# Cards whose pinned files are not in the offline mirror (their hashes come from elsewhere, said on the card).
NOT_IN_MIRROR = {"wn18rr"}


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_card_schema(name):
    card = catalog.load_card(name)
    assert card["name"] == name
    assert card["loader"] in data.LOADERS
    for key in ("description", "citation", "license", "homepage"):
        assert len(card[key]) > 10, key
    assert card["homepage"].startswith("https://")
    for f in card.get("files", []):
        assert f["url"].startswith("https://"), f
        assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"])
        for h in f.get("members", {}).values():
            assert re.fullmatch(r"[0-9a-f]{64}", h)
    for f in card.get("unpinned", []):
        # OGB serves its zips from http://snap.stanford.edu only; they are unpinned, so never trusted blindly
        assert f["url"].startswith(("https://", "http://snap.stanford.edu/ogb/")) and "sha256" not in f
    # every file is either pinned or explicitly unpinned; networkx cards have none
    assert (card.get("files") or card.get("unpinned")) or card["loader"] == "networkx"
    stats = card["stats"]
    assert stats and all(isinstance(v, int) and v >= 0 for v in stats.values()), stats
    if name in NODE_CARDS:
        assert stats["num_nodes"] > 0 and "num_classes" in stats
    # a card cites where its hashes and statistics come from (a comment in the TOML)
    text = (REPO / "datasets" / f"{name}.toml").read_text()
    assert re.search(r"^# .*[Ss]tatistics", text, re.M), "no comment naming the statistics' source"
    if name in NODE_CARDS and card.get("files"):
        assert "# sha256" in text
    elif name in NODE_CARDS and card.get("unpinned"):
        assert "# No sha256" in text
    if name in NOT_IN_MIRROR:
        assert "Not in the offline mirror" in card["description"]


_HEX64 = re.compile(r"`([0-9a-f]{64})`")


def _mirror_readme_hashes(text: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Parse the mirror README's two hash tables.

    Returns ``files`` ({"<folder>/<path>": sha256}, from the per-file table whose rows read
    ``| `folder/path` | bytes | `sha256` | ...``) and ``members`` ({(archive, member): sha256}, from the
    "Files inside the archives" table, whose rows read ``| `archive` | `m1` / `m2` | bytes | `h1` / `h2` |``;
    an empty archive cell continues the row above).
    """
    files: dict[str, str] = {}
    members: dict[tuple[str, str], str] = {}
    archive = ""
    in_members = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_members = "inside the archives" in line
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if in_members and len(cells) >= 4:
            archive = cells[0].strip("`") or archive
            names = [n.strip().strip("`") for n in cells[1].split(" / ")]
            hashes = _HEX64.findall(cells[3])
            if len(hashes) == len(names):
                members.update({(archive, n): h for n, h in zip(names, hashes, strict=True)})
        elif len(cells) >= 3 and (m := _HEX64.fullmatch(cells[2])):
            files[cells[0].strip("`")] = m.group(1)
    return files, members


def test_pinned_hashes_match_the_mirror_readme():
    """Every sha256 of a card is the one the mirror's README gives for that very file or archive member.

    (Checked per row, so a card that gives file A the hash of file B fails; the README is where the hashes
    were taken from.)
    """
    readme = need_mirror("README.md")
    text = readme.read_text()
    files, members = _mirror_readme_hashes(text)
    assert len(files) > 50 and len(members) > 15, (len(files), len(members))  # the parser found the tables
    for name in sorted(set(ISSUE_NAMES) - NOT_IN_MIRROR):
        for f in catalog.load_card(name).get("files", []):
            key = f"{name}/{f['name']}"
            # PubMed's allx is missing from the mirror; the README gives its hash in the notes
            if not (readme.parent / key).exists():
                assert f["sha256"] in text, f"{key} hash {f['sha256']} not in the README"
                continue
            assert files.get(key) == f["sha256"], f"{key}: card {f['sha256']}, README {files.get(key)}"
            for member, h in f.get("members", {}).items():
                readme_name = f.get("strip_prefix", "") + member
                got = members.get((key, readme_name))
                assert got == h, f"{key} member {readme_name}: card {h}, README {got}"


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError) as e:
        catalog.load_card("corra")
    assert "'corra'" in str(e.value) and "cora" in str(e.value) and "citeseer" in str(e.value)
    with pytest.raises(DataError, match="no such card"):
        catalog.load_card("../pyproject")


def _card(**over):
    base = {
        "name": "x",
        "loader": "planetoid",
        "description": "d",
        "citation": "c",
        "license": "l",
        "homepage": "https://h",
        "files": [{"name": "a", "url": "https://u", "sha256": "a" * 64}],
    }
    base.update(over)
    return base


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"loader": ""}, "'loader'"),
        ({"files": [{"name": "a", "url": "https://u", "sha256": "xyz"}]}, "sha256 must be 64"),
        ({"files": [{"name": "a", "url": "https://u"}]}, r"files\[0\].sha256"),
        ({"files": [{"name": "../a", "url": "https://u", "sha256": "a" * 64}]}, "without '..'"),
        ({"files": [{"name": "/etc/a", "url": "https://u", "sha256": "a" * 64}]}, "relative path"),
        (
            {"files": [{"name": "a.zip", "url": "https://u", "sha256": "a" * 64, "extract": True}]},
            "no \\[files.members\\]",
        ),
        (
            {
                "files": [
                    {
                        "name": "a.zip",
                        "url": "https://u",
                        "sha256": "a" * 64,
                        "extract": True,
                        "members": {"../../x": "b" * 64},
                    }
                ]
            },
            "without '..'",
        ),
        ({"files": [{"name": "a", "url": "https://u", "sha256": "a" * 64}] * 2}, "listed twice"),
        # member hashes get the same check as files[].sha256, not only a length check
        *[
            (
                {
                    "files": [
                        {
                            "name": "a.zip",
                            "url": "https://u",
                            "sha256": "a" * 64,
                            "extract": True,
                            "members": {"m.txt": h},
                        }
                    ]
                },
                r"test card: files\[0\] \(a.zip\): member 'm.txt' sha256 must be 64 lowercase hex digits",
            )
            for h in ("B" * 64, "g" * 64, "b" * 63, 1)
        ],
        ({"unpinned": [{"name": "a", "url": "https://u"}]}, "listed twice"),
        ({"stats": [1]}, r"\[stats\] must be a table"),
    ],
)
def test_validate_card_rejects(bad, match):
    with pytest.raises(DataError, match=match):
        catalog.validate_card(_card(**bad), "test card")


def test_card_files_are_valid_toml_and_parse_identically():
    for p in sorted((REPO / "datasets").glob("*.toml")):
        assert tomllib.loads(p.read_text())["name"] == p.stem


def test_resolve_options_unknown_and_wrong_type():
    card = catalog.load_card("cora")
    assert data.resolve_options(card, {}) == {"features": True, "normalize_features": True}
    assert data.resolve_options(card, {"features": False})["features"] is False
    with pytest.raises(DataError) as e:
        data.resolve_options(card, {"lcc": True})
    assert "unknown option(s) lcc" in str(e.value) and "features, normalize_features" in str(e.value)
    with pytest.raises(DataError, match="option 'features' expects bool"):
        data.resolve_options(card, {"features": "yes"})
    with pytest.raises(DataError, match="option 'seed' expects int"):
        data.resolve_options(catalog.load_card("facebook"), {"seed": True})
    # ints are accepted where the default is a float
    assert data.resolve_options(catalog.load_card("facebook"), {"train_frac": 0})["train_frac"] == 0


def test_load_config_errors_name_the_key():
    with pytest.raises(DataError, match="key 'name'"):
        data.load_config({"path": "x"})
    with pytest.raises(DataError, match="unknown dataset 'nope'.*cora.*edgelist"):
        data.load_config({"name": "nope"})
    with pytest.raises(DataError, match="needs key 'path'"):
        data.load_config({"name": "edgelist"})


def test_import_graphnet_data_does_not_import_dgl():
    import subprocess
    import sys

    code = (
        "import sys, graphnet.data as d; d.list_datasets(); d.load_card('cora'); print('dgl' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_every_loader_name_resolves_to_a_function():
    import importlib

    for name, fn in data.LOADERS.items():
        module, func = fn.__name__.split(".")
        assert callable(getattr(importlib.import_module(f"graphnet.data.{module}"), func)), name
    for name, fn in data.GENERIC.items():
        module, func = fn.__name__.split(".")
        assert callable(getattr(importlib.import_module(f"graphnet.data.{module}"), func)), name
