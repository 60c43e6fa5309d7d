"""Per-checkpoint eval-set scores saved by the Comparison page, as Timeline series."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dashboard.compare.results import SCORE_COLUMNS, load_saved_scores

logger = logging.getLogger(__name__)


def saved_scores(run_dir: Path, data_dir: Path | None = None) -> tuple[pd.DataFrame, str | None]:
    """(scores table, problem). Never raises: a broken results folder must not break the chart."""
    try:
        table = load_saved_scores(Path(run_dir), data_dir)
    except Exception as exc:  # any reader failure becomes a message next to the chart
        logger.warning("saved eval-set scores of %s unreadable", run_dir, exc_info=True)
        return pd.DataFrame(columns=SCORE_COLUMNS), f"could not read saved eval-set scores: {exc}"
    table = table[table["step"].notna()] if "step" in table else table
    return table, None


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
