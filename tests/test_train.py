"""The one Trainer: early stopping and best weights, resume == uninterrupted, optimizers, schedulers,
clipping, devices, mixed precision, checkpoints loaded with weights_only=True.

A tiny fake task (mini-batches from the generator, dropout, numpy and python random all in the loss, so
every RNG the checkpoint restores is exercised) and a scripted task (fixed validation values) drive it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphnet.config import TrainConfig
from graphnet.errors import CheckpointError, ConfigError
from graphnet.graph import Graph
from graphnet.train import Trainer, seed_everything


def make_graph(n: int = 40, f: int = 6, seed: int = 0) -> Graph:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=g)
    y = (X[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).long()
    src = torch.arange(n)
    perm = torch.randperm(n, generator=g)
    return Graph.from_edges(src, perm, n, X=X, y=y,
                            splits={"train": torch.arange(0, 20), "val": torch.arange(20, 30),
                                     "test": torch.arange(30, 40)})


class TinyModel(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 8, dropout: float = 0.5):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, out_dim)
        self.dropout = dropout

    def forward(self, A, X, edge_type=None, edge_feat=None):
        H = F.dropout(torch.relu(self.lin1(X)), self.dropout, self.training)
        return self.lin2(H)


class FakeTask:
    """Node classification with shuffled mini-batches; the loss also draws from numpy and python RNGs."""

    monitor, higher_is_better = "val_accuracy", True

    def __init__(self, batch_size: int = 7, kill_at: int | None = None):
        self.batch_size, self.kill_at = batch_size, kill_at

    def setup(self, graph, model_name, model_kwargs, seed):
        return TinyModel(graph.X.shape[1], 2, **model_kwargs), graph

    def batches(self, model, graph, epoch, generator):
        if epoch == self.kill_at:
            raise KeyboardInterrupt(f"simulated kill at epoch {epoch}")
        idx = graph.splits["train"]
        return idx[torch.randperm(idx.numel(), generator=generator)].split(self.batch_size)

    def loss(self, model, graph, batch):
        jitter = 1 + 1e-3 * (np.random.rand() + random.random())
        return F.cross_entropy(model(graph.A, graph.X)[batch], graph.y[batch]) * jitter

    def evaluate(self, model, graph, split):
        idx = graph.splits[split]
        out = model(graph.A, graph.X)[idx]
        return {"accuracy": float((out.argmax(1) == graph.y[idx]).float().mean()),
                "loss": float(F.cross_entropy(out, graph.y[idx]))}


class ScriptedTask(FakeTask):
    """Validation accuracy follows ``script``; records the weights seen at every validation call."""

    def __init__(self, script: list[float]):
        super().__init__(batch_size=20)
        self.script, self.seen = script, []

    def evaluate(self, model, graph, split):
        metrics = super().evaluate(model, graph, split)
        if split == "val":
            self.seen.append({k: v.clone() for k, v in model.state_dict().items()})
            metrics["accuracy"] = self.script[len(self.seen) - 1]
        return metrics


def fit(cfg: TrainConfig, task=None, seed: int = 0, graph=None, **kwargs):
    seed_everything(seed)
    task = task or FakeTask()
    model, g = task.setup(graph or make_graph(), "tiny", {}, seed)
    trainer = Trainer(cfg, seed=seed, progress=False, **{k: v for k, v in kwargs.items() if k != "resume"})
    return trainer.fit(model, task, g, resume=kwargs.get("resume", False)), model


def no_times(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


CPU = TrainConfig(device="cpu", epochs=12, lr=0.05, weight_decay=0.0)


def test_fit_schema_and_learning():
    out, _ = fit(CPU)
    assert set(out) == {"metrics", "history", "best_epoch", "epochs_run", "stopped_early", "monitor",
                        "device", "amp", "times", "world_size"}
    assert set(out["metrics"]) == {"val_accuracy", "val_loss", "test_accuracy", "test_loss"}
    assert out["monitor"] == "val_accuracy" and out["device"] == "cpu" and out["epochs_run"] == 12
    assert [h["epoch"] for h in out["history"]] == list(range(12))
    assert out["history"][-1]["loss"] < out["history"][0]["loss"]  # it learns
    best = max(range(12), key=lambda e: (out["history"][e]["val_accuracy"], -e))  # first maximum
    assert out["best_epoch"] == best
    assert out["metrics"]["val_accuracy"] == out["history"][best]["val_accuracy"]


def test_same_seed_same_result_and_other_seed_differs():
    a, _ = fit(CPU, seed=3)
    b, _ = fit(CPU, seed=3)
    c, _ = fit(CPU, seed=4)
    assert no_times(a["history"]) == no_times(b["history"]) and a["metrics"] == b["metrics"]
    assert no_times(a["history"]) != no_times(c["history"])


def test_early_stopping_restores_best_weights():
    # best 0.5 at epoch 1; the tie at epoch 3 is no improvement; patience 3 -> stop after epoch 4
    task = ScriptedTask([0.1, 0.5, 0.3, 0.5, 0.2, 0.5])
    out, model = fit(dataclasses.replace(CPU, patience=3), task=task)
    assert out["best_epoch"] == 1 and out["stopped_early"] and out["epochs_run"] == 5
    assert len(task.seen) == 6  # 5 validations while training + 1 at the restored weights
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in task.seen[1].items())  # epoch 1's weights ...
    assert all(torch.equal(task.seen[5][k], v) for k, v in task.seen[1].items())  # ... also when evaluated
    assert not all(torch.equal(state[k], v) for k, v in task.seen[4].items())  # not the last epoch's
    assert out["metrics"]["val_accuracy"] == 0.5


def test_no_early_stopping_with_patience_zero():
    out, _ = fit(dataclasses.replace(CPU, patience=0), task=ScriptedTask([0.9] + [0.1] * 20))
    assert out["epochs_run"] == 12 and not out["stopped_early"] and out["best_epoch"] == 0


def test_patience_is_judged_at_evaluations_only():
    """Between evaluations nothing can improve: patience below eval_every must not stop the run before the
    next evaluation looks (every evaluation here improves), and a patience that is not a multiple of
    eval_every stops at the first evaluation past it, not in between."""
    rising = ScriptedTask([0.1 * i for i in range(1, 10)])
    out, _ = fit(dataclasses.replace(CPU, epochs=30, eval_every=10, patience=5), task=rising)
    assert [h["epoch"] for h in out["history"] if "val_accuracy" in h] == [9, 19, 29]
    assert out["epochs_run"] == 30 and not out["stopped_early"] and out["best_epoch"] == 29
    # best at epoch 3; evaluations at 7 (4 epochs without improvement) and 11 (8 >= 6): stop after 11
    flat = ScriptedTask([0.5, 0.4, 0.4, 0.4, 0.4, 0.4])
    out, _ = fit(dataclasses.replace(CPU, epochs=30, eval_every=4, patience=6), task=flat)
    assert out["stopped_early"] and out["epochs_run"] == 12 and out["best_epoch"] == 3
    assert "val_accuracy" in out["history"][-1]


def test_patience_stops_a_run_that_never_improves():
    """A monitored metric that is NaN from the start never improves: patience counts from before epoch 0,
    rather than the run going on to train.epochs."""
    out, _ = fit(dataclasses.replace(CPU, epochs=12, patience=3), task=ScriptedTask([math.nan] * 13))
    assert out["stopped_early"] and out["epochs_run"] == 3 and out["best_epoch"] == -1


def test_checkpoint_is_read_on_the_cpu_and_weight_copies_go_to_the_device(tmp_path):
    """RNG states must stay CPU tensors (torch.set_rng_state refuses others), so a checkpoint written on any
    device is read with map_location="cpu" and only the kept weight copies (best, moving average) move to
    the training device. No GPU here: the "meta" device stands in for one."""
    from graphnet import train as T

    cfg = dataclasses.replace(CPU, epochs=4, checkpoint_every=2, ema_decay=0.8)
    ck = tmp_path / "ck.pt"
    fit(cfg, checkpoint=ck)
    seed_everything(0)
    model, _ = FakeTask().setup(make_graph(), "tiny", {}, 0)
    opt = T._optimizer(cfg, model)
    gen = torch.Generator()
    state = Trainer(cfg, checkpoint=ck, progress=False)._restore(
        torch.device("meta"), model, opt, T._scheduler(cfg, opt, True),
        torch.cuda.amp.GradScaler(enabled=False), gen)
    saved = torch.load(ck, weights_only=True)
    assert torch.equal(gen.get_state(), saved["rng"]["generator"])
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    assert {v.device.type for key in ("best_state", "ema") for v in state[key].values()} == {"meta"}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved["model"].items())


def test_min_mode_monitor():
    cfg = dataclasses.replace(CPU, monitor="val_loss")  # auto -> lower is better for *_loss
    out, _ = fit(cfg)
    losses = [h["val_loss"] for h in out["history"]]
    assert out["best_epoch"] == losses.index(min(losses))
    out, _ = fit(dataclasses.replace(cfg, mode="max"))
    assert out["best_epoch"] == losses.index(max(losses))


def test_eval_every_and_last_epoch():
    out, _ = fit(dataclasses.replace(CPU, epochs=10, eval_every=4))
    evaluated = [h for h in out["history"] if "val_accuracy" in h]
    assert [h["epoch"] for h in evaluated] == [3, 7, 9]
    best = max(evaluated, key=lambda h: (h["val_accuracy"], -h["epoch"]))  # first maximum
    assert out["best_epoch"] == best["epoch"]


@pytest.mark.parametrize("kill_at", [4, 7])
def test_resume_after_interruption_is_bit_identical(tmp_path, kill_at):
    cfg = dataclasses.replace(CPU, checkpoint_every=3, scheduler="step", lr_step=2, lr_gamma=0.7)
    ref, ref_model = fit(cfg, checkpoint=tmp_path / "ref.pt")

    ck = tmp_path / "ck.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, task=FakeTask(kill_at=kill_at), checkpoint=ck)
    saved = torch.load(ck, weights_only=True)
    assert saved["state"]["epoch"] == 3 * (kill_at // 3)  # the last checkpoint before the kill
    random.seed(123), np.random.seed(123), torch.manual_seed(123)  # a fresh process has other RNG states
    out, model = fit(cfg, checkpoint=ck, resume=True)
    assert no_times(out["history"]) == no_times(ref["history"])
    assert out["metrics"] == ref["metrics"] and out["best_epoch"] == ref["best_epoch"]
    for k, v in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    ref, _ = fit(CPU)
    out, _ = fit(CPU, checkpoint=tmp_path / "missing.pt", resume=True)
    assert out["metrics"] == ref["metrics"]


def test_checkpoint_is_plain_data_and_tampered_pickle_is_rejected(tmp_path):
    ck = tmp_path / "ck.pt"
    fit(dataclasses.replace(CPU, checkpoint_every=5), checkpoint=ck)
    state = torch.load(ck, weights_only=True)  # tensors and plain types only
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "state"} <= set(state)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary behind

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))

    state["state"]["history"].append(Evil())
    torch.save(state, ck)
    with pytest.raises(CheckpointError, match=str(ck.name)):
        fit(CPU, checkpoint=ck, resume=True)
    assert not (tmp_path / "PWNED").exists() and not list(tmp_path.parent.glob("PWNED"))


@pytest.mark.parametrize("name,expected", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                           ("adamw", torch.optim.AdamW)])
def test_optimizers(name, expected, monkeypatch):
    made = []
    for cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        orig = cls.__init__

        def spy(self, *a, _orig=orig, **k):
            _orig(self, *a, **k)
            made.append((type(self), self.defaults))

        monkeypatch.setattr(cls, "__init__", spy)
    out, _ = fit(dataclasses.replace(CPU, optimizer=name, epochs=2, lr=0.03, weight_decay=1e-3,
                                     momentum=0.7))
    assert [cls for cls, _ in made] == [expected]
    hyper = made[0][1]
    assert hyper["lr"] == 0.03 and hyper["weight_decay"] == 1e-3
    assert hyper.get("momentum") == (0.7 if name == "sgd" else None)  # momentum is SGD's only
    assert all(math.isfinite(h["loss"]) for h in out["history"])


def test_step_and_cosine_schedules():
    out, _ = fit(dataclasses.replace(CPU, lr=0.1, epochs=5, scheduler="step", lr_step=2, lr_gamma=0.5))
    assert [h["lr"] for h in out["history"]] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    out, _ = fit(dataclasses.replace(CPU, lr=0.1, epochs=4, scheduler="cosine"))
    assert [h["lr"] for h in out["history"]] == pytest.approx(
        [0.05 * (1 + np.cos(np.pi * e / 4)) for e in range(4)])


def test_monitoring_the_test_split_selects_on_it_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="graphnet.train"):
        out, _ = fit(dataclasses.replace(CPU, monitor="test_accuracy"))
    assert "selects the best epoch on the test split" in caplog.text
    best = max(range(12), key=lambda e: (out["history"][e]["test_accuracy"], -e))  # first maximum
    assert out["best_epoch"] == best and out["monitor"] == "test_accuracy"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphnet.train"):
        fit(CPU)
    assert "test split" not in caplog.text


def test_plateau_schedule_follows_the_monitor():
    # val accuracy never improves after epoch 0: with lr_step=1 the lr halves after 2 bad evaluations
    cfg = dataclasses.replace(CPU, lr=0.1, epochs=6, scheduler="plateau", lr_step=1, lr_gamma=0.5)
    out, _ = fit(cfg, task=ScriptedTask([0.5] * 7))
    assert [h["lr"] for h in out["history"]] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])


def test_gradient_clipping_bounds_the_update():
    cfg = dataclasses.replace(CPU, optimizer="sgd", momentum=0.0, lr=1.0, epochs=1)
    seed_everything(0)
    task = FakeTask(batch_size=100)
    for clip, check in ((1e-3, lambda d: d == pytest.approx(1e-3, rel=1e-4)), (0.0, lambda d: d > 1e-2)):
        seed_everything(0)
        model, g = task.setup(make_graph(), "tiny", {}, 0)
        before = torch.cat([p.detach().clone().reshape(-1) for p in model.parameters()])
        Trainer(dataclasses.replace(cfg, grad_clip=clip), progress=False).fit(model, task, g)
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        # one SGD step of lr 1: the update is the (clipped) gradient; the best epoch is that step
        assert check(float((after - before).norm()))


def test_bad_monitor_and_devices():
    with pytest.raises(ConfigError, match="val_nope.*available: val_accuracy, val_loss"):
        fit(dataclasses.replace(CPU, monitor="val_nope"))
    with pytest.raises(ConfigError, match="expected '<split>_<metric>'"):
        fit(dataclasses.replace(CPU, monitor="accuracy"))
    g = make_graph()
    g = g.replace(splits={k: v for k, v in g.splits.items() if k != "val"})
    with pytest.raises(ConfigError, match="no 'val' split"):
        fit(CPU, graph=g)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no such CUDA device"):
            fit(dataclasses.replace(CPU, device="cuda:1"))
        with pytest.raises(ConfigError, match="fp16.*CUDA"):
            fit(dataclasses.replace(CPU, amp="fp16"))
        out, _ = fit(dataclasses.replace(CPU, device="auto", epochs=1))
        assert out["device"] == "cpu"


def test_bf16_autocast_on_cpu():
    out, _ = fit(dataclasses.replace(CPU, amp="bf16", epochs=3))
    assert out["amp"] == "bf16" and all(np.isfinite(h["loss"]) for h in out["history"])
    ref, _ = fit(dataclasses.replace(CPU, epochs=3))
    assert out["history"][0]["loss"] != ref["history"][0]["loss"]  # really ran in reduced precision
    assert out["history"][0]["loss"] == pytest.approx(ref["history"][0]["loss"], rel=0.05)


class SparseTask(FakeTask):
    """Uses DGL's SpMM, which has no bf16 CPU kernel in DGL 2.1."""

    def loss(self, model, graph, batch):
        import dgl.sparse as dglsp

        H = dglsp.spmm(graph.A, model(graph.A, graph.X))
        return F.cross_entropy(H[batch], graph.y[batch])


