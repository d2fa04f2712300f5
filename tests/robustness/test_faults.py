"""Faults: processes killed with SIGKILL mid-download, mid-checkpoint and mid-write, a full disk, and two
runs of one config at once. Nothing half-written is ever used, a resumed run equals an uninterrupted one
bit for bit on CPU, and every error is one clear line.

Children are real ``python`` processes running this checkout; they are killed at a point they announce
(a flag file), so every test is deterministic. POSIX only (signals, FIFOs, /proc/self/fd).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graphnet import cli
from graphnet import io as gio
from graphnet.data import fetch as F
from graphnet.errors import ChecksumError, DataError
from tests.robustness._support import child_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (/proc, FIFOs)")


def wait_for(cond, proc: subprocess.Popen | None, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"child exited ({proc.returncode}) before {what}: {err[-2000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def sigkill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def visible(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if not p.name.startswith("."))


# ------------------------------------------------------------------------------------------ download
_FETCH_CHILD = """
import json, sys
from graphnet.data import fetch
fetch.fetch(json.loads(sys.argv[1]), root=sys.argv[2])
"""


def test_sigkill_during_download_never_leaves_a_usable_partial_file(tmp_path, monkeypatch):
    """A real urlopen of a file:// URL whose source is a FIFO: the child gets 1.5 MB, writes the first 1 MB
    chunk to its temporary file and blocks; SIGKILL. The partial file is never used under the real name."""
    payload = hashlib.sha256(b"seed").digest() * (3 * 2**20 // 32)  # 3 MB, incompressible enough
    fifo = tmp_path / "source.bin"
    os.mkfifo(fifo)
    card = {"name": "slowdata", "files": [{"name": "big.bin", "url": fifo.as_uri(),
                                           "sha256": hashlib.sha256(payload).hexdigest()}]}
    root = tmp_path / "root"
    raw = root / "slowdata" / "raw"
    env = child_env()
    env.pop("GRAPHNET_OFFLINE", None)
    proc = subprocess.Popen([sys.executable, "-c", _FETCH_CHILD, json.dumps(card), str(root)], env=env,
                            stderr=subprocess.PIPE)
    fd = None
    try:
        def reader_open() -> bool:  # O_NONBLOCK open of a FIFO fails with ENXIO until the child opens it
            nonlocal fd
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                return False
            return True

        wait_for(reader_open, proc, 60, "the child to open the source")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        feeder = threading.Thread(target=lambda: os.write(fd, payload[: 3 * 2**19]), daemon=True)
        feeder.start()

        def part_has_a_chunk() -> bool:
            parts = list(raw.glob(".big.bin.*.part")) if raw.is_dir() else []
            return bool(parts) and parts[0].stat().st_size >= 2**20

        wait_for(part_has_a_chunk, proc, 60, "the first MB on disk")
        sigkill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if fd is not None:
            os.close(fd)
    (part,) = raw.glob(".big.bin.*.part")
    assert payload.startswith(part.read_bytes()) and part.stat().st_size < len(payload)
    assert not (raw / "big.bin").exists()
    # the partial download is not "the file": offline with no other source it is reported missing
    with pytest.raises(DataError, match="big.bin is missing"):
        F.fetch(card, root=root)
    # once the source is whole, the next fetch removes the dead child's temporary and verifies the file
    fifo.unlink()
    fifo.write_bytes(payload)
    monkeypatch.delenv("GRAPHNET_OFFLINE")
    F.fetch(card, root=root)
    assert (raw / "big.bin").read_bytes() == payload and sorted(p.name for p in raw.iterdir()) == ["big.bin"]


def test_truncated_file_under_the_real_name_is_never_used(tmp_path):
    """A partial copy that did not come from graphnet's atomic writer (an interrupted `cp`) is caught by
    its sha256: replaced from the mirror, or a ChecksumError when there is no other source."""
    data = b"0 1\n1 2\n" * 1000
    card = {"name": "edges", "files": [{"name": "e.txt", "url": "https://example.org/e.txt",
                                        "sha256": hashlib.sha256(data).hexdigest()}]}
    raw = tmp_path / "root" / "edges" / "raw"
    raw.mkdir(parents=True)
    (raw / "e.txt").write_bytes(data[:777])
    with pytest.raises(ChecksumError) as e:
        F.fetch(card, root=tmp_path / "root")
    assert "e.txt" in str(e.value) and hashlib.sha256(data).hexdigest() in str(e.value)
    (raw / "e.txt").write_bytes(data[:777])
    (tmp_path / "mirror" / "edges").mkdir(parents=True)
    (tmp_path / "mirror" / "edges" / "e.txt").write_bytes(data)
    F.fetch(card, root=tmp_path / "root", mirror=tmp_path / "mirror")
    assert (raw / "e.txt").read_bytes() == data


# ------------------------------------------------------------------------------------------ training
_TRAIN_CHILD = """
import io, os, sys, time
import torch
flag, real_save, seen = sys.argv[1], torch.save, []
def save(obj, f, *args, **kwargs):
    try:  # (the processed cache is saved to a BytesIO first: no file descriptor)
        path = os.readlink(f"/proc/self/fd/{f.fileno()}")
    except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
        path = ""
    if ".checkpoint.pt." in path:
        seen.append(path)
        if len(seen) == 2:  # the second checkpoint: write half of it, announce, wait for SIGKILL
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            open(flag, "w").close()
            time.sleep(600)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from graphnet.cli import main
