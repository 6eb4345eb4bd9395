"""Graft: the router. ``streamlit run app.py`` draws the frame and runs the page the user picked.

Streamlit's automatic navigation from ``pages/`` is switched off (``client.showSidebarNavigation``
in .streamlit/config.toml), so its raw file names never show; the sidebar's links are drawn here,
before the page, so the frame is complete from the first paint.
"""

import streamlit as st

st.set_page_config(page_title="Graft", page_icon=":material/center_focus_strong:", layout="wide")
loading = st.empty()  # a loading state at once; the first run of a server still imports the pages' modules
loading.caption(":material/hourglass_top: Loading Graft…")

from ui import warmup  # noqa: E402  (after set_page_config: the frame first)
from ui.common import guarded, mark_framed, render_nav, render_sidebar  # noqa: E402
from ui.place import restore_place, sync_place  # noqa: E402

PAGES = [
    st.Page("pages/1_data.py", title="Data", icon=":material/photo_library:", default=True),
    st.Page("pages/2_model.py", title="Model", icon=":material/neurology:"),
    st.Page("pages/3_train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/4_evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/5_test.py", title="Test", icon=":material/frame_inspect:"),
    st.Page("pages/6_runs.py", title="Runs", icon=":material/history:"),
]

page = st.navigation(PAGES, position="hidden")
mark_framed()
guarded(restore_place)()  # a refresh, a new tab or a shared link continues where the user was
render_nav(PAGES)
warmup.probe()  # the hub probe waits on the network in the background while the page draws
loading.empty()
with st.spinner("Loading the page…"):  # shows only when the page takes longer than half a second
    page.run()
guarded(render_sidebar)()  # after the page, so it shows what the page just selected
guarded(sync_place)()
warmup.start()  # PyTorch and the hub probe load in the background, after the first paint
