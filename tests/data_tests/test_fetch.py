"""Obtaining files (graphnet.data.fetch): cache -> mirror -> download, sha256 checks, atomic writes, archives,
unpinned files, the processed cache. No network: downloads go through a fake ``urlopen``."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from graphnet.data import fetch as F
from graphnet.errors import ChecksumError, DataError

REPO = Path(__file__).resolve().parents[2]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for k in ("GRAPHNET_DATA", "GRAPHNET_MIRROR", "GRAPHNET_OFFLINE", "GRAPHNET_ALLOW_UNPINNED"):
        monkeypatch.delenv(k, raising=False)


A_BYTES = b"id_1,id_2\n0,1\n1,2\n" * 50
B_BYTES = bytes(range(256)) * 40


def plain_card(name: str = "toy") -> dict:
    return {
        "name": name,
        "files": [
            {"name": "a.csv", "url": "https://example.org/a.csv", "sha256": sha(A_BYTES)},
            {"name": "b.bin", "url": "https://example.org/b.bin", "sha256": sha(B_BYTES)},
        ],
    }


def make_mirror(tmp_path: Path, name: str = "toy", files: dict | None = None) -> Path:
    files = files if files is not None else {"a.csv": A_BYTES, "b.bin": B_BYTES}
    m = tmp_path / "mirror"
    for rel, data in files.items():
        p = m / name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return m


def leftovers(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) if d.exists() else []


class FakeResponse:
    """A urlopen() result: serves ``data`` in chunks; ``fail_after`` bytes then raises ``exc``."""

    def __init__(
        self,
        data: bytes,
        length: int | None = None,
        fail_after: int | None = None,
        exc: Exception | None = None,
        chunk: int = 100,
    ):
        self.buf, self.pos, self.fail_after, self.exc, self.chunk = data, 0, fail_after, exc, chunk
        self.headers = {"Content-Length": str(len(data) if length is None else length)}

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise self.exc or ConnectionResetError("connection reset by peer")
        out = self.buf[self.pos : self.pos + self.chunk]
        self.pos += len(out)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ------------------------------------------------------------------------------------------- mirror + cache
def test_fetch_from_mirror_then_cache(tmp_path):
    card = plain_card()
    m = make_mirror(tmp_path)
    raw = F.fetch(card, root=tmp_path / "root", mirror=m)
    assert raw == tmp_path / "root" / "toy" / "raw"
    assert (raw / "a.csv").read_bytes() == A_BYTES and (raw / "b.bin").read_bytes() == B_BYTES
    # the cache is used once verified: the mirror can go away
    for p in (m / "toy").iterdir():
        p.unlink()
    assert F.fetch(card, root=tmp_path / "root", mirror=m) == raw
    assert leftovers(raw) == ["a.csv", "b.bin"]


def test_env_variables_select_root_and_mirror(tmp_path, monkeypatch):
    m = make_mirror(tmp_path)
    monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path / "envroot"))
    monkeypatch.setenv("GRAPHNET_MIRROR", str(m))
    raw = F.fetch(plain_card())
    assert raw == tmp_path / "envroot" / "toy" / "raw" and (raw / "a.csv").is_file()


def test_files_subset_and_unknown_file(tmp_path):
    m = make_mirror(tmp_path)
    raw = F.fetch(plain_card(), root=tmp_path / "r", mirror=m, files=["a.csv"])
    assert leftovers(raw) == ["a.csv"]
    with pytest.raises(DataError, match=r"unknown file\(s\) \['c.txt'\]"):
        F.fetch(plain_card(), root=tmp_path / "r", mirror=m, files=["c.txt"])


def test_corrupted_mirror_file_one_byte_is_rejected(tmp_path):
    bad = bytearray(B_BYTES)
    bad[100] ^= 1
    m = make_mirror(tmp_path, files={"a.csv": A_BYTES, "b.bin": bytes(bad)})
    with pytest.raises(ChecksumError) as e:
        F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    msg = str(e.value)
    assert "'toy'" in msg and "b.bin" in msg and sha(B_BYTES) in msg and sha(bytes(bad)) in msg
    assert not (tmp_path / "r" / "toy" / "raw" / "b.bin").exists()


def test_corrupted_cache_is_replaced_from_mirror(tmp_path):
    m = make_mirror(tmp_path)
    raw = F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    data = bytearray((raw / "a.csv").read_bytes())
    data[5] ^= 0x20
    (raw / "a.csv").write_bytes(bytes(data))
    F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    assert (raw / "a.csv").read_bytes() == A_BYTES


def test_corrupted_cache_without_source_is_a_checksum_error(tmp_path, monkeypatch):
    m = make_mirror(tmp_path)
    raw = F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    (raw / "a.csv").write_bytes(A_BYTES[:-1])
    monkeypatch.setenv("GRAPHNET_OFFLINE", "1")
    with pytest.raises(ChecksumError) as e:
        F.fetch(plain_card(), root=tmp_path / "r")
    msg = str(e.value)
    assert "a.csv" in msg and sha(A_BYTES[:-1]) in msg and sha(A_BYTES) in msg and "GRAPHNET_MIRROR" in msg
    assert not (raw / "a.csv").exists()  # a corrupt file is never left for a later run to use


def test_missing_file_offline_names_url_hash_and_fix(tmp_path, monkeypatch):
    m = make_mirror(tmp_path, files={"a.csv": A_BYTES})
    monkeypatch.setenv("GRAPHNET_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    msg = str(e.value)
    for part in (
        "dataset 'toy'",
        "file b.bin is missing",
        "https://example.org/b.bin",
        sha(B_BYTES),
        str(tmp_path / "r" / "toy" / "raw" / "b.bin"),
        str(m / "toy" / "b.bin"),
    ):
        assert part in msg


def test_no_network_is_a_clear_data_error(tmp_path, monkeypatch):
    import urllib.error

    def down(req, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(F, "urlopen", down)
    with pytest.raises(DataError) as e:
        F.fetch(plain_card(), root=tmp_path / "r")
    msg = str(e.value)
    assert "could not download https://example.org/a.csv" in msg and "Name or service not known" in msg
    assert "no mirror is set" in msg and "put it at" in msg


# ------------------------------------------------------------------------------------------- downloads
def test_download_success_and_no_temp_left(tmp_path, monkeypatch):
    served = {"https://example.org/a.csv": A_BYTES, "https://example.org/b.bin": B_BYTES}
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(served[req.full_url]))
    raw = F.fetch(plain_card(), root=tmp_path / "r")
    assert (raw / "a.csv").read_bytes() == A_BYTES
    assert leftovers(raw) == ["a.csv", "b.bin"]


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(A_BYTES, fail_after=300))
    with pytest.raises(DataError, match="interrupted") as e:
        F.fetch(plain_card(), root=tmp_path / "r", files=["a.csv"])
    assert "a.csv" in str(e.value) and "toy" in str(e.value)
    assert leftovers(tmp_path / "r") == []


def test_truncated_download_leaves_nothing(tmp_path, monkeypatch):
    # the server announces more bytes than it sends, then closes the connection cleanly
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(A_BYTES[:500], length=len(A_BYTES)))
    with pytest.raises(DataError, match=f"ended after 500 of {len(A_BYTES)} bytes"):
        F.fetch(plain_card(), root=tmp_path / "r", files=["a.csv"])
    assert leftovers(tmp_path / "r") == []


def test_download_with_wrong_content_is_a_checksum_error(tmp_path, monkeypatch):
    evil = A_BYTES.replace(b"0,1", b"0,9")
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(evil))
    with pytest.raises(ChecksumError) as e:
        F.fetch(plain_card(), root=tmp_path / "r", files=["a.csv"])
    assert sha(evil) in str(e.value) and sha(A_BYTES) in str(e.value)
    assert leftovers(tmp_path / "r") == []


def test_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    m = make_mirror(tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(F.os, "fsync", no_space)
    with pytest.raises(DataError, match="no space left on device"):
        F.fetch(plain_card(), root=tmp_path / "r", mirror=m)
    monkeypatch.undo()
    assert leftovers(tmp_path / "r") == []


_KILL_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from graphnet.data import fetch as F
card, root, flag = json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
class Slow:
    headers = {"Content-Length": "1000000"}
    n = 0
    def read(self, k=-1):
        self.n += 1
        if self.n == 3:
            open(flag, "w").close()
        time.sleep(0.05)
        return b"x" * 1000
    def __enter__(self): return self
    def __exit__(self, *a): return False
F.urlopen = lambda req, timeout: Slow()
F.fetch(card, root=root, files=["a.csv"])
"""