def test_bf16_falls_back_to_float32_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="graphnet.train"):
        out, _ = fit(dataclasses.replace(CPU, amp="bf16", epochs=2), task=SparseTask())
    assert out["amp"] == "off" and "training in float32" in caplog.text
    ref, _ = fit(dataclasses.replace(CPU, epochs=2), task=SparseTask())
    assert no_times(out["history"]) == no_times(ref["history"])  # the failed bf16 step left no trace


def test_progress_off_without_tty(capsys):
    trainer = Trainer(CPU)
    assert trainer.progress is False  # pytest's stderr is not a terminal
    fit(dataclasses.replace(CPU, epochs=2))
    assert capsys.readouterr().err == ""


def test_nan_metric_never_becomes_the_best():
    task = ScriptedTask([float("nan"), 0.2, float("nan"), 0.1, 0.3])
    out, _ = fit(dataclasses.replace(CPU, epochs=4), task=task)
    assert out["best_epoch"] == 1


def test_also_monitor_follows_the_gat_rule_by_hand():
    """GAT (Velickovic et al. 2018, execute_cora.py): keep the weights when val accuracy >= its best AND
    val loss <= its best; restart patience when either holds; each best moves on its own."""
    trainer = Trainer(dataclasses.replace(CPU, also_monitor="val_loss"))
    s = {"best_value": None, "also_best": None}
    seq = [(0.5, 1.0), (0.6, 1.1), (0.6, 0.9), (0.55, 0.95), (0.7, 0.8), (0.65, 0.85)]
    out = []
    for acc, loss in seq:
        keep, improved = trainer._select({"val_accuracy": acc, "val_loss": loss}, "val_accuracy", True, s)
        if keep:
            s["best_value"] = acc  # what fit() does on keep
        out.append((keep, improved))
    assert out == [(True, True), (False, True), (True, True), (False, False), (True, True), (False, False)]
    assert s == {"best_value": 0.7, "also_best": 0.8}
    # one monitor: strict improvement for both decisions
    plain = Trainer(CPU)
    assert plain._select({"val_accuracy": 0.5}, "val_accuracy", True, {"best_value": 0.5}) == (False, False)
    with pytest.raises(ConfigError, match=r"train.also_monitor='val_loss' is not a metric .* val_accuracy"):
        trainer._select({"val_accuracy": 0.5, "loss": 1.0}, "val_accuracy", True, s)


