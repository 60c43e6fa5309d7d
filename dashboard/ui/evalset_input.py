"""The one eval-set chooser: the run's own sets (``<run>/eval/``) or an uploaded JSONL/CSV.

Used by the image gallery, Inference's batch mode, Comparison's eval mode and Attention's
pointing score. Problems (unreadable file, skipped rows, no usable example) are shown here
and the functions return None, so callers only handle a usable set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from dashboard.evalset import EvalSet, EvalSetError, find_eval_sets, load_eval_set, parse_eval_set
from dashboard.formatting import markdown_safe
from dashboard.heap import release_freed_memory
from dashboard.public import LIMITS, public_mode, upload_limit_mb
from dashboard.ui.resources import get_settings
from dashboard.ui.upload_limit import limit_note

SOURCE_RUN = "Run's eval set"
SOURCE_UPLOAD = "Upload JSONL/CSV"


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_eval_set(path: str, mtime_ns: int, roots: tuple[str, ...]) -> EvalSet:
    return load_eval_set(Path(path), roots=roots)


def eval_set_for(path: Path) -> EvalSet:
    """Load (cached by path + modification time) an eval set with images confined to the runs roots."""
    roots = tuple(str(r) for r in get_settings().runs_roots)
    return _cached_eval_set(str(path), path.stat().st_mtime_ns, roots)


def uploaded_eval_set(data: bytes, file_name: str, run_dir: Path) -> EvalSet:
    """An uploaded set, parsed once per content (cached by SHA-256, not re-read on every rerun).

    Relative image paths are looked up in the run's ``eval/`` folder, then in the run folder, so
    the run's own file uploaded unchanged works. Public mode reads at most
    ``LIMITS.max_eval_rows`` rows.
    """
    roots = tuple(str(r) for r in get_settings().runs_roots)
    max_rows = LIMITS.max_eval_rows if public_mode() else None
    return _parsed_upload(hashlib.sha256(data).hexdigest(), file_name, str(run_dir), roots, max_rows, data)


@st.cache_data(show_spinner=False, max_entries=8)
def _parsed_upload(digest: str, file_name: str, run_dir: str, roots: tuple[str, ...], max_rows: int | None,
                   _data: bytes) -> EvalSet:
    """``_data`` is not hashed by Streamlit (leading underscore): ``digest`` stands for it."""
    run = Path(run_dir)
    try:
        return parse_eval_set(_data, name=Path(file_name).stem, path=Path(file_name), base_dir=[run / "eval", run],
                              roots=roots, fmt=Path(file_name).suffix.lower().lstrip("."), max_rows=max_rows)
    finally:
        release_freed_memory()  # the parse's text and rows, freed, back to the OS (a cache miss only)


def run_eval_sets(run_dir: Path | None) -> list[Path]:
    """The eval sets shipped with the run (empty when there is no run or it is gone)."""
    return find_eval_sets(run_dir) if run_dir is not None and Path(run_dir).is_dir() else []


def _report(eval_set: EvalSet) -> EvalSet | None:
    if eval_set.problems:
        with st.expander(f"{len(eval_set.problems)} bad row(s) of {markdown_safe(eval_set.name)} skipped",
                         expanded=not eval_set.examples):
            st.text("\n".join(eval_set.problems[:200]))
    if not eval_set.examples:
        st.warning(markdown_safe(f"Eval set {eval_set.name} has no usable examples."))
        return None
    return eval_set


def choose_run_eval_set(widget_key: str, sets: list[Path]) -> EvalSet | None:
    """Pick one of the run's eval sets (no widget when there is only one) and load it."""
    if not sets:
        return None
    set_path = sets[0] if len(sets) == 1 else st.selectbox(
        "Eval set", sets, key=widget_key, format_func=lambda p: p.name)
    try:
        eval_set = eval_set_for(Path(set_path))
    except (EvalSetError, OSError) as exc:
        st.error(markdown_safe(f"Cannot read eval set {Path(set_path).name}: {exc}"))
        return None
    return _report(eval_set)


def choose_eval_set_or_upload(key: str, run_dir: Path) -> EvalSet | None:
    """The run's eval set, or an uploaded one whose relative image paths are taken from ``run_dir``."""
    sets = run_eval_sets(run_dir)
    options = ([SOURCE_RUN] if sets else []) + [SOURCE_UPLOAD]
    source = st.radio("Eval set source", options, horizontal=True, key=f"{key}.source")
    if source == SOURCE_RUN:
        eval_set = choose_run_eval_set(f"{key}.file", sets)
    else:
        upload = st.file_uploader("Eval set (columns: image, prompt, answer; optional id, task)",
                                  type=["jsonl", "csv"], key=f"{key}.upload", max_upload_size=upload_limit_mb(),
                                  help="Relative image paths are looked up in the run's eval folder, then the run "
                                       "folder; images must lie inside the runs roots" + limit_note() + ".")
        if upload is None:
            return None
        try:
            parsed = uploaded_eval_set(upload.getvalue(), upload.name, run_dir)
        except (EvalSetError, OSError) as exc:
            st.error(markdown_safe(f"Cannot use this eval set: {exc}"))
            return None
        eval_set = _report(parsed)
    if eval_set is not None:
        st.caption(f"**{len(eval_set.examples)}** usable examples in {markdown_safe(eval_set.name)}")
    return eval_set