def test_sigkill_during_download_never_leaves_a_usable_partial_file(tmp_path):
    card = plain_card()
    flag = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GRAPHNET_MIRROR", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(REPO), json.dumps(card), str(tmp_path / "r"), str(flag)],
        env=env,
    )
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert flag.exists(), "the child never started downloading"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    raw = tmp_path / "r" / "toy" / "raw"
    assert not (raw / "a.csv").exists()
    parts = [p.name for p in raw.iterdir()]
    assert parts and all(p.startswith(".a.csv.") and p.endswith(".part") for p in parts)
    # the next run ignores and removes the dead process's temporary file, and gets the verified file
    F.fetch(card, root=tmp_path / "r", mirror=make_mirror(tmp_path), files=["a.csv"])
    assert leftovers(raw) == ["a.csv"] and (raw / "a.csv").read_bytes() == A_BYTES


# ------------------------------------------------------------------------------------------- archives
MEMBERS = {"train.txt": b"a\tr\tb\n" * 20, "test.txt": b"b\tr\tc\n"}


def archive_card(fmt: str, data: bytes, prefix: str = "") -> dict:
    entry = {
        "name": f"toy.{fmt}",
        "url": f"https://example.org/toy.{fmt}",
        "sha256": sha(data),
        "extract": True,
        "members": {k: sha(v) for k, v in MEMBERS.items()},
    }
    if prefix:
        entry["strip_prefix"] = prefix
    return {"name": "toy", "files": [entry]}


