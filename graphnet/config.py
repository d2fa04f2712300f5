"""Experiment configs: TOML -> frozen dataclasses, validated at load time.

A config file has four sections and three top-level keys; every key but the three names has a default::

    name = "cora_gcn"        # default: the file's stem
    seed = 0                 # seed of the first run; run k uses seed + k (all in [0, 2**31 - 1])
    seeds = 1                # number of seeds (CLI: --seeds N)
    [data]   name = "cora"   # + loader options (datasets/<name>.toml [options])
    [model]  name = "gcn"    # + keyword arguments of the model's constructor (graphnet.nn.MODELS)
    [task]   name = "node"   # + keyword arguments of the task's constructor (graphnet.tasks.TASKS)
    [train]  epochs = 200    # TrainConfig fields; defaults = TrainConfig < MODEL_DEFAULTS[model.name] < file
    [sweep]  "train.lr" = [0.01, 0.005]   # optional grid: every combination becomes one run

``load_config(path, overrides)`` applies ``--set section.key=value`` overrides (values parsed as TOML
literals, else taken as strings) to the raw TOML *before* validation, so an override is checked exactly
like a key in the file. An unknown key or a value of the wrong type raises ConfigError naming the key
and listing the valid ones. Model and task keyword arguments are checked against the constructor's
signature; data options against the dataset card. A key is either set (file or --set) or swept: one
in both raises ConfigError (change the swept values with ``--set 'sweep.train.lr=[0.1, 0.2]'``).

This module imports neither torch nor dgl at import time (``graphnet list`` reads MODEL_DEFAULTS).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import itertools
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphnet.errors import ConfigError

# ----------------------------------------------------------------------------------- defaults tables
# The optimisation protocol of each model's paper (architecture defaults, e.g. GCN's hidden=16 and
# dropout=0.5 or GAT's 8 heads x 8 hidden, are the keyword defaults of the model constructors in
# graphnet/nn). Keys not listed fall back to the TrainConfig defaults. patience=0: no early stopping, the
# best epoch on the monitored metric is still kept. Where a paper tunes per dataset, the row holds its
# setting for the datasets used in experiments/configs and the note says so.
MODEL_DEFAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    # Kipf & Welling 2017 (Planetoid): Adam lr 0.01, L2 5e-4, 200 epochs; the paper's window-10 stop on
    # val loss is replaced by keeping the best val epoch of the 200 (as the DGL/PyG examples do).
    "gcn": ("Kipf & Welling, ICLR 2017", {"lr": 0.01, "weight_decay": 5e-4, "epochs": 200}),
    # The MLP's hidden default is 64 (a dense baseline for any task); Kipf & Welling's used 16.
    "mlp": ("MLP, trained like Kipf & Welling's baseline (ICLR 2017; theirs: model.hidden_dim = 16)",
            {"lr": 0.01, "weight_decay": 5e-4, "epochs": 200}),
    "cheb": ("Defferrard et al., NeurIPS 2016 (Planetoid protocol of Kipf & Welling 2017)",
             {"lr": 0.01, "weight_decay": 5e-4, "epochs": 200}),
    # Wu et al.'s code tests the model after the last epoch; the Trainer keeps the best-val epoch unless
    # train.eval_every = train.epochs (as experiments/reproduce/*_sgc.toml set).
    "sgc": ("Wu et al., ICML 2019 (theirs tests the last epoch: train.eval_every = train.epochs)",
            {"lr": 0.2, "weight_decay": 5e-6, "epochs": 100}),
    # The paper has no Planetoid protocol; these are the DGL/PyG Planetoid example settings.
    "sage": ("Hamilton et al., NeurIPS 2017", {"lr": 0.01, "weight_decay": 5e-4, "epochs": 200}),
    "gat": ("Velickovic et al., ICLR 2018",
            {"lr": 0.005, "weight_decay": 5e-4, "epochs": 100_000, "patience": 100}),
    "appnp": ("Klicpera et al., ICLR 2019",
              {"lr": 0.01, "weight_decay": 5e-3, "epochs": 10_000, "patience": 100}),
    "gin": ("Xu et al., ICLR 2019",
            {"lr": 0.01, "weight_decay": 0.0, "epochs": 350, "scheduler": "step", "lr_step": 50,
             "lr_gamma": 0.5}),
    "edgefeat": ("edge-feature GCN (GCN protocol)", {"lr": 0.01, "weight_decay": 5e-4, "epochs": 200}),
    "rgcn": ("Schlichtkrull et al., ESWC 2018", {"lr": 0.01, "weight_decay": 0.0, "epochs": 500}),
    # Embedding regularisation of LightGCN/MF-BPR (lambda 1e-4) is part of the rec task's loss, not Adam's L2.
    "lightgcn": ("He et al., SIGIR 2020",
                 {"lr": 0.001, "weight_decay": 0.0, "epochs": 1000, "eval_every": 10}),
    "mf": ("Rendle et al., UAI 2009 (MF-BPR as run by He et al. 2020)",
           {"lr": 0.001, "weight_decay": 0.0, "epochs": 1000, "eval_every": 10}),
    # Dettmers et al. 2018 (ConvE repo) protocol for DistMult/ComplEx: Adam lr 0.003, decay 0.995/epoch.
    "distmult": ("Yang et al., ICLR 2015 (protocol of Dettmers et al., AAAI 2018)",
                 {"lr": 0.003, "weight_decay": 0.0, "epochs": 1000, "scheduler": "step", "lr_step": 1,
                  "lr_gamma": 0.995}),
    "complex": ("Trouillon et al., ICML 2016 (protocol of Dettmers et al., AAAI 2018)",
                {"lr": 0.003, "weight_decay": 0.0, "epochs": 1000, "scheduler": "step", "lr_step": 1,
                 "lr_gamma": 0.995}),
    # RotatE trains 80k-150k steps at lr 5e-5..1e-4 on large KGs; on small KGs we use Adam lr 1e-3.
    "rotate": ("Sun et al., ICLR 2019", {"lr": 0.001, "weight_decay": 0.0, "epochs": 1000}),
    "gcmc": ("van den Berg et al., 2017 (ml-100k: 1000 full-batch epochs, lr 0.01)",
             {"lr": 0.01, "weight_decay": 0.0, "epochs": 1000}),
}

TASK_NAMES: dict[str, str] = {
    "node": "node classification (accuracy)",
    "link": "link prediction (ROC-AUC, AP, Hits@K, MRR; OGB protocol where it applies)",
    "kg": "knowledge-graph completion (filtered head+tail ranks: MRR, MR, Hits@1/3/10)",
    "rec": "top-K recommendation, full-sort with training items masked (Recall/NDCG/Precision/HitRate@K)",
    "rating": "rating prediction (RMSE, MAE)",
}

SPLITS = ("train", "val", "test")  # the splits a train.monitor or train.track may name

_CHOICES = {
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("none", "step", "cosine", "plateau"),
    "mode": ("auto", "max", "min"),
    "amp": ("off", "bf16", "fp16"),
}
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


# ------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings read by graphnet.train.Trainer (see MODEL_DEFAULTS for per-model values).

    Attributes:
        epochs: maximum number of epochs.
        lr, weight_decay: optimizer settings (weight decay is L2 for adam/sgd, decoupled for adamw).
        optimizer: adam | adamw | sgd; momentum: sgd momentum.
        scheduler: none | step (lr *= lr_gamma every lr_step epochs) | cosine (to 0 over ``epochs``) |
            plateau (torch's ReduceLROnPlateau with patience = lr_step: lr *= lr_gamma at the
            (lr_step + 1)-th evaluation in a row without improvement of ``monitor`` by its default
            relative threshold 1e-4).
        grad_clip: max global L2 norm of the gradients; 0 = off.
        monitor: metric key that picks the best epoch and drives early stopping; "" = the task's default.
        mode: max | min | auto (the task's direction for its default monitor; else min for keys ending
            in loss/rmse/mae/_mr, max otherwise).
        patience: stop after this many epochs without improvement of ``monitor``; 0 = never stop early.
            Judged at evaluations only: with ``eval_every`` > 1 the run stops at the first evaluation at
            least ``patience`` epochs after the last improvement (or after epoch -1 if none improved).
        also_monitor: a second metric, e.g. "val_loss" with monitor "val_accuracy" (the GAT paper's rule,
            Velickovic et al. 2018): the best weights are kept when both metrics are at least as good as
            their best so far, and patience restarts when either improves; "" = off.
        eval_every: evaluate the monitored split every this many epochs (and after the last epoch).
        checkpoint_every: write a resumable checkpoint every this many epochs; 0 = never.
        device: auto | cpu | cuda | cuda:<i>.
        amp: off | bf16 | fp16 autocast (fp16 needs CUDA and uses a GradScaler).
        ema_decay: Polyak averaging; 0 = off. With d > 0 the trainer keeps an exponential moving average of
            the trainable parameters, updated after every optimizer step t = 1, 2, ...:
            avg = c avg + (1 - c) param with c = min(d, (1 + t) / (10 + t)) (TensorFlow's
            ExponentialMovingAverage with num_updates, as GC-MC uses with d = 0.995), starting from the
            initial weights. Evaluation, epoch selection and the reported metrics then use the averaged
            weights; training steps use the live ones.
        track: splits also evaluated at every evaluation and logged in the history, e.g. ["test"] for the
            per-epoch test curve the OGB examples print. Never read by epoch selection or early stopping,
            and the RNG states are restored around these evaluations, so a run is the same with or
            without them (only the history gains keys).
    """

    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    scheduler: str = "none"
    lr_step: int = 50
    lr_gamma: float = 0.5
    grad_clip: float = 0.0
    monitor: str = ""
    mode: str = "auto"
    patience: int = 0
    also_monitor: str = ""
    eval_every: int = 1
    checkpoint_every: int = 10
    device: str = "auto"
    amp: str = "off"
    ema_decay: float = 0.0
    track: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_train(self, "train")
        object.__setattr__(self, "track", tuple(self.track))  # TOML gives a list; keep the config hashable


