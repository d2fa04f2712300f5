"""Crash-safe file output: atomic writes and run directories that never collide.

Every result file graphnet writes goes through :func:`atomic_open`: the bytes land in a temporary file in
the destination's directory, are flushed and fsync'ed, then ``os.replace`` renames the temporary over the
destination (atomic on POSIX within one filesystem). A reader therefore sees either the old file or the
complete new one; a process killed mid-write leaves at most a hidden ``.<name>.<random>.tmp`` file, which
no reader ever opens. Run directories are created with ``mkdir(exist_ok=False)``, so two processes that
start the same config at the same instant get two directories.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# mkstemp creates 0600 files; results should get the usual permissions (0666 minus the umask). The umask
# can only be read by setting it, so read it once here, at import (single-threaded).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on success fsync it and rename it over ``path``.

    On any exception (including a full disk) the temporary file is removed, ``path`` is left as it was and
    an ``OSError`` naming ``path`` is raised.

    Args:
        path: destination file; its directory must exist.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # e.g. ENOSPC from write/fsync: say which file
            raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable (POSIX); not supported everywhere, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: tuples -> lists, Paths -> str, numpy/torch scalars -> float/int, NaN/inf -> None.

    Strict JSON has no NaN, so a diverged metric is written as ``null`` instead of an invalid token.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item"):  # numpy / torch scalar
        return to_jsonable(obj.item())
    raise TypeError(f"to_jsonable: cannot write a {type(obj).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys, atomically; NaN/inf become null."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")


def remove_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files a killed writer left under ``directory``; returns them.

    Only for directories no live process writes to (a run directory being resumed).
    """
    stale = [p for p in Path(directory).rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (``flock`` on ``run_dir/.lock``) while the block runs.

    Two processes must never write one run directory (a resume of a run that is still alive would delete
    its temporaries and overwrite its checkpoints and results). The kernel drops the lock when its holder
    exits, however it dies, so a killed run can always be resumed. Where ``fcntl`` does not exist (Windows)
    the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(run_dir) / ".lock"
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from graphnet.errors import ConfigError

            raise ConfigError(f"{run_dir}: another process is running this run (it holds {path}); wait "
                              "for it to finish or stop it before resuming") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def new_run_id() -> str:
    """UTC timestamp plus 8 random hex digits, e.g. ``20261121T101530Z-3f9a0c1b`` (sorts by start time)."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def make_run_dir(parent: str | os.PathLike, attempts: int = 20) -> Path:
    """Create a new, empty ``<parent>/<run-id>/`` (parents created as needed) and return it.

    ``mkdir(exist_ok=False)`` is atomic: if another process took the same id, a fresh one is drawn.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        path = parent / new_run_id()
        try:
            path.mkdir(exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise OSError(f"cannot create a new run directory under {parent}: {attempts} ids were all taken")
