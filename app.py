"""Graft: the router. ``streamlit run app.py`` draws the frame and runs the page the user picked."""

import streamlit as st

from ui.common import guarded, mark_framed, render_sidebar

st.set_page_config(page_title="Graft", page_icon=":material/center_focus_strong:", layout="wide")

PAGES = [
    st.Page("pages/1_data.py", title="Data", icon=":material/photo_library:", default=True),
    st.Page("pages/2_model.py", title="Model", icon=":material/neurology:"),
    st.Page("pages/3_train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/4_evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/5_test.py", title="Test", icon=":material/frame_inspect:"),
    st.Page("pages/6_runs.py", title="Runs", icon=":material/history:"),
]

page = st.navigation(PAGES)
mark_framed()
page.run()
guarded(render_sidebar)()  # after the page, so it shows what the page just selected
