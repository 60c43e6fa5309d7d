"""Inference, history mode: the persistent generation history — filter, re-run, delete, export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.csv_export import rows_csv_bytes
from dashboard.formatting import fmt_rate, fmt_seconds, markdown_safe
from dashboard.history import HistoryError, HistoryRecord
from dashboard.public import scrub_paths, shown_path
from dashboard.thumbnails import png_data_uri
from dashboard.ui import state
from dashboard.ui.resources import get_history, get_settings
from dashboard.ui.widgets import apply_generation_settings

K_SESSION = "inf.session_history"
K_RERUN = "inf.rerun"
K_MODE = "inf.mode"
K_PENDING = "inf.hist_pending_delete"  # ids waiting for the user's confirmation


def _ask_delete(ids: list[int]) -> None:
    st.session_state[K_PENDING] = list(ids)


def _cancel_delete() -> None:
    st.session_state.pop(K_PENDING, None)


def _confirm_delete(ids: list[int]) -> None:
    """Delete exactly the ids the user confirmed (not whatever the filter shows now)."""
    st.session_state.pop(K_PENDING, None)
    try:
        deleted = get_history().delete(ids)
    except HistoryError as exc:
        st.session_state["inf.hist_notice"] = f"Nothing deleted: {markdown_safe(exc)}"
        return
    st.session_state["inf.hist_notice"] = f"Deleted {deleted} record(s)."


def _confirmation() -> None:
    """Ask before a delete: the database has no undo."""
    pending = st.session_state.get(K_PENDING)
    notice = st.session_state.pop("inf.hist_notice", None)
    if notice:
        st.success(notice)  # Markdown: run and database text in it is escaped where it is made
    if not pending:
        return
    with st.container(border=True):
        shown = ", ".join(f"#{i}" for i in pending[:10]) + (" …" if len(pending) > 10 else "")
        st.warning(f"Delete {len(pending)} record(s) ({shown}) from the history? This cannot be undone.")
        c1, c2 = st.columns(2)
        c1.button("Yes, delete", type="primary", key="inf.hist_confirm", on_click=_confirm_delete, args=(pending,))
        c2.button("Cancel", key="inf.hist_cancel", on_click=_cancel_delete)


def save_history(records: list[HistoryRecord]) -> None:
    """Persist, and mirror into session_state; a failing database is reported, results are kept."""
    st.session_state.setdefault(K_SESSION, []).extend(r.export_dict() for r in records)
    try:
        get_history().add_many(records)
    except HistoryError as exc:
        st.warning(markdown_safe(f"Result shown but not saved to history: {exc}"))


def start_rerun(record_id: int) -> None:
    """Callback: put a history row back into the single-mode form."""
    record = get_history().get(record_id)
    if record is None:
        return
    st.session_state[K_RERUN] = record_id
    st.session_state["inf.prompt"] = record.prompt
    st.session_state["inf.prefill"] = record.prefill
    apply_generation_settings("inf", record.settings)
    st.session_state[K_MODE] = "Single"
    if record.checkpoint != str(state.selected_checkpoint()):
        state.put(state.CHECKPOINT_PATH, record.checkpoint)
        if record.run:
            state.put(state.RUN_PATH, record.run)


def render_history_mode() -> None:
    try:
        history = get_history()
        checkpoints = history.distinct("checkpoint")
    except HistoryError as exc:
        st.error(markdown_safe(exc))
        return
    c1, c2 = st.columns([2, 2])
    ckpt_filter = c1.selectbox("Checkpoint", ["all", *checkpoints], key="inf.hist_ckpt",
                               format_func=lambda p: p if p == "all" else "/".join(Path(p).parts[-2:]))
    text_filter = c2.text_input("Search prompt / output", key="inf.hist_text")
    records = history.list(checkpoint=None if ckpt_filter == "all" else ckpt_filter, text=text_filter or None)
    st.caption(f"{len(records)} record(s) shown · {history.count()} stored in "
               f"{markdown_safe(shown_path(history.path, ()))}")
    if not records:
        _confirmation()
        st.info("No generations recorded yet (or none match the filter).")
        return
    table = pd.DataFrame([{
        "id": r.id, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at)),
        "image": png_data_uri(r.thumbnail), "checkpoint": Path(r.checkpoint).name, "prompt": r.prompt,
        "output": r.output, "mode": r.mode, "decode": fmt_rate(r.timings.get("tokens_per_s")),
        "latency": fmt_seconds(r.timings.get("per_example_s", r.timings.get("latency_s")))} for r in records])
    st.dataframe(table, hide_index=True, column_config={"image": st.column_config.ImageColumn("image")})
    by_id = {r.id: r for r in records if r.id is not None}
    ids = list(by_id)
    chosen = st.selectbox("Record", ids, key="inf.hist_pick",
                          format_func=lambda i: f"#{i} · {Path(by_id[i].checkpoint).name} · {by_id[i].prompt[:40]}")
    b1, b2, b3 = st.columns(3)
    b1.button("Re-run", key="inf.hist_rerun", on_click=start_rerun, args=(chosen,),
              help="Put checkpoint, prompt, settings and image back into the Single form")
    b2.button("Delete", key="inf.hist_delete", on_click=_ask_delete, args=([int(chosen)],))
    b3.button(f"Delete all {len(records)} shown", key="inf.hist_delete_all", on_click=_ask_delete, args=(ids,))
    _confirmation()
    rows = scrub_paths(history.export_rows(records), get_settings().runs_roots)
    d1, d2 = st.columns(2)
    d1.download_button("Export CSV", rows_csv_bytes(rows, drop=("settings", "timings")), "history.csv", "text/csv",
                       key="inf.hist_csv")
    d2.download_button("Export JSON", json.dumps(rows, indent=1, default=str).encode(), "history.json",
                       "application/json", key="inf.hist_json")
