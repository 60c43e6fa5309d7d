"""Build the Timeline's Plotly figure: one row per metric, one colour per run.

Each row shows the logged values; dense train series may also get the TensorBoard-smoothed
curve. Smoothing never hides what was logged: sparse series (fewer than ``SPARSE_POINTS``
points) and every eval series are drawn unsmoothed unless the user asks otherwise, and where a
smoothed line is drawn it is labelled as such and the hover reads the logged values. Every
trace is downsampled to a bounded number of points with extremes kept; checkpoint markers (with
the checkpoint name as ``customdata`` so a click can select it) and dotted vertical lines at
checkpoint steps; the best checkpoint starred; saved eval-set scores as their own rows. Numbers
in hovers and on axes are formatted by :mod:`dashboard.formatting`, like every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard.caching import Memo
from dashboard.formatting import fmt_bytes, plotly_format, plotly_text
from dashboard.metrics import display_kind, format_metric
from dashboard.runs.hparams import distinguishing_labels
from dashboard.runs.metrics import SOURCE_FILES
from dashboard.runs.run import RunData, run_signature
from dashboard.timeline.downsample import DEFAULT_MAX_POINTS, minmax_indices
from dashboard.timeline.margins import reserved_margins
from dashboard.timeline.plain_figure import PlainFigure
from dashboard.timeline.scores import score_series
from dashboard.timeline.series import (
    X_LABELS,
    BestCheckpoint,
    Series,
    attempt_metrics,
    attempt_series,
    chart_rows,
    checkpoint_table,
    epoch_at_steps,
    metric_series,
    plot_metrics,
    run_metric_series,
    value_asof,
)
from dashboard.timeline.smoothing import tb_smooth

COLOURS = qualitative.Plotly
MAX_VLINES = 200
ROW_HEIGHT = 260
SPARSE_POINTS = 50
"""Series with fewer logged points than this are not smoothed by default (an EMA over ten eval
points mostly reports the past: 0.90 where the log says 1.0)."""


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
    smooth_sparse: bool = False
    """Also smooth eval series and series with fewer than ``SPARSE_POINTS`` points."""
    split_attempts: bool = False
    """Draw each training attempt of a resumed run as its own trace (default: the surviving run)."""
    sources: tuple[tuple[str, str], ...] = ()
    """Per-metric source choice, ``(("loss", "tensorboard"),)``; ``"all"`` overlays every source."""

    @property
    def source_map(self) -> dict[str, str]:
        """The single source picked per metric (``all`` means: the preferred one, others overlaid)."""
        return {m: s for m, s in self.sources if s != "all"}

    @property
    def overlaid_sources(self) -> set[str]:
        """Metrics whose every source is drawn."""
        return {m for m, s in self.sources if s == "all"}


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


def smoothing_for(series: Series, options: ChartOptions) -> float:
    """The smoothing weight actually applied to ``series`` (0 for sparse and eval series by default)."""
    if options.smoothing <= 0:
        return 0.0
    sparse = series.split == "eval" or len(series.y) < SPARSE_POINTS
    return 0.0 if sparse and not options.smooth_sparse else options.smoothing


def _hover_format(metric: str, values: np.ndarray) -> str:
    return plotly_format(display_kind(metric, values))


CURVE_MODE = "lines+markers"
# The logged curve carries invisible markers so a click on it is a selection (plotly selects
# nothing on line-only traces): whichever trace wins a click on a checkpoint marker — the marker
# or the curve point under it — the click maps to that checkpoint (see timeline.selection).
_INVISIBLE = {"opacity": 0}
_CLICKABLE: dict = {"marker": {"size": 6, **_INVISIBLE}, "selected": {"marker": _INVISIBLE},
                    "unselected": {"marker": _INVISIBLE}}


def _add_curve(fig: PlainFigure, series: Series, row: int, colour: str, run_name: str, options: ChartOptions,
               stats: FigureStats, show_legend: bool, label: str, checkpoints: dict[int, str] | None = None) -> None:
    weight = smoothing_for(series, options)
    smoothed = tb_smooth(series.y, weight) if weight > 0 else None
    mask = _in_range(series, options.step_range)
    x, y = series.x[mask], series.y[mask]
    raw_idx = minmax_indices(y, options.max_points)
    spec = _hover_format(series.metric, series.y)
    metric, run_label = plotly_text(series.metric), plotly_text(run_name)
    # A point at a checkpoint's step names the checkpoint in its hover: the curve's point, drawn at the
    # marker's place, often wins the hover over the marker (issue 37).
    saved = [[f" · {checkpoints[int(s)]}" if checkpoints and int(s) in checkpoints else ""]
             for s in series.step[mask][raw_idx]]
    # The logged values are always the hovered trace; a smoothed line is decoration labelled as such.
    fig.add_trace(dict(
        x=x[raw_idx], y=y[raw_idx], mode=CURVE_MODE, **_CLICKABLE, name=label, legendgroup=run_name,
        showlegend=show_legend, line={"color": colour, "width": 1 if smoothed is not None else 2},
        opacity=0.35 if smoothed is not None else 1.0, customdata=saved,
        hovertemplate=f"{metric} = %{{y:{spec}}} (logged)%{{customdata[0]}}<extra>{run_label}</extra>",
    ), row)
    stats.points[label] = len(raw_idx)
    stats.source_points[label] = int(mask.sum())
    if smoothed is not None:
        s = smoothed[mask]
        idx = minmax_indices(s, options.max_points)
        smooth_name = f"{label} (smoothed {weight:.2f})"
        fig.add_trace(dict(
            x=x[idx], y=s[idx], mode="lines", name=smooth_name, legendgroup=run_name, showlegend=show_legend,
            line={"color": colour, "width": 2}, hoverinfo="skip",
        ), row)
        stats.points[smooth_name] = len(idx)
        stats.source_points[smooth_name] = int(mask.sum())


def _checkpoint_hover(table: pd.DataFrame, metrics: list[str]) -> list[list[str]]:
    """[name, step, size, saved time, metrics logged at that step] per checkpoint (HTML-escaped)."""
    rows = []
    for i in range(len(table)):
        logged = "<br>".join(f"{plotly_text(m)} = {format_metric(m, table[m].iat[i])}" for m in metrics
                             if np.isfinite(table[m].iat[i]))
        rows.append([plotly_text(table["checkpoint"].iat[i]), str(table["step"].iat[i]),
                     fmt_bytes(int(table["size_bytes"].iat[i])),
                     table["wall_time"].iat[i].strftime("%Y-%m-%d %H:%M:%S UTC"),
                     logged or "no metrics logged at this step"])
    return rows


def _marker_x(table: pd.DataFrame, x_axis: str) -> np.ndarray:
    return table[x_axis].to_numpy()


def _add_checkpoints(fig: PlainFigure, run: RunData, metrics_table: pd.DataFrame, options: ChartOptions,
                     series_by_metric: dict[str, Series], best: BestCheckpoint | None, stats: FigureStats,
                     rows: list[tuple[str, list[str]]]) -> None:
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
    for row, (_title, members) in enumerate(rows, start=1):
        metric = next((m for m in members if best is not None and m == best.metric), members[0])
        series = series_by_metric.get(metric)
        if series is None or not len(series.step):
            continue
        ys = np.array([value_asof(series, int(s)) if k else None for s, k in zip(table["step"], keep, strict=True)],
                      dtype=float)
        ok = np.isfinite(ys) & keep.to_numpy() & pd.notna(xs)
        if not ok.any():
            continue
        name = f"checkpoints · {metric}"
        fig.add_trace(dict(
            x=xs[ok], y=ys[ok], mode="markers", name="checkpoints", legendgroup="checkpoints",
            showlegend=row == 1, marker={"symbol": "diamond", "size": 10, "color": "#444",
                                         "line": {"width": 1, "color": "white"}},
            customdata=[custom[i] for i in np.flatnonzero(ok)], hovertemplate=hover,
            unselected={"marker": {"opacity": 0.7}},  # a selection elsewhere keeps them easy to see
        ), row)
        stats.points[name] = int(ok.sum())
        if best is not None and best.checkpoint is not None and metric == best.metric:
            i = int(np.flatnonzero(table["checkpoint"].to_numpy() == best.checkpoint.name)[0])
            if np.isfinite(ys[i]) and pd.notna(xs[i]):
                fig.add_trace(dict(
                    x=[xs[i]], y=[ys[i]], mode="markers", name="best checkpoint", legendgroup="best",
                    marker={"symbol": "star", "size": 18, "color": "gold", "line": {"width": 1, "color": "black"}},
                    customdata=[custom[i]], hovertemplate=hover,
                ), row)
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


def constant_range(values: np.ndarray, log: bool = False) -> list[float] | None:
    """A y range centred on a constant series' value (Plotly would draw it on −1…1, reading as zero).

    In Plotly's units: log10 of the bounds on a log axis. None when the values vary (autorange).
    """
    finite = values[np.isfinite(values)] if len(values) else values
    if not len(finite) or finite.min() != finite.max():
        return None
    value = float(finite[0])
    if log:
        return [np.log10(value) - 0.5, np.log10(value) + 0.5] if value > 0 else None
    pad = abs(value) * 0.5 if value != 0 else 1.0
    return [value - pad, value + pad]


def _format_axis(fig: PlainFigure, row: int, metric: str, values: np.ndarray, log: bool = False) -> None:
    """Tick format by the metric's kind (percentages for fractions), log scale, constant-series range."""
    kind = display_kind(metric, values)
    update: dict = {"tickformat": ".0%" if kind == "fraction" else None}
    if log:
        update["type"] = "log"
    fixed = constant_range(values, log)
    if fixed is not None:
        update.update(range=fixed, autorange=False)
    fig.update_yaxes(row, **update)