def make_zip(members: dict, prefix: str = "", extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in members.items():
            zf.writestr(prefix + k, v)
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def make_tar(members: dict, dot: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for k, v in members.items():
            info = tarfile.TarInfo(("./" if dot else "") + k)
            info.size = len(v)
            tf.addfile(info, io.BytesIO(v))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_mirror_archive_is_extracted_and_verified(tmp_path, fmt):
    data = make_zip(MEMBERS, "inner/") if fmt == "zip" else make_tar(MEMBERS)
    card = archive_card(fmt, data, prefix="inner/" if fmt == "zip" else "")
    m = make_mirror(tmp_path, files={f"toy.{fmt}": data})
    raw = F.fetch(card, root=tmp_path / "r", mirror=m)
    assert leftovers(raw) == ["test.txt", "train.txt"]
    assert (raw / "train.txt").read_bytes() == MEMBERS["train.txt"]
    # cached members are used without the archive
    (m / "toy" / f"toy.{fmt}").unlink()
    assert F.fetch(card, root=tmp_path / "r", mirror=m) == raw
    assert leftovers(raw) == ["test.txt", "train.txt"]
    assert [(raw / k).read_bytes() for k in ("train.txt", "test.txt")] == [MEMBERS["train.txt"],
                                                                          MEMBERS["test.txt"]]


def test_mirror_with_extracted_members_is_accepted(tmp_path):
    card = archive_card("zip", make_zip(MEMBERS, "inner/"), prefix="inner/")
    m = make_mirror(
        tmp_path, files={"inner/train.txt": MEMBERS["train.txt"], "test.txt": MEMBERS["test.txt"]}
    )
    raw = F.fetch(card, root=tmp_path / "r", mirror=m)
    assert leftovers(raw) == ["test.txt", "train.txt"]
    # a corrupted extracted member is rejected
    m2 = make_mirror(
        tmp_path / "x", files={"train.txt": MEMBERS["train.txt"] + b"!", "test.txt": MEMBERS["test.txt"]}
    )
    with pytest.raises(ChecksumError, match="member train.txt"):
        F.fetch(card, root=tmp_path / "r2", mirror=m2)


def test_downloaded_archive_extracted_then_removed(tmp_path, monkeypatch):
    data = make_tar(MEMBERS, dot=False)
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(data, chunk=4096))
    raw = F.fetch(archive_card("tar.gz", data), root=tmp_path / "r")
    assert leftovers(raw) == ["test.txt", "train.txt"]


def test_archive_is_downloaded_under_a_name_of_its_own(tmp_path, monkeypatch):
    """Two processes fetching one archive used to share raw/<archive>: the first to finish extracting deleted
    it and the other failed (FileNotFoundError). Here the 'other process' deletes the shared name between
    the download and the extraction; each process must download to, extract from and delete its own copy,
    and a dead process's copy is removed by the next fetch."""
    data = make_tar(MEMBERS, dot=False)
    raw = tmp_path / "r" / "toy" / "raw"
    raw.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (raw / f".toy.tar.gz.{dead.pid}.archive.part").write_bytes(b"left by a killed process")
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(data, chunk=4096))
    extract, seen = F._extract_members, []

    def other_process_done(card, entry, archive, raw_, members):
        seen.append(archive.name)
        (raw_ / "toy.tar.gz").unlink(missing_ok=True)  # the other process extracted and deleted its copy
        return extract(card, entry, archive, raw_, members)

    monkeypatch.setattr(F, "_extract_members", other_process_done)
    assert F.fetch(archive_card("tar.gz", data), root=tmp_path / "r") == raw
    assert seen == [f".toy.tar.gz.{os.getpid()}.archive.part"]
    assert leftovers(raw) == ["test.txt", "train.txt"]


