"""Good parts only in the app (AppTest, a tiny real anomaly run): the Test page speaks of good parts and a
score on the 0.5 scale, with the heatmap's own legend; the Model page's false-alarm target reaches the run's
config and survives a new session; Evaluate puts the target beside the measured false-alarm rate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.anomaly import DEFAULT_FALSE_ALARM_TARGET
from core.anomaly_fit import false_alarm_target
from core.anomaly_predict import HEATMAP_LEGEND
from core.config import RunConfig
from core.decision import save_decision
from core.workspace import Workspace
from tests.conftest import ROOT, make_dataset
from tests.pages.tiny_run import copy_workspace
from ui.anomaly_views import DEFAULT_FALSE_ALARM_TARGET as UI_DEFAULT
from ui.anomaly_views import WIDGET_KEY
from ui.place import place_params
from ui.predict_views import DIFFUSE_NOTE
from ui.predict_views import HEATMAP_LEGEND as CLASSIFIER_LEGEND

PAGES = ROOT / "pages"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a good-only dataset, a few new photos and one finished anomaly run ``runs/a1``."""
    root = tmp_path_factory.mktemp("anomaly-ws")
    make_dataset(root / "datasets" / "goodonly", {"ok": 40}, size=64)
    make_dataset(root / "fresh", {"ok": 4, "stain": 4}, size=64, seed=2)
    Workspace(root).set_good_class("goodonly", "ok")
    data, out = root / "datasets" / "goodonly", root / "runs" / "a1"
    cmd = [sys.executable, "-m", "core", "train", str(data), "--out", str(out),
           "--strategy", "anomaly", "--good-class", "ok", "--backbone", "resnet10t", "--start", "scratch",
           "--image-size", "64", "--seed", "0", "--false-alarm-target", "0.05"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_workspace(template, tmp_path / "ws")
    monkeypatch.setenv("GRAFT_WORKSPACE", str(root))
    return root


def open_test_page(ws: Path, photos: list[Path]) -> AppTest:
    at = AppTest.from_file(str(PAGES / "5_test.py"), default_timeout=90)
    at.session_state["run"] = str(ws / "runs" / "a1")
    at.session_state["test_images"] = [str(p) for p in photos]
    at.run()
    assert not at.exception, at.exception
    return at


def verdict_boxes(at: AppTest) -> list[str]:
    plain = [e.value.replace("\\", "") for e in [*at.success, *at.error, *at.warning]]  # markdown escapes off
    return [v for v in plain if v.startswith(("Good part", "Defect", "Uncertain"))]


def test_test_page_shows_the_anomaly_heatmap_with_its_own_legend(ws: Path) -> None:
    stain = ws / "fresh" / "stain" / "stain_000.png"
    at = open_test_page(ws, [stain])
    said = verdict_boxes(at)
    assert len(said) == 1 and said[0].startswith("Defect: looks unlike the good parts")
    assert "threshold 0.50" in said[0] and "sure" not in said[0]  # a distance, never "100% sure"
    captions = [c for img in at.get("image") for c in img.captions]
    assert "Where it looks unlike the good parts" in captions
    assert not any(c.startswith("Where it looked to decide") for c in captions)
    texts = [c.value for c in at.caption]
    assert HEATMAP_LEGEND in texts and CLASSIFIER_LEGEND not in texts
    assert any("threshold at 0.5" in t and "not how sure" in t for t in texts)
    assert at.toggle(key="test_heatmaps").label == "Show where it looks unlike the good parts"
    assert any(chart for chart in at.get("plotly_chart"))  # the score on the heatmap's colour scale


def test_a_clean_part_gets_no_spread_out_note(ws: Path) -> None:
    """A clean part's map is evenly blue: that is the answer, not a model looking nowhere in particular."""
    at = open_test_page(ws, sorted((ws / "fresh" / "ok").glob("*.png")))
    assert len(verdict_boxes(at)) == 4
    assert not any(DIFFUSE_NOTE in w.value for w in at.warning)


def test_uncertain_parts_are_sent_for_a_second_look(ws: Path) -> None:
    save_decision(ws / "runs" / "a1", uncertain_band=0.98)  # everything between 0.01 and 0.99 is too close
    at = open_test_page(ws, sorted((ws / "fresh" / "ok").glob("*.png"))[:2])
    said = verdict_boxes(at)
    assert said and all(s.startswith("Uncertain: send it for a second look") for s in said), said


def test_batch_table_has_no_sure_column_for_an_anomaly_model(ws: Path) -> None:
    at = open_test_page(ws, [])
    at.segmented_control[0].set_value("A folder in the workspace").run()
    at.text_input[0].input("fresh").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "photo" in d.value.columns)
    assert "confidence" not in table.columns and {"verdict", "defect_score"} <= set(table.columns)
    assert set(table["verdict"]) <= {"good", "defect", "uncertain"}
    assert list(table["label"]) == ["ok"] * 4 + ["defect"] * 4  # the stain folder counts as defects
    catch = [m for m in at.metric if m.label == "Catch rate on this batch"][0]
    assert " of 4 defective parts flagged · range " in catch.delta


