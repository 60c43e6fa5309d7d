"""Build the Timeline's Plotly figure: one row per metric, one colour per run.

Each row shows the raw curve (faint when smoothed) and the TensorBoard-smoothed curve, every
trace downsampled to a bounded number of points with extremes kept; checkpoint markers (with
the checkpoint name as ``customdata`` so a click can select it) and dotted vertical lines at
checkpoint steps; the best checkpoint starred; saved eval-set scores as their own rows.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from dashboard.formatting import fmt_bytes
from dashboard.runs.run import RunData
from dashboard.timeline.downsample import DEFAULT_MAX_POINTS, minmax_indices
from dashboard.timeline.scores import score_series
from dashboard.timeline.series import (
    X_LABELS,
    BestCheckpoint,
    Series,
    checkpoint_table,
    epoch_at_steps,
    metric_series,
    plot_metrics,
    value_asof,
)
from dashboard.timeline.smoothing import tb_smooth

COLOURS = qualitative.Plotly
MAX_VLINES = 200
ROW_HEIGHT = 260


@dataclass
class ChartOptions:
    metrics: list[str]
    x_axis: str = "step"
    log_y: bool = False
    smoothing: float = 0.6
    max_points: int = DEFAULT_MAX_POINTS
    step_range: tuple[int, int] | None = None
    score_labels: list[str] = field(default_factory=list)
    show_checkpoints: bool = True


@dataclass
class FigureStats:
    """What was sent to the browser: points per trace name (for tests and the benchmark)."""

    points: dict[str, int] = field(default_factory=dict)
    source_points: dict[str, int] = field(default_factory=dict)

    @property
    def max_points_per_trace(self) -> int:
        return max(self.points.values(), default=0)


def _in_range(series: Series, step_range: tuple[int, int] | None) -> np.ndarray:
    if step_range is None:
        return np.ones(len(series.step), dtype=bool)
    return (series.step >= step_range[0]) & (series.step <= step_range[1])


def _add_curve(fig: go.Figure, series: Series, row: int, colour: str, run_name: str, options: ChartOptions,
               stats: FigureStats, show_legend: bool) -> None:
    smoothed = tb_smooth(series.y, options.smoothing) if options.smoothing > 0 else None
    mask = _in_range(series, options.step_range)
    x, y = series.x[mask], series.y[mask]
    raw_idx = minmax_indices(y, options.max_points)
    label = f"{run_name} · {series.metric}"
    raw_name = f"{label} (raw)" if smoothed is not None else label
    fig.add_trace(go.Scatter(
        x=x[raw_idx], y=y[raw_idx], mode="lines", name=raw_name, legendgroup=run_name,
        showlegend=show_legend and smoothed is None, line={"color": colour, "width": 1},
        opacity=0.25 if smoothed is not None else 1.0,
        hovertemplate=f"{html.escape(series.metric)}=%{{y:.6g}}<extra>{html.escape(run_name)}</extra>",
    ), row=row, col=1)
    stats.points[raw_name] = len(raw_idx)
    stats.source_points[raw_name] = int(mask.sum())
    if smoothed is not None:
        s = smoothed[mask]
        idx = minmax_indices(s, options.max_points)
        fig.add_trace(go.Scatter(
            x=x[idx], y=s[idx], mode="lines", name=label, legendgroup=run_name, showlegend=show_legend,
            line={"color": colour, "width": 2},
            hovertemplate=f"{html.escape(series.metric)} (smoothed)=%{{y:.6g}}<extra>{html.escape(run_name)}</extra>",
        ), row=row, col=1)
        stats.points[label] = len(idx)
        stats.source_points[label] = int(mask.sum())


def _checkpoint_hover(table: pd.DataFrame, metrics: list[str]) -> list[list[str]]:
    """[name, step, size, saved time, metrics logged at that step] per checkpoint (HTML-escaped)."""
    rows = []
    for i in range(len(table)):
        logged = "<br>".join(f"{html.escape(m)} = {table[m].iat[i]:.6g}" for m in metrics
                             if np.isfinite(table[m].iat[i]))
        rows.append([str(table["checkpoint"].iat[i]), str(table["step"].iat[i]),
                     fmt_bytes(int(table["size_bytes"].iat[i])),
                     table["wall_time"].iat[i].strftime("%Y-%m-%d %H:%M:%S UTC"),
                     logged or "no metrics logged at this step"])
    return rows


def _marker_x(table: pd.DataFrame, x_axis: str) -> np.ndarray:
    return table[x_axis].to_numpy()


def _add_checkpoints(fig: go.Figure, run: RunData, metrics_table: pd.DataFrame, options: ChartOptions,
                     series_by_metric: dict[str, Series], best: BestCheckpoint | None, stats: FigureStats) -> None:
    table = checkpoint_table(run, options.metrics, metrics_table)
    if table.empty:
        return
    custom = _checkpoint_hover(table, options.metrics)
    xs = _marker_x(table, options.x_axis)
    if options.step_range is not None:
        keep = (table["step"] >= options.step_range[0]) & (table["step"] <= options.step_range[1])
    else:
        keep = pd.Series(True, index=table.index)
    hover = ("<b>%{customdata[0]}</b><br>step %{customdata[1]} · %{customdata[2]}<br>saved %{customdata[3]}"
             "<br>%{customdata[4]}<extra>checkpoint</extra>")
    for row, metric in enumerate(options.metrics, start=1):
        series = series_by_metric.get(metric)
        if series is None or not len(series.step):
            continue
        ys = np.array([value_asof(series, int(s)) if k else None for s, k in zip(table["step"], keep, strict=True)],
                      dtype=float)
        ok = np.isfinite(ys) & keep.to_numpy() & pd.notna(xs)
        if not ok.any():
            continue
        name = f"checkpoints · {metric}"
        fig.add_trace(go.Scatter(
            x=xs[ok], y=ys[ok], mode="markers", name="checkpoints", legendgroup="checkpoints",
            showlegend=row == 1, marker={"symbol": "diamond", "size": 10, "color": "#444",
                                         "line": {"width": 1, "color": "white"}},
            customdata=[custom[i] for i in np.flatnonzero(ok)], hovertemplate=hover,
        ), row=row, col=1)
        stats.points[name] = int(ok.sum())
        if best is not None and best.checkpoint is not None and metric == best.metric:
            i = int(np.flatnonzero(table["checkpoint"].to_numpy() == best.checkpoint.name)[0])
            if np.isfinite(ys[i]) and pd.notna(xs[i]):
                fig.add_trace(go.Scatter(
                    x=[xs[i]], y=[ys[i]], mode="markers", name="best checkpoint", legendgroup="best",
                    marker={"symbol": "star", "size": 18, "color": "gold", "line": {"width": 1, "color": "black"}},
                    customdata=[custom[i]], hovertemplate=hover,
                ), row=row, col=1)
    # One full-height dotted line per checkpoint (xref "x": the rows share their x axis). Shapes
    # are set in one layout update: plotly's add_vline re-validates every shape each call.
    visible = table[keep.to_numpy() & pd.notna(xs)]
    shapes = []
    if len(visible) <= MAX_VLINES:
        shapes = [_vline(x, "rgba(90,90,90,0.35)", 1, "dot") for x in _marker_x(visible, options.x_axis)]
    if best is not None and best.checkpoint is not None:
        bx = table.loc[table["checkpoint"] == best.checkpoint.name, options.x_axis]
        if len(bx) and pd.notna(bx.iloc[0]):
            shapes.append(_vline(bx.iloc[0], "goldenrod", 2, "dash"))
    fig.update_layout(shapes=shapes)


def _vline(x, colour: str, width: int, dash: str) -> dict:
    if isinstance(x, np.datetime64):
        x = pd.Timestamp(x).isoformat()
    elif isinstance(x, np.generic):
        x = x.item()
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": colour, "width": width, "dash": dash}, "layer": "below"}


def _score_x(rows: pd.DataFrame, run: RunData, metrics_table: pd.DataFrame, x_axis: str) -> np.ndarray:
    steps = rows["step"].to_numpy(dtype=np.int64)
    if x_axis == "step":
        return steps
    if x_axis == "epoch":
        return epoch_at_steps(metrics_table, steps)
    times = []
    for name in rows["checkpoint"]:
        c = run.checkpoint(str(name))
        times.append(pd.Timestamp(c.modified) if c else pd.NaT)
    return pd.to_datetime(times, utc=True).to_numpy()


def build_figure(run: RunData, options: ChartOptions, overlays: list[RunData] | None = None,
                 scores: pd.DataFrame | None = None,
                 best: BestCheckpoint | None = None) -> tuple[go.Figure, FigureStats]:
    """The whole Timeline chart for ``run`` (+ overlaid runs) and what each trace carries."""
    overlays = overlays or []
    stats = FigureStats()
    score_labels = [s for s in options.score_labels if scores is not None and not scores.empty]
    titles = [*options.metrics, *(f"eval set: {s}" for s in score_labels)]
    n_rows = max(len(titles), 1)
    fig = make_subplots(rows=n_rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.3 / n_rows),
                        subplot_titles=[html.escape(t) for t in titles] or None)
    primary_metrics = plot_metrics(run)
    series_by_metric: dict[str, Series] = {}
    for run_index, one in enumerate([run, *overlays]):
        colour = COLOURS[run_index % len(COLOURS)]
        table = primary_metrics if one is run else plot_metrics(one)
        for row, metric in enumerate(options.metrics, start=1):
            series = metric_series(table, metric, options.x_axis)  # type: ignore[arg-type]
            if one is run:
                series_by_metric[metric] = series
            if len(series.y):
                _add_curve(fig, series, row, colour, one.name, options, stats, show_legend=row == 1)
    if options.show_checkpoints:
        _add_checkpoints(fig, run, primary_metrics, options, series_by_metric, best, stats)
    for offset, label in enumerate(score_labels):
        row = len(options.metrics) + offset + 1
        rows = score_series(scores, label)
        if options.step_range is not None:
            rows = rows[(rows["step"] >= options.step_range[0]) & (rows["step"] <= options.step_range[1])]
        x = _score_x(rows, run, primary_metrics, options.x_axis)
        fig.add_trace(go.Scatter(
            x=x, y=rows["value"].to_numpy(dtype=float), mode="lines+markers", name=f"{run.name} · {label}",
            line={"color": COLOURS[0], "dash": "dash"}, marker={"size": 9, "symbol": "circle"},
            customdata=[[str(c)] for c in rows["checkpoint"]],
            hovertemplate="<b>%{customdata[0]}</b><br>" + html.escape(label) + " = %{y:.4g}<extra>saved score</extra>",
        ), row=row, col=1)
        stats.points[f"score · {label}"] = len(rows)
    if options.log_y:
        for row in range(1, len(options.metrics) + 1):
            fig.update_yaxes(type="log", row=row, col=1)
    fig.update_xaxes(title_text=X_LABELS.get(options.x_axis, options.x_axis), row=n_rows, col=1)
    # Marker traces first: a click on a checkpoint marker ties with the line-only curve point under
    # it, plotly gives ties to the earlier trace, and line-only traces yield an empty selection.
    fig.data = tuple(sorted(fig.data, key=lambda trace: trace.mode != "markers"))
    fig.update_layout(
        height=ROW_HEIGHT * n_rows + 80, margin={"l": 10, "r": 10, "t": 40, "b": 10}, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        clickmode="event+select", dragmode="zoom",
        uirevision=f"{run.path}|{options.x_axis}|{','.join(options.metrics)}",
    )
    return fig, stats
