"""Start in a real browser hands the run to the warm training process the Model page got ready
(core/standby.py), so the run checks its photos at once instead of after loading PyTorch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.jsonio import read_json
from core.runs import read_status
from tests.e2e.conftest import browser_marks, button, goto, no_errors

pytestmark = browser_marks(420)


@pytest.fixture
def standby_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_STANDBY", "1")  # the server below takes this environment


def _ready(workspace: Path) -> dict | None:
    for folder in sorted((workspace / ".standby").glob("*")):
        if (folder / "ready.json").exists():
            return read_json(folder / "spawned.json")
    return None


def test_start_hands_the_run_to_the_warm_training_process(standby_on: None, server: tuple[str, Path],
                                                          browser_page) -> None:
    from core.workspace import Workspace

    url, workspace = server
    Workspace(workspace).add_sample()
    page = browser_page
    goto(page, f"{url}/model?dataset=sample&start=scratch&strategy=scratch&epochs=1&size=32&folds=1", "Model")
    deadline = time.monotonic() + 120
    while (spawned := _ready(workspace)) is None:  # the page started it; it loads PyTorch meanwhile
        assert time.monotonic() < deadline, "no warm training process got ready"
        page.wait_for_timeout(500)
    button(page, "Next: train").first.click()
    button(page, "Start training").first.wait_for(timeout=60_000)
    button(page, "Start training").first.click()
    run = None
    while run is None or not (run / "events.jsonl").exists():
        assert time.monotonic() < deadline + 60, "the run never started"
        run = next((p for p in (workspace / "runs").glob("*") if p.is_dir()), None)
        page.wait_for_timeout(200)
    assert read_status(run)["pid"] == spawned["pid"]  # the warm process, not a new one
    page.get_by_text("Results on photos the model never saw").wait_for(timeout=180_000)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    check = next(e for e in events if e.get("phase") == "check")
    print(f"\nStart to the photo check: {check['time'] - events[0]['time']:.1f} s after the first event")
    assert read_status(run)["state"] == "done"
    no_errors(page)
