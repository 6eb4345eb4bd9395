"""Test page (AppTest, real core, a tiny real model): uploaded photos get a verdict, batches a table.

AppTest 1.67 can upload files (``file_uploader.set_value``), so the real upload path is tested; the
page also takes photo paths from ``st.session_state["test_images"]``, tested here too.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.numbers import fmt_pct
from tests.conftest import ROOT
from tests.pages.tiny_run import CLASSES

PAGE = str(ROOT / "pages" / "5_test.py")


def page(ws: Path, **state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["run"] = str(ws / "runs" / "r1")
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def verdicts(at: AppTest) -> list[str]:
    return [e.value for e in [*at.success, *at.error] if e.value.startswith(("Good part", "Defect"))]


def results_table(at: AppTest):
    return next(d.value for d in at.dataframe if "photo" in d.value.columns)


def named_class(text: str) -> str | None:
    return next((c for c in CLASSES if c in text), None)


def test_uploaded_photo_gets_a_class_of_the_model_and_a_heatmap(ws: Path) -> None:
    at = page(ws)
    assert at.file_uploader[0].label == "Upload photos"
    photo = ws / "datasets" / "parts" / "scratch" / "scratch_000.png"
    at.file_uploader[0].set_value([("part.png", photo.read_bytes(), "image/png")]).run()
    assert not at.exception
    said = verdicts(at)
    assert len(said) == 1 and named_class(said[0]) in CLASSES
    captions = [c for img in at.get("image") for c in img.captions]
    assert "The photo" in captions and any(c.startswith("Where it looked") for c in captions)
    assert any(chart for chart in at.get("plotly_chart"))  # confidence bars


def test_unreadable_upload_says_why_and_the_rest_still_works(ws: Path) -> None:
    at = page(ws)
    good = (ws / "datasets" / "parts" / "ok" / "ok_000.png").read_bytes()
    at.file_uploader[0].set_value([("notes.txt", b"not a photo", "text/plain"),
                                   ("half.png", good[:60], "image/png"),
                                   ("ok.png", good, "image/png")]).run()
    assert not at.exception
    reasons = [w.value for w in at.warning]
    assert any("not an image" in r for r in reasons) and any("damaged" in r or "truncated" in r for r in reasons)
    assert len(verdicts(at)) == 1


def test_photos_from_session_state_paths(ws: Path) -> None:
    paths = [str(ws / "datasets" / "parts" / c / f"{c}_001.png") for c in CLASSES]
    at = page(ws, test_images=paths)
    said = verdicts(at)
    assert len(said) == 3 and all(named_class(v) for v in said)


def test_batch_folder_table_summary_and_csv(ws: Path) -> None:
    at = page(ws)
    at.segmented_control[0].set_value("A folder in the workspace").run()
    at.text_input[0].input("datasets/parts").run()
    assert not at.exception
    total = sum(CLASSES.values())
    scored = [m for m in at.metric if m.label == "Photos scored"]
    assert scored and scored[0].value == f"{total} of {total}"
    table = results_table(at)
    assert len(table) == total and set(table["predicted"]) <= set(CLASSES)
    flagged = [m for m in at.metric if m.label == "Flagged as defective"][0]
    assert int(flagged.value) == int((table["predicted"] != "ok").sum())
    assert any(b.label == "Download the results (CSV)" for b in at.get("download_button"))


def test_batch_of_class_folders_is_scored_against_its_labels(ws: Path) -> None:
    at = page(ws)
    at.segmented_control[0].set_value("A folder in the workspace").run()
    at.text_input[0].input("datasets/parts").run()
    assert not at.exception
    table = results_table(at)
    assert list(table["label"]) == [Path(p).parts[0] for p in table["photo"]]  # the class folder is the label
    right = int((table["predicted"] == table["label"]).sum())
    accuracy = [m for m in at.metric if m.label == "Accuracy on this batch"][0]
    assert accuracy.value == fmt_pct(right / len(table))
    assert accuracy.delta.startswith(f"{right} of {len(table)} photos right · range ")
    defects = table[table["label"] != "ok"]
    caught = int((defects["predicted"] != "ok").sum())
    catch = [m for m in at.metric if m.label == "Catch rate on this batch"][0]
    assert catch.value == fmt_pct(caught / len(defects)) and "range" in catch.delta
    good = table[table["label"] == "ok"]
    alarms = [m for m in at.metric if m.label == "False alarms on this batch"][0]
    assert alarms.value == fmt_pct(int((good["predicted"] != "ok").sum()) / len(good))
    per_class = next(d.value for d in at.dataframe if "Found" in d.value.columns).set_index("Class")
    assert per_class.loc["scratch", "Photos"] == CLASSES["scratch"]


def test_a_class_missing_from_the_batch_shows_a_dash(ws: Path) -> None:
    import shutil

    batch = ws / "batch"
    for c in ("ok", "scratch"):
        shutil.copytree(ws / "datasets" / "parts" / c, batch / "wrapped" / c)  # one more folder around them
    at = page(ws)
    at.segmented_control[0].set_value("A folder in the workspace").run()
    at.text_input[0].input("batch").run()
    assert not at.exception
    per_class = next(d.value for d in at.dataframe if "Found" in d.value.columns).set_index("Class")
    assert per_class.loc["stain", "Found"] == "–" and per_class.loc["stain", "Photos"] == 0
    assert per_class.loc["ok", "Photos"] == CLASSES["ok"]


def test_batch_refuses_a_folder_outside_the_workspace(ws: Path) -> None:
    at = page(ws)
    at.segmented_control[0].set_value("A folder in the workspace").run()
    at.text_input[0].input("/etc").run()
    assert not at.exception
    assert any("outside the workspace" in e.value for e in at.error)


def test_batch_zip_with_a_broken_photo(ws: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in CLASSES:
            zf.write(ws / "datasets" / "parts" / c / f"{c}_002.png", f"new/{c}.png")
        zf.writestr("new/broken.jpg", b"\xff\xd8\xff not really a jpeg")
    at = page(ws)
    at.file_uploader(key="batch-zip").set_value(("batch.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception
    table = results_table(at)
    assert len(table) == 4 and (table["problem"] != "").sum() == 1
    assert [m.value for m in at.metric if m.label == "Can't be read"] == ["1"]


def test_predictor_is_cached_per_model_version(ws: Path) -> None:
    from ui.predict_views import load_predictor, model_stamp

    key = model_stamp(ws / "runs" / "r1")
    assert load_predictor(*key) is load_predictor(*key)
    from core.decision import save_decision

    spec = ws / "runs" / "r1" / "model" / "model.json"
    save_decision(ws / "runs" / "r1", threshold=0.9)  # decision.json, and model.json's copy of the threshold
    import os
    os.utime(spec, (key[1] + 5, key[1] + 5))
    fresh = load_predictor(*model_stamp(ws / "runs" / "r1"))
    assert fresh.spec.threshold == 0.9  # a saved threshold is picked up, the old model isn't mutated
