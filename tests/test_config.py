"""Config loading: defaults from the paper table, unknown keys and bad types named, overrides before
validation, sweeps, TOML round trip, and every shipped config valid against the real registries."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from graphnet.config import (
    MODEL_DEFAULTS,
    TASK_NAMES,
    ExperimentConfig,
    TrainConfig,
    apply_overrides,
    dump_toml,
    expand_sweep,
    from_dict,
    load_config,
    parse_value,
    registry,
)
from graphnet.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.toml"))
FOUR_LINES = 'data.name = "cora"\nmodel.name = "gcn"\ntask.name = "node"\ntrain.epochs = 200\n'


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def raw(**train) -> dict:
    d = {"data": {"name": "cora"}, "model": {"name": "gcn"}, "task": {"name": "node"}}
    if train:
        d["train"] = train
    return d


def test_four_line_config_runs_the_paper_protocol(tmp_path):
    cfg = load_config(write(tmp_path, FOUR_LINES, "cora_gcn.toml"))
    assert isinstance(cfg, ExperimentConfig) and cfg.name == "cora_gcn" and cfg.seed == 0 and cfg.seeds == 1
    assert (cfg.data.name, cfg.model.name, cfg.task.name) == ("cora", "gcn", "node")
    assert cfg.data.kwargs == cfg.model.kwargs == cfg.task.kwargs == {}
    t = cfg.train  # Kipf & Welling 2017
    assert (t.lr, t.weight_decay, t.epochs, t.optimizer, t.patience) == (0.01, 5e-4, 200, "adam", 0)
    # architecture defaults come from the model constructor: hidden 16, dropout 0.5
    import inspect

    params = inspect.signature(registry("model")["gcn"]).parameters
    assert params["hidden_dim"].default == 16 and params["dropout"].default == 0.5


def test_model_table_sets_train_defaults_and_file_wins():
    gat = from_dict({**raw(), "model": {"name": "gat"}}).train  # Velickovic et al. 2018
    assert (gat.lr, gat.weight_decay, gat.patience) == (0.005, 5e-4, 100)
    assert from_dict({**raw(lr=0.1), "model": {"name": "gat"}}).train.lr == 0.1
    kg = from_dict({**raw(), "model": {"name": "distmult"}, "task": {"name": "kg"}})
    assert kg.train.scheduler == "step" and kg.train.lr_gamma == 0.995


def test_every_train_key_has_a_default_and_names_default():
    assert TrainConfig() == TrainConfig(**{f.name: f.default for f in dataclasses.fields(TrainConfig)})
    cfg = from_dict(raw())
    assert cfg.name == "cora_gcn" and cfg.train.device == "auto" and cfg.train.amp == "off"


@pytest.mark.parametrize("section,key,listed", [
    ("train", "lrr", "valid keys in [train]: epochs, lr, weight_decay"),
    ("model", "hiden_dim", "valid keys: hidden_dim, num_layers, dropout"),
    ("task", "batchsize", "valid keys: batch_size, emb_dim"),
    ("data", "normalise", "valid options: features, normalize_features"),
])
def test_unknown_key_is_named_with_the_valid_ones(section, key, listed):
    d = raw()
    d.setdefault(section, {})[key] = 1
    with pytest.raises(ConfigError) as e:
        from_dict(d, source="exp.toml")
    assert key in str(e.value) and listed in str(e.value) and str(e.value).startswith("exp.toml")


def test_unknown_top_level_key_section_and_names():
    with pytest.raises(ConfigError, match="unknown top-level key 'traim'; valid keys: name, seed"):
        from_dict({**raw(), "traim": {}})
    with pytest.raises(ConfigError, match=r"unknown model.name 'gcnn'; valid names: appnp, cheb"):
        from_dict({**raw(), "model": {"name": "gcnn"}})
    with pytest.raises(ConfigError, match=r"unknown task.name 'nodes'; valid names: kg, link, node"):
        from_dict({**raw(), "task": {"name": "nodes"}})
    with pytest.raises(ConfigError, match=r"unknown data.name 'coraa'; valid names: .*cora"):
        from_dict({**raw(), "data": {"name": "coraa"}})
    with pytest.raises(ConfigError, match=r"\[model\] needs key 'name'; valid names: appnp"):
        from_dict({**raw(), "model": {}})
    with pytest.raises(ConfigError, match=r"\[train\] must be a table"):
        from_dict({**raw(), "train": 3})


@pytest.mark.parametrize("section,key,value,expected", [
    ("train", "epochs", "ten", "'train.epochs' expects int, got 'ten'"),
    ("train", "epochs", 2.5, "'train.epochs' expects int"),
    ("train", "lr", True, "'train.lr' expects float, got True"),
    ("train", "device", 0, "'train.device' expects str"),
    ("model", "hidden_dim", 1.5, "'model.hidden_dim' for model 'gcn' expects int, got 1.5"),
    ("model", "dropout", "half", "'model.dropout' for model 'gcn' expects float"),
    ("task", "batch_size", "all", "'task.batch_size' for task 'node' expects int | None"),
    ("data", "features", "yes", "option 'features' expects bool"),
])
def test_bad_types_are_named(section, key, value, expected):
    d = raw()
    d.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as e:
        from_dict(d)
    assert expected in str(e.value)


@pytest.mark.parametrize("key,value,expected", [
    ("optimizer", "rmsprop", "'train.optimizer' must be one of adam, adamw, sgd, got 'rmsprop'"),
    ("scheduler", "linear", "one of none, step, cosine, plateau"),
    ("amp", "fp8", "one of off, bf16, fp16"),
    ("device", "gpu", "'train.device' must be auto, cpu, cuda or cuda:<index>, got 'gpu'"),
    ("epochs", 0, "'train.epochs' must be >= 1, got 0"),
    ("patience", -1, "'train.patience' must be a finite number >= 0, got -1"),
    ("weight_decay", float("nan"), "'train.weight_decay' must be a finite number >= 0, got nan"),
    ("grad_clip", float("nan"), "'train.grad_clip' must be a finite number >= 0"),
    ("momentum", float("inf"), "'train.momentum' must be a finite number >= 0"),
    ("lr", float("nan"), "'train.lr' must be a positive number"),
    ("lr", 0, "'train.lr' must be a positive number"),
    ("lr_gamma", 1.5, "'train.lr_gamma' must be in (0, 1]"),
])
def test_bad_values_are_named(key, value, expected):
    with pytest.raises(ConfigError) as e:
        from_dict(raw(**{key: value}), source="x.toml")
    assert expected in str(e.value) and str(e.value).startswith("x.toml: ")


def test_generic_loader_keys_are_checked_against_its_signature(tmp_path):
    d = {**raw(), "data": {"name": "edgelist", "path": str(tmp_path / "e.csv"), "weightd": True}}
    with pytest.raises(ConfigError, match="unknown key 'data.weightd' for data loader 'edgelist'; "
                                          "valid keys: path, directed, weighted"):
        from_dict(d)
    d["data"] = {"name": "edgelist", "path": "e.csv", "directed": "yes"}
    with pytest.raises(ConfigError, match="'data.directed' for data loader 'edgelist' expects bool"):
        from_dict(d)
    with pytest.raises(ConfigError, match="reads your own file and needs key 'path'"):
        from_dict({**raw(), "data": {"name": "edgelist"}})
    d["data"] = {"name": "edgelist", "path": "e.csv", "directed": True, "weighted": True}
    cfg = from_dict(d)
    assert cfg.data.name == "edgelist"
    assert cfg.data.kwargs == {"path": "e.csv", "directed": True, "weighted": True}



@pytest.mark.parametrize("name, typo", [("triples", "add_inversee"), ("interactions", "sepp")])
def test_triples_and_interactions_keys_are_checked_too(name, typo):
    """These two wrappers used to take ``**options``: a typo passed the check and was a TypeError at load."""
    expected = f"unknown key 'data.{typo}' for data loader '{name}'; valid keys: "
    with pytest.raises(ConfigError, match=expected):
        from_dict({**raw(), "data": {"name": name, "path": "x", typo: True}})


def test_generic_wrappers_keep_the_defaults_of_the_loaders_they_call():
    """generic.load_triples / load_interactions spell out kg's / recsys's keyword arguments: same names and
    defaults (the file names excepted: a wrapper works them out from ``path``)."""
    import inspect

    from graphnet.data import generic, kg, recsys

    for wrapper, target, own in ((generic.load_triples, kg.load_triples, {"train", "valid", "test"}),
                                 (generic.load_interactions, recsys.load_interactions, {"path"})):
        mine = {k: p.default for k, p in inspect.signature(wrapper).parameters.items() if k != "path"}
        theirs = {k: p.default for k, p in inspect.signature(target).parameters.items()
                  if k not in ("card", "raw_dir")}
        assert set(mine) | own == set(theirs) | own
        assert {k: v for k, v in mine.items() if k not in own} == {k: v for k, v in theirs.items()
                                                                  if k not in own}

def test_int_is_accepted_for_float_and_stored_as_float():
    cfg = from_dict({**raw(lr=1, weight_decay=0), "model": {"name": "gcn", "dropout": 0}})
    assert isinstance(cfg.train.lr, float) and isinstance(cfg.train.weight_decay, float)
    assert cfg.model.kwargs == {"dropout": 0.0} and isinstance(cfg.model.kwargs["dropout"], float)


def test_data_dependent_constructor_arguments_are_not_config_keys():
    # num_nodes/num_relations have no default: the task supplies them, the config may not
    with pytest.raises(ConfigError, match="unknown key 'model.num_nodes' for model 'mf'"):
        from_dict({**raw(), "model": {"name": "mf", "num_nodes": 3}, "task": {"name": "rec"}})


@pytest.mark.parametrize("text,value", [
    ("1e-3", 0.001), ("200", 200), ("true", True), ("[16, 32]", [16, 32]), ('"cora"', "cora"),
    ("cora", "cora"), ("cuda:1", "cuda:1"), ("", ""), ("{a = 1}", {"a": 1}), ("0.5", 0.5),
])
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_overrides_are_applied_before_validation(tmp_path):
    path = write(tmp_path, FOUR_LINES)
    cfg = load_config(path, ["train.lr=1e-3", "model.hidden_dim=32", "train.device=cpu", "seed=7", "seeds=3",
                             "name=other", "data.normalize_features=true", "task.batch_size=16"])
    assert cfg.train.lr == 0.001 and cfg.model.kwargs == {"hidden_dim": 32} and cfg.train.device == "cpu"
    assert (cfg.seed, cfg.seeds, cfg.name) == (7, 3, "other")
    assert cfg.data.kwargs == {"normalize_features": True} and cfg.task.kwargs == {"batch_size": 16}
    assert load_config(path, ["model.name=gat"]).train.lr == 0.005  # the new model's paper default
    with pytest.raises(ConfigError, match="unknown key 'train.lrr'"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="'train.epochs' expects int, got 'many'"):
        load_config(path, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(path, ["train.lr"])
    with pytest.raises(ConfigError, match="data.name is a value, not a section"):
        load_config(path, ["data.name.x=1"])
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


def test_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = write(tmp_path, 'data.name = "cora"\nmodel.name = gcn\n', "bad.toml")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 2"):
        load_config(bad)


def test_sweep_expands_into_a_validated_grid(tmp_path):
    text = FOUR_LINES + '[sweep]\n"train.lr" = [0.01, 0.005]\nmodel.hidden_dim = [16, 32, 64]\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.sweep == {"train.lr": [0.01, 0.005], "model.hidden_dim": [16, 32, 64]}
    points = expand_sweep(cfg)
    assert [s for s, _ in points] == [{"model.hidden_dim": h, "train.lr": lr}
                                      for h in (16, 32, 64) for lr in (0.01, 0.005)]
    for settings, p in points:
        assert p.sweep == {} and p.train.lr == settings["train.lr"]
        assert p.model.kwargs["hidden_dim"] == settings["model.hidden_dim"] and p.name == cfg.name
    assert expand_sweep(load_config(write(tmp_path, FOUR_LINES))) == []


def test_sweep_points_take_seeds_set_after_loading(tmp_path):
    """`graphnet run sweep.toml --seeds 3` runs 3 seeds at every point (dataclasses.replace after load)."""
    cfg = load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"train.lr" = [0.01, 0.02]\n'))
    assert cfg.seeds == 1
    points = expand_sweep(dataclasses.replace(cfg, seeds=3, seed=7))
    assert [(p.seeds, p.seed) for _, p in points] == [(3, 7), (3, 7)]


def test_sweep_over_models_takes_each_models_defaults(tmp_path):
    cfg = load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"model.name" = ["gcn", "gat"]\n'))
    (_, gcn), (_, gat) = expand_sweep(cfg)
    assert (gcn.train.lr, gat.train.lr, gat.train.patience) == (0.01, 0.005, 100)
    assert gcn.train.epochs == gat.train.epochs == 200  # set in the file: kept for both


def test_bad_sweeps_fail_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'train.lrr'"):
        load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"train.lrr" = [1, 2]\n'))
    with pytest.raises(ConfigError, match=r"must be a non-empty list"):
        load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"train.lr" = 0.1\n'))
    with pytest.raises(ConfigError, match=r"'train.patience' expects int"):
        load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"train.patience" = [10, "x"]\n'))
    with pytest.raises(ConfigError, match=r"must start with data., model."):
        load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"name" = ["a", "b"]\n'))


def test_a_key_both_set_and_swept_is_refused(tmp_path):
    """The sweep's values used to replace a file key or a --set value without a word."""
    text = FOUR_LINES + '[sweep]\n"train.lr" = [0.01, 0.005]\n"model.name" = ["gcn", "gat"]\n'
    sweep = write(tmp_path, text)
    hint = r"key 'train.lr' is both set .* and swept in \[sweep\].*--set 'sweep.train.lr=\[...\]'"
    with pytest.raises(ConfigError, match=hint):
        load_config(sweep, ["train.lr=0.1"])
    in_file = write(tmp_path, FOUR_LINES + 'train.lr = 0.1\n[sweep.train]\nlr = [0.01, 0.005]\n', "b.toml")
    with pytest.raises(ConfigError, match=hint):
        load_config(in_file)
    with pytest.raises(ConfigError, match="key 'model.name' is both set"):  # the file must name a model
        load_config(sweep, ["model.name=gat"])  # but --set model.name would be replaced too
    with pytest.raises(ConfigError, match="key 'seed' is both set"):
        from_dict({**raw(), "seed": 3, "sweep": {"seed": [0, 1]}})
    # The hint works: --set sweep.KEY replaces the swept values.
    cfg = load_config(sweep, ["sweep.train.lr=[0.1, 0.2]"])
    assert sorted({p.train.lr for _, p in expand_sweep(cfg)}) == [0.1, 0.2]