def test_also_monitor_in_fit_keeps_and_stops_by_the_rule():
    out, _ = fit(dataclasses.replace(CPU, epochs=80, lr=0.2, also_monitor="val_loss", patience=5))
    h = out["history"]
    # replay the rule on the recorded metrics
    best_acc, best_loss, keep, last = -1.0, float("inf"), -1, -1
    for r in h:
        ok1, ok2 = r["val_accuracy"] >= best_acc, r["val_loss"] <= best_loss
        if ok1 and ok2:
            keep = r["epoch"]
        if ok1 or ok2:
            last = r["epoch"]
        best_acc, best_loss = max(best_acc, r["val_accuracy"]), min(best_loss, r["val_loss"])
    assert out["best_epoch"] == keep
    if out["stopped_early"]:
        assert out["epochs_run"] == last + 5 + 1
    else:
        assert out["epochs_run"] == 80 and h[-1]["epoch"] - last < 5


class RecordingTask(ScriptedTask):
    """ScriptedTask that also records the live weights at every training step (before the update)."""

    def __init__(self, script: list[float]):
        super().__init__(script)
        self.live = []

    def loss(self, model, graph, batch):
        self.live.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return super().loss(model, graph, batch)


def test_ema_evaluates_the_tensorflow_moving_average_by_hand():
    """One full-batch step per epoch: after step t the evaluated weights must be
    avg_t = c_t avg_{t-1} + (1 - c_t) p_t, c_t = min(d, (1 + t) / (10 + t)), avg_0 = the initial weights."""
    d, epochs = 0.9, 8
    task = RecordingTask([0.1, 0.2, 0.9, 0.3, 0.4, 0.5, 0.6, 0.7, 0.0])  # + the final val evaluation
    out, model = fit(dataclasses.replace(CPU, epochs=epochs, ema_decay=d), task=task)
    avg = {n: v.double() for n, v in task.live[0].items()}  # step t's live weights are task.live[t]
    for t in range(1, epochs):  # the last step's weights are never seen by a loss call
        c = min(d, (1 + t) / (10 + t))
        assert c == (d if t >= 71 else (1 + t) / (10 + t))
        avg = {n: c * avg[n] + (1 - c) * task.live[t][n].double() for n in avg}
        for n, v in avg.items():
            torch.testing.assert_close(task.seen[t - 1][n].double(), v, rtol=1e-6, atol=1e-7)
        assert not torch.equal(task.seen[t - 1]["lin1.weight"], task.live[t]["lin1.weight"])
    # the reported weights are the average kept at the best epoch (script peak, epoch 2)
    assert out["best_epoch"] == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, task.seen[2][k])


