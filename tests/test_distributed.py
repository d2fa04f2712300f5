"""Data-parallel utilities: sharding and reductions in-process; 2-process gloo training against 1 process.

The 2-process test is exact by construction: each rank samples (full fanout) its equal-sized shard of
every global batch, so the rank-averaged gradient of the per-rank mean losses equals the gradient of the
single-process mean loss over the global batch. Worker functions live at module level (spawned processes
import this module), and dgl-dependent imports stay inside them so the small launcher tests start fast.
"""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphnet import distributed
from graphnet.errors import ConfigError

N, TRAIN, BATCH, EPOCHS = 61, 45, 8, 3


class GCN(nn.Module):
    """2-layer GCN with the sampling protocol (num_layers, forward_layer, forward over a list of blocks)."""

    def __init__(self, dims=(6, 16, 3)):
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.num_layers = len(self.lins)

    def forward_layer(self, i, A, H):
        from graphnet import ops

        H = ops.spmm(A, H @ self.lins[i].weight.T) + self.lins[i].bias  # bias after aggregation
        return torch.relu(H) if i < self.num_layers - 1 else H

    def forward(self, A, X):
        blocks = A if isinstance(A, list) else [A] * self.num_layers
        for i, B in enumerate(blocks):
            X = self.forward_layer(i, B, X)
        return X


def make_data():
    """Seeded synthetic node classification: symmetric graph, gcn_norm'd once, float64 features."""
    import dgl.sparse as dglsp

    from graphnet import ops

    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, N, (150,), generator=g), torch.randint(0, N, (150,), generator=g)
    A = dglsp.spmatrix(torch.stack([torch.cat([dst, src]), torch.cat([src, dst])]), torch.ones(300), (N, N))
    A = ops.gcn_norm(dglsp.val_like(A.coalesce(), torch.ones(A.coalesce().nnz, dtype=torch.float64)))
    X = torch.randn(N, 6, generator=g, dtype=torch.float64)
    y = X[:, :3].argmax(1)
    return A, X, y, torch.arange(TRAIN)


def train(mode, shards=None):
    """Train for EPOCHS; mode "ddp" (wrap_ddp), "sync" (sync_grads) or "single" (global batch, 1 process).

    Each rank's step-s batch is slice s of its shard; the single-process batch is the union of the ranks'.
    """
    from graphnet.sampling import NeighborSampler, layerwise_inference

    A, X, y, train_idx = make_data()
    torch.manual_seed(1 + distributed.rank())  # different init per rank: DDP / broadcast must fix it
    model = GCN().double()
    wrapped = distributed.wrap_ddp(model) if mode == "ddp" else model
    if mode == "sync":
        distributed.broadcast_module(model)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sampler = NeighborSampler([-1, -1])
    for epoch in range(EPOCHS):
        if mode == "single":
            parts = [
                distributed.shard(train_idx, 100 + epoch, shard_id=r, num_shards=shards)
                for r in range(shards)
            ]
        else:
            parts = [distributed.shard(train_idx, 100 + epoch)]
        for start in range(0, parts[0].numel(), BATCH):
            seeds = torch.cat([p[start : start + BATCH] for p in parts])
            batch = sampler.sample(A, seeds)
            loss = F.cross_entropy(wrapped(batch.blocks, X[batch.input_nodes]), y[seeds])
            opt.zero_grad()
            loss.backward()
            if mode == "sync":
                distributed.sync_grads(model)
            opt.step()
    model.eval()
    pred = layerwise_inference(model, A, X, batch_size=16).argmax(1)
    return model, pred, y


def worker():
    """Runs on each of the 2 ranks; returns rank 0's view of everything the test checks."""
    out = {}
    for mode in ("ddp", "sync"):
        model, pred, y = train(mode)
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        out[mode] = distributed.all_gather_cat(flat[None])  # (2, P): both ranks' final weights
    # Metric reduction on an uneven evaluation shard (31 + 30 nodes).
    mine = distributed.shard(torch.arange(N), 5, drop_last=False)
    correct = (pred[mine] == y[mine]).double()
    out["eval_sizes"] = distributed.all_gather_cat(torch.tensor([mine.numel()]))
    out["accuracy"] = distributed.all_reduce_weighted({"accuracy": float(correct.mean())}, mine.numel())
    out["mean_of_means"] = distributed.all_reduce_mean({"accuracy": float(correct.mean())})
    out["gathered_nodes"] = distributed.all_gather_cat(mine)
    out["rank_mean"] = distributed.all_reduce_mean({"r": float(distributed.rank()), "one": 1.0})
    out["world"] = (distributed.world_size(), distributed.is_main())
    out["objects"] = (
        distributed.broadcast_object(f"dir-{distributed.rank()}"),
        distributed.all_gather_object({"rank": distributed.rank()}),
    )
    return out


