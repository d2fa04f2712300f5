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


@pytest.fixture
def fit_task():
    """``fit_task(task, model, graph, epochs, lr)`` -> epoch-mean losses (the loop only tests need)."""
    return _fit
