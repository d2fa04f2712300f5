"""Obtain a dataset's files: cache -> mirror -> download, every file verified by sha256, written atomically.

``fetch(card)`` returns ``$GRAPHNET_DATA/<name>/raw/`` (default ``~/.cache/graphnet/<name>/raw/``) holding
every file the card lists. For each ``[[files]]`` entry, in order:

1. the raw directory already holds it (or, for an archive, all its listed members) and the sha256 matches;
   a file that does not match is deleted and obtained again;
2. a mirror (``mirror=`` or ``$GRAPHNET_MIRROR``) holds ``<mirror>/<name>/<file>`` or, for an archive,
   the archive or its extracted members (``<mirror>/<name>/<member>``, or the member's base name);
3. download from the card's URL with a progress bar (shown only on a terminal), unless
   ``$GRAPHNET_OFFLINE=1``.

Files the catalog has no trusted sha256 for are listed under ``[[unpinned]]``: they come from the raw
directory or the mirror, and are downloaded only when ``$GRAPHNET_ALLOW_UNPINNED=1``; the sha256 they have
on first use is pinned next to them (``raw/.<file>.sha256``) and checked from then on. A copy that differs
from its pin is kept until a mirror copy or an allowed download has replaced it; if neither is available,
fetch raises ChecksumError and leaves both the copy and the pin as they are.

Every copy goes to a temporary file in the destination directory, is fsync'ed, checked, then renamed over
the destination (``os.replace``), so a killed process never leaves a partial file under a real name; stale
temporaries of dead processes are removed on the next call. Files are created with mode 0666 minus the
umask (a shared ``$GRAPHNET_DATA`` stays readable by other users). A downloaded archive is written under a
name of its own process (``raw/.<archive>.<pid>.archive.part``), extracted from there and deleted, so
concurrent fetches of one dataset never read or delete each other's copy. Archives (zip, tar.*) are never
extracted wholesale: only the members the card lists are read, only if they are regular files, and they
land at ``raw/<member>`` (member names are validated: relative, no ``..``), so traversal and links cannot
escape.

The processed cache (``$GRAPHNET_DATA/<name>/processed/``) holds plain tensors written with torch.save,
with the sha256 of each file's bytes next to it (``processed/.<key>.pt.sha256``); a file is read back with
``weights_only=True`` only if its bytes match; see ``load_processed`` / ``save_processed``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import stat
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.request import Request, urlopen

from graphnet.data.catalog import is_sha256
from graphnet.errors import ChecksumError, DataError
from graphnet.io import _UMASK, atomic_write_text

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT = 60.0  # seconds per socket operation, so a dead network fails instead of hanging
# Bump when the processed-cache layout or a loader's output changes (2: MUSAE numeric labels are ordered as
# numbers, 2026-12-07; 3: KG drop_unseen takes its vocabularies from train, 2026-12-07), so that caches
# built by the old code are never served.
CACHE_VERSION = 3


# ----------------------------------------------------------------------------------------- paths
def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$GRAPHNET_DATA``, else ``~/.cache/graphnet``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("GRAPHNET_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "graphnet"


def raw_dir(card: dict, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / card["name"] / "raw"


def processed_dir(card: dict, root: str | os.PathLike | None = None) -> Path:
    return data_root(root) / card["name"] / "processed"


def mirror_root(mirror: str | os.PathLike | None = None) -> Path | None:
    """``mirror``, else ``$GRAPHNET_MIRROR``, else None."""
    if mirror is not None:
        return Path(mirror).expanduser()
    env = os.environ.get("GRAPHNET_MIRROR")
    return Path(env).expanduser() if env else None


def _safe_relpath(dataset: str, rel: str) -> PurePosixPath:
    """A card's file/member name as a relative path that cannot leave its directory."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("~"):
        raise DataError(
            f"dataset {dataset!r}: file name {rel!r} in the card must be a relative path without '..'"
        )
    return p


