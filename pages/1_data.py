"""Data: bring labelled photos in (four ways), check them in plain words, and manage saved datasets."""

# ruff: noqa: E402  (the router guard runs before the slower imports)
from __future__ import annotations

from ui.router import ensure_router

ensure_router()  # first, before the slower imports: a direct link to this page still gets the app frame

import streamlit as st

from core.errors import GraftError
from core.workspace import Workspace, class_name
from ui.charts import class_bar
from ui.common import (count_words, current_dataset, flash, fmt_duration, fmt_int, go_to, guarded, md_escape,
                       page_header, select_dataset, show_error, show_flash, workspace)


METRIC_PX = 170
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif"]


def _files(uploads: list) -> list[tuple[str, bytes]]:
    return [(f.name, f.getvalue()) for f in uploads or []]


def _opened(ws: Workspace, name: str, message: str) -> None:
    select_dataset(name)
    flash(message)
    st.rerun()


def _imported(ws: Workspace, name: str, what: str, notes: list[str]) -> None:
    """Open the new dataset with a message that matches its check: readable and skipped photos, and red
    when problems block training (never a green "Imported" for photos that can't train)."""
    select_dataset(name)
    with st.spinner("Checking the photos…"):
        report = ws.check(name)  # cached: the page shows this same report
    skipped = len(report.unreadable)
    text = (f"{what}: {count_words(report.total, 'readable photo')} in "
            f"{count_words(len([c for c, n in report.counts.items() if n]), 'class', 'classes')}")
    text += f", {count_words(skipped, 'file')} skipped (unreadable)." if skipped else "."
    if report.problems:
        flash(f"{text} {count_words(len(report.problems), 'problem')} block training: see below.",
              icon=":material/block:", level="error")
    else:
        flash(" ".join([text, *notes]), level="warning" if skipped else "success")
    st.rerun()


# --- saved datasets ---------------------------------------------------------------------------


@guarded
def saved_datasets(ws: Workspace) -> None:
    names = [d.name for d in ws.list_datasets()]
    if not names:
        return
    current = current_dataset()
    left = right = st.container(horizontal=True, vertical_alignment="bottom")  # the button keeps its label at 900 px
    picked = left.selectbox("Open a saved dataset", names, index=names.index(current) if current in names else None,
                            placeholder="Choose a dataset")
    if picked and picked != current:
        select_dataset(picked)
        st.rerun()
    if current:
        with right.popover("Rename or delete", icon=":material/edit:", width="content"):
            manage(ws, current)


@guarded
def manage(ws: Workspace, name: str) -> None:
    new = st.text_input("New name", value=name, key="data_rename_to")
    if st.button("Rename", key="data_rename"):
        info = ws.rename_dataset(name, new)
        _opened(ws, info.name, f"Renamed to {info.name}.")
    st.divider()
    sure = st.checkbox("Yes, delete this dataset and its photos", key="data_delete_sure")
    if st.button("Delete dataset", key="data_delete", disabled=not sure, icon=":material/delete:"):
        ws.delete_dataset(name)
        select_dataset(None)
        flash(f"Deleted the dataset {name}. Runs trained on it keep their models.")
        st.rerun()


# --- adding a dataset ---------------------------------------------------------------------------


def add_dataset(ws: Workspace) -> None:
    ways = {"Sample data": add_sample, "Zip of class folders": add_zip, "Photos by class": add_by_class,
            "CSV and photos": add_csv}
    # One way at a time (not tabs): only its uploaders exist, and nothing hidden is left half-filled.
    how = st.segmented_control("How would you like to add photos?", list(ways), default="Sample data",
                               required=True, key="data_add_how")
    guarded(ways[how or "Sample data"])(ws)


def add_sample(ws: Workspace) -> None:
    st.write("120 synthetic photos of machined, cast, woven, wooden and painted parts in four classes: "
             "ok, scratch, dent and stain. Ideal for a first try.")
    if st.button("Load sample data", type="primary", icon=":material/download:", key="data_sample"):
        with st.spinner("Copying the sample photos…"):
            info = ws.add_sample()
        _opened(ws, info.name, f"Loaded the sample: {count_words(info.total, 'photo')} in "
                               f"{count_words(len(info.classes), 'class', 'classes')}.")