def test_ema_never_changes_the_training_trajectory():
    plain, _ = fit(dataclasses.replace(CPU, epochs=6))
    averaged, _ = fit(dataclasses.replace(CPU, epochs=6, ema_decay=0.99))
    assert [h["loss"] for h in averaged["history"]] == [h["loss"] for h in plain["history"]]
    assert averaged["metrics"] != plain["metrics"]  # evaluated at other weights


def test_resume_with_ema_is_bit_identical(tmp_path):
    cfg = dataclasses.replace(CPU, checkpoint_every=3, ema_decay=0.8)
    ref, ref_model = fit(cfg, checkpoint=tmp_path / "ref.pt")
    ck = tmp_path / "ck.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, task=FakeTask(kill_at=7), checkpoint=ck)
    assert torch.load(ck, weights_only=True)["state"]["ema_steps"] == 6 * 3  # 6 epochs of 3 batches
    out, model = fit(cfg, checkpoint=ck, resume=True)
    assert no_times(out["history"]) == no_times(ref["history"]) and out["metrics"] == ref["metrics"]
    for k, v in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan")])
def test_ema_decay_outside_zero_one_is_rejected(bad):
    with pytest.raises(ConfigError, match=r"train.ema_decay' must be in \[0, 1\)"):
        TrainConfig(ema_decay=bad)