# ----------------------------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _manual_fix(card: dict, entry: dict, raw: Path, mdir: Path | None = None) -> str:
    where = (
        f"into {mdir}/"
        if mdir is not None
        else f"into <mirror>/{card['name']}/ and set GRAPHNET_MIRROR=<mirror>"
    )
    return (
        f"To supply it by hand, download {entry['url']} (sha256 {entry['sha256']}) and put it at "
        f"{raw / entry['name']}, or copy it {where}."
    )


# ----------------------------------------------------------------------------------------- atomic writes
def _write_atomic(
    src: IO[bytes],
    dest: Path,
    expected: str | None,
    what: str,
    total: int | None = None,
    progress: bool = False,
) -> str:
    """Stream ``src`` into ``dest`` via a same-directory temp file; rename only if sha256 == expected.

    ``dest`` gets mode 0666 minus the umask (mkstemp's 0600 would hide it from other users). Raises
    ChecksumError (``what`` names dataset and file) on mismatch; the temp file never survives. Returns the
    sha256 of the bytes written (hex).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.", suffix=".part")
    h, n = hashlib.sha256(), 0
    bar = None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                leave=False,
                disable=not sys.stderr.isatty(),
            )
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                n += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and n != total:
            raise DataError(f"{what}: transfer ended after {n} of {total} bytes (connection interrupted?)")
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise ChecksumError(f"{what}: sha256 mismatch: expected {expected}, got {actual} ({n} bytes)")
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DataError(
                f"{what}: no space left on device while writing {dest} ({n} bytes written); "
                f"free space or set GRAPHNET_DATA to another disk"
            ) from None
        raise
    finally:
        if bar is not None:
            bar.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return actual


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is; not supported everywhere (ignore then).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_parts(directory: Path) -> None:
    """Delete ``.<file>.<pid>.*.part`` temporaries left by processes that no longer run (e.g. SIGKILL)."""
    if not directory.is_dir():
        return
    for p in directory.rglob(".*.part"):
        try:
            pid = int(p.name.rsplit(".part", 1)[0].split(".")[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid() or not _pid_alive(pid):
            p.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------- archives
def _open_member(archive: Path, inner: str, what: str) -> tuple[Any, IO[bytes], int | None]:
    """Open one member of a zip/tar archive for reading; refuse links, devices and missing members.

    Returns (handle to close, readable stream, size).
    """
    if zipfile.is_zipfile(archive):
        zf = zipfile.ZipFile(archive)
        try:
            info = zf.getinfo(inner)
        except KeyError:
            zf.close()
            raise DataError(f"{what}: archive {archive.name} has no member {inner!r}") from None
        ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored no Unix file type
        if info.is_dir() or (ftype and ftype != stat.S_IFREG):
            zf.close()
            raise DataError(
                f"{what}: archive member {inner!r} is not a regular file (link or "
                f"directory); refusing to extract it"
            )
        return zf, zf.open(info), info.file_size
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.TarError as e:
        raise DataError(f"{what}: {archive.name} is neither a zip nor a tar archive ({e})") from None
    found = None
    for m in tf.getmembers():
        if m.name.removeprefix("./") == inner:
            found = m
    if found is None:
        tf.close()
        raise DataError(f"{what}: archive {archive.name} has no member {inner!r}")
    if not found.isreg():
        tf.close()
        raise DataError(
            f"{what}: archive member {inner!r} is not a regular file (link, device or "
            f"directory); refusing to extract it"
        )
    return tf, tf.extractfile(found), found.size


def _extract_members(card: dict, entry: dict, archive: Path, raw: Path, members: Iterable[str]) -> None:
    prefix = entry.get("strip_prefix", "")
    for rel in members:
        what = f"dataset {card['name']!r}: member {rel} of {entry['name']}"
        handle, stream, size = _open_member(archive, prefix + rel, what)
        try:
            with stream:
                _write_atomic(
                    stream, raw / _safe_relpath(card["name"], rel), entry["members"][rel], what, size
                )
        finally:
            handle.close()


# ----------------------------------------------------------------------------------------- fetch
def _check_cached(card: dict, path: Path, expected: str, rel: str, bad: list[str]) -> bool:
    """True if ``path`` exists with the expected hash. A mismatching file is deleted (then obtained again)
    and noted in ``bad``, so that an error raised later can say what was wrong with it."""
    if not path.is_file():
        return False
    actual = sha256_file(path)
    if actual == expected:
        return True
    log.warning(
        "dataset %r: cached %s has sha256 %s, expected %s; deleting it and fetching again",
        card["name"],
        rel,
        actual,
        expected,
    )
    path.unlink()
    bad.append(f"the cached copy {path} had sha256 {actual}, expected {expected}, and was deleted")
    return False


def _offline() -> bool:
    return os.environ.get("GRAPHNET_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _download(card: dict, entry: dict, dest: Path) -> None:
    what = f"dataset {card['name']!r}: file {entry['name']}"
    url = entry["url"]
    try:
        resp = urlopen(Request(url, headers={"User-Agent": "graphnet"}), timeout=_TIMEOUT)
    except Exception as e:  # URLError, HTTPError, timeouts, DNS failures: all mean "cannot get it"
        raise DataError(f"{what}: could not download {url}: {e}") from None
    with resp:
        length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
        total = int(length) if length and length.isdigit() else None
        try:
            _write_atomic(resp, dest, entry["sha256"], what, total, progress=True)
        except (DataError, ChecksumError):
            raise
        except Exception as e:  # connection reset / timeout mid-stream
            raise DataError(f"{what}: download of {url} was interrupted: {e}") from None


def _mirror_candidates(mdir: Path, rel: str, prefix: str = "") -> list[Path]:
    """Where a mirror may hold ``rel``: as named, under the archive's folder prefix, or by base name."""
    out = [mdir / rel, mdir / (prefix + rel), mdir / PurePosixPath(rel).name]
    return [p for i, p in enumerate(out) if p not in out[:i]]