def _other_sources(run: RunData, drawn: Series, options: ChartOptions) -> list[Series]:
    """With a metric's sources overlaid: its surviving series from every other source, labelled by file."""
    metric = drawn.metric
    if metric not in options.overlaid_sources:
        return []
    table = run.surviving_metrics
    rows = table[table["metric"] == metric]
    out = []
    for source in [str(s) for s in rows["source"].unique() if str(s) != drawn.source]:
        one = metric_series(rows[rows["source"] == source], metric, options.x_axis)  # type: ignore[arg-type]
        out.append(Series(metric=f"{metric} · {SOURCE_FILES.get(source, source)}", step=one.step, x=one.x, y=one.y,
                          source=source, split=one.split))
    return out


def build_figure(run: RunData, options: ChartOptions, overlays: list[RunData] | None = None,
                 scores: pd.DataFrame | None = None,
                 best: BestCheckpoint | None = None, validate: bool = True) -> tuple[go.Figure, FigureStats]:
    """The whole Timeline chart for ``run`` (+ overlaid runs) and what each trace carries.

    ``validate=False`` skips Plotly's per-property validation (the page's figure, see
    :mod:`dashboard.timeline.plain_figure`); its JSON is tested equal to the validated figure's."""
    overlays = overlays or []
    stats = FigureStats()
    score_labels = [s for s in options.score_labels if scores is not None and not scores.empty]
    chart = chart_rows(options.metrics, run.series)
    titles = [*(title for title, _ in chart), *(f"eval set: {s}" for s in score_labels)]
    n_rows = max(len(titles), 1)
    fig = PlainFigure(n_rows, min(0.08, 0.3 / n_rows), [plotly_text(t) for t in titles] or None)
    primary_metrics = plot_metrics(run, options.source_map)
    all_attempts = attempt_metrics(run, options.source_map) if options.split_attempts and run.restarts else None
    saved_at = {int(c.step): plotly_text(c.name) for c in run.checkpoints if c.step is not None}
    series_by_metric: dict[str, Series] = {}
    values_by_row: dict[int, list[np.ndarray]] = {}
    runs = [run, *overlays]
    # Overlaid runs are told apart by the configuration values that differ between them.
    names = distinguishing_labels([r.name for r in runs], [r.config for r in runs]) if overlays else [run.name]
    for run_index, (one, name) in enumerate(zip(runs, names, strict=True)):
        table = primary_metrics if one is run else plot_metrics(one)
        for row, (_title, members) in enumerate(chart, start=1):
            for j, metric in enumerate(members):
                colour = COLOURS[(j * len(runs) + run_index) % len(COLOURS)]
                series = run_metric_series(one, table, metric, options.x_axis)  # type: ignore[arg-type]
                if one is run:
                    series_by_metric[metric] = series
                drawn = [series]
                if one is run and all_attempts is not None:
                    drawn = attempt_series(all_attempts, metric, options.x_axis)  # type: ignore[arg-type]
                drawn += _other_sources(one, series, options) if one is run else []
                for k, shown in enumerate(drawn):
                    if not len(shown.y):
                        continue
                    # One legend entry per run and metric: the run's name only matters when runs are overlaid.
                    label = f"{name} · {shown.metric}" if overlays else shown.metric
                    tint = colour if k == 0 else COLOURS[(j * len(runs) + run_index + 3 * k) % len(COLOURS)]
                    _add_curve(fig, shown, row, tint, name, options, stats, show_legend=True, label=label,
                               checkpoints=saved_at if one is run else None)
                    values_by_row.setdefault(row, []).append(shown.y[_in_range(shown, options.step_range)])
    if options.show_checkpoints:
        _add_checkpoints(fig, run, primary_metrics, options, series_by_metric, best, stats, chart)
    for offset, label in enumerate(score_labels):
        row = len(chart) + offset + 1
        rows = score_series(scores, label)
        if options.step_range is not None:
            rows = rows[(rows["step"] >= options.step_range[0]) & (rows["step"] <= options.step_range[1])]
        x = _score_x(rows, run, primary_metrics, options.x_axis)
        if {"ci95_low", "ci95_high"} <= set(rows.columns) and len(rows):
            # 95 % band behind the saved scores (the Comparison page's intervals, compare.report.estimate).
            xs = list(x)
            high, low = rows["ci95_high"].to_numpy(dtype=float), rows["ci95_low"].to_numpy(dtype=float)
            fig.add_trace(dict(
                x=xs + xs[::-1], y=[*high, *low[::-1]],
                fill="toself", fillcolor="rgba(99, 110, 250, 0.15)", line={"width": 0}, mode="lines",
                name=f"{run.name} · {label} 95% CI", hoverinfo="skip", showlegend=False,
            ), row)
        values = rows["value"].to_numpy(dtype=float)
        metric = label.rpartition(" · ")[2] or label  # labels end with the metric (timeline.scores)
        spec = _hover_format(metric, values)
        fig.add_trace(dict(
            x=x, y=values, mode="lines+markers", name=f"{label} (saved score)",
            line={"color": COLOURS[0], "dash": "dash"}, marker={"size": 9, "symbol": "circle"},
            customdata=[[plotly_text(c), str(n)] for c, n in zip(rows["checkpoint"], rows["n"], strict=True)]
            if "n" in rows else [[plotly_text(c)] for c in rows["checkpoint"]],
            hovertemplate="<b>%{customdata[0]}</b><br>" + plotly_text(label) + f" = %{{y:{spec}}}"
                          + (" (n = %{customdata[1]})" if "n" in rows else "") + "<extra>saved score</extra>",
        ), row)
        stats.points[f"score · {label}"] = len(rows)
        values_by_row[row] = [values]
        _format_axis(fig, row, metric, values)
    for row, (_title, members) in enumerate(chart, start=1):
        _format_axis(fig, row, members[0], np.concatenate(values_by_row.get(row, [np.array([])])), log=options.log_y)
    fig.set_x_title(n_rows, X_LABELS.get(options.x_axis, options.x_axis))
    # Checkpoint markers are drawn last, i.e. on top of the curves.
    fig.data.sort(key=lambda trace: trace.get("mode") == "markers")  # stable
    height = ROW_HEIGHT * n_rows + 80
    fig.update_layout(
        # what the legend and axis labels would push the margins to: Plotly draws the figure once
        height=height, margin=reserved_margins(fig.data, height, options.x_axis), hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        clickmode="event+select", dragmode="zoom",
        uirevision=f"{run.path}|{options.x_axis}|{','.join(options.metrics)}",
    )
    return fig.figure(validate), stats


