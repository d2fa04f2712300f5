"""task.sampler = "dgl": dgl.dataloading's NeighborSampler behind graphnet's MiniBatch interface.

Checked against A itself (every block edge is an edge of A with A's value, destination nodes first,
min(fanout, in-degree) in-edges per destination), against the full-graph float64 forward (fanout -1),
against the batch's positive pairs (exclusion in both directions), for repeatability under one thread, and
end to end through ``graphnet run``'s config.
"""

import json
import warnings
from pathlib import Path

import pytest
import torch

from graphnet import ops
from graphnet.config import from_dict
from graphnet.errors import ConfigError
from graphnet.sampling import NeighborSampler
from graphnet.sampling_dgl import DGLNeighborSampler
from tests.test_sampling import GCNStack, random_graph


def in_degrees_count(A):
    return torch.bincount(A.row, minlength=A.shape[0])


@pytest.mark.parametrize("fanouts", [[3, 2], [-1, 4], [1, -1]])
def test_blocks_hold_edges_of_A_with_its_values_and_fanout(fanouts):
    A = random_graph(n=60, m=400, seed=1)
    seeds = torch.tensor([0, 5, 7, 11, 30, 41, 58])
    mb = DGLNeighborSampler(fanouts).sample(A, seeds, torch.Generator().manual_seed(0))
    assert torch.equal(mb.output_nodes, seeds) and len(mb.blocks) == 2
    deg = in_degrees_count(A)
    for layer, (B, eid) in enumerate(zip(mb.blocks, mb.eids, strict=True)):
        src_nodes, dst_nodes = mb.nodes[layer], mb.nodes[layer + 1]
        assert B.shape == (dst_nodes.numel(), src_nodes.numel())
        assert torch.equal(src_nodes[: dst_nodes.numel()], dst_nodes)  # destination nodes first
        assert torch.equal(A.row[eid], dst_nodes[B.row]) and torch.equal(A.col[eid], src_nodes[B.col])
        assert torch.equal(B.val, A.val[eid])
        assert eid.unique().numel() == eid.numel()  # without replacement: no edge twice
        k = fanouts[layer]
        want = deg[dst_nodes] if k == -1 else deg[dst_nodes].clamp(max=k)
        assert torch.equal(torch.bincount(B.row, minlength=dst_nodes.numel()), want)


def test_full_fanout_forward_equals_full_graph_forward():
    A = ops.gcn_norm(random_graph(n=50, m=300, seed=2))
    torch.manual_seed(0)
    model = GCNStack().double()
    X = torch.randn(50, 5, dtype=torch.float64)
    seeds = torch.tensor([3, 9, 20, 44])
    mb = DGLNeighborSampler([-1, -1]).sample(A, seeds, torch.Generator().manual_seed(0))
    out = model(mb.blocks, X[mb.input_nodes])
    torch.testing.assert_close(out, model(A, X)[seeds], rtol=0, atol=1e-10)
    # the same computation as graphnet's sampler (which orders the non-destination sources differently)
    ref = NeighborSampler([-1, -1]).sample(A, seeds)
    torch.testing.assert_close(out, model(ref.blocks, X[ref.input_nodes]), rtol=0, atol=1e-10)


# DGL takes a different (fused) sampling path with more than one OpenMP thread: check both.
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("exclude", ["reverse", "self"])
def test_link_batches_never_pass_messages_over_their_positives(exclude, threads):
    from dgl.utils import get_num_threads, set_num_threads

    A = random_graph(n=40, m=300, seed=3, symmetric=True)
    pos = torch.stack([A.col[:12], A.row[:12]], 1)  # 12 existing edges src -> dst
    neg = torch.tensor([[0, 1], [2, 3]])
    old = get_num_threads()
    set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "will not repeat" with 2 threads: expected here
            sampler = DGLNeighborSampler([-1, -1])
        mb = sampler.sample_edges(A, pos, torch.Generator().manual_seed(0), neg, exclude)
    finally:
        set_num_threads(old)
    banned = {(int(u), int(v)) for u, v in pos}
    if exclude == "reverse":
        banned |= {(v, u) for u, v in banned}
    for layer, B in enumerate(mb.blocks):
        src, dst = mb.nodes[layer][B.col], mb.nodes[layer + 1][B.row]
        assert not banned & set(zip(src.tolist(), dst.tolist(), strict=True))
    # every other in-edge of the seeds is kept (fanout -1): the blocks lose exactly the banned edges
    last = mb.blocks[-1]
    seeds = mb.output_nodes
    expected = sum(1 for r, c in zip(A.row.tolist(), A.col.tolist(), strict=True)
                   if r in set(seeds.tolist()) and (c, r) not in banned)
    assert last.nnz == expected
    assert torch.equal(seeds[mb.pos], pos)


def test_same_generator_gives_the_same_batch_with_one_thread():
    from dgl.utils import get_num_threads, set_num_threads

    A = random_graph(n=200, m=3000, seed=4)
    seeds = torch.arange(0, 200, 7)
    old = get_num_threads()
    set_num_threads(1)
    try:
        a = DGLNeighborSampler([3, 3]).sample(A, seeds, torch.Generator().manual_seed(5))
        b = DGLNeighborSampler([3, 3]).sample(A, seeds, torch.Generator().manual_seed(5))
        c = DGLNeighborSampler([3, 3]).sample(A, seeds, torch.Generator().manual_seed(6))
    finally:
        set_num_threads(old)
    assert all(torch.equal(x, y) for x, y in zip(a.eids, b.eids, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.eids, c.eids, strict=True))


def test_more_than_one_dgl_thread_warns_that_runs_will_not_repeat():
    from dgl.utils import get_num_threads, set_num_threads

    old = get_num_threads()
    set_num_threads(2)
    try:
        with pytest.warns(UserWarning, match="will not repeat"):
            DGLNeighborSampler([2])
    finally:
        set_num_threads(old)


def test_task_sampler_dgl_runs_through_the_config(tmp_path, monkeypatch):
    from graphnet.run import run

    monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path / "data"))
    cfg = from_dict({"name": "karate_dgl_sampler", "data": {"name": "karate"}, "model": {"name": "sage"},
                     "task": {"name": "node", "fanouts": [5, 5], "batch_size": 8, "sampler": "dgl"},
                     "train": {"epochs": 30, "device": "cpu", "lr": 0.01}})
    summary = run(cfg, out=tmp_path / "runs", progress=False)
    res = json.loads((Path(summary["run_dir"]) / "seed-0" / "results.json").read_text())
    losses = [h["loss"] for h in res["history"]]
    assert len(losses) == 30 and losses[-1] < 0.7 * losses[0]  # trains on the DGL-sampled blocks
    assert res["metrics"]["test_accuracy"] >= 0.8  # untrained: 0.7 (10 test nodes)
    bad = from_dict({**cfg.to_dict(), "task": {"name": "node", "fanouts": [5, 5], "sampler": "pyg"}})
    with pytest.raises(ConfigError, match="task.sampler"):
        run(bad, out=tmp_path / "runs", progress=False)
    no_fanouts = from_dict({**cfg.to_dict(), "task": {"name": "node", "sampler": "dgl"}})
    with pytest.raises(ConfigError, match="task.sampler = 'dgl' applies to sampled training only"):
        run(no_fanouts, out=tmp_path / "runs", progress=False)
