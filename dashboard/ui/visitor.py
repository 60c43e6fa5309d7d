"""Who is asking, and may they: the visitor token, public-mode limits and fair model turns.

Every page that generates goes through :func:`generation_turn`: it applies the public-mode
limits (:mod:`dashboard.public`), then waits for this session's turn on the checkpoint in
arrival order (:meth:`ModelPool.turn`) while showing its place in the queue, instead of a
silent spinner.

The visitor token lives in the page URL (``?visitor=…``): Streamlit can read and write query
parameters but cannot set a cookie without a custom component, and the URL survives a refresh.
The router calls :func:`ensure_visitor` on every run so the parameter is put back after a page
switch (which drops query parameters).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.generation import GenerationSettings
from dashboard.models.loading import LoadedModel
from dashboard.models.turns import WaitCallback
from dashboard.public import (
    LIMITS,
    SLOTS,
    check_settings,
    check_sweep,
    is_visitor_token,
    new_visitor_token,
    public_mode,
)
from dashboard.ui.resources import get_pool

VISITOR_PARAM = "visitor"
_K_VISITOR = "vlmlab.visitor"


def ensure_visitor() -> str | None:
    """Public mode: this browser's token (from the URL, else a new one put there); local: None."""
    if not public_mode():
        return None
    token = st.query_params.get(VISITOR_PARAM)
    if not is_visitor_token(token):
        token = st.session_state.get(_K_VISITOR) or new_visitor_token()
    st.session_state[_K_VISITOR] = token
    if st.query_params.get(VISITOR_PARAM) != token:
        st.query_params[VISITOR_PARAM] = token
    return token


def current_visitor() -> str | None:
    """The token :func:`ensure_visitor` chose this run (None in local mode)."""
    return ensure_visitor()


def render_public_banner() -> None:
    if not public_mode():
        return
    st.info(f"**Public demo.** Your prompts, uploaded images and results are kept on this server for at most "
            f"{LIMITS.retention_days} days (less if the Space restarts) and only this browser sees them — "
            "they are tied to the `visitor` code in this page's address, so don't share that link. "
            f"Limits: one generation at a time, at most {LIMITS.max_new_tokens} new tokens, sweeps of at most "
            f"{LIMITS.max_sweep_generations} generations.", icon=":material/public:")


@contextmanager
def visitor_limits(settings: GenerationSettings | None = None, sweep: tuple[int, int] | None = None) -> Iterator[None]:
    """Public mode: refuse over-limit settings or sweeps, and hold this visitor's one generation slot."""
    visitor = current_visitor()
    if visitor is None:
        yield
        return
    if settings is not None:
        check_settings(settings)
    if sweep is not None:
        check_sweep(*sweep)
    with SLOTS.hold(visitor):
        yield


@contextmanager
def generation_turn(checkpoint: Path, settings: GenerationSettings | None = None,
                    limits: bool = True) -> Iterator[LoadedModel]:
    """Public-mode limits, then this session's FIFO turn on ``checkpoint``, the wait shown.

    One turn is one generation: callers with several generations take one turn each. Raises
    ``VisitorLimitError`` (a limit) or ``QueueTimeoutError`` (waited too long), both with a
    message for the user. ``limits=False`` inside a caller's own :func:`visitor_limits` block.
    """
    with ExitStack() as stack:
        if limits:
            stack.enter_context(visitor_limits(settings))
        notice = st.empty()
        loaded = stack.enter_context(get_pool().turn(checkpoint, on_wait=queue_notice(checkpoint, notice)))
        notice.empty()
        yield loaded


def queue_notice(checkpoint: Path, notice: Any) -> WaitCallback:
    """``on_wait`` that shows the session's place in ``checkpoint``'s queue in ``notice`` (an ``st.empty()``)."""

    def on_wait(ahead: int, waited_s: float) -> None:
        notice.info(f"Queued for **{markdown_safe(checkpoint.name)}**: {ahead} request(s) ahead of you "
                    f"(you are number {ahead + 1} in line) · waited {waited_s:.0f} s. "
                    "Requests are served in arrival order, one generation each.", icon=":material/schedule:")

    return on_wait