def add_zip(ws: Workspace) -> None:
    st.write("One folder per class inside the zip, e.g. `ok/`, `scratch/`, `dent/`. "
             "A zip holding a labels CSV (columns image, label) next to its photos works too.")
    upload = st.file_uploader("Zip of class folders", type=["zip"], key="data_zip")
    name = st.text_input("Dataset name", value=ws.unique_dataset_name(upload.name.rsplit(".", 1)[0]) if upload else "",
                         key=f"data_zip_name_{upload.file_id if upload else ''}", placeholder="e.g. line-3-housings")
    if st.button("Import zip", type="primary", disabled=upload is None, key="data_zip_go"):
        with st.spinner(f"Unpacking and checking {upload.name} safely…"):
            info = ws.import_zip(upload.getvalue(), name or upload.name, filename=upload.name)
        _imported(ws, info.name, f"Imported {upload.name}", info.notes)


def _add_class() -> None:
    """Button callback: add the typed class and clear the box (only a callback may clear a widget)."""
    try:
        cls = class_name(st.session_state.get("data_new_class", ""))
    except GraftError as exc:
        st.session_state["_class_error"] = exc
        return
    classes = st.session_state.setdefault("draft_classes", [])
    if cls not in classes:
        classes.append(cls)
    st.session_state["data_new_class"] = ""


def add_by_class(ws: Workspace) -> None:
    classes: list[str] = st.session_state.setdefault("draft_classes", [])
    st.write("Add your classes one by one, then drop the photos of each class into its box.")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.text_input("New class", placeholder="e.g. ok, scratch, dent", key="data_new_class")
    right.button("Add class", icon=":material/add:", key="data_add_class", width="stretch", on_click=_add_class)
    if error := st.session_state.pop("_class_error", None):
        show_error(error)
    files: dict[str, list[tuple[str, bytes]]] = {}
    for i, cls in enumerate(classes):
        files[cls] = _files(st.file_uploader(f"Photos of class “{md_escape(cls)}”", type=IMAGE_TYPES,
                                             accept_multiple_files=True, key=f"data_class_files_{i}"))
    if not classes:
        return
    name = st.text_input("Dataset name", value=ws.unique_dataset_name("my-photos"), key="data_classes_name")
    total = sum(len(v) for v in files.values())
    with st.container(horizontal=True):
        save = st.button(f"Save dataset ({fmt_int(total)} photos)", type="primary", disabled=total == 0,
                         key="data_classes_go")
        reset = st.button("Start over", key="data_classes_reset")
    if save:
        with st.spinner("Saving the photos…"):
            info = ws.create_from_uploads(name, files)
        st.session_state.pop("draft_classes", None)
        _imported(ws, info.name, f"Saved the dataset {info.name}", info.notes)
    if reset:
        st.session_state.pop("draft_classes", None)
        st.rerun()


def add_csv(ws: Workspace) -> None:
    st.write("A CSV with the columns `image` and `label` (optionally `split`, and extra columns to predict), "
             "plus the photos it lists. Photos are matched by file name.")
    table = st.file_uploader("Labels CSV", type=["csv"], key="data_csv")
    photos = st.file_uploader("Photos listed in the CSV", type=IMAGE_TYPES, accept_multiple_files=True,
                              key="data_csv_photos")
    name = st.text_input("Dataset name", value=ws.unique_dataset_name(table.name.rsplit(".", 1)[0]) if table else "",
                         key=f"data_csv_name_{table.file_id if table else ''}")
    if st.button("Import CSV", type="primary", disabled=not (table and photos), key="data_csv_go"):
        with st.spinner("Saving the photos…"):
            info = ws.import_csv(table.getvalue(), _files(photos), name or "csv")
        _imported(ws, info.name, f"Imported {table.name}", info.notes)


# --- the current dataset --------------------------------------------------------------------------


def check_report(ws: Workspace, name: str):
    bar = st.empty()

    def progress(done: int, total: int, eta: float) -> None:
        bar.progress(done / max(total, 1), text=f"Checking photos: {done} of {total} · about {fmt_duration(eta)} left")

    with st.spinner("Checking the photos…"):  # instant when the dataset is unchanged (the report is cached)
        report = ws.check(name, progress=progress)
    bar.empty()
    return report