@dataclass(frozen=True)
class Section:
    """A registry name plus the explicit keyword arguments passed to what it names (not to be mutated)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.kwargs}


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment: what to load, build and train, and how many seeds to run.

    ``sweep`` maps dotted keys ("train.lr") to lists of values; ``expand_sweep`` turns it into configs.
    A sweep starts from the config *as written* (``sweep_base``), so a swept ``model.name`` brings its
    own paper defaults while the keys the file sets stay set; ``to_dict`` of a sweep therefore returns
    the written config plus [sweep] (each grid point's own config is fully resolved).
    """

    data: Section
    model: Section
    task: Section
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""
    seed: int = 0
    seeds: int = 1
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    sweep_base: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain TOML-able data (what config.toml and results.json hold)."""
        if self.sweep:
            return {**self.written_sweep_base(), "sweep": dict(self.sweep)}
        return {"name": self.name, "seed": self.seed, "seeds": self.seeds, "data": self.data.to_dict(),
                "model": self.model.to_dict(), "task": self.task.to_dict(),
                "train": {k: list(v) if isinstance(v, tuple) else v  # (track) as TOML/JSON read it back
                          for k, v in dataclasses.asdict(self.train).items()}}

    def written_sweep_base(self) -> dict[str, Any]:
        """A sweep's config as written, with this config's seed, seeds and train.device.

        The runner changes those three after loading (``--seeds``, ``--device``); the grid points, the
        stored config.toml and a later ``--resume`` must all see the changed values, not the file's.
        """
        raw = copy.deepcopy(self.sweep_base)
        raw["seed"], raw["seeds"] = self.seed, self.seeds
        raw["train"] = {**raw.get("train", {}), "device": self.train.device}
        if "seed" in self.sweep:  # set by each point; from_dict refuses a key both set and swept
            del raw["seed"]
        if "train.device" in self.sweep:
            del raw["train"]["device"]
        return raw


_TOP = ("name", "seed", "seeds", "data", "model", "task", "train", "sweep")
_NAMES = ("data.name", "model.name", "task.name")
MAX_SEED = 2**31 - 1  # the largest seed seed_everything accepts: dgl.seed(s) needs a C int


# --------------------------------------------------------------------------------------- loading
def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read a TOML config, apply ``section.key=value`` overrides, validate, and fill in the defaults."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    raw = apply_overrides(raw, overrides)
    # from_dict refuses every other key both set and swept; it exempts the section names (a file must name
    # them), so only here, where --set is still told apart from the file, is --set model.name=... refused.
    swept = flatten(raw["sweep"]) if isinstance(raw.get("sweep"), dict) else {}
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in _NAMES and key in swept:
            raise _swept_and_set(key, str(path))
    raw.setdefault("name", path.stem)
    return from_dict(raw, source=str(path))


def _swept_and_set(key: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: key {key!r} is both set (in the file or by --set) and swept in [sweep], "
                       f"whose values would replace it; remove one, or change the swept values with "
                       f"--set 'sweep.{key}=[...]'")


def parse_value(text: str) -> Any:
    """A TOML literal (``1e-3``, ``true``, ``[16, 32]``, ``"x"``), else the text itself as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``a.b=value`` set (``seed=3`` sets a top-level key)."""
    raw = copy.deepcopy(raw)  # deep copy of plain TOML data
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected section.key=value (e.g. train.lr=0.005)")
        node = raw
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
        node[parts[-1]] = parse_value(text.strip())
    return raw


def from_dict(raw: Mapping[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate plain config data (as read from TOML) and build the ExperimentConfig."""
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; valid keys: {', '.join(_TOP)}")
    for sec in ("data", "model", "task", "train", "sweep"):
        if not isinstance(raw.get(sec, {}), dict):
            raise ConfigError(f"{source}: [{sec}] must be a table (section), got {raw[sec]!r}")
    top = {}
    for key, kind, default in (("seed", int, 0), ("seeds", int, 1), ("name", str, "")):
        value = raw.get(key, default)
        if not _matches(value, kind):
            raise ConfigError(f"{source}: key {key!r} expects {kind.__name__}, got {value!r}")
        top[key] = value
    if top["seeds"] < 1:
        raise ConfigError(f"{source}: key 'seeds' must be >= 1, got {top['seeds']}")
    check_seed_range(top["seed"], top["seeds"], source)

    data = _section(raw, "data", source, sorted(_dataset_names()))
    model = _section(raw, "model", source, sorted(MODEL_DEFAULTS))
    task = _section(raw, "task", source, sorted(TASK_NAMES))
    _check_data_options(data, source)
    model = Section(model.name, _check_kwargs(
        f"model {model.name!r}", "model", _lookup("model", model.name, source), model.kwargs, source,
        skip=("in_dim", "out_dim")))
    task = Section(task.name, _check_kwargs(
        f"task {task.name!r}", "task", _lookup("task", task.name, source), task.kwargs, source, skip=()))

    train_raw = {**MODEL_DEFAULTS[model.name][1], **raw.get("train", {})}
    valid = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in train_raw:
        if key not in valid:
            raise ConfigError(f"{source}: unknown key 'train.{key}'; valid keys in [train]: "
                              f"{', '.join(valid)}")
    hints = typing.get_type_hints(TrainConfig)
    train_raw = {k: float(v) if hints[k] is float and _matches(v, float) else v for k, v in train_raw.items()}
    try:
        train = TrainConfig(**train_raw)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None

    name = top["name"] or f"{data.name}_{model.name}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        raise ConfigError(f"{source}: key 'name' must be a plain file name (letters, digits, . _ + -), "
                          f"got {name!r}")
    sweep = flatten(raw.get("sweep", {}))
    base = {**{k: v for k, v in raw.items() if k != "sweep"}, "name": name, "seed": top["seed"],
            "seeds": top["seeds"]} if sweep else {}
    cfg = ExperimentConfig(data=data, model=model, task=task, train=train, name=name, seed=top["seed"],
                           seeds=top["seeds"], sweep=sweep, sweep_base=copy.deepcopy(base))
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: [sweep] key {key!r} must be a non-empty list of values, "
                              f"got {values!r}")
        if key.split(".")[0] not in ("data", "model", "task", "train", "seed"):
            raise ConfigError(f"{source}: [sweep] key {key!r} must start with data., model., task. or "
                              f"train. (or be 'seed')")
    # A swept key set in the file or by --set would be replaced by the sweep's values without a word.
    # The three section names are exempt: the config must name them, and a sweep may run several.
    written = flatten({k: v for k, v in raw.items() if k != "sweep"})
    for key in sorted(set(sweep) - set(_NAMES)):
        if any(w == key or w.startswith(key + ".") for w in written):
            raise _swept_and_set(key, source)
    if sweep:
        expand_sweep(cfg, source)  # validates every grid point now, not halfway through a sweep
    return cfg


