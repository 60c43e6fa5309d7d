"""Entry point and router: `streamlit run Home.py`.

The sidebar drawn here (runs root → run → checkpoint, model pool) appears on every page.
"""

import sys

import streamlit as st

from dashboard.config import ConfigError
from dashboard.logs import configure_logging
from dashboard.models.turns import GIL_SWITCH_INTERVAL_S
from dashboard.ui.home_view import render_home
from dashboard.ui.resources import get_settings
from dashboard.ui.sidebar import render_sidebar
from dashboard.ui.upload_limit import enforce_upload_limit
from dashboard.ui.url_state import read_selection, write_selection
from dashboard.ui.visitor import ensure_visitor, render_public_banner

# A generating thread gives the GIL back at every torch op and must win it back against the other
# sessions' script threads; a 1 ms switch interval (default 5 ms) cut its wait ~4x (bench/RESULTS.md).
sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
st.set_page_config(page_title="VLM checkpoint lab", page_icon=":material/biotech:", layout="wide")

try:
    configure_logging(get_settings().log_level)
except ConfigError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

enforce_upload_limit()  # public mode: Streamlit's server refuses larger uploads (before any is sent)
ensure_visitor()  # public mode: this browser's token in the URL (put back after every page switch)
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
render_public_banner()
navigation.run()