def test_two_process_gloo_training_matches_single_process():
    t0 = time.monotonic()
    out = distributed.launch(worker, 2, backend="gloo", timeout_s=600)  # generous: CI machines are shared
    ref_model, ref_pred, y = train("single", shards=2)
    ref = torch.cat([p.detach().reshape(-1) for p in ref_model.parameters()])
    for mode in ("ddp", "sync"):
        both = out[mode]
        assert both.shape == (2, ref.numel())
        torch.testing.assert_close(both[0], both[1], rtol=0, atol=1e-12)  # ranks stay in lockstep
        torch.testing.assert_close(both[0], ref, rtol=0, atol=1e-6)
    # Training moved the weights (the comparison is not between two untouched initializations).
    torch.manual_seed(1)
    init = torch.cat([p.detach().reshape(-1) for p in GCN().double().parameters()])
    assert (ref - init).abs().max() > 1e-2
    # Accuracy = total correct / total nodes over the uneven shards, equal to the global value.
    assert out["eval_sizes"].tolist() == [31, 30]
    assert sorted(out["gathered_nodes"].tolist()) == list(range(N))
    global_acc = float((ref_pred == y).double().mean())
    assert out["accuracy"]["accuracy"] == pytest.approx(global_acc, abs=1e-12)
    pred_in_order = ref_pred[out["gathered_nodes"]] == y[out["gathered_nodes"]]
    a0, a1 = pred_in_order[:31].double().mean(), pred_in_order[31:].double().mean()
    assert out["mean_of_means"]["accuracy"] == pytest.approx(float(a0 + a1) / 2, abs=1e-12)
    assert out["rank_mean"] == {"r": 0.5, "one": 1.0}
    assert out["world"] == (2, True)
    assert out["objects"] == ("dir-0", [{"rank": 0}, {"rank": 1}])
    assert time.monotonic() - t0 < 150


def _fail_on_rank_1():
    if distributed.rank() == 1:
        raise ValueError("boom from rank 1")
    distributed.barrier()  # rank 0 would wait here forever without launch's failure handling


def _sleep():
    time.sleep(120)


def test_launch_reraises_a_child_error_and_stops_the_others():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="(?s)process 1 of 2 failed first:.*Traceback.*boom from rank 1"):
        distributed.launch(_fail_on_rank_1, 2, backend="gloo", timeout_s=60)
    assert time.monotonic() - t0 < 60


def _config_error_on_rank_1():
    if distributed.rank() == 1:
        raise ConfigError("train.lr: expected > 0, got -1")
    distributed.barrier()


def test_launch_reraises_a_graphnet_error_unchanged():
    """`graphnet run --nproc 2` reports a user mistake like one process does: the error itself (exit 2), not
    a RuntimeError wrapping its traceback (exit 1)."""
    with pytest.raises(ConfigError) as info:
        distributed.launch(_config_error_on_rank_1, 2, backend="gloo", timeout_s=60)
    assert type(info.value) is ConfigError and str(info.value) == "train.lr: expected > 0, got -1"
    assert "Traceback" in info.value.__notes__[0]  # the child's traceback, for --debug


def test_launch_timeout_kills_hung_processes():
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="still running"):
        distributed.launch(_sleep, 1, backend="gloo", timeout_s=2)
    assert time.monotonic() - t0 < 60


def test_shard_is_disjoint_equal_and_seeded():
    idx = torch.arange(100, 111)  # 11 items over 3 shards: 3 each, 2 dropped
    parts = [distributed.shard(idx, 7, shard_id=r, num_shards=3) for r in range(3)]
    assert [p.numel() for p in parts] == [3, 3, 3]
    together = torch.cat(parts)
    assert together.unique().numel() == 9 and torch.isin(together, idx).all()
    assert torch.equal(parts[1], distributed.shard(idx, 7, shard_id=1, num_shards=3))
    assert not torch.equal(
        torch.cat(parts), torch.cat([distributed.shard(idx, 8, shard_id=r, num_shards=3) for r in range(3)])
    )
    # drop_last=False covers everything with sizes differing by at most one.
    full = [distributed.shard(idx, 7, shard_id=r, num_shards=3, drop_last=False) for r in range(3)]
    assert [p.numel() for p in full] == [4, 4, 3]
    assert torch.equal(torch.cat(full).sort().values, idx)
    # Rows of 2-D tensors (edge pairs) are sharded together; a generator gives a reproducible seed.
    pairs = torch.arange(20).view(10, 2)
    a = distributed.shard(pairs, torch.Generator().manual_seed(3), shard_id=0, num_shards=2)
    b = distributed.shard(pairs, torch.Generator().manual_seed(3), shard_id=0, num_shards=2)
    assert a.shape == (5, 2) and torch.equal(a, b) and torch.equal(a[:, 1] - a[:, 0], torch.ones(5).long())
    # One shard: unchanged, and the generator is left alone.
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    assert distributed.shard(idx, gen) is idx and torch.equal(gen.get_state(), state)
    with pytest.raises(ConfigError, match="nproc"):
        distributed.launch(_sleep, 0)
    with pytest.raises(ValueError, match="shard_id"):
        distributed.shard(idx, 0, shard_id=3, num_shards=3)


def test_single_process_helpers_are_identities():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.init() is False  # no WORLD_SIZE in the environment: plain single-process run
    assert distributed.all_reduce_weighted({"a": 0.25}, 4) == {"a": 0.25}
    assert distributed.broadcast_object("x") == "x" and distributed.all_gather_object(3) == [3]
    t = torch.arange(3)
    assert distributed.all_gather_cat(t) is t
    model = nn.Linear(2, 2)
    assert distributed.wrap_ddp(model) is model
    model(torch.ones(1, 2)).sum().backward()
    g = model.weight.grad.clone()
    distributed.sync_grads(model)
    assert torch.equal(model.weight.grad, g)
