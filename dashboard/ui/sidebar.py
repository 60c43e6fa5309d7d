"""The sidebar drawn by the router on every page: runs root → run → checkpoint, plus the pool.

Choices are mirrored into plain ``session_state`` keys (see :mod:`dashboard.ui.state`) so
that they survive page switches and so other pages (e.g. the Timeline's "open in…") can
change them programmatically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.paths import PathOutsideRoots
from dashboard.public import shown_path
from dashboard.runs.discovery import RunListing
from dashboard.ui import state
from dashboard.ui.resources import get_pool, get_run, get_settings

_W_ROOT = "_w_sidebar_root"
_W_RUN = "_w_sidebar_run"
_W_CKPT = "_w_sidebar_checkpoint"


def _sync_widget(widget_key: str, plain_key: str, options: list[str], default: str | None = None) -> None:
    """Make the widget show the plain key's value (set by another page), or a valid default
    (``default`` when given, else the last option)."""
    wanted = state.get(plain_key)
    if wanted in options:
        st.session_state[widget_key] = wanted
    elif st.session_state.get(widget_key) not in options:
        st.session_state[widget_key] = (default if default in options else options[-1]) if options else None
    now = st.session_state.get(widget_key)
    if wanted and wanted != now and not Path(wanted).exists():
        # e.g. the checkpoint folder was deleted while the page was open: say so, never switch silently.
        st.warning(markdown_safe(f"{Path(wanted).name} is no longer available (deleted or moved)"
                                 + (f"; showing {Path(now).name} instead." if now else ".")))
    state.put(plain_key, now)


def _copy_to_plain(widget_key: str, plain_key: str) -> None:
    state.put(plain_key, st.session_state.get(widget_key))


def _select(label: str, options: list[str], widget_key: str, plain_key: str, fmt=None,
            help_text: str | Callable[[str | None], str] | None = None, default: str | None = None):
    _sync_widget(widget_key, plain_key, options, default)
    if callable(help_text):
        help_text = help_text(st.session_state.get(widget_key))
    return st.selectbox(label, options, key=widget_key, format_func=fmt or (lambda p: Path(p).name),
                        on_change=_copy_to_plain, args=(widget_key, plain_key), help=help_text)


def render_sidebar() -> None:
    """Draw the shared selection controls; never raises for bad runs (shows the problem)."""
    from dashboard.runs.discovery import discover_within

    settings = get_settings()
    with st.sidebar:
        st.markdown("### Run")
        roots = [str(r) for r in settings.runs_roots]
        if len(roots) > 1:
            root = _select("Runs root", roots, _W_ROOT, state.RUNS_ROOT, fmt=str)
        else:
            root = roots[0]
            state.put(state.RUNS_ROOT, root)
        root_path = Path(root)
        if not root_path.is_dir():
            st.info(f"Runs root `{shown_path(root, ())}` does not exist yet. Build the demo run on Home.")
            state.put(state.RUN_PATH, None)
            state.put(state.CHECKPOINT_PATH, None)
            return
        # A run folder that is a symlink out of the roots is not offered at all (never walked into).
        found = discover_within(root_path, settings.runs_roots)
        runs = found.runs
        for problem in found.problems:
            st.caption(f"⚠ {markdown_safe(problem)}")
        if not runs:
            st.info(f"No runs under `{shown_path(root, ())}` yet.")
            state.put(state.RUN_PATH, None)
            state.put(state.CHECKPOINT_PATH, None)
            return
        run_path = _render_run_picker(runs)
        _render_checkpoint_picker(run_path)
        _render_pool()


def run_label(run: RunListing) -> str:
    """``projA/run1 · 12 ckpt``: the run's full relative name and its checkpoint count."""
    return f"{run.name} · {run.n_checkpoints} ckpt"


def _render_run_picker(runs: list[RunListing]) -> str:
    """Runs in name order; the default is the most recently modified; the full name is always shown
    under the picker (a narrow sidebar cuts long names such as ``sweep/lr3e-4_seed2_9f3c``)."""
    by_path = {str(r.path): r for r in runs}
    newest = max(runs, key=lambda r: r.modified)
    run_path = _select("Run", list(by_path), _W_RUN, state.RUN_PATH, fmt=lambda p: run_label(by_path[p]),
                       default=str(newest.path),
                       help_text=f"{len(runs)} run(s) under the runs root, by name; Home lists them as a "
                                 "sortable table. The default is the most recently modified run.")
    chosen = by_path.get(run_path)
    if chosen is not None:
        st.caption(markdown_safe(f"{chosen.name} · {chosen.n_checkpoints} checkpoint(s) · modified "
                                 f"{chosen.modified:%Y-%m-%d %H:%M} UTC"))
    return run_path


def _render_checkpoint_picker(run_path: str) -> None:
    try:
        run = get_run(run_path)
    except (PathOutsideRoots, FileNotFoundError, NotADirectoryError) as exc:
        st.error(markdown_safe(exc))
        state.put(state.CHECKPOINT_PATH, None)
        return
    loadable = [str(c.path) for c in run.checkpoints if c.loadable]
    if not loadable:
        st.warning(markdown_safe(run.why_not_loadable() or f"Run {run.name} has no loadable checkpoint."))
        state.put(state.CHECKPOINT_PATH, None)
        return
    best = str(run.best_checkpoint.path) if run.best_checkpoint else None
    steps = {str(c.path): c.step for c in run.checkpoints}

    def label(p: str) -> str:  # short enough for the sidebar: "(step N)" only when the name does not say it
        step, name = steps.get(p), Path(p).name
        star = " ★ best" if p == best else ""
        return f"{name}{'' if step is None or name.endswith(f'-{step}') else f' (step {step})'}{star}"

    _select("Checkpoint", loadable, _W_CKPT, state.CHECKPOINT_PATH, fmt=label,
            help_text="Shared by Inference and Attention; Comparison starts from it too.")
    # Drop compare selections that no longer belong to this run (e.g. after switching runs).
    kept = [p for p in state.get(state.COMPARE_CHECKPOINTS, []) if p in loadable]
    state.put(state.COMPARE_CHECKPOINTS, kept)


def _render_pool() -> None:
    from dashboard.ui.pool_panel import render_pool_panel

    with st.expander("Model pool", expanded=False):
        render_pool_panel(get_pool())