def _fetch_entry(card: dict, entry: dict, raw: Path, mdir: Path | None) -> None:
    name = card["name"]
    rel = entry["name"]
    _safe_relpath(name, rel)
    members = list(entry.get("members", {})) if entry.get("extract", False) else []
    for m in members:
        _safe_relpath(name, m)
    dest = raw / rel
    what = f"dataset {name!r}: file {rel}"

    # 1. already cached and verified
    bad: list[str] = []
    if members:
        missing = [m for m in members if not _check_cached(card, raw / m, entry["members"][m], m, bad)]
        if not missing:
            return
        if dest.is_file():  # an archive placed (or kept) in the raw directory
            actual = sha256_file(dest)
            if actual != entry["sha256"]:
                dest.unlink()
                bad.append(
                    f"the archive {dest} had sha256 {actual}, expected {entry['sha256']}, and was deleted"
                )
                log.warning(
                    "%s: archive in %s has sha256 %s, expected %s; deleted",
                    what,
                    raw,
                    actual,
                    entry["sha256"],
                )
            else:
                _extract_members(card, entry, dest, raw, missing)
                return
    elif _check_cached(card, dest, entry["sha256"], rel, bad):
        return
    else:
        missing = []

    # 2. mirror: the file itself, or (archives) the archive or its extracted members
    tried = []
    if mdir is not None:
        for cand in _mirror_candidates(mdir, rel):
            tried.append(str(cand))
            if cand.is_file():
                actual = sha256_file(cand)
                if actual != entry["sha256"]:
                    raise ChecksumError(
                        f"{what}: mirror copy {cand} has sha256 {actual}, expected "
                        f"{entry['sha256']}. Replace it with the original "
                        f"({entry['url']})."
                    )
                if members:
                    _extract_members(card, entry, cand, raw, missing)
                else:
                    with open(cand, "rb") as src:
                        _write_atomic(src, dest, entry["sha256"], f"{what} (from mirror {cand})")
                log.info("%s: copied from mirror %s", what, cand)
                return
        if members:
            found = {}
            for m in missing:
                for cand in _mirror_candidates(mdir, m, entry.get("strip_prefix", "")):
                    tried.append(str(cand))
                    if cand.is_file():
                        found[m] = cand
                        break
            if len(found) == len(missing):
                for m, cand in found.items():
                    with open(cand, "rb") as src:
                        _write_atomic(
                            src,
                            raw / m,
                            entry["members"][m],
                            f"dataset {name!r}: member {m} of {rel} (from mirror {cand})",
                        )
                log.info("%s: extracted members copied from mirror %s", what, mdir)
                return

    # 3. download
    where = (
        f"not in the mirror (looked for {', '.join(tried)})"
        if tried
        else "no mirror is set (GRAPHNET_MIRROR)"
    )
    missing_msg = f"{what} is missing: not in {raw}; {where}"
    if entry.get("option"):
        missing_msg += f" (it is needed only with option {entry['option']}=true)"
    # A corrupt cached copy that cannot be replaced is a checksum failure, not just a missing file.
    Err = ChecksumError if bad else DataError
    if bad:
        missing_msg = f"{what}: {'; '.join(bad)}. It is {missing_msg.removeprefix(what + ' is ')}"
    if _offline():
        raise Err(
            f"{missing_msg}; downloads are disabled (GRAPHNET_OFFLINE=1). "
            f"{_manual_fix(card, entry, raw, mdir)}"
        )
    # An archive gets a name of this process's own: a concurrent fetch of the same dataset would otherwise
    # replace or delete it between our download and our extraction.
    target = dest.parent / f".{dest.name}.{os.getpid()}.archive.part" if members else dest
    try:
        _download(card, entry, target)
    except ChecksumError as e:
        raise ChecksumError(
            f"{e}. The file at {entry['url']} differs from the catalog's. "
            f"{_manual_fix(card, entry, raw, mdir)}"
        ) from None
    except DataError as e:
        raise Err(
            f"{missing_msg}; {str(e).removeprefix(what + ': ')}. {_manual_fix(card, entry, raw, mdir)}"
        ) from None
    if members:
        try:
            _extract_members(card, entry, target, raw, missing)
        finally:
            target.unlink(missing_ok=True)  # loaders read the members; the archive can be fetched again


