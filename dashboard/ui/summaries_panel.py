"""Streamlit panels for what a run logs besides curves: configuration, hparam results, texts.

Everything from a log file is shown as plain text (``st.text`` / dataframes), never as
Markdown or HTML: logged sample generations are model output.
"""

from __future__ import annotations

import zlib

import pandas as pd
import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.runs.run import RunData
from dashboard.timeline.texts import text_at, text_series, text_steps


def render_configuration(run: RunData) -> None:
    """The run's hyper-parameters (add_hparams, trainer_state, logged args) and hparam results."""
    config = run.config
    results = run.hparam_metrics if run.hparam_metrics is not None else pd.DataFrame()
    if config.empty and results.empty:
        return
    with st.expander(f"Configuration ({len(config)} value(s))", expanded=False):
        if not config.empty:
            st.dataframe(config, hide_index=True, width="stretch")
        if not results.empty:
            st.caption("add_hparams results (one row per session; not training curves)")
            st.dataframe(results.pivot_table(index="folder", columns="tag", values="value", aggfunc="last"),
                         width="stretch")


def render_text_panel(run: RunData) -> None:
    """Pick a text series and a step; show what was logged there, as plain text."""
    labels = text_series(run.texts)
    others = run.other_summaries
    if not labels and (others is None or others.empty):
        return
    k = f"tl.text.{zlib.crc32(str(run.path).encode()):08x}"
    with st.expander("Logged text (e.g. sample generations per step)", expanded=bool(labels)):
        if labels and run.texts is not None:
            label = st.selectbox("Text series", labels, key=f"{k}.series")
            steps = text_steps(run.texts, label)
            step = steps[0] if len(steps) == 1 else st.select_slider("Step", steps, value=steps[-1],
                                                                     key=f"{k}.step.{label}")
            for text in text_at(run.texts, label, int(step)):
                st.text(text)
        if others is not None and not others.empty:
            listed = ", ".join(f"{t} ({kind}, {n}×)" for t, kind, n in
                               zip(others["tag"], others["kind"], others["count"], strict=True))
            st.caption(f"Also logged, not plotted: {markdown_safe(listed)}")
