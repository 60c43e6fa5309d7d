"""Tables and charts of an eval-set comparison (pure pandas/Plotly, testable without Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.compare.results import CheckpointScores
from dashboard.evalset import EvalSet
from dashboard.formatting import ValueKind, display_table
from dashboard.metrics import describe, normalize_answer
from dashboard.thumbnails import thumbnail_uri

FILTER_ALL = "All examples"
FILTER_OUTPUTS_DIFFER = "Outputs differ"
FILTER_SCORES_DIFFER = "Correctness differs"
FILTERS = (FILTER_ALL, FILTER_OUTPUTS_DIFFER, FILTER_SCORES_DIFFER)


def summary_frame(scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per checkpoint: step, examples scored, completeness and the mean of each metric."""
    rows = [{"checkpoint": name, "step": s.step, "scored": s.n, "of": s.total, "complete": s.complete,
             **{m: s.metrics.get(m) for m in metrics}} for name, s in scores.items()]
    return pd.DataFrame(rows, columns=["checkpoint", "step", "scored", "of", "complete", *metrics])


def summary_display(summary: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The summary as people read it: each score in its registry format, rounded exactly like the chart's labels."""
    labels = {m: describe(m).label for m in metrics}
    kinds: dict[str, ValueKind] = {labels[m]: describe(m).kind for m in metrics}
    return display_table(summary.rename(columns=labels), kinds)


def examples_display(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The per-example table as shown: score cells in the metric's format, unscored cells as an em dash."""
    kind = describe(metric).kind
    columns: dict[str, ValueKind] = {c: kind for c in frame.columns if c.endswith(f" {metric}")}
    return display_table(frame.drop(columns=["outputs_differ", "scores_differ"], errors="ignore"), columns)


def accuracy_figure(summary: pd.DataFrame, metrics: Sequence[str]) -> go.Figure:
    """Grouped bars: one group per checkpoint (step order), one bar per metric, y in [0, 1]."""
    fig = go.Figure()
    for metric in metrics:
        values, info = summary[metric], describe(metric)
        fig.add_bar(x=summary["checkpoint"], y=values, name=info.label,
                    text=[info.format(v) for v in values], textposition="outside",
                    hovertemplate=f"%{{x}}<br>{info.label}: %{{y:{info.plotly_format}}}<extra></extra>")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.1], "tickformat": ".0%", "title": "score"},
                      xaxis={"title": "checkpoint", "type": "category"}, height=360,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": 1.12})
    return fig


def example_frame(evalset: EvalSet, scores: Mapping[str, CheckpointScores], metric: str,
                  with_thumbnails: bool = True) -> pd.DataFrame:
    """Per-example table: image, prompt, answer, then each checkpoint's output and score.

    Extra boolean columns ``outputs_differ`` / ``scores_differ`` drive the disagreement filter
    (computed over the checkpoints that have scored the example).
    """
    by_ckpt = {name: {str(r["id"]): r for r in s.rows} for name, s in scores.items()}
    records = []
    for ex in evalset.examples:
        rec: dict[str, object] = {"id": ex.id}
        if with_thumbnails:
            rec["image"] = thumbnail_uri(ex.image_path)
        rec.update(task=ex.task or "", prompt=ex.prompt, answer=ex.answer)
        outputs, values = [], []
        for name, rows in by_ckpt.items():
            row = rows.get(ex.id)
            out = None if row is None else str(row.get("output", ""))
            val = None if row is None else row.get("scores", {}).get(metric)
            rec[f"{name} output"] = out
            rec[f"{name} {metric}"] = val
            if row is not None:
                outputs.append(normalize_answer(out or ""))
                values.append(val)
        rec["outputs_differ"] = len(set(outputs)) > 1
        rec["scores_differ"] = len(set(values)) > 1
        records.append(rec)
    return pd.DataFrame.from_records(records)


def filter_examples(frame: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Rows where checkpoints disagree (by normalised output or by score), or all rows."""
    if frame.empty or mode == FILTER_ALL:
        return frame
    column = "outputs_differ" if mode == FILTER_OUTPUTS_DIFFER else "scores_differ"
    return frame[frame[column]]
