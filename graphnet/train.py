"""The one training loop, shared by every task and every model (GNN stack or dense baseline).

``Trainer(cfg.train).fit(model, task, graph)`` runs: per epoch, ``task.batches`` -> ``task.loss`` ->
backward -> (clip) -> step; every ``eval_every`` epochs ``task.evaluate`` on the monitored split; keeps the
best weights in memory (strict improvement, so ties keep the earlier epoch), stops after ``patience``
epochs without improvement, restores the best weights and evaluates every split at them. It never
branches on the task or model: whatever a task needs becomes a task method. With ``ema_decay`` (Polyak
averaging) the evaluations, the kept weights and the reported metrics are those of the moving average of
the parameters (see TrainConfig), while the optimizer keeps stepping the live parameters.

Resume: a checkpoint (model, optimizer, scheduler, scaler, best weights, history, counters and the
python/numpy/torch/generator RNG states as tensors and plain types) is written atomically every
``checkpoint_every`` epochs and read back with ``torch.load(weights_only=True)``. DGL's RNG has no
get/set-state API, so it is re-seeded from (seed, epoch) at the start of every epoch instead. Together
this makes a resumed CPU run bit-identical to an uninterrupted one. On CUDA, a seed fixes the data and
the initial weights but not the last bits: scatter/index_add and DGL's SpMM sum with atomics in an
arbitrary order, and no deterministic mode is switched on, so repeated GPU runs differ by rounding
(results.json's ``device`` says which kind a number is).

Data-parallel (graphnet.distributed; a no-op in a single process): rank 0's initial weights are copied to
every rank, tasks shard their training items per rank (``distributed.shard`` in ``batches``), gradients are
averaged after every backward (``sync_grads``), the epoch loss is averaged over ranks, tasks split
evaluation items across ranks and reduce them (``distributed.eval_slice``), and rank 0's metrics are
broadcast, so every rank takes the same early-stopping decisions. Each rank draws
its own batch randomness (generator seeded with ``seed + 1_000_003 * rank``); only rank 0 shows progress
and writes checkpoints (holding every rank's RNG state).
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from graphnet import distributed
from graphnet.config import SPLITS, TrainConfig
from graphnet.errors import CheckpointError, ConfigError
from graphnet.io import atomic_open

log = logging.getLogger(__name__)
_LOWER_IS_BETTER = ("loss", "rmse", "mae", "_mr")
EVAL_SPLITS = ("val", "test")  # evaluated at the best epoch; not train (no negatives / masked items there)


def seed_everything(seed: int) -> None:
    """Seed python, numpy, torch (CPU and CUDA) and dgl."""
    import dgl  # lazy: ~7 s, and every caller that trains a graph model has imported it already

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    dgl.seed(seed)


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; cuda[:i] must exist (ConfigError otherwise)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise ConfigError(f"train.device={name!r}: no such CUDA device (torch.cuda.device_count() = "
                          f"{torch.cuda.device_count()}); use cpu or auto")
    return device


def _rng_state(gen: torch.Generator | None) -> dict[str, Any]:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "generator": gen.get_state() if gen is not None else None,
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}


def _set_rng_state(state: dict[str, Any], gen: torch.Generator | None) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if gen is not None:
        gen.set_state(state["generator"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def _task_name(task: Any) -> str:
    """The config name of ``task`` ('node', ...) for messages; its class name if it is not registered."""
    from graphnet.tasks import TASKS

    return next((repr(k) for k, cls in TASKS.items() if type(task) is cls), type(task).__name__)


class Trainer:
    """Fit a model on a task (see the module docstring).

    Args:
        cfg: the [train] section.
        seed: seeds the batch generator and DGL's per-epoch seeds (the caller seeds the global RNGs
            before building the model, see graphnet.run).
        checkpoint: path of the resumable checkpoint file (None: no checkpoints).
        progress: tqdm bar on stderr; None = only when stderr is a terminal.
    """

    def __init__(self, cfg: TrainConfig, seed: int = 0, checkpoint: str | Path | None = None,
                 progress: bool | None = None):
        self.cfg, self.seed = cfg, seed
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.progress = sys.stderr.isatty() if progress is None else progress

    def fit(self, model: nn.Module, task: Any, graph: Any, resume: bool = False) -> dict[str, Any]:
        """Train ``model`` on ``task``/``graph``; returns metrics at the best epoch and the history.

        Returns:
            {"metrics": {"<split>_<metric>": float}, "history": [{"epoch", "loss", "lr", "time_s",
            "val_...": ...}], "best_epoch", "epochs_run", "stopped_early", "monitor", "device", "amp",
            "times": {"train_s", "eval_s", "wall_s" (all of fit; across a resume, as the others)}}.
            Epochs count from 0.
        """
        cfg = self.cfg
        device = resolve_device(cfg.device)
        if distributed.world_size() > 1 and device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank())  # one GPU per process
        model, graph = model.to(device), graph.to(device)
        distributed.broadcast_module(model)  # every rank starts from rank 0's weights
        monitor = cfg.monitor or task.monitor
        split = monitor.split("_", 1)[0]
        if split not in SPLITS:
            raise ConfigError(f"train.monitor={monitor!r}: expected '<split>_<metric>' with split in "
                              f"{SPLITS}")
        for key, name in [("monitor", split)] + [("track", t) for t in cfg.track]:
            if name not in graph.splits and name not in graph.edge_splits:
                # Recommendation/rating data ships train/test only: the task can hold out a validation split.
                hint = ("; set task.val_frac (e.g. 0.1) to hold out that share of the training pairs as "
                        "'val'" if name == "val" and hasattr(task, "val_frac") else "")
                have = ", ".join(sorted({*graph.splits, *graph.edge_splits})) or "none"
                raise ConfigError(f"train.{key}: the graph has no {name!r} split (it has {have}){hint}")
        if split == "test":  # allowed for papers that have no validation split (LightGCN), never silent
            log.warning("train.monitor=%r selects the best epoch on the test split: its test metrics are "
                        "optimistic, not held-out estimates", monitor)
        if cfg.also_monitor and cfg.also_monitor.split("_", 1)[0] != split:  # a tracked split must not select
            raise ConfigError(f"train.also_monitor={cfg.also_monitor!r}: must be a metric of the monitored "
                              f"split {split!r} (train.monitor={monitor!r})")
        if cfg.mode != "auto":
            higher = cfg.mode == "max"
        elif monitor == task.monitor:  # the task knows the direction of its own monitor
            higher = task.higher_is_better
        else:  # others: lower is better for losses and errors
            higher = not monitor.endswith(_LOWER_IS_BETTER)
        amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp]
        if amp is torch.float16 and device.type != "cuda":
            raise ConfigError(f"train.amp='fp16' needs a CUDA device (got {device}); use 'bf16' on CPU")
        opt = _optimizer(cfg, model)
        sched = _scheduler(cfg, opt, higher)
        scaler = torch.cuda.amp.GradScaler(enabled=amp is torch.float16)
        gen = torch.Generator().manual_seed(self.seed + 1_000_003 * distributed.rank())
        s = {"epoch": 0, "history": [], "best_epoch": -1, "best_value": None, "best_state": None,
             "last_improved": -1, "also_best": None, "train_s": 0.0, "eval_s": 0.0, "amp_on": amp is not None,
             "ema": _trainable(model) if cfg.ema_decay else None, "ema_steps": 0}
        if resume and self.checkpoint is not None and self.checkpoint.exists():
            s = self._restore(device, model, opt, sched, scaler, gen)
            log.info("resumed from %s at epoch %d", self.checkpoint, s["epoch"])
        # Wall time of the work the result is made of: the checkpoint's, then this process's (the work
        # after the last checkpoint of a killed process was lost and is redone, as train_s counts it).
        fit_t0, wall0 = time.perf_counter(), s.get("wall_s", s["train_s"] + s["eval_s"])

        from tqdm.auto import tqdm

        show = self.progress and distributed.is_main()
        bar = tqdm(total=cfg.epochs, initial=s["epoch"], disable=not show, leave=False, file=sys.stderr,
                   desc="train")
        stopped = False
        for epoch in range(s["epoch"], cfg.epochs):
            if "dgl" in sys.modules:  # dgl samplers draw from DGL's own RNG, whose state cannot be saved
                sys.modules["dgl"].seed((self.seed * 1_000_003 + epoch) % 2**31)
            t0, losses = time.perf_counter(), []
            model.train()
            for batch in task.batches(model, graph, epoch, gen):
                losses.append(self._step(model, task, graph, batch, opt, scaler, amp, s))
            mean = {"loss": float(torch.stack(losses).mean()) if losses else math.nan}
            rec = {"epoch": epoch, "loss": distributed.all_reduce_mean(mean)["loss"],
                   "lr": opt.param_groups[0]["lr"], "time_s": time.perf_counter() - t0}
            s["train_s"] += rec["time_s"]
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                t1 = time.perf_counter()
                with _averaged(model, s.get("ema")):
                    metrics = self._evaluate(model, task, graph, split)
                    rec.update(metrics)
                    if monitor not in metrics:
                        raise ConfigError(f"train.monitor={monitor!r} is not a metric of task "
                                          f"{_task_name(task)}; available: "
                                          f"{', '.join(sorted(metrics)) or 'none'}")
                    value = rec[monitor]
                    keep, improved = self._select(rec, monitor, higher, s)
                    if keep:
                        s["best_value"], s["best_epoch"] = value, epoch
                        s["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    rec.update(self._track(model, task, graph, split, gen))  # after the decisions above
                s["eval_s"] += time.perf_counter() - t1
                if improved:
                    s["last_improved"] = epoch
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(value)
                bar.set_postfix(loss=f"{rec['loss']:.4f}", **{monitor: f"{value:.4f}"})
                # Patience is judged only where the metric was looked at: between evaluations nothing can
                # have improved, so a check there would stop before the evaluation that might restart it.
                # No improvement yet (last_improved -1, e.g. a NaN metric from the start) counts from -1.
                last = s.get("last_improved", s["best_epoch"])  # (checkpoints of older versions lack the key)
                stopped = bool(cfg.patience) and epoch - last >= cfg.patience
            if sched is not None and not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step()
            s["history"].append(rec)
            s["epoch"] = epoch + 1
            bar.update(1)
            log.debug("epoch %d %s", epoch, {k: round(v, 5) for k, v in rec.items() if k != "epoch"})
            if stopped:
                log.info("early stop at epoch %d: %s best %s at epoch %d (-1: never improved)", epoch,
                         monitor, s["best_value"], s["best_epoch"])
                break
            if self.checkpoint and cfg.checkpoint_every and s["epoch"] % cfg.checkpoint_every == 0:
                s["wall_s"] = wall0 + time.perf_counter() - fit_t0
                self._save(model, opt, sched, scaler, gen, s)
        bar.close()

        if s["best_state"] is not None:
            model.load_state_dict(s["best_state"])  # (the averaged weights, if any: kept inside _averaged)
        elif s.get("ema") is not None:  # no evaluation ever kept weights: report the averaged ones
            _copy_into(model, s["ema"])
        t1 = time.perf_counter()
        metrics: dict[str, float] = {}
        for name in EVAL_SPLITS:
            if name in graph.splits or name in graph.edge_splits:
                metrics.update(self._evaluate(model, task, graph, name))
        s["eval_s"] += time.perf_counter() - t1
        return {"metrics": metrics, "history": s["history"], "best_epoch": s["best_epoch"],
                "epochs_run": s["epoch"], "stopped_early": stopped, "monitor": monitor, "device": str(device),
                "amp": cfg.amp if s["amp_on"] else "off", "world_size": distributed.world_size(),
                "times": {"train_s": s["train_s"], "eval_s": s["eval_s"],
                          "wall_s": wall0 + time.perf_counter() - fit_t0}}


    def _restore(self, device, model, opt, sched, scaler, gen) -> dict[str, Any]:
        """Load the checkpoint into the objects and return the loop state; any failure is a CheckpointError.

        ``weights_only=True`` never runs a pickled payload; torch's own error would name no file and
        suggest ``weights_only=False``, so it is replaced by one naming the file and the safe way out.
        """
        try:
            # On the CPU: the RNG states must be CPU tensors (torch.set_rng_state, Generator.set_state); the
            # weights reach the device through load_state_dict, which copies into the parameters.
            ck = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (UnpicklingError, RuntimeError from the zip reader, OSError)
            raise CheckpointError(
                f"checkpoint {self.checkpoint}: cannot be loaded safely ({type(e).__name__}); it is corrupt "
                "or was not written by graphnet. Delete it to restart this seed from scratch") from None
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if sched is not None:
                sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            rng = ck["rng"]
            if "per_rank" in rng:
                if len(rng["per_rank"]) != distributed.world_size():
                    raise ValueError(f"written by {len(rng['per_rank'])} processes, resumed with "
                                     f"{distributed.world_size()}")
                rng = rng["per_rank"][distributed.rank()]
            _set_rng_state(rng, gen)
            state = ck["state"]
            for key in ("best_state", "ema"):  # copies of the weights, used beside the (device) parameters
                if state.get(key) is not None:
                    state[key] = {k: v.to(device) for k, v in state[key].items()}
            return state
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            first = str(e).splitlines()[0] if str(e) else ""
            raise CheckpointError(
                f"checkpoint {self.checkpoint}: does not match this model and configuration "
                f"({type(e).__name__}: {first}). Delete it to restart this seed from scratch") from None
    def _step(self, model, task, graph, batch, opt, scaler, amp, s) -> torch.Tensor:
        """One optimisation step; if autocast fails on the first step (an op without reduced-precision
        support, e.g. DGL's CPU SpMM in bf16), warn and train in float32 from then on."""
        opt.zero_grad(set_to_none=True)
        device_type = next((p.device.type for p in model.parameters()), "cpu")
        first_amp = s["amp_on"] and not s["history"]
        snapshot = _rng_state(None) if first_amp else None  # so a fallback redoes the step exactly
        try:
            with torch.autocast(device_type, dtype=amp or torch.float32, enabled=s["amp_on"]):
                loss = task.loss(model, graph, batch)
        except RuntimeError as e:
            if not first_amp:
                raise
            log.warning("train.amp=%r: %s; training in float32 instead", self.cfg.amp, str(e).splitlines()[0])
            s["amp_on"] = False
            _set_rng_state(snapshot, None)
            return self._step(model, task, graph, batch, opt, scaler, amp, s)
        scaler.scale(loss.float()).backward()
        distributed.sync_grads(model)  # mean over ranks = the gradient of the global batch
        if self.cfg.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        if s.get("ema") is not None:
            s["ema_steps"] += 1
            _update_average(model, s["ema"], self.cfg.ema_decay, s["ema_steps"])
        return loss.detach().float()

    def _select(self, rec: dict[str, float], monitor: str, higher: bool,
                s: dict[str, Any]) -> tuple[bool, bool]:
        """(keep these weights as the best, an improvement that restarts patience) for this evaluation.

        One monitor: strict improvement for both (ties keep the earlier epoch; NaN never improves).
        With ``also_monitor`` (the GAT paper's rule): keep when both metrics are at least as good as their
        best so far; restart patience when either is; each best so far is updated independently.
        """
        value, best = rec[monitor], s["best_value"]
        if not self.cfg.also_monitor:
            better = math.isfinite(value) and (best is None or (value > best if higher else value < best))
            return better, better
        key = self.cfg.also_monitor
        if key not in rec:
            split = monitor.split("_", 1)[0]
            raise ConfigError(f"train.also_monitor={key!r} is not a metric evaluated with {monitor!r}; "
                              f"available: {', '.join(sorted(k for k in rec if k.startswith(split + '_')))}")
        other, other_best = rec[key], s["also_best"]
        other_higher = not key.endswith(_LOWER_IS_BETTER)
        ok1 = math.isfinite(value) and (best is None or (value >= best if higher else value <= best))
        ok2 = math.isfinite(other) and (other_best is None or
                                        (other >= other_best if other_higher else other <= other_best))
        if ok2:
            s["also_best"] = other  # at least as good as the best so far
        if ok1 and not ok2:  # the monitor's best so far moves even when the weights are not kept
            s["best_value"] = value
        return ok1 and ok2, ok1 or ok2

    def _track(self, model, task, graph, monitored: str, gen) -> dict[str, float]:
        """Metrics of the ``track`` splits for the history; every RNG is put back afterwards, so a task whose
        evaluation draws random numbers cannot make tracking change the run."""
        names = [t for t in self.cfg.track if t != monitored]
        if not names:
            return {}
        snapshot, out = _rng_state(gen), {}
        for name in names:
            out.update(self._evaluate(model, task, graph, name))
        _set_rng_state(snapshot, gen)
        return out

    @staticmethod
    def _evaluate(model: nn.Module, task: Any, graph: Any, split: str) -> dict[str, float]:
        """Metrics of ``split``; rank 0's values on every rank, so all ranks decide alike."""
        model.eval()
        with torch.no_grad():
            metrics = {f"{split}_{k}": float(v) for k, v in task.evaluate(model, graph, split).items()}
        return distributed.broadcast_object(metrics)

    def _save(self, model, opt, sched, scaler, gen, s) -> None:
        rng = _rng_state(gen)
        if distributed.world_size() > 1:
            rng = {"per_rank": distributed.all_gather_object(rng)}  # every rank resumes its own stream
        if distributed.is_main():
            ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                  "scheduler": sched.state_dict() if sched is not None else None, "rng": rng, "state": s}
            with atomic_open(self.checkpoint, "wb") as f:
                torch.save(ck, f)
        distributed.barrier()  # no rank goes on (and may read the file) before it is complete


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters by name (where the moving average starts)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def _update_average(model: nn.Module, avg: dict[str, torch.Tensor], decay: float, step: int) -> None:
    """avg = c avg + (1 - c) param, c = min(decay, (1 + step) / (10 + step)); TensorFlow's
    ExponentialMovingAverage(decay, num_updates=step), whose warm-up keeps the first steps from being
    dominated by the random initial weights."""
    c = min(decay, (1 + step) / (10 + step))
    for n, p in model.named_parameters():
        if n in avg:
            avg[n].mul_(c).add_(p.detach(), alpha=1 - c)


@torch.no_grad()
def _copy_into(model: nn.Module, values: dict[str, torch.Tensor]) -> None:
    for n, p in model.named_parameters():
        if n in values:
            p.copy_(values[n])


@contextmanager
def _averaged(model: nn.Module, avg: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside: the model holds the averaged parameters (no-op when ``avg`` is None); after: the live ones."""
    if avg is None:
        yield
        return
    live = _trainable(model)
    _copy_into(model, avg)
    try:
        yield
    finally:
        _copy_into(model, live)


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters; nothing to train")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, higher: bool) -> Any:
    lrs = torch.optim.lr_scheduler
    if cfg.scheduler == "step":
        return lrs.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    if cfg.scheduler == "cosine":
        return lrs.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "plateau":
        return lrs.ReduceLROnPlateau(opt, mode="max" if higher else "min", factor=cfg.lr_gamma,
                                     patience=cfg.lr_step)
    return None
