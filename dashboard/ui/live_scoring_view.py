"""The *Live scoring* switch: a run's checkpoints scored in the background as they are saved.

The switch starts the run's one watcher of this server (:class:`dashboard.live.registry.LiveRegistry`
behind ``st.cache_resource``), so every session that turns it on sees the same job; results go to
the store the Timeline reads (the ``eval`` command's key), and the Timeline's own live refresh is
turned on with it so the score line grows while you look.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.live.registry import LiveRegistry
from dashboard.live.watcher import Watcher
from dashboard.public import public_mode
from dashboard.ui.resources import get_pool, get_settings

TIMELINE_LIVE_KEY = "tl.live"  # the Timeline's "Live: auto-refresh" toggle (timeline_view.K_LIVE)
STATUS_EVERY_S = 2.0


@st.cache_resource(show_spinner=False)
def live_registry() -> LiveRegistry:
    """The process's one registry of live watchers (one per run, shared by every session)."""
    return LiveRegistry()


def make_watcher(run_path: Path) -> Watcher:
    """The watcher the switch starts: the run's own eval set, ``eval``'s settings, the app's pool."""
    from dashboard.compare.headless import EvalRequest
    from dashboard.live.watcher import WatchConfig

    return Watcher(WatchConfig(EvalRequest(run=Path(run_path)), settings=get_settings()), pool_factory=get_pool)


def start_live_scoring(run_path: Path) -> str | None:
    """Switch the run's watcher on; the reason when it cannot start (e.g. the run has no eval set)."""
    from dashboard.compare.headless import BadInput

    try:
        live_registry().start(Path(run_path), lambda: make_watcher(Path(run_path)))
    except BadInput as exc:
        return str(exc)
    return None


def follow_demo_build(run_path: Path) -> None:
    """The demo is the first live run: while this server builds it, its watcher runs (started once per
    server, from whichever page is open; switching it off keeps it off)."""
    from dashboard.demo.jobs import build_running

    if build_running(run_path) and (Path(run_path) / "eval").is_dir() and live_registry().job(run_path) is None:
        start_live_scoring(Path(run_path))


def _key(run_path: Path) -> str:
    return f"live.{zlib.crc32(str(Path(run_path).resolve()).encode()):08x}"


def render_live_scoring(run_path: str | Path) -> None:
    """The switch and, while it is on, the watcher's status line (refreshed every 2 s)."""
    run_path = Path(run_path)
    follow_demo_build(run_path)
    registry = live_registry()
    key = _key(run_path)
    st.session_state[key] = registry.is_on(run_path)  # the server's state, whoever switched it
    if st.session_state[key] and not st.session_state.get(f"{key}.seen"):
        st.session_state[f"{key}.seen"] = True  # switched on elsewhere (another session, the demo build):
        st.session_state[TIMELINE_LIVE_KEY] = True  # follow it here too, once; the user may turn refresh off

    if public_mode():  # a visitor's switch would score for everyone on this server: not offered
        st.caption("Live scoring is not offered in this public demo; scores appear as the demo build saves them.")
        if registry.job(run_path) is not None:
            _status(run_path)
        return

    def changed() -> None:
        if st.session_state[key]:
            problem = start_live_scoring(run_path)
            st.session_state[f"{key}.problem"] = problem
            if problem is None:
                st.session_state[TIMELINE_LIVE_KEY] = True  # the chart re-reads results as they land
        else:
            registry.stop(run_path)

    st.toggle("Live scoring", key=key, on_change=changed,
              help="Score every checkpoint of this run that has no result yet on the run's eval set, then each "
                   "new one as it is saved (one scorer per run for everyone on this server; the same results as "
                   "`python -m dashboard watch` and Comparison).")
    problem = st.session_state.pop(f"{key}.problem", None)
    if problem:
        st.warning(f"Live scoring cannot start: {markdown_safe(problem)}")
    if registry.job(run_path) is not None:
        _status(run_path)


@st.fragment(run_every=STATUS_EVERY_S)
def _status(run_path: Path) -> None:
    job = live_registry().job(run_path)
    if job is None:
        return
    status = job.status
    st.caption(f"Live scoring: {markdown_safe(status.text())}")
    for name, error in status.errors:
        st.caption(f"⚠ {markdown_safe(name)} could not be scored: {markdown_safe(error)}")


def select_new_series(key: str, labels: list[str]) -> None:
    """Select score series that appeared since this session last drew the chart.

    A multiselect keeps its value when its options grow, so a score line that a live watcher
    starts while you look would otherwise stay hidden until picked by hand.
    """
    offered_key = f"{key}.offered"
    offered = st.session_state.get(offered_key)
    if offered is not None and key in st.session_state:
        new = [label for label in labels if label not in offered]
        if new:
            st.session_state[key] = [*st.session_state[key], *new]
    st.session_state[offered_key] = list(labels)