def check_seed_range(seed: int, seeds: int, source: str = "config") -> None:
    """The seeds run, seed .. seed + seeds - 1, must all lie in [0, MAX_SEED]; ConfigError otherwise."""
    if seed < 0 or seed + seeds - 1 > MAX_SEED:
        raise ConfigError(f"{source}: key 'seed' must be >= 0 with seed + seeds - 1 <= {MAX_SEED} (dgl.seed "
                          f"takes a 32-bit int), got seed = {seed}, seeds = {seeds}")


def expand_sweep(cfg: ExperimentConfig,
                 source: str = "config") -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """Every point of the [sweep] grid as (its settings, its validated config); [] without a sweep.

    Points are ordered by ``itertools.product`` over the sweep keys in sorted order.
    """
    if not cfg.sweep:
        return []
    keys = sorted(cfg.sweep)
    points = []
    for values in itertools.product(*(cfg.sweep[k] for k in keys)):
        settings = dict(zip(keys, values, strict=True))
        raw = cfg.written_sweep_base()  # with --seeds / --device applied to every point
        for key, value in settings.items():
            node = raw
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        points.append((settings, from_dict(raw, source=f"{source} [sweep] {settings}")))
    return points


# ------------------------------------------------------------------------------------- validation
def _section(raw: Mapping[str, Any], sec: str, source: str, valid_names: list[str]) -> Section:
    body = dict(raw.get(sec, {}))
    name = body.pop("name", None)
    if name is None:
        raise ConfigError(f"{source}: [{sec}] needs key 'name'; valid names: {', '.join(valid_names)}")
    if not isinstance(name, str) or (sec != "data" and name not in valid_names):
        raise ConfigError(f"{source}: unknown {sec}.name {name!r}; valid names: {', '.join(valid_names)}")
    return Section(name, body)


