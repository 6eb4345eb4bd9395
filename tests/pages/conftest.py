"""Fixtures for the Evaluate, Test and Runs page tests: a workspace with one real finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pages.tiny_run import copy_workspace, trained_workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_workspace(tmp_path_factory)


@pytest.fixture
def ws(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = copy_workspace(template, tmp_path / "ws")
    monkeypatch.setenv("GRAFT_WORKSPACE", str(ws))
    return ws