def _figure_key(run: RunData, signature: tuple, options: ChartOptions, overlays: list[RunData],
                scores: pd.DataFrame | None, best: BestCheckpoint | None) -> tuple | None:
    """Everything the figure is drawn from; ``None`` (do not cache) when the scores can't be hashed."""
    try:
        scores_key = None if scores is None or scores.empty else \
            (tuple(scores.columns), int(pd.util.hash_pandas_object(scores, index=False).sum()))
    except TypeError:
        return None
    best_key = None if best is None else (best.metric, best.mode, best.step, best.value,
                                          best.checkpoint.name if best.checkpoint else None)
    return (str(run.path), signature,
            (tuple(options.metrics), options.x_axis, options.log_y, options.smoothing, options.max_points,
             options.step_range, tuple(options.score_labels), options.show_checkpoints, options.smooth_sparse,
             options.split_attempts, options.sources),
            tuple((str(o.path), run_signature(o.path)) for o in overlays), scores_key, best_key)


def _build_for_cache(run: RunData, signature: tuple, options: ChartOptions, overlays: list[RunData],
                     scores: pd.DataFrame | None, best: BestCheckpoint | None) -> tuple[go.Figure, FigureStats]:
    return build_figure(run, options, overlays=overlays, scores=scores, best=best, validate=False)


cached_figure = Memo(_build_for_cache, "timeline-figures", maxsize=32, key=_figure_key)
""":func:`build_figure` without Plotly's validation, remembered by the run's file signature and
every input (Plotly's figure construction was most of a Timeline rerun). Callers must not modify
the figure: it is shared between reruns and sessions (``st.plotly_chart`` only copies it)."""
