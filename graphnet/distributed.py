"""Data-parallel training on torch.distributed: process group, seed sharding, gradient and metric reduction.

Two ways to start N processes, one code path inside them:
- ``graphnet run cfg.toml --nproc N`` -> ``launch(fn, N, ...)`` spawns N local processes, sets the torchrun
  environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and calls ``init()`` in each;
- ``torchrun --nproc-per-node N -m graphnet run cfg.toml`` sets the same variables; the program calls
  ``init()`` itself (a no-op when WORLD_SIZE is unset, so single-process runs need no branch).
Backend: gloo on CPU, nccl when CUDA is available (``backend="auto"``).

Every helper degrades to the single-process identity when no process group is initialized
(``world_size() == 1``), so callers never branch on the number of processes.

In a training loop (what graphnet's Trainer does with it):
    broadcast_module(model)                       # same start on every rank
    for each epoch: seeds = shard(train_ids, seed + epoch); equal-size batches of them
        loss.backward(); sync_grads(model); opt.step()
    log all_reduce_mean({"loss": ...}); evaluate each rank's ``eval_slice`` of the split, then reduce
    means with all_reduce_weighted or gather per-item results with all_gather_cat;
    only is_main() writes files. Every rank must run the same collectives in the same order, so every
    decision that controls them (early stopping, number of steps) must come from reduced values.
``sync_grads`` is preferred over ``wrap_ddp`` when the model is used through attributes other than
``forward`` (``model.score``, ``model.encoder``) or its state_dict keys must not gain a ``module.`` prefix.

Exactness: with equal shard sizes, averaging the ranks' gradients of their per-shard *mean* losses equals
the gradient of the mean loss over the union of the shards, i.e. one step of N-process training is one
step of single-process training on the global batch (up to float summation order).
"""

from __future__ import annotations

import datetime
import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from graphnet.errors import ConfigError, GraphnetError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---------------------------------------------------------------------------------------- process group
def init(backend: str = "auto", timeout_s: float = 1800.0) -> bool:
    """Join the process group described by the torchrun environment variables.

    Args:
        backend: "auto" (nccl if CUDA is available, else gloo), "gloo" or "nccl".
        timeout_s: collective timeout; a rank that waits longer raises instead of hanging forever.

    Returns:
        True if a process group is (now) initialized, False for a plain single-process run
        (WORLD_SIZE unset). Calling it again is a no-op.
    """
    if dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    missing = [k for k in ENV_VARS if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"distributed.init: WORLD_SIZE is set but {missing} are not (expected all of "
            f"{list(ENV_VARS)}, as set by torchrun or distributed.launch)"
        )
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"backend: expected 'auto', 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # one GPU per local rank
    dist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s))
    return True


def cleanup() -> None:
    """End of a distributed program: wait for all ranks, then release the process group.

    Every rank must call it, once, as the last distributed step. Under nccl the group is destroyed (torch
    asks for it before exit). Under gloo the group is left to process exit: with torch 2.2.1 on this
    machine, ``dist.destroy_process_group()`` after a barrier intermittently hung forever on rank 0 of
    2-process runs (up to 10 runs in 12, also in a plain torch.multiprocessing script), while leaving the
    teardown to process exit never hung (30+ runs).
    """
    if not dist.is_initialized():
        return
    dist.barrier()
    if dist.get_backend() == "nccl":
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank() -> int:
    """Index of this process on its machine (= its GPU under nccl)."""
    return int(os.environ.get("LOCAL_RANK", 0)) if dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the only rank that writes files, logs and progress bars."""
    return rank() == 0


def device() -> torch.device:
    """The device collectives run on: cuda:LOCAL_RANK under nccl, else cpu."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------- sharding
def shard(
    indices: Tensor,
    generator_or_seed: torch.Generator | int,
    *,
    drop_last: bool = True,
    shard_id: int | None = None,
    num_shards: int | None = None,
) -> Tensor:
    """This rank's slice of a seeded permutation of ``indices`` (rows of a 2-D tensor, e.g. edge pairs).

    The permutation is identical on all ranks: an int seed is used as is; a generator draws one seed,
    and rank 0's draw is broadcast (generators can drift apart across ranks, e.g. after sampling
    different batches). Rank r takes ``perm[r * n : (r + 1) * n]``.

    ``drop_last=True`` (training): ``n = len // world_size``, the ``len % world_size`` (< world_size)
    items at the end of the permutation are skipped this epoch (different ones each epoch when the seed
    changes). Shards are disjoint and equal-sized, so every rank runs the same number of steps and
    DDP-averaged gradients are those of the global batch. ``drop_last=False`` (evaluation): the first
    ``len % world_size`` ranks take one extra item, covering everything; reduce metrics with
    ``all_reduce_weighted`` or ``all_gather_cat``.

    ``shard_id``/``num_shards`` default to ``rank()``/``world_size()`` (pass them to compute another
    rank's shard, e.g. in a single-process reference). With one shard, ``indices`` come back unchanged
    and the generator is not used, so single-process runs keep their random stream and order.

    Shapes: indices (n_total, ...) -> (n, ...).
    """
    r = rank() if shard_id is None else shard_id
    w = world_size() if num_shards is None else num_shards
    if not 0 <= r < w:
        raise ValueError(f"shard: expected 0 <= shard_id < num_shards, got shard_id={r}, num_shards={w}")
    if w == 1:
        return indices
    if isinstance(generator_or_seed, torch.Generator):
        seed = torch.randint(0, 2**62, (1,), generator=generator_or_seed, device=generator_or_seed.device).to(
            device()
        )
        if dist.is_initialized() and num_shards is None:
            dist.broadcast(seed, src=0)
        seed = int(seed)
    else:
        seed = int(generator_or_seed)
    perm = torch.randperm(indices.shape[0], generator=torch.Generator().manual_seed(seed))
    n_total = indices.shape[0]
    if drop_last:
        n = n_total // w
        start, stop = r * n, (r + 1) * n
    else:
        base, extra = divmod(n_total, w)
        start = r * base + min(r, extra)
        stop = start + base + (1 if r < extra else 0)
    return indices[perm[start:stop].to(indices.device)]


