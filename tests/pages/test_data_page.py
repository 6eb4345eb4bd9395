"""Data page (AppTest, real core): four ways in, the check report in plain words, and managing datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.workspace import Workspace
from tests.conftest import ROOT, png_bytes, zip_bytes

PAGE = str(ROOT / "pages" / "1_data.py")


def png(label: str = "scratch", seed: int = 0, size: int = 40) -> bytes:
    return png_bytes(label, size, seed)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "ws"))
    return Workspace(tmp_path / "ws")


def page(way: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if way:
        at.segmented_control(key="data_add_how").set_value(way).run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def messages(at: AppTest) -> str:
    return "\n".join(e.value for e in [*at.error, *at.warning, *at.info, *at.success])


def test_empty_workspace_invites_the_user_in(ws: Workspace) -> None:
    at = page()
    assert not at.exception
    assert at.title[0].value == "Data"
    assert "Start with the sample data" in messages(at)
    assert at.button(key="data_sample").label == "Load sample data"
    assert at.segmented_control(key="data_add_how").options == ["Sample data", "Zip of class folders",
                                                                "Photos by class", "CSV and photos"]
    assert at.segmented_control(key="data_add_how").value == "Sample data"


def test_load_sample_data_shows_the_report(ws: Workspace) -> None:
    at = page()
    at.button(key="data_sample").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == "sample"
    assert metrics(at) == {"Photos": "120", "Classes": "4", "Problems": "0", "Warnings": "0"}
    assert "Loaded the sample: 120 photos in 4 classes." in messages(at)
    assert "No problems found" in messages(at)
    bar = at.get("plotly_chart")[0]
    assert bar.key == "class_bar"
    assert at.selectbox(key="good_sample").value == "ok"
    classes = [m.value for m in at.markdown if " photos" in m.value and m.value.startswith("**")]
    assert classes == ["**dent** · 30 photos", "**ok** · 30 photos", "**scratch** · 30 photos", "**stain** · 30 photos"]
    assert len(at.image) == 4  # one grid of previews per class
    assert (ws.datasets_dir / "sample" / "check.json").is_file()  # cached for the next visit


def test_mark_the_good_class(ws: Workspace) -> None:
    ws.add_sample()
    at = page(dataset="sample")
    at.selectbox(key="good_sample").set_value("dent").run()
    assert not at.exception
    assert ws.dataset_info("sample").good_class == "dent"


def test_upload_a_zip_of_class_folders(ws: Workspace) -> None:
    members = {f"parts/{c}/{c}{i}.png": png(c, i) for c in ("ok", "scratch") for i in range(12)}
    at = page("Zip of class folders")
    at.file_uploader(key="data_zip").set_value(("Line 3 parts.zip", zip_bytes(members), "application/zip")).run()
    name_box = [t for t in at.text_input if t.label == "Dataset name"][0]
    assert name_box.value == "line-3-parts"
    at.button(key="data_zip_go").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == "line-3-parts"
    assert metrics(at)["Photos"] == "24" and metrics(at)["Classes"] == "2"
    assert "Imported Line 3 parts.zip: 24 readable photos in 2 classes." in [s.value for s in at.success]


def test_an_empty_zip_is_named_as_the_user_chose_it(ws: Workspace) -> None:
    at = page("Zip of class folders")
    at.file_uploader(key="data_zip").set_value(("empty.zip", zip_bytes({"readme.txt": b"hi"}), "application/zip")).run()
    at.button(key="data_zip_go").click().run()
    assert not at.exception
    assert "empty.zip" in at.error[0].value.replace("\\", "") and "upload.zip" not in at.error[0].value


def test_a_zip_of_broken_photos_is_red_with_readable_and_skipped_counts(ws: Workspace) -> None:
    members = {"parts/ok/a.png": b"not a png", "parts/scratch/b.png": b"nor this"}
    at = page("Zip of class folders")
    at.file_uploader(key="data_zip").set_value(("two broken.zip", zip_bytes(members), "application/zip")).run()
    at.button(key="data_zip_go").click().run()
    assert not at.exception
    assert not at.success  # never a green "Imported" for photos that can't train
    flash = at.error[0].value
    assert "0 readable photos in 0 classes, 2 files skipped (unreadable)" in flash and "block training" in flash
    assert not at.get("plotly_chart")  # no empty chart
    assert any("None of the photos" in e.value for e in at.error)


def test_one_class_and_one_skipped_file_are_counted_in_words(ws: Workspace) -> None:
    members = {**{f"parts/ok/{i}.png": png("ok", i) for i in range(3)}, "parts/ok/bad.png": b"broken"}
    at = page("Zip of class folders")
    at.file_uploader(key="data_zip").set_value(("one.zip", zip_bytes(members), "application/zip")).run()
    at.button(key="data_zip_go").click().run()
    text = messages(at)
    assert "3 readable photos in 1 class, 1 file skipped (unreadable)" in text and "1 classes" not in text


def test_a_zip_of_good_photos_only_is_ready_for_good_parts_mode(ws: Workspace) -> None:
    at = page("Zip of class folders")
    members = {f"parts/good/{i}.png": png("ok", i) for i in range(12)}
    at.file_uploader(key="data_zip").set_value(("good.zip", zip_bytes(members), "application/zip")).run()
    at.button(key="data_zip_go").click().run()
    assert not at.error and "Good parts only" in messages(at)
    assert metrics(at)["Problems"] == "0" and at.button(key="data_next")


def test_a_damaged_zip_gets_a_plain_error(ws: Workspace) -> None:
    at = page("Zip of class folders")
    at.file_uploader(key="data_zip").set_value(("broken.zip", b"PK\x03\x04garbage", "application/zip")).run()
    at.button(key="data_zip_go").click().run()
    assert not at.exception
    assert "zip" in at.error[0].value and "Traceback" not in at.error[0].value
    assert ws.list_datasets() == []


def test_add_classes_one_by_one_and_drop_photos(ws: Workspace) -> None:
    at = page("Photos by class")
    for cls in ("ok", "Kratzer **fett**"):
        at.text_input(key="data_new_class").input(cls)
        at.button(key="data_add_class").click().run()
    uploaders = [u for u in at.file_uploader if u.key.startswith("data_class_files_")]
    assert [u.label for u in uploaders] == ["Photos of class “ok”", "Photos of class “Kratzer \\*\\*fett\\*\\*”"]
    uploaders[0].set_value([(f"ok{i}.png", png("ok", i), "image/png") for i in range(3)])
    uploaders[1].set_value([(f"../k{i}.png", png("scratch", i), "image/png") for i in range(2)])
    at.run()
    at.button(key="data_classes_go").click().run()
    assert not at.exception
    name = at.session_state["dataset"]
    assert ws.dataset_info(name).counts == {"Kratzer **fett**": 2, "ok": 3}
    assert metrics(at)["Photos"] == "5"
    # class names are shown as text, never as markdown
    assert "**Kratzer \\*\\*fett\\*\\*** · 2 photos" in [m.value for m in at.markdown]
    assert "only 2 photos" in messages(at)  # the check warns about small classes


def test_an_unsafe_class_name_is_refused_plainly(ws: Workspace) -> None:
    at = page("Photos by class")
    at.text_input(key="data_new_class").input("../etc")
    at.button(key="data_add_class").click().run()
    assert not at.exception
    assert "can't be used" in at.error[0].value
    assert at.session_state["draft_classes"] == []


def test_upload_a_csv_with_its_photos(ws: Workspace) -> None:
    table = b"image,label\nimgs/a.png,ok\nimgs/b.png,ok\nc.png,dent\nd.png,dent\nlost.png,dent\n"
    names = ["a.png", "b.png", "c.png", "d.png"]
    photos = [(n, png("ok" if n < "c" else "dent", i), "image/png") for i, n in enumerate(names)]
    at = page("CSV and photos")
    at.file_uploader(key="data_csv").set_value(("labels.csv", table, "text/csv"))
    at.file_uploader(key="data_csv_photos").set_value(photos)
    at.run()
    at.button(key="data_csv_go").click().run()
    assert not at.exception
    assert metrics(at)["Photos"] == "4"
    assert "1 row(s) of the CSV" in messages(at)


def test_problems_unreadable_files_and_duplicates_are_listed(ws: Workspace) -> None:
    same = png("ok", 1)
    ws.create_from_uploads("mixed", {"ok": [("a.png", same), ("b.png", png("ok", 2)), ("bad.jpg", b"not a photo")],
                                     "dent": [("c.png", same)]})
    at = page(dataset="mixed")
    assert not at.exception
    text = messages(at)
    assert "Class 'dent' has 1 readable photo" in text.replace("\\", "")
    assert "can't be read" in text.replace("\\", "")
    assert "two different labels" in text
    expanders = [e.label for e in at.expander]
    assert "Unreadable files (1)" in expanders and "Duplicates (1) and label conflicts (1)" in expanders
    unreadable = at.dataframe[0].value
    assert list(unreadable["file"]) == ["ok/bad.jpg"]
    assert not [b for b in at.button if b.key == "data_next"]  # problems block the next step


def test_reopen_rename_and_delete(ws: Workspace) -> None:
    ws.add_sample()
    ws.create_from_uploads("other", {"ok": [("a.png", png("ok"))], "dent": [("b.png", png("dent"))]})
    at = page()
    at.selectbox[0].set_value("other").run()
    assert at.session_state["dataset"] == "other" and metrics(at)["Photos"] == "2"
    at.text_input(key="data_rename_to").input("Renamed Set")
    at.button(key="data_rename").click().run()
    assert not at.exception
    assert at.session_state["dataset"] == "renamed-set"
    assert [d.name for d in ws.list_datasets()] == ["renamed-set", "sample"]
    at.checkbox(key="data_delete_sure").check().run()
    at.button(key="data_delete").click().run()
    assert not at.exception
    assert [d.name for d in ws.list_datasets()] == ["sample"]
    assert "dataset" not in at.session_state
    assert "Deleted the dataset renamed-set" in messages(at)
