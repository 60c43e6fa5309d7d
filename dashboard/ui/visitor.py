"""Who is asking: this browser's server-issued visitor identity, carried in a cookie.

Public mode only (local use has no visitors). The identity is a token the server signed
(:mod:`dashboard.identity`); it never lives in the page address, so a copied link carries the
*view* (run, checkpoint, page choices) and nothing else.

Streamlit reads cookies (``st.context.cookies``, from the request that opened this session's
websocket) but cannot set one from Python, so a two-line script (``st.html`` with JavaScript)
writes ``document.cookie``. The flow:

1. The session's websocket arrived with a cookie this deployment signed: that is the visitor.
2. Otherwise (first visit, cookie blocked, forged or from another deployment) the session gets a
   fresh token, kept in ``session_state`` for the rest of this session, and the script stores it
   in the cookie; the next page load sends it back. A value the server did not sign is replaced,
   never adopted, so nobody can plant their identity in someone else's browser.

The cookie's attributes (README, "Public mode"): over https ``SameSite=None; Secure;
Partitioned`` — a Space shows the app in an iframe on huggingface.co, a cross-site context in
which ``Lax`` cookies are not sent; partitioning (CHIPS) keys the cookie to the embedding site, so
another site's page that opens the app gets a different (empty) identity. Over plain http (local
tests) ``SameSite=Lax``.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from dashboard.identity import SECRET_ENV, VisitorSigner, deployment_secret
from dashboard.public import LIMITS, public_mode
from dashboard.ui.settings_source import environment, get_settings

COOKIE = "vlmlab_visitor"
OLD_URL_PARAM = "visitor"
_K_TOKEN = "vlmlab.visitor_token"


@st.cache_resource(show_spinner=False)
def _signer_for(data_dir: str, configured: bool) -> VisitorSigner:
    """One signer per data dir (``configured``: whether ``VLMLAB_VISITOR_SECRET`` is set; the value is not a key)."""
    return VisitorSigner(deployment_secret(Path(data_dir), environment()))


def _signer() -> VisitorSigner:
    return _signer_for(str(get_settings().data_dir), bool(environment().get(SECRET_ENV)))


def _session_token(signer: VisitorSigner) -> tuple[str, bool]:
    """(this session's token, whether the browser already holds it in the cookie)."""
    cookie = st.context.cookies.get(COOKIE)
    if signer.verify(cookie) is not None:
        st.session_state[_K_TOKEN] = cookie
        return str(cookie), True
    token = st.session_state.get(_K_TOKEN)
    if signer.verify(token) is None:
        token = signer.issue()
        st.session_state[_K_TOKEN] = token
    return str(token), False


def current_visitor() -> str | None:
    """Public mode: this browser's visitor id (server-issued, verified); local: None. Draws nothing."""
    if not public_mode():
        return None
    signer = _signer()
    token, _ = _session_token(signer)
    return signer.verify(token)


def ensure_visitor() -> str | None:
    """:func:`current_visitor`, and (router, once per run) the cookie written while the browser lacks it.

    An old ``?visitor=`` parameter in the address is dropped: it names nobody any more.
    """
    if not public_mode():
        return None
    if OLD_URL_PARAM in st.query_params:
        del st.query_params[OLD_URL_PARAM]
    signer = _signer()
    token, in_cookie = _session_token(signer)
    if not in_cookie:
        st.html(cookie_script(token), unsafe_allow_javascript=True, width="content")
    return signer.verify(token)


def cookie_script(token: str) -> str:
    """The script that stores ``token`` in the visitor cookie (the token is server-made: ``v1.`` + base64url)."""
    max_age = LIMITS.retention_days * 24 * 3600
    value = json.dumps(f"{COOKIE}={token}; Path=/; Max-Age={max_age}")
    return ("<script>(function(){var secure=location.protocol==='https:';"
            f"document.cookie={value}+(secure?'; SameSite=None; Secure; Partitioned':'; SameSite=Lax');"
            "})();</script>")


def render_public_banner() -> None:
    if not public_mode():
        return
    st.info(f"**Public demo.** Your prompts, uploaded images and results are kept on this server for at most "
            f"{LIMITS.retention_days} days (less if the Space restarts) and only this browser sees them: they are "
            "tied to a cookie the server issued, never to the page address, so a copied link shows the same view "
            f"and none of your history. Limits: one job at a time, at most {LIMITS.max_new_tokens} new tokens and "
            f"{LIMITS.max_beams} beams, at most {LIMITS.max_sweep_generations} generations (examples × "
            f"checkpoints) per job, a smaller *Check this map* ({LIMITS.max_map_check_pictures} pictures at most).",
            icon=":material/public:")