def test_tracked_test_split_is_logged_but_never_changes_the_run():
    """train.track = ["test"] adds test metrics to every evaluation record (the OGB examples' per-epoch log)
    and nothing else: same losses, same selected epoch, same final metrics; values equal a direct evaluation
    of the weights seen at that epoch."""
    cfg = dataclasses.replace(CPU, epochs=10, eval_every=2, patience=4)
    plain, _ = fit(cfg)
    task = ScriptedTask([0.3, 0.5, 0.4, 0.6, 0.2, 0.1])  # + the final val evaluation
    tracked, model = fit(dataclasses.replace(cfg, track=("test",)), task=task)
    evals = [h for h in tracked["history"] if "val_accuracy" in h]
    assert all("test_accuracy" in h and "test_loss" in h for h in evals)
    assert all("test_accuracy" not in h for h in tracked["history"] if "val_accuracy" not in h)
    for h, weights in zip(evals, task.seen[:-1], strict=True):  # (seen[-1]: the final val evaluation)
        model.load_state_dict(weights)
        direct = FakeTask().evaluate(model.eval(), make_graph(), "test")
        assert direct["loss"] == pytest.approx(h["test_loss"])
    # the tracked run equals the untracked one (ScriptedTask only rewrites val accuracy; rerun FakeTask)
    again, _ = fit(dataclasses.replace(cfg, track=("test",)))
    strip = [{k: v for k, v in h.items() if not k.startswith("test_")} for h in no_times(again["history"])]
    assert strip == no_times(plain["history"])
    assert again["metrics"] == plain["metrics"] and again["best_epoch"] == plain["best_epoch"]


