"""Test: try the model on new photos, one by one or a whole batch."""

import streamlit as st

from ui.common import ensure_router, guarded, page_header

ensure_router()  # a direct link to this page still gets the app frame


@guarded
def main() -> None:
    page_header("Test", "Try the model on new photos: each gets a verdict, how sure the model is, and where it looked.")
    from ui.evaluate_views import choose_run  # after the header: it shows while the views load
    from ui.predict_views import render_batch_test, render_single_test

    run = choose_run(key="test_run")
    if run is None:
        return
    single, batch = st.tabs(["Photos", "A batch (zip or folder)"])
    with single:
        guarded(render_single_test)(run)
    with batch:
        guarded(render_batch_test)(run)


main()