def _dataset_names() -> list[str]:
    from graphnet import data

    return data.list_datasets() + sorted(data.GENERIC)


def _check_data_options(data: Section, source: str) -> None:
    from graphnet import data as gdata
    from graphnet.errors import DataError

    if data.name in gdata.GENERIC:  # a user's own file: check the keys against the loader's signature
        if "path" not in data.kwargs:
            raise ConfigError(f"{source}: [data] name = {data.name!r} reads your own file and needs key "
                              f"'path'")
        # GENERIC holds lazy wrappers named "<module>.<function>" (graphnet.data imports loaders on use)
        module, _, func = getattr(gdata.GENERIC[data.name], "__qualname__", "").partition(".")
        target = getattr(importlib.import_module(f"graphnet.data.{module}"), func, None) if func else None
        if target is not None:
            _check_kwargs(f"data loader {data.name!r}", "data", target, data.kwargs, source, skip=(),
                          required_ok=True)
        return
    if data.name not in gdata.list_datasets():
        raise ConfigError(f"{source}: unknown data.name {data.name!r}; valid names: "
                          f"{', '.join(_dataset_names())}")
    try:
        gdata.resolve_options(gdata.load_card(data.name), data.kwargs)
    except DataError as e:
        raise ConfigError(f"{source}: [data] {e}") from None


