"""The runs table: every run under a root with its newest change, checkpoints and best checkpoint.

Built from the discovery listing (memoised per directory change) plus each run's
``trainer_state.json`` run-level fields (memoised per file change), so with 500 runs a rerun
stats files and reads nothing. The best checkpoint is resolved by the same rule as everywhere
else (:func:`dashboard.runs.best.resolve_best`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dashboard.caching import Memo, file_memo
from dashboard.runs.best import resolve_best
from dashboard.runs.column_cache import MIN_CACHED_STATE_BYTES, cached_state_summary
from dashboard.runs.discovery import STATE_FILE, RunListing
from dashboard.runs.listing import summary
from dashboard.runs.trainer_state import TrainerStateSummary, read_state_summary

RUNS_COLUMNS = ("run", "modified", "checkpoints", "best checkpoint", "best metric", "global step")



@file_memo("state-summaries", maxsize=4096)
def state_summary(path: Path, roots: Sequence[Path] | None = None) -> TrainerStateSummary | None:
    """A run's ``trainer_state.json`` run-level fields. A large file's come from the column cache
    (its footer when current; else the full, memoised parse the Timeline reuses, which writes the
    cache), so Home never parses a 10⁶-entry log just for its best checkpoint."""
    from dashboard.runs.run import data_dir, parse_state_file

    path = Path(path)
    folder = data_dir()
    summary = cached_state_summary(path, folder, list(roots) if roots else None)
    if summary is not None:
        return summary
    try:
        large = folder is not None and path.stat().st_size >= MIN_CACHED_STATE_BYTES
    except OSError:
        return None
    if large:
        parsed = parse_state_file(path, tuple(roots) if roots else None)
        return parsed.summary if parsed.readable else None
    return read_state_summary(path, roots)


def _table_key(runs: Sequence[RunListing], roots: Sequence[Path]) -> tuple:
    """The listing (names, mtimes, counts: a checkpoint added or deleted changes the run's mtime)
    and each ``trainer_state.json``'s stat: what the table is built from."""
    parts = []
    for run in runs:
        try:
            info = os.stat(run.path / STATE_FILE)
            state = (info.st_mtime_ns, info.st_size)
        except OSError:
            state = None
        parts.append((run.name, str(run.path), run.modified, run.n_checkpoints, state))
    return tuple(parts), tuple(str(r) for r in roots)


def _runs_table(runs: Sequence[RunListing], roots: Sequence[Path]) -> pd.DataFrame:
    """One row per run (columns :data:`RUNS_COLUMNS`), newest first."""
    rows = []
    root_paths = tuple(Path(r).expanduser().resolve() for r in roots)
    for run in runs:
        state_path = run.path / STATE_FILE
        state = state_summary(state_path, root_paths) if state_path.is_file() else None
        folders = [(name, step) for step, name in summary(run.path).checkpoints]
        best = resolve_best(state, folders, run.path) if state is not None else None
        rows.append({"run": run.name, "modified": run.modified, "checkpoints": run.n_checkpoints,
                     "best checkpoint": best.name if best and best.name else None,
                     "best metric": state.best_metric if state else None,
                     "global step": state.global_step if state else None})
    table = pd.DataFrame(rows, columns=list(RUNS_COLUMNS))
    return table.sort_values("modified", ascending=False, kind="stable", ignore_index=True)


runs_table = Memo(_runs_table, "runs-tables", maxsize=8, key=_table_key)
""":func:`_runs_table`, rebuilt only when a run or its ``trainer_state.json`` changed. Shared between
sessions: callers must not modify the returned frame (filtering makes a new one)."""


__all__ = ["RUNS_COLUMNS", "runs_table"]
