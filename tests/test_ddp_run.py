"""Data-parallel runs end to end: ``graphnet run --nproc 2`` and ``torchrun -m graphnet run`` (gloo, CPU).

Reference: the same config in one process. With full-batch training, two ranks each take an equal half of
the training nodes and every rank runs dropout with the same seed, so the rank-averaged gradient of the
per-rank mean losses is the single-process gradient (up to float summation order): the per-epoch losses
and the final metrics must agree to ~1e-5. The same holds for sampled blocks with fanout -1 (each rank's
whole shard in one batch) without dropout. Sampled training with real fanouts draws different neighbours
per rank, so there the check is accuracy on Cora (mirror) against the single-process run, within a
tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphnet import distributed
from graphnet.config import from_dict, load_config
from graphnet.run import run, run_distributed
from tests._mirror import use_mirror

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path_factory.getbasetemp() / "graphnet-data"))


def karate(dropout=0.5, **task):
    return from_dict({"name": "karate_ddp", "data": {"name": "karate"},
                      "model": {"name": "gcn", "dropout": dropout},
                      "task": {"name": "node", **task},
                      "train": {"epochs": 25, "device": "cpu", "monitor": "val_loss"}})


def seed_results(summary) -> list[dict]:
    run_dir = Path(summary["run_dir"])
    return [json.loads((run_dir / f"seed-{s}" / "results.json").read_text()) for s in summary["seeds"]]


def assert_same_training(a: dict, b: dict, tol: float) -> None:
    la, lb = [h["loss"] for h in a["history"]], [h["loss"] for h in b["history"]]
    assert len(la) == len(lb) == 25
    assert max(abs(x - y) for x, y in zip(la, lb, strict=True)) < tol
    for k, v in a["metrics"].items():
        assert b["metrics"][k] == pytest.approx(v, abs=tol), k


# Blocks: dropout draws one mask per block, whose size differs between one batch of all training nodes and
# a rank's half, so the block case runs without dropout to stay exact.
@pytest.mark.parametrize("task", [{}, {"fanouts": [-1, -1], "dropout": 0.0}], ids=["full-batch", "blocks"])
def test_two_processes_match_one_process(task, tmp_path):
    one = run(karate(**task), out=tmp_path / "one", seeds=2, progress=False)
    two = run_distributed(2, karate(**task), out=tmp_path / "two", seeds=2, progress=False)
    (run_dir,) = (tmp_path / "two" / "karate_ddp").iterdir()  # one directory for both processes
    assert Path(two["run_dir"]) == run_dir
    assert {p.name for p in run_dir.iterdir()} == {"config.toml", "summary.json", "results.md", "results.csv",
                                                    "curves.png", "seed-0", "seed-1", ".lock"}  # rank 0's
    assert not list(run_dir.rglob("*.tmp")) and not list(run_dir.rglob("checkpoint.pt"))
    for a, b in zip(seed_results(one), seed_results(two), strict=True):
        assert a["world_size"] == 1 and b["world_size"] == 2
        assert_same_training(a, b, 1e-5)
    assert one["metrics"]["test_accuracy"]["values"] == two["metrics"]["test_accuracy"]["values"]


def test_torchrun_starts_the_same_run(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"torchrun not installed next to {sys.executable}")
    cfg = tmp_path / "karate.toml"
    cfg.write_text('name = "karate_ddp"\ndata.name = "karate"\nmodel.name = "gcn"\ntask.name = "node"\n'
                   'train.epochs = 25\ntrain.device = "cpu"\ntrain.monitor = "val_loss"\n')
    env = {**os.environ, "DGLBACKEND": "pytorch", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "graphnet", "run",
                           str(cfg), "--out", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "out" / "karate_ddp").iterdir()
    assert proc.stdout.count("results: ") == 1  # only rank 0 prints
    (b,) = seed_results({"run_dir": run_dir, "seeds": [0]})
    assert b["world_size"] == 2
    (a,) = seed_results(run(load_config(cfg), out=tmp_path / "one", progress=False))
    assert_same_training(a, b, 1e-5)


def test_nproc_errors(tmp_path, monkeypatch, capsys):
    from graphnet.cli import main

    cfg = tmp_path / "k.toml"
    cfg.write_text('data.name = "karate"\nmodel.name = "gcn"\ntask.name = "node"\n')
    assert main(["run", str(cfg), "--nproc", "0", "--out", str(tmp_path)]) == 2
    assert "--nproc: expected a number of processes >= 1, got 0" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", str(cfg), "--nproc", "2", "--out", str(tmp_path)]) == 2
    assert "started by torchrun (WORLD_SIZE=2)" in capsys.readouterr().err


@pytest.mark.download
def test_sampled_cora_gcn_one_and_two_processes(tmp_path, monkeypatch):
    """Sampled training ([10, 10] neighbours, batches of 32 seeds) with layer-wise inference reaches the
    full-batch accuracy floor (0.78; full batch: 0.818 over 10 seeds) in 1 and in 2 processes."""
    use_mirror(monkeypatch)
    over = ["task.fanouts=[10, 10]", "task.batch_size=32", "task.infer_batch_size=1024", "train.epochs=60",
            "train.eval_every=5", "train.device=cpu"]
    cfg = load_config(ROOT / "experiments" / "configs" / "cora_gcn.toml", over)
    one = run(cfg, out=tmp_path, progress=False)["metrics"]["test_accuracy"]["mean"]
    two = run_distributed(2, cfg, out=tmp_path, progress=False)["metrics"]["test_accuracy"]["mean"]
    assert one >= 0.78 and two >= 0.78
    assert abs(one - two) <= 0.03, (one, two)


def _fit_karate(epochs: int, checkpoint: Path | None, resume: bool) -> list[dict]:
    from graphnet.run import load_graph
    from graphnet.tasks import TASKS
    from graphnet.train import Trainer, seed_everything

    cfg = karate()
    seed_everything(0)
    task = TASKS["node"]()
    model, graph = task.setup(load_graph(cfg), "gcn", {}, 0)
    trainer = Trainer(dataclasses.replace(cfg.train, epochs=epochs, checkpoint_every=1), seed=0,
                      checkpoint=checkpoint, progress=False)
    return trainer.fit(model, task, graph, resume)["history"]


def _resume_worker(tmp: str) -> tuple[list[float], list[float]]:
    full = _fit_karate(12, None, False)
    _fit_karate(5, Path(tmp) / "ck.pt", False)  # "killed" after epoch 5: its last checkpoint stays
    resumed = _fit_karate(12, Path(tmp) / "ck.pt", True)
    return [h["loss"] for h in full], [h["loss"] for h in resumed]


def test_two_process_checkpoint_resumes_every_rank_exactly(tmp_path):
    """The checkpoint holds each rank's RNG state; a resumed 2-process run repeats the uninterrupted one."""
    full, resumed = distributed.launch(_resume_worker, 2, str(tmp_path), backend="gloo", timeout_s=600)
    assert len(full) == len(resumed) == 12
    assert full == resumed  # bit-identical
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert len(ck["rng"]["per_rank"]) == 2


