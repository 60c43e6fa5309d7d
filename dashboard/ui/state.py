"""The session-state keys shared by all pages, in one place.

Values that must survive page changes live under plain (non-widget) keys: Streamlit drops a
widget's key on any run that does not render that widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

RUNS_ROOT = "vlmlab.runs_root"
RUN_PATH = "vlmlab.run_path"
CHECKPOINT_PATH = "vlmlab.checkpoint_path"
COMPARE_CHECKPOINTS = "vlmlab.compare_checkpoints"
NOTICE = "vlmlab.notice"


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def put(key: str, value: Any) -> None:
    st.session_state[key] = value


def _as_path(value: Any) -> Path | None:
    return Path(value) if value else None


def selected_run() -> Path | None:
    """The run directory chosen in the shared sidebar (already confined to the runs roots)."""
    return _as_path(get(RUN_PATH))


def selected_checkpoint() -> Path | None:
    """The checkpoint folder chosen in the shared sidebar or opened from another page."""
    return _as_path(get(CHECKPOINT_PATH))


def selected_compare_checkpoints() -> list[Path]:
    return [Path(p) for p in get(COMPARE_CHECKPOINTS, [])]


def open_checkpoint_in(page: str, checkpoint: str | Path, run: str | Path | None = None) -> None:
    """Carry ``checkpoint`` over to ``page`` (a path under ``pages/``) and switch to it."""
    if run is not None:
        put(RUN_PATH, str(run))
    put(CHECKPOINT_PATH, str(checkpoint))
    chosen = [str(p) for p in selected_compare_checkpoints()]
    if str(checkpoint) not in chosen:
        put(COMPARE_CHECKPOINTS, [*chosen, str(checkpoint)][-8:])
    put(NOTICE, f"Opened {Path(checkpoint).name} from the previous page.")
    st.switch_page(page)