class RandomEvalTask(FakeTask):
    """A task whose evaluation draws from every global RNG (like sampled evaluation negatives)."""

    def evaluate(self, model, graph, split):
        torch.rand(3), np.random.rand(), random.random()
        return super().evaluate(model, graph, split)


def test_tracking_restores_the_rng_so_a_random_evaluation_cannot_change_training():
    cfg = dataclasses.replace(CPU, epochs=6, eval_every=1)
    plain, _ = fit(cfg, task=RandomEvalTask())
    tracked, _ = fit(dataclasses.replace(cfg, track=("test", "train")), task=RandomEvalTask())
    assert [h["loss"] for h in tracked["history"]] == [h["loss"] for h in plain["history"]]
    assert "train_accuracy" in tracked["history"][0] and tracked["metrics"] == plain["metrics"]


def test_track_and_also_monitor_errors():
    with pytest.raises(ConfigError, match=r"train.track' expects distinct splits .* got \['tset'\]"):
        TrainConfig(track=["tset"])
    with pytest.raises(ConfigError, match="train.track' expects distinct"):
        TrainConfig(track=["test", "test"])
    assert TrainConfig(track=["test"]).track == ("test",)
    with pytest.raises(ConfigError, match=r"train.also_monitor='test_loss': must be a metric of the "
                                          r"monitored split 'val'"):
        fit(dataclasses.replace(CPU, also_monitor="test_loss", track=("test",)))
    g = make_graph()
    g = g.replace(splits={k: v for k, v in g.splits.items() if k != "test"})
    with pytest.raises(ConfigError, match=r"train.track: the graph has no 'test' split"):
        fit(dataclasses.replace(CPU, track=("test",)), graph=g)
