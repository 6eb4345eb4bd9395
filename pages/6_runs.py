"""Runs: every training run in one table; compare them; open, build on, download, stop or delete one."""

import streamlit as st

from ui.common import ensure_router, guarded, page_header, workspace

ensure_router()  # a direct link to this page still gets the app frame


@guarded
def main() -> None:
    page_header("Runs", "Every training run of this workspace: compare them, take a model with you, or build on one.")
    from ui.runs_views import render_compare, render_run_actions, render_runs_table  # after the header (pandas)

    flash = st.session_state.pop("_runs_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    runs = workspace().list_runs()
    if not runs:
        st.info("No runs yet. Start one on the Train page.", icon=":material/info:")
        return
    render_runs_table(runs)
    st.subheader("Compare", divider="gray")
    guarded(render_compare)(runs)
    st.subheader("One run", divider="gray")
    guarded(render_run_actions)(runs)


main()