def eval_slice(n: int) -> slice:
    """This rank's contiguous share of ``n`` evaluation items (queries, users, pairs, nodes).

    Ranks take consecutive ranges in rank order whose sizes differ by at most one (the first ``n %
    world_size`` ranks take one more), so ``all_gather_cat`` of per-item results restores the original
    order and every rank then computes the metric from the same values. ``slice(0, n)`` in one process.
    """
    w, r = world_size(), rank()
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


# ---------------------------------------------------------------------------------------- reductions
def all_reduce_mean(metrics: dict[str, float]) -> dict[str, float]:
    """Unweighted mean over ranks of each value. Every rank must pass the same keys.

    Right for quantities that are already global-batch means of equal-sized shards (training losses
    with ``shard(drop_last=True)``); for per-shard averages over unequal counts use
    ``all_reduce_weighted``.
    """
    return all_reduce_weighted(metrics, 1.0)


def all_reduce_weighted(metrics: dict[str, float], weight: float) -> dict[str, float]:
    """``sum_r weight_r * value_r / sum_r weight_r`` for each key (e.g. weight = the shard's count).

    Accuracy over shards of sizes n_r: pass the local accuracy and ``weight=n_r`` to get
    ``sum_r correct_r / sum_r n_r`` (not the mean of per-rank accuracies). Every mean-decomposable metric
    (accuracy, MRR, Hits@K per query, MSE, MAE, Recall@K per user) reduces this way; RMSE reduces as
    the sqrt of the weighted MSE; ROC-AUC and OGB shared-negative Hits@K do not decompose: gather the
    scores with ``all_gather_cat`` and compute them once. Every rank must pass the same keys.
    """
    if world_size() == 1:
        return {k: float(v) for k, v in metrics.items()}
    keys = sorted(metrics)
    t = torch.tensor(  # a rank with weight 0 (an empty shard) adds nothing, even if its value is NaN
        [float(weight) * float(metrics[k]) if weight else 0.0 for k in keys] + [float(weight)],
        dtype=torch.float64,
        device=device(),
    )
    dist.all_reduce(t)  # SUM
    total = float(t[-1])
    return {k: float(t[i]) / total if total else float("nan") for i, k in enumerate(keys)}


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate tensors of different lengths (dim 0) from all ranks, in rank order.

    Shapes: (n_r, ...) on rank r -> (sum_r n_r, ...) on every rank.
    """
    if world_size() == 1:
        return t
    if t.dtype == torch.bool:  # gloo has no bool collectives
        return all_gather_cat(t.to(torch.uint8)).bool()
    dev = device()
    n = torch.tensor([t.shape[0]], device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    longest = int(max(sizes))
    padded = torch.zeros((longest,) + tuple(t.shape[1:]), dtype=t.dtype, device=dev)
    padded[: t.shape[0]] = t.to(dev)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes, strict=True)]).to(t.device)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects: a run directory, a config, a decision)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=device())
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (e.g. per-rank RNG states for a checkpoint)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------------------- models
def wrap_ddp(model: nn.Module, find_unused_parameters: bool = True) -> nn.Module:
    """DistributedDataParallel(model) when a process group exists, else the model itself.

    DDP broadcasts rank 0's parameters and buffers at construction and all-reduces (averages) gradients
    during backward, overlapping communication with computation. Only computation inside
    ``wrapped(...)`` is tracked: tasks must call the wrapper (not ``.module``) for every forward that
    produces the loss. ``find_unused_parameters=True`` (default) tolerates parameters that a step does
    not use (heads of other tasks, embeddings of absent relations) at the cost of one graph traversal
    per step; set it False when every parameter is used every step. For models whose parameters are
    also used outside ``forward`` (e.g. a decoder called as ``model.score``), use ``sync_grads``.
    """
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [local_rank()] if device().type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def broadcast_module(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (in place); use with ``sync_grads``."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            buf = t.detach().to(device())
            dist.broadcast(buf, src=0)
            t.copy_(buf.to(t.device))


def sync_grads(model: nn.Module) -> None:
    """Average ``p.grad`` over ranks for every parameter, in place; call after ``loss.backward()``.

    The hook-free alternative to ``wrap_ddp``: it works whatever the task calls on the model
    (``model.encoder``, ``model.score``, ...), since it reduces gradients after backward instead of
    tracking forward. A parameter without a gradient on some rank counts as a zero gradient there (all
    ranks run the same collectives, so none can hang). Cost: one flattened all-reduce, not overlapped
    with backward.
    """
    if world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(device()) for p in params]
    )
    has = torch.tensor([float(p.grad is not None) for p in params], device=device())
    dist.all_reduce(flat)
    dist.all_reduce(has)
    flat /= world_size()
    offset = 0
    for p, h in zip(params, has.tolist(), strict=True):
        g = flat[offset : offset + p.numel()].view_as(p).to(p.device)
        offset += p.numel()
        if h > 0:  # a parameter no rank touched keeps grad None (optimizers then skip it)
            p.grad = g.to(p.dtype) if p.grad is None else p.grad.copy_(g)


# ---------------------------------------------------------------------------------------- launching
def free_port() -> int:
    """An unused TCP port on localhost (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    local: int, fn: Callable[..., Any], nproc: int, port: int, backend: str, queue: Any, args: tuple
) -> None:
    os.environ.update(
        {
            "RANK": str(local),
            "LOCAL_RANK": str(local),
            "WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    if "OMP_NUM_THREADS" not in os.environ:
        # N processes on one machine: split the cores instead of oversubscribing them (torchrun sets 1).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nproc))
    try:
        init(backend)
        result = fn(*args)
        # Plain pickle copies tensor data; torch's queue pickler would pass shared-memory handles that
        # die with this process.
        queue.put(("ok", local, time.time(), pickle.dumps(result if local == 0 else None)))
    except BaseException as e:
        # No cleanup here: the peers may be stuck in a collective; launch kills them.
        try:  # the exception itself, so launch can re-raise a GraphnetError as it is
            pickled = pickle.dumps(e)
        except Exception:
            pickled = None
        queue.put(("error", local, time.time(), (traceback.format_exc(), pickled)))
        raise
    cleanup()


def launch(
    fn: Callable[..., Any], nproc: int, *args: Any, backend: str = "auto", timeout_s: float | None = None
) -> Any:
    """Run ``fn(*args)`` in ``nproc`` local processes forming one process group; return rank 0's result.

    Each process gets the torchrun environment (a free MASTER_PORT on 127.0.0.1) and has ``init()``
    called before ``fn``. ``fn`` must be picklable (a module-level function) and so must its arguments
    and rank 0's return value. If a process raises, the others are terminated and the error of the
    process that failed first is re-raised here: a GraphnetError unchanged (so the CLI reports it as with
    one process; a note carries the child's traceback), any other error as RuntimeError carrying the
    traceback. After ``timeout_s`` seconds all processes are killed and TimeoutError is raised, so a hung
    collective cannot block the caller.
    """
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException

    if nproc < 1:
        raise ConfigError(f"nproc: expected a positive integer, got {nproc}")
    queue = mp.get_context("spawn").SimpleQueue()
    ctx = mp.start_processes(
        _worker,
        args=(fn, nproc, free_port(), backend, queue, args),
        nprocs=nproc,
        join=False,
        start_method="spawn",
    )
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    messages: list[tuple] = []
    try:
        while True:
            while not queue.empty():  # drain while waiting: a large result must not block its writer
                messages.append(queue.get())
            try:
                if ctx.join(timeout=0.2):
                    break
            except ProcessException as e:
                # Once one rank fails, its peers' collectives fail too ("connection reset"); report the
                # first error in time, which is the cause.
                while not queue.empty():
                    messages.append(queue.get())
                errors = sorted((m for m in messages if m[0] == "error"), key=lambda m: m[2])
                if not errors:
                    raise
                _, local, _, (tb, pickled) = errors[0]
                try:
                    error = pickle.loads(pickled) if pickled is not None else None
                except Exception:  # e.g. an exception whose __init__ takes other arguments than its args
                    error = None
                if isinstance(error, GraphnetError):  # a user mistake: the same one line as with one process
                    error.add_note(f"raised in process {local} of {nproc}:\n{tb}")
                    raise error from None
                raise RuntimeError(f"launch: process {local} of {nproc} failed first:\n{tb}") from e
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"launch: {nproc} processes still running after {timeout_s} s; killed")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join()
    while not queue.empty():
        messages.append(queue.get())
    for kind, local, _, payload in messages:
        if kind == "ok" and local == 0:
            return pickle.loads(payload)
    return None