def _pin_path(path: Path) -> Path:
    return path.parent / f".{path.name}.sha256"


def _fetch_unpinned(card: dict, entry: dict, raw: Path, mdir: Path | None) -> None:
    """A file the catalog has no trusted sha256 for (card ``[[unpinned]]``): raw dir, else mirror copy, else
    (only with ``GRAPHNET_ALLOW_UNPINNED=1``) download. Its sha256 is pinned on first sight
    (``raw/.<file>.sha256``), so later corruption or substitution is still detected: a copy that differs
    from its pin is replaced (atomically, then re-pinned) from the mirror or a download, and when neither is
    available it is kept as it is and a ChecksumError says how to resolve it."""
    name, rel = card["name"], entry["name"]
    _safe_relpath(name, rel)
    dest, what = raw / rel, f"dataset {name!r}: file {rel}"
    pin = _pin_path(dest)
    changed = None  # set when the local copy differs from its pin: what the error says if it stays
    if dest.is_file():
        actual = sha256_file(dest)
        expected = _read_pin(pin)
        if expected is None:
            atomic_write_text(pin, actual + "\n")  # a cut-off write must not leave an empty pin behind
            log.warning("%s has no sha256 in the catalog; pinned the local copy's %s", what, actual)
            return
        if actual == expected:
            return
        log.warning("%s: sha256 %s differs from the pinned %s; looking for a replacement", what, actual,
                    expected)
        changed = (
            f"{what}: {dest} has sha256 {actual}, but {pin} pins {expected}; it was left as it is because "
            f"no replacement could be obtained"
        )
    mirror_file = mdir / rel if mdir is not None else None
    fix = (
        f"The catalog has no trusted sha256 for it, so graphnet does not download it by default: get it from "
        f"{entry['url']} and put it at {dest}"
        + (f" or in {mdir}/" if mdir is not None else " (or in $GRAPHNET_MIRROR/" + name + "/)")
        + ", or set GRAPHNET_ALLOW_UNPINNED=1 to download it and pin the sha256 it has now."
    )
    if mirror_file is not None and mirror_file.is_file():
        actual = sha256_file(mirror_file)
        with open(mirror_file, "rb") as src:
            _write_atomic(src, dest, actual, f"{what} (from mirror {mirror_file})")
    elif (
        os.environ.get("GRAPHNET_ALLOW_UNPINNED", "").strip().lower() in ("1", "true", "yes")
        and not _offline()
    ):
        try:
            _download(card, {**entry, "sha256": None}, dest)
        except DataError as e:
            if changed is None:
                raise
            raise ChecksumError(f"{changed} ({e}). {_unpinned_way_out(entry, dest, pin, mdir)}") from None
        actual = sha256_file(dest)
    else:
        where = f"not in the mirror ({mirror_file}); " if mirror_file is not None else "no mirror is set; "
        if changed is not None:
            raise ChecksumError(
                f"{changed} ({where}downloads of unpinned files are "
                f"{'disabled (GRAPHNET_OFFLINE=1)' if _offline() else 'off (GRAPHNET_ALLOW_UNPINNED)'}). "
                f"{_unpinned_way_out(entry, dest, pin, mdir)}"
            )
        raise DataError(f"{what} is missing: not in {raw}; {where}{fix}")
    atomic_write_text(pin, actual + "\n")
    log.warning("%s has no sha256 in the catalog; pinned %s", what, actual)


