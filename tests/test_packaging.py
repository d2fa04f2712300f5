"""The wheel's package list (pyproject.toml) covers every package of the source tree and the catalog.

setuptools' automatic discovery cannot see ``graphnet.catalog`` (mapped to the top-level datasets/), so
the list is explicit; this keeps a new subpackage from silently missing from ``pip install .``.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_and_the_catalog_ship_in_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "graphnet").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk <= listed, f"missing from [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert setuptools["package-dir"]["graphnet.catalog"] == "datasets"
    assert "graphnet.catalog" in listed and setuptools["package-data"]["graphnet.catalog"] == ["*.toml"]
    assert len(list((ROOT / "datasets").glob("*.toml"))) >= 30
