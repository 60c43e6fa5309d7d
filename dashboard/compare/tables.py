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


def _ci_columns(metrics: Sequence[str]) -> list[str]:
    return [c for m in metrics for c in (f"{m} ci95 low", f"{m} ci95 high")]


def summary_frame(scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per checkpoint: step, examples scored, completeness, the mean of each metric and its
    95 % interval (:func:`dashboard.compare.report.estimate`, the CI table's and the CLI's)."""
    from dashboard.compare.report import estimate

    rows = []
    for name, s in scores.items():
        row: dict[str, object] = {"checkpoint": name, "step": s.step, "scored": s.n, "of": s.total,
                                  "complete": s.complete, **{m: s.metrics.get(m) for m in metrics}}
        for m in metrics:
            lo, hi = estimate(s.rows, m).ci95
            row.update({f"{m} ci95 low": lo, f"{m} ci95 high": hi})
        rows.append(row)
    return pd.DataFrame(rows, columns=["checkpoint", "step", "scored", "of", "complete", *metrics,
                                       *_ci_columns(metrics)])


def summary_display(summary: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The summary as people read it: each score in its registry format, rounded exactly like the chart's labels."""
    labels = {m: describe(m).label for m in metrics}
    kinds: dict[str, ValueKind] = {labels[m]: describe(m).kind for m in metrics}
    shown = summary.drop(columns=_ci_columns(metrics), errors="ignore")  # intervals: the CI table below
    return display_table(shown.rename(columns=labels), kinds)


def format_ci_rows(rows: Sequence[Mapping[str, object]], metrics: Sequence[str]) -> pd.DataFrame:
    """The CI tables as shown: every value and bound in its metric's one format (``25.9%``, never
    ``25.99%`` next to ``39%``), other columns as they are."""
    columns = {m: describe(m) for m in metrics}
    out = []
    for row in rows:
        shown = dict(row)
        for m, info in columns.items():
            for key in (m, f"{m} ci95 low", f"{m} ci95 high"):
                if key in shown:
                    shown[key] = info.format(shown[key])  # type: ignore[arg-type]
        out.append(shown)
    return pd.DataFrame(out)


def examples_display(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The per-example table as shown: score cells in the metric's format, unscored cells as an em dash."""
    kind = describe(metric).kind
    columns: dict[str, ValueKind] = {c: kind for c in frame.columns if c.endswith(f" {metric}")}
    return display_table(frame.drop(columns=["outputs_differ", "scores_differ"], errors="ignore"), columns)


def error_bars(values: Sequence[float], low: Sequence[float], high: Sequence[float]) -> dict[str, object]:
    """Plotly ``error_y`` for an interval around each value (asymmetric: intervals near 0 % / 100 % are)."""
    return {"type": "data", "symmetric": False, "visible": True,
            "array": [max(0.0, h - v) for v, h in zip(values, high, strict=True)],
            "arrayminus": [max(0.0, v - lo) for v, lo in zip(values, low, strict=True)]}


def accuracy_figure(summary: pd.DataFrame, metrics: Sequence[str]) -> go.Figure:
    """Grouped bars: one group per checkpoint (step order), one bar per metric, y in [0, 1], each with
    its 95 % interval as an error bar (when the summary has the interval columns)."""
    fig = go.Figure()
    for metric in metrics:
        values, info = summary[metric], describe(metric)
        bars = {}
        if f"{metric} ci95 low" in summary:
            bars["error_y"] = error_bars(list(values), list(summary[f"{metric} ci95 low"]),
                                         list(summary[f"{metric} ci95 high"]))
        fig.add_bar(x=summary["checkpoint"], y=values, name=info.label,
                    text=[info.format(v) for v in values], textposition="outside", **bars,
                    customdata=[[info.format(lo), info.format(hi)] for lo, hi in
                                zip(summary.get(f"{metric} ci95 low", values),
                                    summary.get(f"{metric} ci95 high", values), strict=True)],
                    hovertemplate=f"%{{x}}<br>{info.label}: %{{y:{info.plotly_format}}} "
                                  "(95% CI %{customdata[0]} – %{customdata[1]})<extra></extra>")
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