def _unpinned_way_out(entry: dict, dest: Path, pin: Path, mdir: Path | None) -> str:
    mirror = f"{mdir}/" if mdir is not None else "$GRAPHNET_MIRROR/<dataset>/"
    return (
        f"Either supply the original: put it back at {dest} (or in {mirror}; it came from {entry['url']}); "
        f"or, if the new copy is the one you want, delete {pin} to accept it (its sha256 is pinned on the "
        f"next run)."
    )


def _read_pin(pin: Path) -> str | None:
    """The sha256 pinned in ``pin``; None when there is none or the file does not hold one (e.g. cut off by
    a crash before pins were written atomically): then the file is re-pinned, not deleted as corrupt."""
    text = pin.read_text(errors="replace").strip() if pin.is_file() else ""
    if is_sha256(text):
        return text
    if pin.is_file():
        log.warning("%s does not hold a sha256 (%r); ignoring it", pin, text[:80])
    return None


def fetch(
    card: dict,
    root: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    files: list[str] | None = None,
) -> Path:
    """Make every (requested) file of ``card`` present and verified in the raw directory; return it.

    Args:
        card: a catalog card (``graphnet.data.catalog.load_card``).
        root: data root (default ``$GRAPHNET_DATA`` or ``~/.cache/graphnet``).
        mirror: a directory holding ``<name>/<file>`` (default ``$GRAPHNET_MIRROR``).
        files: names of the ``[[files]]`` / ``[[unpinned]]`` entries to fetch (default all).

    Raises:
        ChecksumError: a mirror copy or download does not match the card's sha256.
        DataError: a file cannot be obtained (names the file, expected sha256, the URL and the manual fix).
    """
    raw = raw_dir(card, root)
    entries = card.get("files", [])
    unpinned = card.get("unpinned", [])
    if files is not None:
        known = {e["name"] for e in entries} | {e["name"] for e in unpinned}
        unknown = [f for f in files if f not in known]
        if unknown:
            raise DataError(
                f"dataset {card['name']!r}: unknown file(s) {unknown}; the card lists {sorted(known)}"
            )
        entries = [e for e in entries if e["name"] in files]
        unpinned = [e for e in unpinned if e["name"] in files]
    if not entries and not unpinned:
        return raw
    raw.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(raw)
    mroot = mirror_root(mirror)
    mdir = mroot / card["name"] if mroot is not None else None
    for entry in entries:
        _fetch_entry(card, entry, raw, mdir)
    for entry in unpinned:
        _fetch_unpinned(card, entry, raw, mdir)
    return raw


