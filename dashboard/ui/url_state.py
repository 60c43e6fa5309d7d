"""The view in the URL (``st.query_params``): ``?run=<run name>&ckpt=<checkpoint folder>`` plus
page-specific choices, so a reload keeps the view and a copied link opens it in a fresh browser.

Read once per browser session, on arrival (a reload is a new session); written on every run after
the sidebar and each bound widget are drawn. Values are *names* — a run's path relative to the
runs root (``projA/run1``), a checkpoint's folder name — looked up among what the sidebar offers,
so a URL can never point outside the runs roots; an unknown value gets a clear message and the
normal default instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.paths import PathOutsideRoots
from dashboard.runs.discovery import find_run, run_name
from dashboard.runs.run import RunNotFoundError
from dashboard.ui import state
from dashboard.ui.resources import get_run, get_settings

RUN = "run"
CKPT = "ckpt"
_READ = "vlmlab.url.read"
_APPLIED = "vlmlab.url.applied."
MAX_VALUE = 200


def folder_name(value: str | None) -> str | None:
    """``value`` if it is a plain folder name (no separator, not ``.``/``..``, not absurdly long)."""
    if not value or len(value) > MAX_VALUE or value in (".", "..") or "/" in value or "\\" in value \
            or "\x00" in value:
        return None
    return value


def read_selection() -> None:
    """On a session's first run: URL → the sidebar's plain keys (before the sidebar is drawn)."""
    if st.session_state.get(_READ):
        return
    st.session_state[_READ] = True
    run_name, ckpt_name = st.query_params.get(RUN), st.query_params.get(CKPT)
    if not run_name:
        if ckpt_name:
            st.warning(f"The link names checkpoint {markdown_safe(repr(ckpt_name))} but no run; "
                       "showing the default run.")
        return
    run_dir = find_run(run_name, get_settings().runs_roots)
    if run_dir is None:
        st.warning(f"The link's run {markdown_safe(repr(run_name))} is not a run under the runs root; "
                   "showing the default run.")
        return
    state.put(state.RUN_PATH, str(run_dir))
    state.put(state.CHECKPOINT_PATH, None)
    if not ckpt_name:
        return
    try:
        run = get_run(run_dir)
    except (PathOutsideRoots, RunNotFoundError) as exc:
        st.warning(f"Cannot open the link's run {markdown_safe(repr(run_name))}: {markdown_safe(exc)}")
        return
    plain = folder_name(ckpt_name)
    ckpt = next((c for c in run.checkpoints if c.name == plain and c.loadable), None)
    if ckpt is None:
        st.warning(f"The link's checkpoint {markdown_safe(repr(ckpt_name))} is not a loadable checkpoint of "
                   f"{markdown_safe(run.name)}; "
                   "showing the newest instead.")
        return
    state.put(state.CHECKPOINT_PATH, str(ckpt.path))


def write_selection() -> None:
    """The sidebar's current run and checkpoint → the URL (names only)."""
    run, ckpt = state.selected_run(), state.selected_checkpoint()
    _set(RUN, run_name(run, get_settings().runs_roots) if run else None)
    _set(CKPT, ckpt.name if ckpt and run and ckpt.parent == run else None)


def _set(param: str, value: str | None) -> None:
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != value:
        st.query_params[param] = value


def arrival_value(param: str, decode: Callable[[str], Any], what: str) -> Any:
    """The URL's value for a page-specific choice, once per session (the first time the widget is drawn).

    ``decode`` turns the text into the widget's value and raises ``ValueError`` (with the reason)
    when it is not valid here; the message is shown and None returned, so the widget's normal
    default applies.
    """
    flag = _APPLIED + param
    if st.session_state.get(flag):
        return None
    st.session_state[flag] = True
    raw = st.query_params.get(param)
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValueError as exc:
        st.warning(f"The link's {what} ({param}={markdown_safe(repr(raw[:MAX_VALUE]))}) cannot be used: "
                   f"{markdown_safe(exc)}. Using the default.")
        return None


def publish(param: str, value: str | None) -> None:
    """A page-specific choice → the URL (None removes it)."""
    _set(param, value)


def decode_names(options: Sequence[str], limit: int | None = None) -> Callable[[str], list[str]]:
    """Decoder for a comma-separated list of option names; every name must be an option."""
    def decode(raw: str) -> list[str]:
        names = [n for n in raw.split(",") if n]
        unknown = [n for n in names if n not in options]
        if unknown:
            raise ValueError(f"unknown {', '.join(repr(n[:40]) for n in unknown[:3])}")
        if limit is not None and len(names) > limit:
            raise ValueError(f"at most {limit} allowed")
        return names
    return decode


def decode_choice(options: Sequence[Any], parse: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """Decoder for one of ``options`` (after ``parse``, e.g. ``int``)."""
    def decode(raw: str) -> Any:
        try:
            value = parse(raw)
        except (TypeError, ValueError):
            raise ValueError("not a valid value") from None
        if value not in options:
            raise ValueError("not one of the choices here")
        return value
    return decode
