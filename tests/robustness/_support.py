"""Shared checks of the robustness suite (issue 7); imported as ``tests.robustness._support``.

``raises_clear(exc_type, *fragments)`` is the one assertion every malformed-input case makes: the call
raises ``exc_type`` (a graphnet error, never a bare ValueError/TypeError/IndexError from torch, DGL, numpy
or scipy), the message contains every fragment (the file and line, or the argument/key), and the frame
that raised it is graphnet code, so the user never sees a traceback that ends deep inside a library.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphnet.errors import GraphnetError

GRAPHNET_DIR = Path(__file__).resolve().parents[2] / "graphnet"
REPO = GRAPHNET_DIR.parent


def check_clear(err: BaseException, exc_type: type[BaseException], fragments: tuple[str, ...]) -> None:
    """Assert ``err`` is ``exc_type`` (a GraphnetError), names every fragment, and was raised in graphnet."""
    assert isinstance(err, GraphnetError), f"{type(err).__module__}.{type(err).__name__}: {err}"
    assert isinstance(err, exc_type), f"expected {exc_type.__name__}, got {type(err).__name__}: {err}"
    msg = str(err)
    missing = [f for f in fragments if f not in msg]
    assert not missing, f"message {msg!r} lacks {missing}"
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = Path(tb.tb_frame.f_code.co_filename).resolve() if tb is not None else None
    assert where is not None and GRAPHNET_DIR in where.parents, f"raised outside graphnet, in {where}"


@contextlib.contextmanager
def raises_clear(exc_type: type[BaseException], *fragments: str) -> Iterator[pytest.ExceptionInfo]:
    """``with raises_clear(DataError, "edges.txt", "line 3"): load(...)`` (see module docstring)."""
    with pytest.raises(Exception) as info:
        yield info
    check_clear(info.value, exc_type, fragments)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child python process running this checkout's graphnet, single-threaded."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DGLBACKEND": "pytorch", "OMP_NUM_THREADS": "1"}
    env.update(extra)
    return env