def registry(kind: str) -> Mapping[str, Any]:
    """graphnet.nn.MODELS or graphnet.tasks.TASKS (imported here, not at module import: torch and dgl)."""
    if kind == "task":
        from graphnet.tasks import TASKS

        return TASKS
    from graphnet.nn import MODELS

    return MODELS


def _lookup(kind: str, name: str, source: str) -> Any:
    reg = registry(kind)
    if name not in reg:
        raise ConfigError(f"{source}: unknown {kind}.name {name!r}; valid names: {', '.join(sorted(reg))}")
    return reg[name]


def _check_kwargs(what: str, sec: str, target: Any, kwargs: dict[str, Any], source: str,
                  skip: tuple[str, ...], required_ok: bool = False) -> dict[str, Any]:
    """Check ``kwargs`` against ``target``'s signature: names, and types where annotated or defaulted.

    Parameters without a default are not config keys (the caller supplies them) unless ``required_ok``.
    """
    params = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    # Parameters without a default (in_dim, num_nodes, num_relations, ...) are data-dependent: the task
    # passes them. Every other parameter is a config key.
    valid = [n for n, p in params.items() if n not in skip and (required_ok or p.default is not p.empty)
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    out = {}
    for key, value in kwargs.items():
        if key not in valid:
            raise ConfigError(f"{source}: unknown key '{sec}.{key}' for {what}; valid keys: "
                              f"{', '.join(valid) or '(none)'}")
        default = params[key].default
        hint = hints.get(key, type(default) if default not in (inspect.Parameter.empty, None) else Any)
        if not _matches(value, hint):
            raise ConfigError(f"{source}: key '{sec}.{key}' for {what} expects {_hint_name(hint)}, "
                              f"got {value!r}")
        out[key] = float(value) if hint is float else value
    return out


def _matches(value: Any, hint: Any) -> bool:
    """isinstance for TOML values against a type hint (int accepted for float, bool never for int)."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:
        hint = origin
    if inspect.isclass(hint) and issubclass(hint, Mapping):
        return isinstance(value, dict)
    if hint in (list, tuple) or (inspect.isclass(hint) and issubclass(hint, Iterable) and hint is not str):
        return isinstance(value, list | tuple)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if inspect.isclass(hint) else True


def _hint_name(hint: Any) -> str:
    return hint.__name__ if inspect.isclass(hint) else str(hint).replace("typing.", "")


def _check_train(t: TrainConfig, sec: str) -> None:
    for key, hint in typing.get_type_hints(TrainConfig).items():
        if not _matches(getattr(t, key), hint):
            raise ConfigError(f"key '{sec}.{key}' expects {hint.__name__}, got {getattr(t, key)!r}")
    for key, choices in _CHOICES.items():
        if getattr(t, key) not in choices:
            raise ConfigError(f"key '{sec}.{key}' must be one of {', '.join(choices)}, "
                              f"got {getattr(t, key)!r}")
    if not _DEVICE.match(t.device):
        raise ConfigError(f"key '{sec}.device' must be auto, cpu, cuda or cuda:<index>, got {t.device!r}")
    for key in ("epochs", "eval_every", "lr_step"):
        if getattr(t, key) < 1:
            raise ConfigError(f"key '{sec}.{key}' must be >= 1, got {getattr(t, key)}")
    for key in ("patience", "checkpoint_every", "weight_decay", "grad_clip", "momentum"):
        if not getattr(t, key) >= 0 or not math.isfinite(getattr(t, key)):  # catches nan too
            raise ConfigError(f"key '{sec}.{key}' must be a finite number >= 0, got {getattr(t, key)}")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise ConfigError(f"key '{sec}.lr' must be a positive number, got {t.lr}")
    if not 0 < t.lr_gamma <= 1:
        raise ConfigError(f"key '{sec}.lr_gamma' must be in (0, 1], got {t.lr_gamma}")
    bad = [x for x in t.track if x not in SPLITS]
    if bad or len(set(t.track)) != len(t.track):
        raise ConfigError(f"key '{sec}.track' expects distinct splits among train, val, test, "
                          f"got {list(t.track)}")
    if not 0 <= t.ema_decay < 1:
        raise ConfigError(f"key '{sec}.ema_decay' must be in [0, 1) (0 = off), got {t.ema_decay}")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": [..]}} and {"train.lr": [..]} both -> {"train.lr": [..]}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ------------------------------------------------------------------------------------ TOML writing
def dump_toml(d: Mapping[str, Any]) -> str:
    """Write a resolved config (scalars, lists, one level of tables) as TOML that load_config reads back."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]"] + [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _value(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")
