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
from dashboard.runs.discovery import STATE_FILE, RunListing
from dashboard.runs.listing import summary
from dashboard.runs.trainer_state import read_state_summary

RUNS_COLUMNS = ("run", "modified", "checkpoints", "best checkpoint", "best metric", "global step")

state_summary = file_memo("state-summaries", maxsize=4096)(read_state_summary)


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
