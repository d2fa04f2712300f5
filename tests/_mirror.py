"""The offline mirror of real datasets that tests read; imported as ``tests._mirror``.

``MIRROR`` is ``$GRAPHNET_MIRROR``, or ``../shared/data`` next to the repository when the variable is unset or
empty. It is read once, at import, because some autouse fixtures (``tests/robustness/conftest.py``, the
``_offline`` fixture of ``test_node_datasets.py``) delete ``$GRAPHNET_MIRROR`` before each test.

A test that needs a dataset calls ``need_mirror("cora")``, which skips it with the missing path as the
reason (the guide: skip only where the mirror is absent, and say why); ``use_mirror(monkeypatch)`` also
points the library's loaders at the mirror for that test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("GRAPHNET_MIRROR") or REPO.parent / "shared" / "data")


def need_mirror(*parts: str) -> Path:
    """``MIRROR / parts...``; skips the calling test, naming that path, when it does not exist."""
    path = MIRROR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"offline mirror {path} is absent (set GRAPHNET_MIRROR to a copy of ../shared/data)")
    return path


def use_mirror(monkeypatch: pytest.MonkeyPatch, *parts: str) -> Path:
    """``need_mirror(*parts)``, then set ``$GRAPHNET_MIRROR`` to MIRROR for the rest of the test."""
    path = need_mirror(*parts)
    monkeypatch.setenv("GRAPHNET_MIRROR", str(MIRROR))
    return path
