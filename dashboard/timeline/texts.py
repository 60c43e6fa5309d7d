"""Text summaries of a run (``add_text``: sample generations per eval step, the run's args).

Pure lookups over the ``texts`` table of :class:`~dashboard.runs.run.RunData` (columns
``folder, tag, step, wall_time, text``); the Timeline shows the text at a chosen step next to
the curves, as plain text.
"""

from __future__ import annotations

import pandas as pd

HIDDEN_TAGS = ("args", "model_config")
"""Logged by HF's TensorBoardCallback once; shown as the run's configuration, not as samples."""


def _labels(texts: pd.DataFrame) -> list[str]:
    """Per row: its tag, or ``tag (folder)`` where the same tag was logged in several folders."""
    folders = texts.groupby("tag")["folder"].nunique()
    return [t if folders[t] == 1 else f"{t} ({f})" for f, t in zip(texts["folder"], texts["tag"], strict=True)]


def text_series(texts: pd.DataFrame | None) -> list[str]:
    """The text series of a run (one per folder and tag), sorted; HF's one-off args excluded."""
    if texts is None or texts.empty:
        return []
    hidden = texts["tag"].isin(HIDDEN_TAGS).to_numpy()
    return sorted({lab for lab, h in zip(_labels(texts), hidden, strict=True) if not h})


def _rows(texts: pd.DataFrame, label: str) -> pd.DataFrame:
    return texts[[lab == label for lab in _labels(texts)]].sort_values("step", kind="stable")


def text_steps(texts: pd.DataFrame, label: str) -> list[int]:
    """Steps at which ``label`` was logged, ascending (each once)."""
    return sorted({int(s) for s in _rows(texts, label)["step"]})


def text_at(texts: pd.DataFrame, label: str, step: int) -> list[str]:
    """Every text ``label`` logged at ``step`` (usually one), in log order."""
    rows = _rows(texts, label)
    return [str(t) for t in rows.loc[rows["step"] == step, "text"]]