sys.exit(main(sys.argv[2:]))
"""

TRAIN_CFG = """\
name = "killme"
seeds = 2
[data]
name = "karate"
[model]
name = "gcn"
[task]
name = "node"
[train]
epochs = 24
checkpoint_every = 5
device = "cpu"
"""


def test_sigkill_while_writing_a_checkpoint_then_resume_gives_identical_metrics(tmp_path):
    from graphnet.config import load_config
    from graphnet.run import run

    cfg_path = tmp_path / "killme.toml"
    cfg_path.write_text(TRAIN_CFG)
    flag, out = tmp_path / "flag", tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", _TRAIN_CHILD, str(flag), "run", str(cfg_path), "--out",
                             str(out), "--quiet"], env=child_env(GRAPHNET_DATA=str(tmp_path / "data")),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        wait_for(flag.exists, proc, 240, "the second checkpoint write")
        sigkill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (run_dir,) = (out / "killme").iterdir()
    seed0 = run_dir / "seed-0"
    assert not (seed0 / "results.json").exists() and not (run_dir / "seed-1").exists()
    (half,) = seed0.glob(".checkpoint.pt.*.tmp")  # the killed write never reached the real name
    import torch

    ck = torch.load(seed0 / "checkpoint.pt", weights_only=True)
    assert ck["state"]["epoch"] == 5  # the first checkpoint survived, whole
    with pytest.raises(Exception):  # noqa: B017 - the half-written temporary is not a checkpoint
        torch.load(half, weights_only=True)

    resumed = run(None, resume=run_dir)
    reference = run(load_config(cfg_path), out=tmp_path / "reference")
    assert resumed["metrics"] == reference["metrics"]
    for s in (0, 1):
        a = json.loads((run_dir / f"seed-{s}" / "results.json").read_text())
        b = json.loads((Path(reference["run_dir"]) / f"seed-{s}" / "results.json").read_text())
        assert a["metrics"] == b["metrics"] and a["best_epoch"] == b["best_epoch"]
        strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h]  # noqa: E731
        assert strip(a["history"]) == strip(b["history"]) and len(a["history"]) == 24
    for p in run_dir.rglob("*.json"):
        json.loads(p.read_text())


# ------------------------------------------------------------------------------------------ result files
_WRITER_CHILD = """
import itertools, sys
mode, out, flag = sys.argv[1], sys.argv[2], sys.argv[3]
from graphnet.io import atomic_write_json
history = [{"epoch": i, "loss": i / 7, "note": "x" * 40} for i in range(20000)]  # ~1.5 MB of JSON
for k in itertools.count():
    for name in ("results.json", "summary.json"):
        doc = {"k": k, "history": history}
        if mode == "atomic":
            atomic_write_json(f"{out}/{name}", doc)
        else:  # control: a plain write, killed halfway
            import json
            text = json.dumps(doc)
            with open(f"{out}/{name}", "w") as f:
                f.write(text[: len(text) // 2])
                f.flush()
                open(flag, "w").close()
                import time; time.sleep(600)
    open(flag, "w").close()
"""


def kill_writer(tmp_path: Path, mode: str, delay: float) -> Path:
    out, flag = tmp_path / f"out-{mode}", tmp_path / f"flag-{mode}"
    out.mkdir(exist_ok=True)
    flag.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER_CHILD, mode, str(out), str(flag)], env=child_env(),
                            stderr=subprocess.PIPE)
    try:
        wait_for(flag.exists, proc, 60, "the first write")
        time.sleep(delay)
        sigkill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


def test_sigkill_while_results_are_written_leaves_no_half_written_json(tmp_path):
    rng = random.Random(7)
    for _ in range(6):  # kill at six different moments of the write loop
        out = kill_writer(tmp_path, "atomic", rng.uniform(0.0, 0.25))
        assert visible(out) == ["results.json", "summary.json"]
        for name in visible(out):
            doc = json.loads((out / name).read_text())
            assert len(doc["history"]) == 20000 and doc["history"][-1]["epoch"] == 19999
        assert all(p.name.endswith(".tmp") for p in out.iterdir() if p.name.startswith("."))
    # the control: the same kill during a plain (non-atomic) write leaves a torn file this check catches
    out = kill_writer(tmp_path, "plain", 0.0)
    with pytest.raises(json.JSONDecodeError):
        json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------------------------------ full disk
class _FullDisk:
    """A file whose write() stores half of the data, then fails like a full disk."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


def fill_disk_for(monkeypatch, *fragments: str) -> dict[str, bool]:
    """Make every file opened through os.fdopen whose path contains a fragment hit ENOSPC on write, until
    the returned switch is set to ``{"full": False}`` (space freed)."""
    real, switch = os.fdopen, {"full": True}

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        path = os.readlink(f"/proc/self/fd/{fd}")
        return _FullDisk(f) if switch["full"] and any(s in path for s in fragments) else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    return switch


def test_full_disk_while_writing_json_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    gio.atomic_write_json(p, {"old": True})
    fill_disk_for(monkeypatch, "summary.json")
    with pytest.raises(OSError) as e:
        gio.atomic_write_json(p, {"new": list(range(1000))})
    assert e.value.errno == errno.ENOSPC and "summary.json" in str(e.value) and "No space" in str(e.value)
    assert json.loads(p.read_text()) == {"old": True}
    assert [x.name for x in tmp_path.iterdir()] == ["summary.json"]


def test_full_disk_while_fetching_is_a_data_error_naming_the_file(tmp_path, monkeypatch):
    data = os.urandom(5000)
    card = {"name": "toy", "files": [{"name": "x.bin", "url": "https://example.org/x.bin",
                                      "sha256": hashlib.sha256(data).hexdigest()}]}
    (tmp_path / "mirror" / "toy").mkdir(parents=True)
    (tmp_path / "mirror" / "toy" / "x.bin").write_bytes(data)
    fill_disk_for(monkeypatch, "x.bin")
    with pytest.raises(DataError) as e:
        F.fetch(card, root=tmp_path / "root", mirror=tmp_path / "mirror")
    msg = str(e.value)
    assert "dataset 'toy'" in msg and "x.bin" in msg and "no space left on device" in msg
    assert list((tmp_path / "root" / "toy" / "raw").iterdir()) == []  # no partial file, no temporary


def test_full_disk_at_the_results_file_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """`graphnet run` with the disk full when results.json is written: exit 1 with one line naming the file;
    the checkpoint is kept, so after freeing space `--resume` finishes with the uninterrupted metrics."""
    from graphnet.config import load_config
    from graphnet.run import run

    cfg = tmp_path / "full.toml"
    cfg.write_text(TRAIN_CFG.replace('"killme"', '"full"').replace("seeds = 2", "seeds = 1")
                   .replace("epochs = 24", "epochs = 12"))
    disk = fill_disk_for(monkeypatch, ".results.json.")
    code = cli.main(["run", str(cfg), "--out", str(tmp_path / "runs"), "--quiet"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 1 and len(err) == 1, err
    assert "results.json" in err[0] and "No space left on device" in err[0] and "Traceback" not in err[0]
    disk["full"] = False
    (run_dir,) = (tmp_path / "runs" / "full").iterdir()
    assert (run_dir / "seed-0" / "checkpoint.pt").is_file()
    assert not (run_dir / "seed-0" / "results.json").exists()
    assert cli.main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    reference = run(load_config(cfg), out=tmp_path / "reference")
    resumed = json.loads((run_dir / "seed-0" / "results.json").read_text())
    assert resumed["metrics"] == json.loads((Path(reference["run_dir"]) / "seed-0" / "results.json")
                                            .read_text())["metrics"]


# ------------------------------------------------------------------------------------------ concurrency
def test_two_processes_running_one_config_never_collide(tmp_path):
    cfg = tmp_path / "twin.toml"
    cfg.write_text(TRAIN_CFG.replace('"killme"', '"twin"').replace("seeds = 2", "seeds = 1")
                   .replace("epochs = 24", "epochs = 8"))
    out = tmp_path / "runs"
    env = child_env(GRAPHNET_DATA=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "graphnet", "run", str(cfg), "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1].decode()[-2000:] for r in results]
    dirs = sorted((out / "twin").iterdir())
    assert len(dirs) == 2
    printed = sorted(Path(r[0].decode().strip().splitlines()[-1].removeprefix("results: ")) for r in results)
    assert printed == dirs  # each process reports its own directory
    docs = [json.loads((d / "seed-0" / "results.json").read_text()) for d in dirs]
    assert docs[0]["metrics"] == docs[1]["metrics"]  # same config, same seed: same numbers, separate files
    assert (dirs[0] / "config.toml").read_text() == (dirs[1] / "config.toml").read_text()


_MKDIR_CHILD = """
import sys
from graphnet import io
ids = iter(["20260101T000000Z-00000000"] * 3 + [f"20260101T000000Z-{i:08x}" for i in range(1, 64)])
io.new_run_id = lambda: next(ids)  # every process tries the same ids in the same order
print(io.make_run_dir(sys.argv[1], attempts=64).name)
"""


def test_run_directories_are_claimed_atomically_by_concurrent_processes(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _MKDIR_CHILD, str(tmp_path)], env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(12)]
    names = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(names)) == 12 and sorted(names) == visible(tmp_path)
