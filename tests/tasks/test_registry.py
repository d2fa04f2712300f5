"""TASKS registry, the shared model lookup and its errors."""

from __future__ import annotations

import pytest

from graphnet.errors import ConfigError
from graphnet.tasks import TASKS, build_model, model_registry

EXPECTED_MONITORS = {"node": ("val_accuracy", True), "link": ("val_roc_auc", True), "kg": ("val_mrr", True),
                     "rec": ("val_recall@20", True), "rating": ("val_rmse", False)}


def test_task_names_and_protocol():
    assert set(TASKS) == {"node", "link", "kg", "rec", "rating"}
    for name, cls in TASKS.items():
        task = cls()  # every kwarg has a default
        assert (task.monitor, task.higher_is_better) == EXPECTED_MONITORS[name]
        for method in ("setup", "batches", "loss", "evaluate"):
            assert callable(getattr(task, method))


def test_model_registry_holds_every_public_model_name():
    names = {"mlp", "gcn", "sage", "gat", "gin", "sgc", "appnp", "cheb", "edgefeat", "rgcn",
             "lightgcn", "mf", "distmult", "complex", "rotate", "gcmc"}
    assert names <= set(model_registry())


@pytest.mark.parametrize("task,model", [("node", "mf"), ("node", "distmult"), ("link", "gcmc"),
                                        ("rec", "rotate"), ("rating", "lightgcn"), ("kg", "gcmc")])
def test_model_not_valid_for_task_lists_valid_models(task, model):
    valid = TASKS[task]().valid_models()
    with pytest.raises(ConfigError) as err:
        build_model(task, model, valid, 4, 2)
    msg = str(err.value)
    assert f"{model!r}" in msg and f"task {task!r}" in msg
    assert all(v in msg for v in valid)


def test_unknown_model_kwarg_is_a_config_error():
    with pytest.raises(ConfigError, match="'mf'.*num_layers"):
        build_model("rec", "mf", ["mf"], 4, 2, num_nodes=3, num_layers=2)


def test_a_dataset_given_to_the_wrong_task_names_the_task_it_suits():
    import torch

    from graphnet.errors import GraphError
    from graphnet.graph import Graph

    triples = torch.tensor([[0, 0, 1], [1, 1, 2]])
    kg = Graph.from_edges(triples[:, 0], triples[:, 2], 3, edge_type=triples[:, 1], name="nations",
                          edge_splits={"train": triples})
    with pytest.raises(GraphError, match=r"task 'node': expected y of shape \(N,\) with integer labels, got "
                                         r"None; dataset 'nations' suits task.name = 'kg'"):
        TASKS["node"]().setup(kg, "gcn", {}, seed=0)
    cora_like = Graph.from_edges([0, 1], [1, 0], 2, y=torch.tensor([0, 1]), name="cora",
                                 splits={"train": torch.tensor([0])})
    for task, what in (("kg", "triples"), ("rec", "interactions"), ("rating", "interactions")):
        with pytest.raises(GraphError, match=rf"task '{task}': expected {what} 'train', got keys \[\]; "
                                             r"dataset 'cora' suits task.name = 'node'"):
            TASKS[task]().setup(cora_like, "gcn", {}, seed=0)
    pairs, stars = torch.tensor([[0, 0]]), torch.tensor([4.0])
    ratings = Graph.from_edges([0], [1], 2, name="ml-100k", meta={"num_users": 1, "num_items": 1},
                               edge_splits={"train": pairs, "train_rating": stars})
    with pytest.raises(GraphError, match="dataset 'ml-100k' suits task.name = 'rating'"):
        TASKS["node"]().setup(ratings, "gcn", {}, seed=0)


def test_an_unknown_monitor_names_the_task_by_its_config_name():
    import torch

    from graphnet.config import TrainConfig
    from graphnet.graph import Graph
    from graphnet.train import Trainer

    g = Graph.from_edges([0, 1, 2, 3], [1, 0, 3, 2], 4, X=torch.eye(4), y=torch.tensor([0, 0, 1, 1]),
                         splits={"train": torch.tensor([0, 2]), "val": torch.tensor([1, 3])})
    task = TASKS["node"]()
    model, prepared = task.setup(g, "gcn", {}, seed=0)
    with pytest.raises(ConfigError, match=r"train.monitor='val_acc' is not a metric of task 'node'; "
                                          r"available: val_accuracy, val_loss"):
        trainer = Trainer(TrainConfig(device="cpu", epochs=1, monitor="val_acc"), progress=False)
        trainer.fit(model, task, prepared)


@pytest.mark.parametrize("key, value, message", [
    ("num_layers", 0, r"model.num_layers: GCN: expected num_layers to be an integer >= 1, got 0"),
    ("dropout", 1.5, r"model.dropout: GCN: expected 0 <= dropout < 1, got 1.5")])
def test_a_value_the_model_refuses_names_its_config_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build_model("node", "gcn", ["gcn"], 4, 2, **{key: value})
