"""Sidebar/Home panel: what the model pool holds, against its budget, with evict buttons."""

from __future__ import annotations

import time

import streamlit as st

from dashboard.formatting import fmt_bytes, markdown_safe
from dashboard.models.pool import ModelPool, PoolEntry


def _ago(timestamp: float) -> str:
    seconds = max(0.0, time.time() - timestamp)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _label(entry: PoolEntry) -> str:
    parts = entry.path.parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else entry.path.name


def render_pool_panel(pool: ModelPool, key: str = "pool") -> None:
    """Show held models (model, device, bytes, last used) and let the user evict them."""
    used, budget = pool.used_bytes, pool.budget_bytes
    st.progress(min(1.0, used / budget) if budget else 0.0,
                text=f"{fmt_bytes(used)} of {fmt_bytes(budget)} budget · {pool.device}")
    st.caption("Bytes = parameters + buffers of each loaded model (activations not counted). "
               f"Model loads since start: {pool.load_count}.")
    entries = pool.entries()
    if not entries:
        st.caption("No model loaded yet.")
        return
    from dashboard.public import public_mode

    shared_controls = not public_mode()  # evicting affects every visitor: not for strangers
    for entry in entries:
        with st.container(border=True):
            activity = (f"  \nloaded in {entry.load_seconds:.2f} s · used {_ago(entry.last_used)}"
                        + (" · **in use**" if entry.in_use else "")) if shared_controls else ""
            # public mode: when and whether others use a model is their business, not a stranger's
            st.markdown(f"**{markdown_safe(_label(entry))}**  \n{markdown_safe(entry.model_type)} · {entry.device} · "
                        f"{entry.dtype} · {fmt_bytes(entry.nbytes)}" + activity)
            if shared_controls and st.button("Evict", key=f"{key}.evict.{entry.path}", disabled=bool(entry.in_use),
                         help="Free this model's memory (it reloads on next use)"):
                if pool.evict(entry.path):
                    st.toast(f"Evicted {markdown_safe(_label(entry))}")
                else:
                    st.toast(f"{markdown_safe(_label(entry))} is in use; try again when its generation finishes")
                st.rerun()
    if shared_controls and len(entries) > 1 and st.button("Evict all", key=f"{key}.clear"):
        pool.clear()
        st.rerun()
