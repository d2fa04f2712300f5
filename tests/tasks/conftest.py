"""Shared fixture for the task tests: a minimal training loop (the real one is graphnet.train.Trainer)."""

import pytest
import torch


def _fit(task, model, graph, epochs: int, lr: float) -> list[float]:
    """Adam over ``task.batches`` for ``epochs`` epochs; returns the epoch-mean losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    out = []
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in task.batches(model, graph, epoch, gen):
            opt.zero_grad()
            loss = task.loss(model, graph, batch)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out.append(sum(losses) / len(losses))
    return out


def _with_split_entry(graph, key: str, row: int, col: int, value):
    """A copy of ``graph`` whose ``edge_splits[key][row, col]`` is ``value`` (the original is untouched)."""
    entries = graph.edge_splits[key].clone()
    entries[row, col] = value
    return graph.replace(edge_splits={**graph.edge_splits, key: entries})


@pytest.fixture
def with_split_entry():
    """``with_split_entry(graph, key, row, col, value)`` -> a copy with that one entry of a split changed."""
    return _with_split_entry


@pytest.fixture
def fit_task():
    """``fit_task(task, model, graph, epochs, lr)`` -> epoch-mean losses (the loop only tests need)."""
    return _fit