def test_archive_member_tampered_inside_valid_archive_hash(tmp_path):
    data = make_zip({**MEMBERS, "train.txt": b"evil\n"})
    card = archive_card("zip", data)
    card["files"][0]["members"]["train.txt"] = sha(MEMBERS["train.txt"])
    m = make_mirror(tmp_path, files={"toy.zip": data})
    with pytest.raises(ChecksumError, match="member train.txt"):
        F.fetch(card, root=tmp_path / "r", mirror=m)
    assert not (tmp_path / "r" / "toy" / "raw" / "train.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("train.txt")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
        zf.writestr("test.txt", MEMBERS["test.txt"])
    data = buf.getvalue()
    m = make_mirror(tmp_path, files={"toy.zip": data})
    with pytest.raises(DataError, match="not a regular file"):
        F.fetch(archive_card("zip", data), root=tmp_path / "r", mirror=m)


def test_tar_link_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("train.txt")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc/passwd"
        tf.addfile(info)
    data = buf.getvalue()
    m = make_mirror(tmp_path, files={"toy.tar.gz": data})
    with pytest.raises(DataError, match="not a regular file"):
        F.fetch(archive_card("tar.gz", data), root=tmp_path / "r", mirror=m)
    assert not (tmp_path / "r" / "toy" / "raw" / "train.txt").exists()


def test_unlisted_traversal_member_is_never_written(tmp_path):
    data = make_zip(MEMBERS, extra={"../../escaped.txt": b"pwned"})
    m = make_mirror(tmp_path, files={"toy.zip": data})
    F.fetch(archive_card("zip", data), root=tmp_path / "r", mirror=m)
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


def test_card_member_with_dotdot_is_refused(tmp_path):
    card = archive_card("zip", make_zip(MEMBERS))
    card["files"][0]["members"] = {"../evil.txt": "0" * 64}
    with pytest.raises(DataError, match="without '..'"):
        F.fetch(card, root=tmp_path / "r", mirror=tmp_path)


# ------------------------------------------------------------------------------------------- unpinned files
def unpinned_card() -> dict:
    return {"name": "toy", "files": [], "unpinned": [{"name": "u.csv", "url": "https://example.org/u.csv"}]}


def test_unpinned_file_from_mirror_is_pinned_then_checked(tmp_path, monkeypatch):
    m = make_mirror(tmp_path, files={"u.csv": A_BYTES})
    raw = F.fetch(unpinned_card(), root=tmp_path / "r", mirror=m)
    assert (raw / "u.csv").read_bytes() == A_BYTES
    assert (raw / ".u.csv.sha256").read_text().strip() == sha(A_BYTES)
    # a later change of the local copy is detected and repaired from the mirror
    (raw / "u.csv").write_bytes(b"changed")
    F.fetch(unpinned_card(), root=tmp_path / "r", mirror=m)
    assert (raw / "u.csv").read_bytes() == A_BYTES


def test_unpinned_file_differing_from_its_pin_is_kept_when_it_cannot_be_replaced(tmp_path, monkeypatch):
    """Without a mirror copy or an allowed download, a copy that differs from its pin is neither deleted
    nor reported as missing: a ChecksumError names both hashes, the pin file and the two ways out."""
    raw = tmp_path / "r" / "toy" / "raw"
    raw.mkdir(parents=True)
    (raw / "u.csv").write_bytes(A_BYTES)
    F.fetch(unpinned_card(), root=tmp_path / "r")  # pins A_BYTES
    (raw / "u.csv").write_bytes(B_BYTES)
    pin = raw / ".u.csv.sha256"

    def down(req, timeout):
        import urllib.error

        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(F, "urlopen", down)
    for allow in ("", "1"):  # downloads not allowed; allowed but the network is down
        monkeypatch.setenv("GRAPHNET_ALLOW_UNPINNED", allow)
        with pytest.raises(ChecksumError) as e:
            F.fetch(unpinned_card(), root=tmp_path / "r")
        msg = str(e.value)
        for part in ("u.csv", sha(A_BYTES), sha(B_BYTES), str(pin), "supply the original", f"delete {pin}"):
            assert part in msg, (part, msg)
        assert (raw / "u.csv").read_bytes() == B_BYTES and pin.read_text().strip() == sha(A_BYTES)
    # the second way out: deleting the pin accepts the new copy
    pin.unlink()
    F.fetch(unpinned_card(), root=tmp_path / "r")
    assert pin.read_text().strip() == sha(B_BYTES) and (raw / "u.csv").read_bytes() == B_BYTES


def test_cut_off_pin_is_repinned_not_taken_as_corruption(tmp_path, monkeypatch):
    """An empty or truncated .sha256 (a crash mid-write) must not get the good file deleted: offline and
    without GRAPHNET_ALLOW_UNPINNED it could not be fetched again."""
    raw = tmp_path / "r" / "toy" / "raw"
    raw.mkdir(parents=True)
    (raw / "u.csv").write_bytes(A_BYTES)
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: pytest.fail("must not download"))
    for cut_off in ("", sha(A_BYTES)[:20]):
        (raw / ".u.csv.sha256").write_text(cut_off)
        assert F.fetch(unpinned_card(), root=tmp_path / "r") == raw
        assert (raw / "u.csv").read_bytes() == A_BYTES
        assert (raw / ".u.csv.sha256").read_text() == sha(A_BYTES) + "\n"
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]  # pins are written atomically


