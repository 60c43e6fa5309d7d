"""Per-checkpoint eval-set scores saved by the Comparison page, as Timeline series."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dashboard.compare.results import SCORE_COLUMNS, load_saved_scores, migrate_legacy
from dashboard.evalset import EvalSet, EvalSetError, find_eval_sets, load_eval_set

logger = logging.getLogger(__name__)


def run_eval_sets(run_dir: Path) -> list[EvalSet]:
    """The run's own eval sets (``<run>/eval/``) that load; what old-layout results are checked against."""
    sets = []
    for path in find_eval_sets(run_dir):
        try:
            sets.append(load_eval_set(path, [run_dir]))
        except EvalSetError:
            logger.warning("eval set %s unusable for checking old results", path, exc_info=True)
    return sets


def saved_scores(run_dir: Path, data_dir: Path | None = None) -> tuple[pd.DataFrame, str | None]:
    """(scores table, problem). Never raises: a broken results folder must not break the chart.

    Old-layout results are migrated first; those that cannot be are named in the problem text
    (saved before content keys, not comparable) rather than silently left out.
    """
    try:
        left = migrate_legacy(Path(run_dir), data_dir, lambda: run_eval_sets(Path(run_dir)))
        table = load_saved_scores(Path(run_dir), data_dir)
    except Exception as exc:  # any reader failure becomes a message next to the chart
        logger.warning("saved eval-set scores of %s unreadable", run_dir, exc_info=True)
        return pd.DataFrame(columns=SCORE_COLUMNS), f"could not read saved eval-set scores: {exc}"
    table = table[table["step"].notna()] if "step" in table else table
    return table, "\n\n".join(item.message for item in left) or None


def score_series_names(scores: pd.DataFrame) -> list[str]:
    """``"demo · exact_match"`` labels, one per (eval set, metric)."""
    if scores.empty:
        return []
    pairs = scores[["eval_set", "metric"]].drop_duplicates().sort_values(["eval_set", "metric"])
    return [f"{s} · {m}" for s, m in pairs.itertuples(index=False)]


def score_series(scores: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows of one (eval set, metric) label, in step order."""
    eval_set, _, metric = label.partition(" · ")
    rows = scores[(scores["eval_set"] == eval_set) & (scores["metric"] == metric)]
    return rows.sort_values("step", kind="stable")