def test_a_swept_seed_or_device_is_not_written_to_config_toml(tmp_path):
    """config.toml of a sweep gets the run's seed/seeds/device, except the swept ones (it must load back)."""
    cfg = from_dict({**raw(), "sweep": {"seed": [3, 4], "train.device": ["cpu", "auto"]}})
    cfg = dataclasses.replace(cfg, seeds=2)
    again = load_config(write(tmp_path, dump_toml(cfg.to_dict())))
    assert again.seeds == 2 and [(p.seed, p.train.device) for _, p in expand_sweep(again)] == [
        (3, "cpu"), (3, "auto"), (4, "cpu"), (4, "auto")]


@pytest.mark.parametrize("seed,seeds", [(-1, 1), (2**64, 1), (2**31 - 1, 2)])
def test_seeds_out_of_range_are_config_errors(seed, seeds):
    """seed=2**64 used to fail in torch.manual_seed (RuntimeError, exit 1) after creating the run directory;
    dgl.seed takes a 32-bit int."""
    with pytest.raises(ConfigError, match=rf"key 'seed' must be >= 0 with seed \+ seeds - 1 <= 2147483647.*"
                                          rf"got seed = {seed}, seeds = {seeds}"):
        from_dict({**raw(), "seed": seed, "seeds": seeds})
    assert from_dict({**raw(), "seed": 2**31 - 1}).seed == 2**31 - 1