def test_unpinned_file_is_not_downloaded_by_default(tmp_path, monkeypatch):
    def boom(req, timeout):
        raise AssertionError("must not download an unpinned file")

    monkeypatch.setattr(F, "urlopen", boom)
    with pytest.raises(DataError) as e:
        F.fetch(unpinned_card(), root=tmp_path / "r")
    msg = str(e.value)
    assert "u.csv" in msg and "no trusted sha256" in msg and "GRAPHNET_ALLOW_UNPINNED=1" in msg
    assert "https://example.org/u.csv" in msg
    monkeypatch.setenv("GRAPHNET_ALLOW_UNPINNED", "1")
    monkeypatch.setattr(F, "urlopen", lambda req, timeout: FakeResponse(B_BYTES))
    raw = F.fetch(unpinned_card(), root=tmp_path / "r")
    assert (raw / ".u.csv.sha256").read_text().strip() == sha(B_BYTES)


# ------------------------------------------------------------------------------------------- processed cache
def test_processed_cache_roundtrip_and_invalid_cache(tmp_path):
    import torch

    card = {"name": "toy"}
    key = F.cache_key(card, {"a": 1})
    assert key != F.cache_key(card, {"a": 2}) and key == F.cache_key(card, {"a": 1})
    data = {"x": torch.arange(5), "meta": {"names": ["a", "b"], "n": 3, "f": 0.5, "none": None}}
    path = F.save_processed(card, key, data, root=tmp_path)
    got = F.load_processed(card, key, root=tmp_path)
    assert torch.equal(got["x"], data["x"]) and got["meta"] == data["meta"]
    assert leftovers(tmp_path / "toy" / "processed") == [f".{path.name}.sha256", path.name]
    path.write_bytes(path.read_bytes()[:50])  # truncated -> rebuilt, not an exception
    assert F.load_processed(card, key, root=tmp_path) is None


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_processed_cache_never_executes_pickled_code(tmp_path):
    import pickle

    card = {"name": "toy"}
    key = F.cache_key(card, {})
    marker = tmp_path / "pwned"
    d = tmp_path / "toy" / "processed"
    d.mkdir(parents=True)
    blob = pickle.dumps({"key": key, "data": _Evil(str(marker))})
    (d / f"{key}.pt").write_bytes(blob)
    (d / f".{key}.pt.sha256").write_text(sha(blob) + "\n")  # a matching hash does not make it trusted code
    assert F.load_processed(card, key, root=tmp_path) is None
    assert not marker.exists()


