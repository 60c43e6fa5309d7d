"""Entry point and router: `streamlit run Home.py`.

The sidebar drawn here (runs root → run → checkpoint, model pool) appears on every page.

Everything runs under ``if __name__ == "__main__":`` because Streamlit installs this script as the
process's ``__main__`` module, and a spawned process (the demo build's batch-rendering DataLoader
worker, ``dashboard/demo/train.py``) re-imports ``__main__`` as ``__mp_main__`` before it starts.
Unguarded, every build ran the whole app once more in that worker, with no Streamlit session:
~40 "missing ScriptRunContext" warnings in the server log per build. Imports stay inside too, so
the worker starts without loading the app.
"""


def _main() -> None:
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


if __name__ == "__main__":  # Streamlit's run: yes; a spawned worker's re-import (__mp_main__): no
    _main()
