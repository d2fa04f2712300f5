"""Tampering: a modified dataset file is a ChecksumError; a malicious pickle (Planetoid files, the processed
cache, checkpoints) is refused without running its payload. Every payload tries to create a marker file;
the marker's absence proves nothing ran, and a plain ``pickle.loads`` of the same bytes creating it proves
the payload is live.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from graphnet import data as gdata
from graphnet.data import planetoid
from graphnet.data.safe_pickle import load_pickle
from graphnet.errors import ChecksumError, DataError
from tests._mirror import need_mirror


class Evil:
    """Unpickling calls os.system("touch <marker>")."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilExec:
    """Unpickling calls builtins.exec(...) (protocol 4: STACK_GLOBAL)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


class EvilPopen:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (subprocess.Popen, (["touch", self.marker],))


def _inst_opcode(marker: Path) -> bytes:
    """Protocol 0 INST opcode: 'i' module name, args from the mark -- os.system('touch marker')."""
    return b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n."


PAYLOADS = {
    "reduce-os-system": lambda m: pickle.dumps(Evil(m), protocol=0),
    "stack-global-exec": lambda m: pickle.dumps(EvilExec(m), protocol=4),
    "subprocess-popen": lambda m: pickle.dumps(EvilPopen(m), protocol=2),
    "inst-opcode": _inst_opcode,
    "nested-in-adjacency-dict": lambda m: pickle.dumps({0: [1, 2], 1: [Evil(m)]}, protocol=4),
    "inside-defaultdict": lambda m: pickle.dumps(collections.defaultdict(list, {0: [Evil(m)]}), protocol=4),
    "object-array-element": lambda m: pickle.dumps(np.array([1, Evil(m)], dtype=object), protocol=4),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_tampered_pickle_is_refused_without_executing(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "ind.toy.graph"
    path.write_bytes(PAYLOADS[name](marker))
    with pytest.raises(DataError) as e:
        load_pickle(path, "dataset 'toy': file ind.toy.graph")
    assert "ind.toy.graph" in str(e.value) and "refusing" in str(e.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: an unrestricted load runs the payload
    if name == "subprocess-popen":
        import time

        for _ in range(200):  # the touch runs in a child process
            if marker.exists():
                break
            time.sleep(0.01)
    assert marker.exists()


def test_tampered_planetoid_file_in_a_dataset_is_refused(tmp_path):
    """The whole loader, not just the unpickler: a Planetoid directory whose graph file carries a payload."""
    import scipy.sparse as sp

    objs = {"x": sp.csr_matrix(np.eye(2, 3, dtype=np.float32)), "y": np.eye(2, dtype=np.int32),
            "allx": sp.csr_matrix(np.eye(3, dtype=np.float32)), "ally": np.eye(2, dtype=np.int32)[[0, 1, 1]],
            "tx": sp.csr_matrix(np.ones((1, 3), dtype=np.float32)), "ty": np.eye(2, dtype=np.int32)[[1]],
            "graph": {0: [1], 1: [2], 2: [3], 3: [0]}}
    for k, v in objs.items():
        (tmp_path / f"ind.toy.{k}").write_bytes(pickle.dumps(v, protocol=4))
    (tmp_path / "ind.toy.test.index").write_text("3\n")
    g = planetoid.load_planetoid({"name": "toy", "options": {}}, tmp_path)
    assert g.num_nodes == 4 and g.num_edges == 8
    marker = tmp_path / "pwned"
    (tmp_path / "ind.toy.allx").write_bytes(pickle.dumps(Evil(marker), protocol=2))
    with pytest.raises(DataError, match=r"dataset 'toy': file ind\.toy\.allx: refusing to unpickle global"):
        planetoid.load_planetoid({"name": "toy", "options": {}}, tmp_path)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ dataset files
def _nations_source() -> Path:
    return need_mirror("nations", "nations.tar.gz")


def test_one_byte_changed_in_a_mirror_file_is_a_checksum_error(tmp_path):
    src = _nations_source()
    card = gdata.load_card("nations")
    mirror = tmp_path / "mirror"
    (mirror / "nations").mkdir(parents=True)
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0x01
    (mirror / "nations" / "nations.tar.gz").write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        gdata.load("nations", root=tmp_path / "root", mirror=mirror)
    msg = str(e.value)
    assert "nations" in msg and "nations.tar.gz" in msg and card["files"][0]["sha256"] in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    raw = tmp_path / "root" / "nations" / "raw"
    assert not raw.exists() or [p.name for p in raw.iterdir()] == []  # nothing of the bad file was kept


def test_tampered_cached_member_is_detected_and_repaired(tmp_path):
    src = _nations_source()
    mirror = tmp_path / "mirror"
    (mirror / "nations").mkdir(parents=True)
    shutil.copy(src, mirror / "nations" / "nations.tar.gz")
    root = tmp_path / "root"
    good = gdata.load("nations", root=root, mirror=mirror)
    assert good.edge_splits["train"].shape == (1592, 3)
    raw, processed = root / "nations" / "raw", root / "nations" / "processed"
    train = raw / "train.txt"
    text = train.read_text()
    train.write_text(text.replace("\t", "\t\t", 1))  # one extra byte in a cached, already verified file
    shutil.rmtree(processed)  # force a re-read of the raw files
    with pytest.raises(ChecksumError, match="train.txt"):  # no mirror to repair it from
        gdata.load("nations", root=root)
    again = gdata.load("nations", root=root, mirror=mirror)  # a good source repairs the cache
    assert torch.equal(again.edge_splits["train"], good.edge_splits["train"]) and train.read_text() == text


# ------------------------------------------------------------------------------------------ processed cache
def test_malicious_processed_cache_is_ignored_and_rebuilt(tmp_path):
    g = gdata.load("karate")
    (cache,) = (Path(os.environ["GRAPHNET_DATA"]) / "karate" / "processed").glob("*.pt")
    marker = tmp_path / "pwned"
    key = cache.stem
    torch.save({"key": key, "data": {"row": Evil(marker)}}, cache)
    again = gdata.load("karate")
    assert not marker.exists()
    assert torch.equal(again.A.to_dense(), g.A.to_dense()) and torch.equal(again.y, g.y)
    assert torch.load(cache, weights_only=True)["key"] == key  # rewritten with plain tensors


# ------------------------------------------------------------------------------------------ checkpoints
def _interrupted_run(tmp_path: Path) -> Path:
    """A finished one-seed karate run turned into an interrupted one (results.json removed)."""
    from graphnet.config import from_dict
    from graphnet.run import run

    cfg = from_dict({"name": "ck", "data": {"name": "karate"}, "model": {"name": "gcn"},
                     "task": {"name": "node"}, "train": {"epochs": 3, "device": "cpu"}})
    run_dir = Path(run(cfg, out=tmp_path / "runs")["run_dir"])
    (run_dir / "seed-0" / "results.json").unlink()
    return run_dir


def test_malicious_checkpoint_is_refused_without_executing(tmp_path):
    from graphnet.run import run

    run_dir = _interrupted_run(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"model": Evil(marker), "state": {"epoch": 1}}, run_dir / "seed-0" / "checkpoint.pt")
    with pytest.raises(Exception):  # noqa: B017 - which type is the next test's concern
        run(None, resume=run_dir)
    assert not marker.exists()
    assert not (run_dir / "seed-0" / "results.json").exists()
    torch.load(run_dir / "seed-0" / "checkpoint.pt", weights_only=False)  # control: the payload is live
    assert marker.exists()


def test_malicious_checkpoint_error_is_a_data_error_naming_the_file(tmp_path):
    from graphnet.run import run

    run_dir = _interrupted_run(tmp_path)
    torch.save({"model": Evil(tmp_path / "pwned")}, run_dir / "seed-0" / "checkpoint.pt")
    with pytest.raises(DataError) as e:
        run(None, resume=run_dir)
    assert "checkpoint.pt" in str(e.value) and "weights_only=False" not in str(e.value)


def test_corrupt_checkpoint_is_a_data_error_naming_the_file(tmp_path):
    from graphnet.run import run

    run_dir = _interrupted_run(tmp_path)
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.ones(100)}}, buf)
    (run_dir / "seed-0" / "checkpoint.pt").write_bytes(buf.getvalue()[:300])
    with pytest.raises(DataError, match="checkpoint.pt"):
        run(None, resume=run_dir)


def test_checkpoint_of_another_model_is_a_data_error_naming_the_file(tmp_path):
    """A loadable checkpoint that does not fit this run (keys missing) names the file, no KeyError."""
    from graphnet.run import run

    run_dir = _interrupted_run(tmp_path)
    torch.save({"model": {"w": torch.ones(3)}}, run_dir / "seed-0" / "checkpoint.pt")
    with pytest.raises(DataError, match="checkpoint.pt.*does not match"):
        run(None, resume=run_dir)
