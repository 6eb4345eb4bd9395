"""core.workspace: datasets and runs on disk, names made safe, every path kept inside the workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import Strategy
from core.errors import GraftError
from core.jsonio import write_json_atomic
from core.workspace import (Workspace, class_name, dataset_name, default_good_class, recommend_strategy,
                            safe_filename)
from tests.conftest import ROOT, png_bytes, zip_bytes


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


def leftovers(ws: Workspace) -> list[str]:
    """Anything in datasets/ that is not a finished dataset (staging folders, partial copies)."""
    return sorted(p.name for p in ws.datasets_dir.iterdir() if p.name.startswith("."))


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, safe", [("My Parts!", "my-parts"), ("../../etc/passwd", "etc-passwd"),
                                       ("Línea 3", "linea-3"), ("a" * 100, "a" * 60)])
def test_dataset_names_become_safe_folder_names(raw: str, safe: str) -> None:
    assert dataset_name(raw) == safe


def test_dataset_name_needs_a_letter_or_digit() -> None:
    with pytest.raises(GraftError):
        dataset_name("../..")


@pytest.mark.parametrize("bad", ["", "  ", "a/b", "a\\b", "..", "x..y", ".hidden", "tab\there", "nul\x00", "x" * 81])
def test_unsafe_class_names_are_refused(bad: str) -> None:
    with pytest.raises(GraftError):
        class_name(bad)


def test_class_names_keep_their_text() -> None:
    assert class_name("  Kratzer groß ") == "Kratzer groß"
    assert class_name("**bold** <b>") == "**bold** <b>"


@pytest.mark.parametrize("raw, safe", [("../../evil.png", "evil.png"), ("C:\\Users\\x\\y.JPG", "y.JPG"),
                                       (".hidden.png", "hidden.png"), ("a\x07b.png", "ab.png"), ("..", "photo"),
                                       ("", "photo")])
def test_upload_names_are_reduced_to_a_safe_basename(raw: str, safe: str) -> None:
    assert safe_filename(raw) == safe


def test_default_good_class() -> None:
    assert default_good_class(["dent", "OK", "scratch"]) == "OK"
    assert default_good_class(["normal", "crack"]) == "normal"
    assert default_good_class(["dent", "scratch"]) is None


@pytest.mark.parametrize("n, classes", [(12, 2), (40, 3), (59, 6), (300, 3), (3000, 2), (20000, 5)])
def test_recommend_strategy_follows_the_measurements(n: int, classes: int) -> None:
    from core.evidence import FEW_PER_CLASS, MEASURED, WORTH_MINUTES, best_measured

    strategy, reason = recommend_strategy(n, classes)
    gain = 100 * (MEASURED[best_measured()].accuracy - MEASURED[Strategy.FEATURE_EXTRACTION].accuracy)
    slower_pays = n / classes >= FEW_PER_CLASS and gain >= WORTH_MINUTES
    assert strategy == (best_measured() if slower_pays else Strategy.FEATURE_EXTRACTION)
    assert str(n) in reason and reason.endswith(".") and "\n" not in reason
    assert "%" in reason  # the measured accuracy is quoted


@pytest.mark.parametrize("fine_tune, expected", [(0.985, Strategy.FEATURE_EXTRACTION), (0.995, Strategy.FINE_TUNE)])
def test_a_slower_strategy_is_recommended_only_when_it_measured_clearly_better(
        monkeypatch: pytest.MonkeyPatch, fine_tune: float, expected: Strategy) -> None:
    import core.evidence as evidence

    measured = {s: evidence.Measured(0.5, 60) for s in Strategy}
    measured[Strategy.FEATURE_EXTRACTION] = evidence.Measured(0.98, 10)
    measured[Strategy.FINE_TUNE] = evidence.Measured(fine_tune, 300)
    monkeypatch.setattr(evidence, "MEASURED", measured)
    assert recommend_strategy(600, 3)[0] == expected  # 200 per class: only the measured gain decides
    assert recommend_strategy(12, 3)[0] == Strategy.FEATURE_EXTRACTION  # 4 per class: too few for fine-tuning


# --- the workspace and the sample ---------------------------------------------------------------


def test_from_env_creates_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_WORKSPACE", str(tmp_path / "new" / "ws"))
    ws = Workspace.from_env()
    assert ws.root == (tmp_path / "new" / "ws").resolve()
    assert ws.datasets_dir.is_dir() and ws.runs_dir.is_dir()


def test_from_env_defaults_to_cwd_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Workspace.from_env().root == (tmp_path / "workspace").resolve()


def test_add_sample_copies_the_bundled_photos_once(ws: Workspace) -> None:
    info = ws.add_sample()
    assert (info.name, info.total, info.classes, info.good_class, info.source) == (
        "sample", 120, ["dent", "ok", "scratch", "stain"], "ok", "sample")
    assert json.loads((ws.datasets_dir / "sample" / "dataset.json").read_text())["good_class"] == "ok"
    assert ws.add_sample().created == info.created  # a second click reopens it
    assert [d.name for d in ws.list_datasets()] == ["sample"]
    assert leftovers(ws) == []


# --- importing ----------------------------------------------------------------------------------


def test_import_zip_unwraps_a_top_folder_and_skips_unsafe_members(ws: Workspace) -> None:
    members = {f"parts/{c}/{c}_{i}.png": png_bytes(c, seed=i) for c in ("ok", "dent") for i in range(3)}
    members["../escape.png"] = png_bytes()
    members["parts/notes.txt"] = b"hello"
    info = ws.import_zip(zip_bytes(members), "Line 3")
    assert info.name == "line-3" and info.counts == {"dent": 3, "ok": 3} and info.good_class == "ok"
    assert any("outside the folder" in n for n in info.notes)
    assert not (ws.root / "escape.png").exists() and not (ws.datasets_dir / "escape.png").exists()
    assert sorted(p.name for p in (ws.datasets_dir / "line-3").iterdir()) == ["dataset.json", "dent", "ok"]
    assert leftovers(ws) == []


def test_import_zip_from_a_path(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    path.write_bytes(zip_bytes({"ok/a.png": png_bytes("ok"), "dent/b.png": png_bytes("dent")}))
    assert ws.import_zip(path, "d").total == 2


def test_a_refused_zip_leaves_nothing(ws: Workspace) -> None:
    with pytest.raises(GraftError, match="not a zip"):
        ws.import_zip(b"this is not a zip", "bad")
    with pytest.raises(GraftError, match="no images"):
        ws.import_zip(zip_bytes({"readme.txt": b"x"}), "empty")
    assert ws.list_datasets() == [] and leftovers(ws) == []


def test_a_zip_with_a_labels_csv_becomes_a_csv_dataset(ws: Workspace) -> None:
    rows = "image,label,surface\nimgs/a.png,ok,metal\nimgs/b.png,dent,wood\nimgs/c.png,dent,metal\n"
    info = ws.import_zip(zip_bytes({"labels.csv": rows.encode(), "imgs/a.png": png_bytes("ok"), "imgs/b.png": png_bytes("dent"),
                                   "imgs/c.png": png_bytes("dent", seed=2)}), "tab")
    assert info.source == "csv" and info.path.name == "labels.csv" and info.counts == {"dent": 2, "ok": 1}


def test_a_stray_csv_next_to_class_folders_is_just_a_file(ws: Workspace) -> None:
    info = ws.import_zip(zip_bytes({"ok/a.png": png_bytes("ok"), "dent/b.png": png_bytes("dent"),
                                   "notes.csv": b"part,comment\n1,fine\n"}), "mixed")
    assert info.source == "zip" and info.counts == {"dent": 1, "ok": 1}


def test_import_zip_refuses_an_existing_name(ws: Workspace) -> None:
    ws.add_sample()
    with pytest.raises(GraftError, match="already exists"):
        ws.import_zip(zip_bytes({"ok/a.png": png_bytes()}), "sample")


def test_create_from_uploads_writes_class_folders_with_safe_names(ws: Workspace) -> None:
    files = {"ok": [("../../a.png", png_bytes("ok")), ("a.png", png_bytes("ok", seed=1)), ("notes.txt", b"x")],
             "Kratzer groß": [("C:\\cam\\k1.png", png_bytes())]}
    info = ws.create_from_uploads("Manual", files)
    root = ws.datasets_dir / "manual"
    assert info.counts == {"Kratzer groß": 1, "ok": 2} and info.good_class == "ok"
    assert sorted(p.name for p in (root / "ok").iterdir()) == ["a (2).png", "a.png"]
    assert (root / "Kratzer groß" / "k1.png").is_file()
    assert any("not photos" in n for n in info.notes)
    assert not (ws.root / "a.png").exists()


def test_create_from_uploads_with_an_unsafe_class_leaves_nothing(ws: Workspace) -> None:
    with pytest.raises(GraftError):
        ws.create_from_uploads("x", {"ok": [("a.png", png_bytes())], "../evil": [("b.png", png_bytes())]})
    with pytest.raises(GraftError, match="No photos"):
        ws.create_from_uploads("y", {"ok": [("a.txt", b"text")]})
    assert ws.list_datasets() == [] and leftovers(ws) == [] and not (ws.root / "evil").exists()


def test_add_photos_to_a_class(ws: Workspace) -> None:
    ws.create_from_uploads("m", {"ok": [("a.png", png_bytes("ok"))], "dent": [("b.png", png_bytes("dent"))]})
    info = ws.add_photos("m", "dent", [("c.png", png_bytes("dent", seed=3))])
    assert info.counts == {"dent": 2, "ok": 1}


def test_import_csv_matches_photos_by_file_name(ws: Workspace) -> None:
    table = "Image,Label,split\nphotos/a.png,ok,\nb.png,dent,test\nmissing.png,dent,\nc.png,dent,\n".encode()
    images = [("a.png", png_bytes("ok")), ("b.png", png_bytes("dent")), ("c.png", png_bytes("dent", seed=4)), ("x.exe", b"MZ")]
    info = ws.import_csv(table, images, "From CSV")
    assert info.source == "csv" and info.counts == {"dent": 2, "ok": 1}
    assert any("1 row(s)" in n for n in info.notes)
    text = (ws.datasets_dir / "from-csv" / "labels.csv").read_text()
    assert text.splitlines()[0] == "image,label,split" and "images/b.png,dent,test" in text


@pytest.mark.parametrize("table, message", [(b"file,class\na.png,ok\n", "columns"), (b"\xff\xfe\x00bad", "UTF-8"),
                                            (b"image,label\nnope.png,ok\n", "None of the CSV")])
def test_import_csv_refusals_are_plain(ws: Workspace, table: bytes, message: str) -> None:
    with pytest.raises(GraftError, match=message):
        ws.import_csv(table, [("a.png", png_bytes())], "t")
    assert ws.list_datasets() == [] and leftovers(ws) == []


# --- managing -----------------------------------------------------------------------------------


def test_rename_and_delete(ws: Workspace) -> None:
    ws.add_sample()
    ws.create_from_uploads("other", {"ok": [("a.png", png_bytes())]})
    with pytest.raises(GraftError, match="already exists"):
        ws.rename_dataset("sample", "other")
    assert ws.rename_dataset("sample", "Defects 2024").name == "defects-2024"
    assert [d.name for d in ws.list_datasets()] == ["defects-2024", "other"]
    ws.delete_dataset("defects-2024")
    assert [d.name for d in ws.list_datasets()] == ["other"]
    with pytest.raises(GraftError, match="no dataset"):
        ws.delete_dataset("defects-2024")


def test_paths_never_leave_the_workspace(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws.datasets_dir / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(GraftError, match="outside the workspace"):
        ws.delete_dataset("link")
    assert outside.is_dir()
    for bad in ("../outside", "..", "a/b", ""):
        with pytest.raises(GraftError):
            ws.run_path(bad)


def fake_run(ws: Workspace, run_id: str, state: str, data: str = "", pid: int | None = None, **extra) -> Path:
    path = ws.runs_dir / run_id
    path.mkdir(parents=True)
    write_json_atomic(path / "config.json", {"data": data, "out": str(path), "backbone": "test_resnet",
                                             "strategy": "fine-tune", "image_size": 32})
    now = time.time()
    write_json_atomic(path / "status.json", {"state": state, "message": "", "pid": pid or os.getpid(),
                                             "heartbeat": now, "created": extra.pop("created", now), **extra})
    return path


def test_a_dataset_in_use_by_a_training_run_is_kept(ws: Workspace) -> None:
    info = ws.add_sample()
    fake_run(ws, "r1", "running", data=str(info.path))
    with pytest.raises(GraftError, match="still training"):
        ws.delete_dataset("sample")
    with pytest.raises(GraftError, match="still training"):
        ws.rename_dataset("sample", "x")


def test_set_good_class(ws: Workspace) -> None:
    ws.add_sample()
    assert ws.set_good_class("sample", "dent").good_class == "dent"
    assert ws.dataset_info("sample").good_class == "dent"
    assert ws.set_good_class("sample", None).good_class is None
    with pytest.raises(GraftError, match="not a class"):
        ws.set_good_class("sample", "nope")


def test_the_check_is_cached_until_the_files_change(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.add_sample()
    calls: list[int] = []
    report = ws.check("sample", progress=lambda d, t, e: calls.append(d))
    assert report.total == 120 and report.ok and calls[-1] == 120

    import core.check

    def refuse(*a, **k):
        raise AssertionError("the cached report should have been used")

    monkeypatch.setattr(core.check, "check_dataset", refuse)
    again = ws.check("sample")
    assert again.counts == report.counts and again.ok
    monkeypatch.undo()
    (ws.datasets_dir / "sample" / "ok" / "broken.jpg").write_bytes(b"not a photo")
    changed = ws.check("sample")
    assert changed.total == 120 and [u["image"] for u in changed.unreadable] == ["ok/broken.jpg"]


def test_thumbnails_are_small_and_cached(ws: Workspace) -> None:
    ws.create_from_uploads("t", {"ok": [(f"{i}.png", png_bytes("ok", 300, i)) for i in range(5)] + [("bad.png", b"x")],
                                 "dent": [("d.png", png_bytes("dent", 300))]})
    thumbs = ws.thumbnails("t", per_class=3)
    assert {k: len(v) for k, v in thumbs.items()} == {"dent": 1, "ok": 3}
    from PIL import Image

    path, name = thumbs["ok"][0]
    assert max(Image.open(path).size) <= 192 and name.endswith(".png")
    assert ws.thumbnails("t", per_class=3)["ok"][0][0] == path


# --- runs ---------------------------------------------------------------------------------------


def test_new_run_config_points_into_the_workspace(ws: Workspace) -> None:
    ws.add_sample()
    config = ws.new_run_config("sample", backbone="test_resnet", strategy="scratch", epochs=2, image_size=32)
    assert Path(config.out).parent == ws.runs_dir and Path(config.out).is_dir()
    assert config.workspace == str(ws.root) and config.good_class == "ok" and config.strategy == Strategy.SCRATCH
    assert Path(config.data) == ws.datasets_dir / "sample"


def test_new_run_config_refuses_bad_settings_without_leaving_a_folder(ws: Workspace) -> None:
    ws.add_sample()
    with pytest.raises(GraftError, match="Unknown run settings"):
        ws.new_run_config("sample", colour="blue")
    with pytest.raises(GraftError, match="Epochs"):
        ws.new_run_config("sample", epochs=0)
    with pytest.raises(GraftError, match="no dataset"):
        ws.new_run_config("missing")
    assert list(ws.runs_dir.iterdir()) == []


def test_runs_listing_queue_and_delete(ws: Workspace) -> None:
    fake_run(ws, "a-done", "done")
    fake_run(ws, "b-running", "running", created=1.0)
    fake_run(ws, "c-queued", "queued", created=2.0)
    fake_run(ws, "d-queued", "queued", created=3.0)
    assert [r["id"] for r in ws.list_runs()] == ["d-queued", "c-queued", "b-running", "a-done"]
    assert [r["id"] for r in ws.active_runs()] == ["d-queued", "c-queued", "b-running"]
    assert ws.queue_position(ws.runs_dir / "d-queued") == 2
    assert ws.queue_position(ws.runs_dir / "c-queued") == 1
    assert ws.queue_position(ws.runs_dir / "b-running") == 0
    with pytest.raises(GraftError, match="still queued or training"):
        ws.delete_run("b-running")
    ws.delete_run("a-done")
    assert not (ws.runs_dir / "a-done").exists()


def test_a_run_whose_process_died_can_be_deleted(ws: Workspace) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    fake_run(ws, "r", "running", pid=dead.pid)
    assert ws.active_runs() == []
    ws.delete_run("r")


def test_rerun_config_uses_a_fresh_folder(ws: Workspace) -> None:
    ws.add_sample()
    first = ws.new_run_config("sample", backbone="test_resnet", epochs=3)
    from core.runs import RunFolder

    RunFolder(first.out).write_config(first)
    again = ws.rerun_config(Path(first.out).name)
    assert again.out != first.out and again.epochs == 3 and again.backbone == "test_resnet"


def test_save_weights(ws: Workspace) -> None:
    path = ws.save_weights("../../my model.safetensors", b"123")
    assert path.parent == ws.weights_dir and path.name == "my model.safetensors"
    assert ws.save_weights("my model.safetensors", b"456").name == "my model (2).safetensors"
    with pytest.raises(GraftError, match="safetensors"):
        ws.save_weights("evil.py", b"import os")


def test_backbone_speeds_come_from_earlier_runs_and_measurements(ws: Workspace) -> None:
    path = fake_run(ws, "r", "done")
    (path / "events.jsonl").write_text(json.dumps({"event": "epoch", "epoch": 1, "images_per_s": 123.4}) + "\n")
    assert ws.backbone_speeds() == {"test_resnet": {"images_per_s": 123.4, "image_size": 32.0}}
    assert ws.backbone_speed("test_resnet") == {"images_per_s": 123.4, "image_size": 32.0}  # one backbone's
    assert ws.backbone_speed("resnet18.a1_in1k") is None
    ws.record_speed("test_resnet", 500.0, 160)
    ws.record_speed("resnet18.a1_in1k", 80.0, 160)
    assert ws.backbone_speeds() == {"test_resnet": {"images_per_s": 500.0, "image_size": 160.0},
                                    "resnet18.a1_in1k": {"images_per_s": 80.0, "image_size": 160.0}}
    assert ws.backbone_speed("test_resnet") == {"images_per_s": 500.0, "image_size": 160.0}  # measured wins


def test_resume_needs_an_ended_run_with_a_checkpoint(ws: Workspace) -> None:
    ws.add_sample()
    config = ws.new_run_config("sample", backbone="test_resnet", epochs=3)
    path = Path(config.out)
    write_json_atomic(path / "config.json", {**config.to_dict(), "out": "/somewhere/else"})
    write_json_atomic(path / "status.json", {"state": "stopped"})
    assert not ws.can_resume(path.name)
    with pytest.raises(GraftError, match="no checkpoint"):
        ws.resume_config(path.name)
    write_json_atomic(path / "checkpoint" / "state.json", {"epoch": 1})
    assert ws.can_resume(path.name)
    resumed = ws.resume_config(path.name)
    assert resumed.out == str(path) and resumed.workspace == str(ws.root) and resumed.epochs == 3
    write_json_atomic(path / "status.json", {"state": "running", "pid": os.getpid(), "heartbeat": time.time()})
    assert not ws.can_resume(path.name)
    with pytest.raises(GraftError, match="still queued or training"):
        ws.resume_config(path.name)


def test_max_concurrent_runs_reads_settings(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFT_MAX_CONCURRENT_RUNS", raising=False)
    assert ws.max_concurrent_runs() == 1
    write_json_atomic(ws.root / "settings.json", {"max_concurrent_runs": 3})
    assert ws.max_concurrent_runs() == 3


def test_core_workspace_imports_neither_streamlit_nor_torch() -> None:
    code = "import sys, core.workspace; print('streamlit' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_unwritable_workspace_is_a_plain_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(GraftError, match="GRAFT_WORKSPACE"):
        Workspace(blocker / "ws")


def test_a_folder_of_good_photos_only_passes_the_check_for_good_parts_mode(ws: Workspace) -> None:
    ws.create_from_uploads("good", {"ok": [(f"{i}.png", png_bytes("ok", 48, i)) for i in range(12)]})
    report = ws.check("good")
    assert report.ok and report.counts == {"ok": 12}  # good-parts-only mode trains on it: not blocked
    ws.create_from_uploads("other", {"shiny": [(f"{i}.png", png_bytes("ok", 48, i)) for i in range(12)]})
    assert not ws.check("other").ok  # one class that isn't "good": a classifier's rule, 2 classes needed
    ws.set_good_class("other", "shiny")
    assert ws.check("other").ok  # marking it as the good class changes the check (not a stale cache)


def test_a_dataset_folder_copied_in_by_hand_is_found_by_its_own_name(ws: Workspace, tmp_path: Path) -> None:
    from tests.conftest import make_dataset

    make_dataset(ws.datasets_dir / "line 3 photos", {"ok": 2, "dent": 2}, size=32)
    assert [d.name for d in ws.list_datasets()] == ["line 3 photos"]
    assert ws.dataset_info("line 3 photos").counts == {"dent": 2, "ok": 2}
    (tmp_path / "outside").mkdir()
    (ws.datasets_dir / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(GraftError, match="outside the workspace"):
        ws.dataset_info("link")
    for name in ("..", "../outside", ".hidden"):
        with pytest.raises(GraftError):
            ws.dataset_info(name)
