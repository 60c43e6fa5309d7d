"""The public upload limit, applied where Streamlit enforces it (its server) and shown where it is used.

Streamlit refuses an upload over ``server.maxUploadSize`` in its upload handler (HTTP 413, checked
per request from the live config). A ``max_upload_size`` given to ``st.file_uploader`` is only told
to the browser, so a client that speaks the protocol itself is bounded by the server option alone:
:func:`enforce_upload_limit` lowers that option in public mode, once per script run (cheap), which
covers every way the server is started (Space, ``scripts/launch.sh``, ``streamlit run``) without a
flag. Uploaders are also given ``max_upload_size=upload_limit_mb()`` so the browser refuses a larger
file before sending it, with the limit in its message (None locally: the server option's value).
An operator may set a lower limit (``STREAMLIT_SERVER_MAX_UPLOAD_SIZE``); never a higher one.
"""

from __future__ import annotations

from streamlit import config

from dashboard.public import upload_limit_mb

SERVER_OPTION = "server.maxUploadSize"


def enforce_upload_limit() -> None:
    """Public mode: the server refuses uploads over ``LIMITS.max_upload_mb`` (locally: unchanged)."""
    limit = upload_limit_mb()
    if limit is not None and int(config.get_option(SERVER_OPTION)) > limit:
        config.set_option(SERVER_OPTION, limit)


def limit_note() -> str:
    """The limit as a help text tail (empty locally)."""
    limit = upload_limit_mb()
    return "" if limit is None else f"; this public demo takes files up to {limit} MB"
