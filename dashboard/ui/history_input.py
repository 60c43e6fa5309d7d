"""Use an earlier generation's image as input: the one history picker of Comparison and Attention.

Inference's re-run and both pickers decode a stored image the same way (with the configured
pixel limit), so a stored image is usable on one page exactly when it is on the others.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.history import HistoryError, HistoryRecord
from dashboard.images import ImageError
from dashboard.ui.image_input import PickedImage, picked_from_bytes
from dashboard.ui.resources import get_history

HISTORY_LIMIT = 100


def history_image(record: HistoryRecord) -> PickedImage | str:
    """The record's stored image, or a sentence saying why it cannot be used."""
    if record.image is None:
        return f"History #{record.id}: the original image was too large to store; pick the image again."
    try:
        return picked_from_bytes(record.image, record.image_name or f"history #{record.id}")
    except ImageError as exc:
        return f"History #{record.id}: stored image unusable: {exc}"


def history_record(record_id: int) -> HistoryRecord | None:
    """One record, or None with the reason shown (deleted, or the database is unavailable)."""
    try:
        record = get_history().get(int(record_id))
    except HistoryError as exc:
        st.error(markdown_safe(f"History is unavailable: {exc}"))
        return None
    if record is None:
        st.warning(f"History item #{record_id} was deleted.")
    return record


def pick_history_item(key: str, *, only_with_image: bool = False) -> tuple[PickedImage | None, str]:
    """Choose a history item → (its image or None, its prompt); every problem is shown, not raised."""
    try:
        records = get_history().list(limit=HISTORY_LIMIT)
    except HistoryError as exc:
        st.error(markdown_safe(f"History is unavailable: {exc}"))
        return None, ""
    if only_with_image:
        records = [r for r in records if r.image_stored]
    if not records:
        st.info("No history item with a stored image yet — generate on the Inference page first."
                if only_with_image else
                "The history is empty: generations made on the Inference page appear here.")
        return None, ""
    by_id = {r.id: r for r in records}
    chosen = st.selectbox("History item", list(by_id), key=key, format_func=lambda i: (
        f"#{i} · {Path(by_id[i].checkpoint).name} · {by_id[i].prompt[:50]} → {by_id[i].output[:30]}"))
    record = history_record(int(chosen))
    if record is None:
        return None, ""
    picked = history_image(record)
    if isinstance(picked, str):
        st.warning(markdown_safe(picked))
        return None, record.prompt
    st.image(picked.image, caption=f"#{record.id} · {markdown_safe(picked.name)} · "
                                          f"{picked.image.width}×{picked.image.height}",
             width=256)
    return picked, record.prompt
