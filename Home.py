"""Entry point and router: `streamlit run Home.py`.

The sidebar drawn here (runs root → run → checkpoint, model pool) appears on every page.
"""

import streamlit as st

from dashboard.config import ConfigError
from dashboard.logs import configure_logging
from dashboard.ui.home_view import render_home
from dashboard.ui.resources import get_settings
from dashboard.ui.sidebar import render_sidebar
from dashboard.ui.url_state import read_selection, write_selection

st.set_page_config(page_title="VLM checkpoint lab", page_icon=":material/biotech:", layout="wide")

try:
    configure_logging(get_settings().log_level)
except ConfigError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

navigation = st.navigation([
    st.Page(render_home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Inference.py", title="Inference", icon=":material/chat:"),
    st.Page("pages/2_Comparison.py", title="Comparison", icon=":material/compare:"),
    st.Page("pages/3_Timeline.py", title="Timeline", icon=":material/timeline:"),
    st.Page("pages/4_Attention.py", title="Attention", icon=":material/visibility:"),
])
read_selection()  # ?run=…&ckpt=… on arrival, before the sidebar draws
render_sidebar()
write_selection()
navigation.run()
