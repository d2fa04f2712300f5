"""The dataset catalog: one TOML card per dataset in ``datasets/`` (shipped as ``graphnet.catalog``).

A card names the loader, the files (canonical URL + sha256, archive members with their own sha256),
the expected statistics, loader defaults, citation and licence::

    name = "cora"
    loader = "planetoid"          # key into graphnet.data.LOADERS
    description = "..."; citation = "..."; license = "..."; homepage = "..."
    [[files]]
    name = "ind.cora.x"
    url = "https://github.com/kimiyoung/planetoid/raw/master/data/ind.cora.x"
    sha256 = "23cf..."
    # archives: extract = true, [files.members] "member/path" = "sha256"; optional strip_prefix = "dir/"
    # (member "x" is read from archive path strip_prefix + "x" and lands at raw/x)
    [[unpinned]]                  # files with no trusted sha256: raw dir or mirror only (no download unless
    name = "..."; url = "..."     # GRAPHNET_ALLOW_UNPINNED=1); their sha256 is pinned on first use
    [stats]                       # expected statistics (tests assert them)
    [options]                     # loader defaults, overridable by graphnet.data.load(name, **options)
"""

from __future__ import annotations

import importlib.resources
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from graphnet.errors import DataError

_REQUIRED = ("name", "loader", "description", "citation", "license", "homepage")


def catalog_dir() -> Any:
    """``<repo>/datasets`` in a source checkout, else the installed ``graphnet.catalog`` package data.

    Installed, ``parents[2]`` is site-packages, whose ``datasets`` folder may be another package (Hugging
    Face's): only a folder next to graphnet's own pyproject.toml counts as the checkout's catalog."""
    root = Path(__file__).resolve().parents[2]
    local = root / "datasets"
    if local.is_dir() and (root / "pyproject.toml").is_file() and (root / "graphnet" / "data").is_dir():
        return local
    return importlib.resources.files("graphnet.catalog")


CATALOG_DIR = catalog_dir()


def list_cards() -> list[str]:
    """Names of every card in the catalog, sorted."""
    return sorted(p.name[: -len(".toml")] for p in CATALOG_DIR.iterdir() if p.name.endswith(".toml"))


def load_card(name: str) -> dict[str, Any]:
    """Read and validate ``datasets/<name>.toml``; unknown name -> DataError listing the valid ones."""
    path = CATALOG_DIR / f"{name}.toml"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise DataError(
            f"dataset {name!r}: no such card in the catalog; valid names: {', '.join(list_cards())}"
        )
    try:
        card = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"dataset {name!r}: catalog card {path} is not valid TOML: {e}") from None
    validate_card(card, str(path))
    return card


def validate_card(card: dict[str, Any], where: str = "card") -> None:
    """Check the card's schema so a broken card fails here, naming the key, not deep in a loader."""
    for key in _REQUIRED:
        if not isinstance(card.get(key), str) or not card[key]:
            raise DataError(f"{where}: key {key!r} must be a non-empty string, got {card.get(key)!r}")
    files = card.get("files", [])
    if not isinstance(files, list):
        raise DataError(
            f"{where}: 'files' must be an array of tables ([[files]]), got {type(files).__name__}"
        )
    seen = set()
    for i, f in enumerate(files):
        for key in ("name", "url", "sha256"):
            if not isinstance(f.get(key), str) or not f[key]:
                raise DataError(f"{where}: files[{i}].{key} must be a non-empty string, got {f.get(key)!r}")
        if not is_sha256(f["sha256"]):
            raise DataError(
                f"{where}: files[{i}].sha256 must be 64 lowercase hex digits, got {f['sha256']!r}"
            )
        if f["name"] in seen:
            raise DataError(f"{where}: files[{i}].name {f['name']!r} is listed twice")
        for rel in [f["name"], *f.get("members", {})]:
            _check_relpath(rel, f"{where}: files[{i}]")
        seen.add(f["name"])
        members = f.get("members", {})
        if f.get("extract", False) and not members:
            raise DataError(f"{where}: files[{i}] ({f['name']}) has extract = true but no [files.members]")
        for m, h in members.items():
            if not is_sha256(h):
                raise DataError(
                    f"{where}: files[{i}] ({f['name']}): member {m!r} sha256 must be 64 lowercase hex "
                    f"digits, got {h!r}"
                )
    unpinned = card.get("unpinned", [])
    if not isinstance(unpinned, list):
        raise DataError(f"{where}: 'unpinned' must be an array of tables ([[unpinned]])")
    for i, f in enumerate(unpinned):
        for key in ("name", "url"):
            if not isinstance(f.get(key), str) or not f[key]:
                raise DataError(
                    f"{where}: unpinned[{i}].{key} must be a non-empty string, got {f.get(key)!r}"
                )
        if f["name"] in seen:
            raise DataError(f"{where}: unpinned[{i}].name {f['name']!r} is listed twice")
        seen.add(f["name"])
        _check_relpath(f["name"], f"{where}: unpinned[{i}]")
    for key in ("stats", "options"):
        if not isinstance(card.get(key, {}), dict):
            raise DataError(f"{where}: [{key}] must be a table")


def is_sha256(h: Any) -> bool:
    """``h`` is a sha256 as the catalog and the pin files write it: 64 lowercase hex digits."""
    return isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)


def _check_relpath(rel: str, where: str) -> None:
    """File and member names are relative POSIX paths that stay inside the raw directory."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or p.name.startswith("."):
        raise DataError(f"{where}: file name {rel!r} must be a relative path without '..' or hidden parts")