def test_dump_toml_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, FOUR_LINES + '[sweep]\n"train.lr" = [0.01, 5e-05]\n'),
                      ['name=a.b-c', 'train.monitor=val_loss', 'model.dropout=0.25', 'task.batch_size=3',
                       'data.normalize_features=true'])
    text = dump_toml(cfg.to_dict())
    again = load_config(write(tmp_path, text, "again.toml"))
    assert again == cfg and dump_toml(again.to_dict()) == text
    plain = load_config(write(tmp_path, FOUR_LINES, "plain.toml"), ['train.track=["test"]']).to_dict()
    assert plain["train"]["track"] == ["test"] and json.loads(json.dumps(plain)) == plain  # as results.json
    assert dump_toml({"s": 'quote " and \\ and é \x7f', "t": {"k": [1.5, float("inf")], "hits@10": 1}}) == (
        's = "quote \\" and \\\\ and é \\u007f"\n\n[t]\nk = [1.5, inf]\n"hits@10" = 1\n')


def test_name_must_be_a_plain_file_name():
    with pytest.raises(ConfigError, match="key 'name' must be a plain file name"):
        from_dict({**raw(), "name": "../escape"})


def test_tables_match_the_registries():
    from graphnet.tasks import TASKS

    assert set(MODEL_DEFAULTS) == set(registry("model"))
    assert set(TASK_NAMES) == set(TASKS)
    valid = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, (paper, defaults) in MODEL_DEFAULTS.items():
        assert paper and set(defaults) <= valid, name
        TrainConfig(**{k: float(v) if isinstance(TrainConfig.__dataclass_fields__[k].default, float) else v
                       for k, v in defaults.items()})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem


def test_cora_gcn_config_is_four_lines():
    text = (Path(__file__).resolve().parents[1] / "experiments" / "configs" / "cora_gcn.toml").read_text()
    assert len([line for line in text.splitlines() if line.strip()]) == 4
