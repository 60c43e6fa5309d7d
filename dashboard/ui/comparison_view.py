"""Comparison page: which checkpoints, then one example or a whole eval set across them.

Running, caching, scoring, diffing, saving and exporting live in ``dashboard.compare``; the two
modes are drawn by :mod:`comparison_single_view` and :mod:`comparison_eval_view`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.compare.diff import style_block
from dashboard.compare.selection import (
    MAX_CHECKPOINTS,
    MIN_CHECKPOINTS,
    add_checkpoint,
    default_checkpoints,
    limit_note,
    merge_selection,
)
from dashboard.formatting import markdown_safe
from dashboard.paths import PathOutsideRoots
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.run import RunData, RunNotFoundError
from dashboard.ui import state, url_state
from dashboard.ui.comparison_eval_view import render_eval_mode
from dashboard.ui.comparison_single_view import render_single_example
from dashboard.ui.resources import get_run
from dashboard.ui.widgets import generation_settings_form

K_CKPTS = "cmp.checkpoints"
K_CKPTS_RUN = "cmp.checkpoints_run"
K_CKPTS_SIDEBAR = "cmp.checkpoints_sidebar"  # the sidebar checkpoint the selection last took in
K_MODE = "cmp.mode"
MODES = ["One example", "Eval set"]
MODE_PARAMS = {"one": MODES[0], "eval": MODES[1]}  # ?mode=… in the URL


def choose_checkpoints(run: RunData) -> list[CheckpointInfo]:
    """2–8 loadable checkpoints: the sidebar's plus first, best and last (or those carried from another page).

    A checkpoint newly chosen in the sidebar joins the selection while there is room.
    """
    loadable = [c for c in run.checkpoints if c.loadable]
    names = [c.name for c in loadable]
    best = run.best_checkpoint.name if run.best_checkpoint else None
    sidebar = state.selected_checkpoint()
    current = sidebar.name if sidebar else None
    stale = st.session_state.get(K_CKPTS_RUN) != str(run.path) or any(
        n not in names for n in st.session_state.get(K_CKPTS, []))
    if stale or K_CKPTS not in st.session_state:  # new run, or widget key dropped after another page
        carried = [Path(p).name for p in state.selected_compare_checkpoints()]
        st.session_state[K_CKPTS] = merge_selection(names, carried, default_checkpoints(names, best, current))
        st.session_state[K_CKPTS_RUN] = str(run.path)
    elif st.session_state.get(K_CKPTS_SIDEBAR) != current:
        st.session_state[K_CKPTS] = add_checkpoint(names, st.session_state[K_CKPTS], current)
    st.session_state[K_CKPTS_SIDEBAR] = current
    from_url = url_state.arrival_value("cmp", url_state.decode_names(names, MAX_CHECKPOINTS), "checkpoints")
    if from_url:
        st.session_state[K_CKPTS] = [n for n in names if n in from_url]

    def label(name: str) -> str:
        tags = [t for t, n in (("best", best), ("sidebar", current)) if n == name]
        return f"{name} ({', '.join(tags)})" if tags else name

    chosen = st.multiselect(f"Checkpoints ({MIN_CHECKPOINTS}–{MAX_CHECKPOINTS})", names, key=K_CKPTS,
                            max_selections=MAX_CHECKPOINTS, format_func=label,
                            help="Starts from the sidebar's checkpoint plus the run's first, best and last.")
    note = limit_note(len(names), len(chosen))
    if note:
        st.caption(note)
    by_name = {c.name: c for c in loadable}
    infos = [by_name[n] for n in names if n in chosen]  # always in step order
    state.put(state.COMPARE_CHECKPOINTS, [str(c.path) for c in infos])
    url_state.publish("cmp", ",".join(c.name for c in infos))
    return infos


def render_comparison() -> None:
    st.title("Comparison")
    st.html(style_block())
    run_dir = state.selected_run()
    if run_dir is None:
        st.info("Pick a run in the sidebar to compare its checkpoints.")
        return
    try:
        run = get_run(run_dir)
    except (PathOutsideRoots, RunNotFoundError) as exc:
        st.error(markdown_safe(f"Cannot open run: {exc}"))
        return
    if sum(c.loadable for c in run.checkpoints) < MIN_CHECKPOINTS:
        st.warning(markdown_safe(f"{run.name} has fewer than {MIN_CHECKPOINTS} loadable checkpoints; "
                                 "nothing to compare."))
        return
    infos = choose_checkpoints(run)
    if len(infos) < MIN_CHECKPOINTS:
        st.info(f"Choose at least {MIN_CHECKPOINTS} checkpoints.")
        return
    gen = generation_settings_form("cmp", "Generation settings (shared by all checkpoints)")
    from_url = url_state.arrival_value("mode", url_state.decode_choice(list(MODE_PARAMS)), "mode")
    if from_url:
        st.session_state[K_MODE] = MODE_PARAMS[from_url]
    mode = st.radio("Mode", MODES, horizontal=True, key=K_MODE)
    url_state.publish("mode", next(k for k, v in MODE_PARAMS.items() if v == mode))
    if mode == MODES[0]:
        render_single_example(run, infos, gen)
    else:
        render_eval_mode(run, infos, gen)
