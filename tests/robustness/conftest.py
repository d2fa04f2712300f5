"""Fixtures of the robustness suite: every test gets an empty data root, no mirror and no network."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the user's cache or mirror, or downloads: each gets its own empty data root."""
    for k in ("GRAPHNET_MIRROR", "GRAPHNET_ALLOW_UNPINNED"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path / "graphnet-data"))
    monkeypatch.setenv("GRAPHNET_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _restore_graphnet_logger():
    """cli.main installs a handler on the 'graphnet' logger and stops propagation; undo it after each test."""
    logger = logging.getLogger("graphnet")
    state = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state
