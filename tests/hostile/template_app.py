"""A tiny Streamlit app for ``test_hostile_template_server.py``: each script run renders one chat
template inside the server process, the way the Inference page does (``?case=`` picks which).

``tower`` is a real hostile template through the public API (on main it froze the whole server
for a minute); ``freeze-in-c`` sends a stand-in worker (``tests/worker_stand_in.py``) into one
~60 s C call that the sandbox cannot refuse, so the process cage itself is what keeps the server
answering. The app touches ``$CAGE_APP_FLAGS/<case>.started`` just before rendering.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from dashboard.chat_template import ChatTemplateError, render_chat_template
from tests.liveness_kit import NORMAL_CONTEXT, NORMAL_TEMPLATE

TOWER = "{{ (((99999999999 ** 64) ** 64) ** 7) ** 64 }}"


@st.cache_resource
def stand_in_workers():  # imported lazily: main has no TemplateWorkers, and its tower case must still run
    from dashboard.chat_template import TemplateWorkers
    from tests.worker_stand_in import command

    return TemplateWorkers(warm=1, command=command())


case = st.query_params.get("case", "normal")
flags = os.environ.get("CAGE_APP_FLAGS")
if flags:
    (Path(flags) / f"{case}.started").touch()
try:
    if case == "tower":
        text = render_chat_template(TOWER, {"messages": []})
    elif case == "freeze-in-c":
        text = stand_in_workers().render("freeze-in-c", {}, timeout_s=5.0)
    else:
        text = render_chat_template(NORMAL_TEMPLATE, NORMAL_CONTEXT)
    st.code(f"rendered: {text}")
except ChatTemplateError as exc:
    st.code(f"refused: {exc}")