def test_processed_cache_bit_flip_is_detected_and_rebuilt(tmp_path, caplog):
    import torch

    card, x = {"name": "toy"}, torch.arange(1000, 1100)
    key = F.cache_key(card, {})
    path = F.save_processed(card, key, {"x": x}, root=tmp_path)
    sidecar = path.parent / f".{path.name}.sha256"
    assert sidecar.read_text().strip() == sha(path.read_bytes())
    blob = bytearray(path.read_bytes())
    i = blob.find(x.numpy().tobytes())
    assert i > 0
    blob[i] ^= 0x01  # 1000 -> 1001: still a valid torch file
    path.write_bytes(bytes(blob))
    assert torch.load(path, weights_only=True)["data"]["x"][0] == 1001
    assert F.load_processed(card, key, root=tmp_path) is None
    assert "sha256" in caplog.text and str(path) in caplog.text
    # a cache without a sidecar (written by older code) is rebuilt too
    F.save_processed(card, key, {"x": x}, root=tmp_path)
    assert torch.equal(F.load_processed(card, key, root=tmp_path)["x"], x)
    sidecar.unlink()
    assert F.load_processed(card, key, root=tmp_path) is None


def test_written_files_get_the_umask_permissions_not_0600(tmp_path):
    """mkstemp creates 0600 files; a GRAPHNET_DATA shared between users needs 0666 minus the umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    want = 0o666 & ~umask
    data = make_zip(MEMBERS)
    card = archive_card("zip", data)
    card["files"] += plain_card()["files"]
    m = make_mirror(tmp_path, files={"toy.zip": data, "a.csv": A_BYTES, "b.bin": B_BYTES})
    raw = F.fetch(card, root=tmp_path / "r", mirror=m)
    path = F.save_processed(card, "k", {"n": 1}, root=tmp_path / "r")
    written = [raw / "a.csv", raw / "train.txt", path, path.parent / f".{path.name}.sha256"]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert modes == {p.name: oct(want) for p in written}