@guarded
def show_dataset(ws: Workspace, name: str) -> None:
    info = ws.dataset_info(name)
    st.subheader(f"Dataset {md_escape(info.name)}", anchor=False)
    report = check_report(ws, name)
    with st.container(horizontal=True):  # fixed-width cards wrap on a narrow screen instead of cutting labels
        st.metric("Photos", fmt_int(report.total), border=True, help="Readable photos.", width=METRIC_PX)
        st.metric("Classes", len(report.counts), border=True, width=METRIC_PX)
        st.metric("Problems", len(report.problems), border=True, help="Problems block training.", width=METRIC_PX)
        st.metric("Warnings", len(report.warnings), border=True, help="Warnings don't block training.",
                  width=METRIC_PX)
    if report.unreadable:
        st.caption(f"{count_words(len(report.unreadable), 'file')} could not be read and {'is' if len(report.unreadable) == 1 else 'are'} "
                   "left out of the counts (listed below).")
    chart, side = st.columns([3, 2], gap="large")
    with chart:
        if report.total:  # an empty chart says nothing: the problems beside it say why
            st.plotly_chart(class_bar(report.counts, info.good_class), config={"displayModeBar": False},
                            key="class_bar")
        else:
            st.error("None of the photos in this dataset can be read, so there is nothing to train on.",
                     icon=":material/block:")
    with side:
        good_class(ws, info)
        if report.ok and list(report.counts) == [info.good_class]:
            st.info("Only photos of good parts: this dataset trains in **Good parts only** mode, which learns what "
                    "good parts look like and flags anything unusual.", icon=":material/info:")
        findings(report, info.notes)
    thumbnails(ws, name, report.counts)
    st.divider()
    if report.ok and st.button("Next: choose a model", type="primary", icon=":material/arrow_forward:",
                               key="data_next"):
        go_to("model")


@guarded
def good_class(ws: Workspace, info) -> None:
    options = [None, *info.classes]
    picked = st.selectbox("Which class means “no defect”?", options,
                          index=options.index(info.good_class) if info.good_class in options else 0,
                          format_func=lambda c: "None (just tell the classes apart)" if c is None else c,
                          help="Used to report defects caught and false alarms.", key=f"good_{info.name}")
    if picked != info.good_class:
        ws.set_good_class(info.name, picked)
        st.rerun()


def findings(report, notes: list[str]) -> None:
    if report.ok and not report.warnings:
        st.success("No problems found: the photos are ready for training.", icon=":material/check_circle:")
    for problem in report.problems:
        st.error(md_escape(problem), icon=":material/block:")
    for warning in report.warnings:
        st.warning(md_escape(warning), icon=":material/warning:")
    for note in notes:
        st.info(md_escape(note), icon=":material/info:")
    if report.unreadable:
        with st.expander(f"Unreadable files ({len(report.unreadable)})"):
            st.dataframe([{"file": u["image"], "why": u["reason"]} for u in report.unreadable], hide_index=True)
    if report.conflicts or report.duplicates:
        with st.expander(f"Duplicates ({len(report.duplicates)}) and label conflicts ({len(report.conflicts)})"):
            rows = [{"same photo": ", ".join(group), "labels": ", ".join(c["labels"]) if c else ""}
                    for group in report.duplicates
                    for c in [next((c for c in report.conflicts if c["images"] == group), None)]]
            st.dataframe(rows, hide_index=True)


@guarded
def thumbnails(ws: Workspace, name: str, counts: dict[str, int]) -> None:
    st.markdown("#### A look at the photos")
    with st.spinner("Making previews…"):
        thumbs = ws.thumbnails(name, per_class=8)
    for cls, items in thumbs.items():
        st.markdown(f"**{md_escape(cls)}** · {fmt_int(counts.get(cls, 0))} photos")
        if items:
            st.image([str(path) for path, _ in items], width=96)
        else:
            st.caption("No readable photos in this class.")


@guarded
def main() -> None:
    page_header("Data", "Labelled photos of your parts, one class per kind of part (for example ok, scratch, dent). "
                        "Everything is saved in the workspace.")
    show_flash()
    ws = workspace()
    saved_datasets(ws)
    name = current_dataset()
    with st.expander("Add a new dataset", expanded=name is None, icon=":material/add_photo_alternate:"):
        add_dataset(ws)
    if name:
        show_dataset(ws, name)
    else:
        st.info("Start with the sample data, or bring your own photos above.", icon=":material/arrow_upward:")


main()