# ----------------------------------------------------------------------------------------- processed cache
def cache_key(card: dict, options: dict, unpinned: dict[str, str] | None = None) -> str:
    """Hash of the card, the effective options, the cache version and, for ``[[unpinned]]`` files (which
    the card cannot hash), the sha256 each is pinned to (``unpinned_pins``); hex, 16 chars."""
    blob = json.dumps({"card": card, "options": options, "v": CACHE_VERSION, **({"unpinned": unpinned}
                      if unpinned else {})}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def unpinned_pins(card: dict, names: Iterable[str],
                  root: str | os.PathLike | None = None) -> dict[str, str] | None:
    """``{file: pinned sha256}`` of the card's ``[[unpinned]]`` files among ``names``; {} if it has none, None
    while any of them is not pinned yet (fetch it first: fetching pins it)."""
    wanted = set(names)
    raw = raw_dir(card, root)
    pins = {f["name"]: _read_pin(_pin_path(raw / f["name"])) for f in card.get("unpinned", [])
            if f["name"] in wanted}
    return None if None in pins.values() else pins


def load_processed(card: dict, key: str, root: str | os.PathLike | None = None) -> Any | None:
    """The object saved under ``key``, or None (then it is rebuilt) if absent, unreadable, or its bytes do not
    match the sha256 ``save_processed`` recorded (a missing record included). The file is read once and the
    bytes that were checked are the bytes that are loaded."""
    import torch

    path = processed_dir(card, root) / f"{key}.pt"
    if not path.is_file():
        return None
    expected = _read_pin(_pin_path(path))
    if expected is None:  # written by older code, or the write of the hash was cut off
        log.warning("dataset %r: processed cache %s has no recorded sha256; ignoring it (it is rebuilt)",
                    card["name"], path)
        return None
    try:
        blob = path.read_bytes()
    except OSError as e:
        log.warning("dataset %r: ignoring unreadable processed cache %s (%s)", card["name"], path, e)
        return None
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        log.warning(
            "dataset %r: processed cache %s has sha256 %s, recorded %s; ignoring it (it is rebuilt)",
            card["name"],
            path,
            actual,
            expected,
        )
        return None
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, tampered or from another layout: rebuild rather than fail
        log.warning("dataset %r: ignoring unreadable processed cache %s (%s)", card["name"], path, e)
        return None
    if not isinstance(obj, dict) or obj.get("key") != key:
        return None
    return obj["data"]


def save_processed(card: dict, key: str, data: Any, root: str | os.PathLike | None = None) -> Path | None:
    """torch.save ``{"key", "data"}`` to ``processed/<key>.pt`` atomically, then record the sha256 of those
    bytes in ``processed/.<key>.pt.sha256`` (also atomically); ``data`` must be plain
    tensors/containers/scalars. Returns the path, or None if it could not be written."""
    import torch

    d = processed_dir(card, root)
    path = d / f"{key}.pt"
    buf = io.BytesIO()
    torch.save({"key": key, "data": data}, buf)
    buf.seek(0)
    try:
        d.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(d)
        digest = _write_atomic(buf, path, None, f"dataset {card['name']!r}: processed cache {path.name}")
        # A crash between the two writes leaves a file whose hash does not match: it is rebuilt, never used.
        atomic_write_text(_pin_path(path), digest + "\n")
    except (OSError, DataError) as e:
        # A cache that cannot be written only costs time; never fail a load for it.
        log.warning("dataset %r: could not write processed cache %s (%s)", card["name"], path, e)
        return None
    return path