TASK_RUNS = [
    ({"data": {"name": "karate"}, "model": {"name": "gcn"}, "task": {"name": "link"}}, "test_roc_auc", False),
    ({"data": {"name": "karate"}, "model": {"name": "sage"},
      "task": {"name": "link", "fanouts": [5, 5], "batch_size": 16, "infer_batch_size": 10}},
     "test_roc_auc", False),
    ({"data": {"name": "nations"}, "model": {"name": "distmult"}, "task": {"name": "kg"}}, "test_mrr", True),
    ({"data": {"name": "gowalla", "max_users": 300}, "model": {"name": "mf"},
      "task": {"name": "rec", "val_frac": 0.05}},
     "test_recall@20", True),
]


@pytest.mark.parametrize("sections,metric,needs_mirror", TASK_RUNS, ids=["link", "link-sampled", "kg", "rec"])
def test_every_task_trains_in_two_processes(sections, metric, needs_mirror, tmp_path, monkeypatch):
    """Each task shards its training items per process: 2 processes run the same number of steps (no
    hang in a collective), finish every epoch and report the same metric keys as one process."""
    if needs_mirror:
        use_mirror(monkeypatch)
    cfg = from_dict({"name": "ddp_task", **sections, "train": {"epochs": 3, "device": "cpu"}})
    one = run(cfg, out=tmp_path / "one", progress=False)
    two = run_distributed(2, cfg, out=tmp_path / "two", progress=False)
    (a,), (b,) = seed_results(one), seed_results(two)
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert set(a["metrics"]) == set(b["metrics"]) and b["epochs_run"] == 3
    assert 0.0 <= b["metrics"][metric] <= 1.0
