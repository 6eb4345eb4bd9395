"""The frame (app.py, sidebar, config) and the shared view helpers in ui.common and ui.charts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = ["pages/1_data.py", "pages/2_model.py", "pages/3_train.py", "pages/4_evaluate.py", "pages/5_test.py",
         "pages/6_runs.py"]


@pytest.fixture
def workspace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    return tmp_path / "ws"


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    return "\n".join(parts)


def test_app_starts_on_the_data_page_and_creates_the_workspace(workspace_dir: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert workspace_dir.joinpath("datasets").is_dir() and workspace_dir.joinpath("runs").is_dir()
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert "Workspace" in sidebar and "none yet" in sidebar
    assert workspace_dir.name in sidebar


def test_every_page_opens_without_an_error(workspace_dir: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=90).run()
    titles = []
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
        titles.append(at.title[0].value)
    assert titles == ["Data", "Model", "Train", "Evaluate", "Test", "Runs"]


def test_sidebar_shows_the_current_dataset_and_run(workspace_dir: Path) -> None:
    from core.workspace import Workspace

    Workspace(workspace_dir).add_sample()
    run = workspace_dir / "runs" / "r1"
    run.mkdir(parents=True)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["dataset"] = "sample"
    at.session_state["run"] = str(run)
    at.run()  # AppTest keeps the sidebar of the first run only, so the state is set up front
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert "sample" in sidebar and "r1" in sidebar


def test_buttons_switch_pages_inside_the_app(workspace_dir: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.button(key="data_sample").click().run()
    at.button(key="data_next").click().run()
    assert not at.exception and at.title[0].value == "Model"


def test_streamlit_config() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] == 500
    assert config["client"]["showErrorDetails"] == "none"  # valid in 1.67: full, stacktrace, type, none
    assert config["browser"]["gatherUsageStats"] is False
    from ui.common import ACCENT

    assert config["theme"]["primaryColor"].lower() == ACCENT.lower()


# --- errors never show a traceback ----------------------------------------------------------------


def _raises_graft_error() -> None:
    from core.errors import GraftError
    from ui.common import guarded

    @guarded
    def body() -> None:
        raise GraftError("The zip is damaged.", hint="Create it again.")

    body()


def _raises_a_bug() -> None:
    import streamlit as st

    from ui.common import guarded

    @guarded
    def body() -> None:
        st.write("before")
        raise KeyError("secret internal detail")

    body()


def test_graft_errors_show_their_plain_message() -> None:
    at = AppTest.from_function(_raises_graft_error).run()
    assert not at.exception
    assert at.error[0].value == "The zip is damaged\\. Create it again\\."


def test_other_errors_show_a_friendly_message_without_details() -> None:
    at = AppTest.from_function(_raises_a_bug).run()
    assert not at.exception
    message = at.error[0].value
    assert "Something went wrong" in message and "secret" not in message and "KeyError" not in message
    assert not at.expander  # no "technical details" either


# --- pure helpers ---------------------------------------------------------------------------------


def test_formatting() -> None:
    from ui.common import fmt_duration, fmt_int, fmt_pct

    assert (fmt_pct(0.934), fmt_pct(0.9345, 1), fmt_pct(None), fmt_pct(float("nan"))) == ("93%", "93.5%", "–", "–")
    assert [fmt_duration(s) for s in (None, 4.4, 75, 3600 + 7 * 60, -1)] == ["–", "4 s", "1 min 15 s", "1 h 7 min", "–"]
    assert fmt_int(12345) == "12,345"


def test_md_escape_makes_user_text_inert() -> None:
    from ui.common import md_escape

    assert md_escape("**bold** <b>x</b> :red[y] [a](javascript:x)") == (
        "\\*\\*bold\\*\\* \\<b\\>x\\</b\\> \\:red\\[y\\] \\[a\\]\\(javascript\\:x\\)")


def test_progress_summary_phases() -> None:
    from ui.common import progress_summary

    running = {"state": "running"}
    assert progress_summary([], {"state": "queued"}).text.startswith("Waiting")
    assert progress_summary([], running).text == "Starting…"
    check = progress_summary([{"event": "progress", "phase": "check", "done": 30, "total": 120, "eta_s": 9}], running)
    assert check.fraction == 0.25 and check.text == "Checking photos: 30 of 120 · about 9 s left"
    train = progress_summary([{"event": "epoch", "epoch": 1, "epochs": 4, "images_per_s": 250.0},
                              {"event": "progress", "phase": "train", "epoch": 2, "epochs": 4, "batch": 5,
                               "batches": 10, "images_per_s": 300.0, "eta_s": 65}], running)
    assert train.fraction == pytest.approx(0.375) and train.epoch == 2
    assert train.text == "Epoch 2 of 4 · 300 photos/s · about 1 min 05 s left"
    done = progress_summary([{"event": "epoch", "epoch": 4, "epochs": 4, "images_per_s": 250.0}], {"state": "done"})
    assert done.fraction == 1.0 and "left" not in done.text


def test_curves_figure() -> None:
    from ui.charts import curves_figure

    events = [{"event": "run_start"}] + [
        {"event": "epoch", "epoch": e, "epochs": 5, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5 + e / 20,
         "val_acc": 0.4 + e / 20, "best": e == 2} for e in (1, 2, 3)]
    fig = curves_figure(events)
    names = [t.name for t in fig.data]
    assert names.count("Training photos") == 2 and names.count("Validation photos") == 2
    val_acc = [t for t in fig.data if t.name == "Validation photos"][1]
    assert list(val_acc.x) == [1, 2, 3] and val_acc.y[0] == pytest.approx(45.0)
    assert [t for t in fig.data if t.name == "Weights kept"][0].x == (2,)
    assert list(fig.layout.xaxis.range) == [0.5, 5.5]  # the planned epochs: the curve grows across the axis
    assert [a.text for a in fig.layout.annotations][:2] == ["Loss (lower is better)", "Accuracy (higher is better)"]
    assert fig.layout.yaxis.tickformat == "~g"  # a small loss reads 0.0005, not "500µ"
    ended = curves_figure(events + [{"event": "run_end", "state": "stopped"}])
    assert list(ended.layout.xaxis.range) == [0.5, 3.5]  # after an early stop the axis fits what ran
    resumed = curves_figure(events + [{"event": "run_end"}, {"event": "resumed", "epoch": 3}])
    assert list(resumed.layout.xaxis.range) == [0.5, 5.5]
    assert len(curves_figure([]).data) == 4  # an empty log still draws the frame


def test_the_curve_moves_within_an_epoch() -> None:
    from ui.charts import curves_figure, has_curve

    def batch(epoch: int, k: int, loss: float) -> dict:
        return {"event": "progress", "phase": "train", "epoch": epoch, "epochs": 4, "batch": k, "batches": 10,
                "loss": loss}

    first = [{"event": "run_start"}, batch(1, 1, 2.0), batch(1, 3, 1.6)]
    assert not has_curve(first[:1]) and has_curve(first)  # the chart shows from the first batch on
    fig = curves_figure(first)
    so_far = [t for t in fig.data if t.name == "Training photos (this epoch so far)"][0]
    assert list(so_far.x) == [pytest.approx(0.1), pytest.approx(0.3)] and list(so_far.y) == [2.0, 1.6]
    assert list(fig.layout.xaxis.range) == [0.0, 4.5]
    one = {"event": "epoch", "epoch": 1, "epochs": 4, "train_loss": 1.2, "val_loss": 1.3}
    later = curves_figure(first + [batch(1, 10, 1.2), one, batch(2, 5, 0.9)])
    so_far = [t for t in later.data if t.name == "Training photos (this epoch so far)"][0]
    assert list(so_far.x) == [1.0, 1.5] and list(so_far.y) == [1.2, 0.9]  # from the last finished epoch
    done = curves_figure(first + [batch(1, 10, 1.2), one, {"event": "run_end"}])
    assert not [t for t in done.data if "so far" in str(t.name)]


def test_class_bar_escapes_class_names() -> None:
    from ui.charts import class_bar
    from ui.common import ACCENT, MUTED

    fig = class_bar({"<b>dent</b>": 3, "ok": 5}, good_class="ok")
    bar = fig.data[0]
    assert list(bar.x) == ["&lt;b&gt;dent&lt;/b&gt;", "ok"] and list(bar.y) == [3, 5]
    assert list(bar.marker.color) == [ACCENT, MUTED]