def test_anomaly_labels_read_every_folder_beside_the_good_one_as_a_defect(tmp_path: Path) -> None:
    from ui.anomaly_views import anomaly_labels

    names = ["batch/ok/a.png", "batch/scratch/b.png", "batch/dent/deep/c.png", "loose.png", "other/d.png"]
    files = [tmp_path / n for n in names]
    assert anomaly_labels(files, tmp_path, "ok") == ["ok", "defect", "defect", None, None]
    assert anomaly_labels(files[3:], tmp_path, "ok") == [None, None]  # no good folder: nothing is labelled


def model_page(ws: Path, dataset: str = "goodonly") -> AppTest:
    at = AppTest.from_file(str(PAGES / "2_model.py"), default_timeout=90)
    at.session_state["dataset"] = dataset
    at.run()
    at.session_state["choices"] = {**at.session_state["choices"], "start": "file:/weights/resnet10t.safetensors",
                                   "strategy": "anomaly"}
    at.radio(key="model_start").set_value("file")
    at.run()
    assert not at.exception, at.exception
    return at


def test_model_page_target_reaches_the_run_config(ws: Path) -> None:
    assert UI_DEFAULT == DEFAULT_FALSE_ALARM_TARGET
    at = model_page(ws)
    slider = at.select_slider(key=WIDGET_KEY)
    assert slider.value == 0.01 and "1% (1 in 100)" in slider.options
    assert any("about 1 in 100 good parts will be flagged for a second look" in c.value for c in at.caption)
    slider.set_value(0.05).run()
    choices = at.session_state["choices"]
    assert choices["extra"] == {"false_alarm_target": 0.05}
    config = Workspace(ws).new_run_config("goodonly", **choices)  # what the Train page's Start writes
    written = RunConfig.from_dict(config.to_dict())
    assert false_alarm_target(written) == 0.05
    assert place_params("goodonly", None, choices)["fa"] == "0.05"


def test_another_strategy_drops_the_target_and_coming_back_restores_it(ws: Path) -> None:
    at = model_page(ws)
    at.select_slider(key=WIDGET_KEY).set_value(0.02).run()
    at.session_state["choices"] = {**at.session_state["choices"], "strategy": "fine-tune"}
    at.run()
    assert "extra" not in at.session_state["choices"]  # a classifier's config carries no anomaly setting
    assert not [s for s in at.select_slider if s.key == WIDGET_KEY]
    at.session_state["choices"] = {**at.session_state["choices"], "strategy": "anomaly"}
    at.run()
    assert at.select_slider(key=WIDGET_KEY).value == 0.02


def test_model_page_says_to_mark_the_good_class(ws: Path) -> None:
    Workspace(ws).set_good_class("goodonly", None)
    at = model_page(ws)
    assert any("Mark the good class on the Data page" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "model_next"]  # Next waits for the good class


def test_model_page_warns_that_few_good_photos_make_a_shaky_threshold(ws: Path) -> None:
    assert not any("shaky" in w.value for w in model_page(ws).warning)  # 40 good photos
    make_dataset(ws / "datasets" / "fewgood", {"ok": 6}, size=64)
    Workspace(ws).set_good_class("fewgood", "ok")
    warnings = [w.value for w in model_page(ws, "fewgood").warning]
    assert any(w.startswith("Only 6 photos of good parts") and "shaky below 10" in w for w in warnings), warnings


def test_the_target_survives_a_new_session(ws: Path) -> None:
    Workspace(ws).remember(dataset="goodonly", choices={"strategy": "anomaly", "start": "scratch",
                                                        "extra": {"false_alarm_target": 0.02}})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    at.switch_page("pages/2_model.py").run()
    assert not at.exception, at.exception
    assert at.session_state["choices"]["extra"] == {"false_alarm_target": 0.02}
    assert at.select_slider(key=WIDGET_KEY).value == 0.02
    assert at.query_params["fa"] in ("0.02", ["0.02"])
    assert Workspace(ws).last_used()["choices"]["extra"] == {"false_alarm_target": 0.02}


def test_a_bad_target_in_the_url_is_dropped(ws: Path) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params.update({"dataset": "goodonly", "strategy": "anomaly", "start": "scratch", "fa": "0.9"})
    at.run()
    at.switch_page("pages/2_model.py").run()
    assert not at.exception, at.exception
    assert at.select_slider(key=WIDGET_KEY).value == 0.01


def test_evaluate_states_the_target_beside_the_measured_rate(ws: Path) -> None:
    at = AppTest.from_file(str(PAGES / "4_evaluate.py"), default_timeout=90)
    at.session_state["run"] = str(ws / "runs" / "a1")
    at.run()
    assert not at.exception, at.exception
    notes = [c.value for c in at.caption if c.value.startswith("Trained for a target of 5% false alarms")]
    assert notes and "about 1 in 20 good parts will be flagged for a second look" in notes[0]
    assert "held-out good photos" in notes[0]
    # the verdict training wrote (no defect photos to check it on), not "Not usable" from the classifier rules
    assert any(w.value.startswith("**Promising, needs more photos.**") for w in at.warning), \
        [e.value for e in at.error]
    # no defect photos held out: no threshold slider with empty catch rates, a plain word on what's missing
    assert not at.slider and any("None of the held-out photos shows a defect" in i.value for i in at.info)
