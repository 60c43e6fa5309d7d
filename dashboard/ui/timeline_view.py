"""Timeline page: training curves with checkpoint markers; click a checkpoint to open it elsewhere.

Parsing, smoothing, downsampling, figure building and selection mapping live in
``dashboard.runs`` and ``dashboard.timeline``; this view arranges the widgets.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.formatting import fmt_bytes, markdown_safe
from dashboard.paths import PathOutsideRoots
from dashboard.runs.metrics import SOURCE_FILES, source_choices, source_counts
from dashboard.runs.run import RunData, list_runs, run_signature
from dashboard.timeline.downsample import DEFAULT_MAX_POINTS
from dashboard.timeline.figure import SPARSE_POINTS, ChartOptions, cached_figure
from dashboard.timeline.scores import default_score_labels, saved_scores, score_series_names
from dashboard.timeline.selection import OPEN_TARGETS, checkpoint_from_selection
from dashboard.timeline.series import (
    X_LABELS,
    available_axes,
    best_checkpoint,
    default_metrics,
    default_mode,
    derived,
    metric_groups,
    plot_metrics,
)
from dashboard.ui import state, url_state
from dashboard.ui.drift_view import render_drift
from dashboard.ui.live_scoring_view import render_live_scoring, select_new_series
from dashboard.ui.resources import get_run, get_settings
from dashboard.ui.summaries_panel import render_text_panel
from dashboard.ui.widgets import scroll_into_view

K_SELECTED = "tl.selected_checkpoint"  # plain key: survives reruns where the chart is not clicked
K_CHART = "tl.chart"
K_PANEL = "tl-selected"  # the selection panel's container key (scrolled into view after a marker click)
K_SIGNATURE = "tl.signature"  # the run's file signature the whole page was last drawn from
K_LIVE, K_INTERVAL = "tl.live", "tl.interval"
K_MORE = "tl.more"  # the "Best checkpoint, overlays, …" expander: open or closed
MORE_LABEL = "Best checkpoint, overlays, saved scores, range"
DEFAULT_INTERVAL = 10

def plain_caption(text: str) -> str:
    """Run-derived text for a Markdown-rendering widget, shown as plain text."""
    return markdown_safe(text)


def _load(path: str | Path) -> RunData | None:
    try:
        return get_run(path)
    except (PathOutsideRoots, FileNotFoundError, NotADirectoryError) as exc:
        st.error(f"Cannot open run {markdown_safe(Path(path).name)}: {markdown_safe(exc)}")
        return None


def _controls(run: RunData) -> tuple[ChartOptions, str | None, str, list[str], bool, float]:
    """Chart controls; keys are per run so switching runs never leaves stale options behind."""
    metrics = plot_metrics(run)
    k = f"tl.{zlib.crc32(str(run.path).encode()):08x}"
    groups = derived(run, ("metric_groups",), lambda: metric_groups(metrics))
    options = groups["train"] + groups["eval"] + [m for split, names in groups.items()
                                                  if split not in ("train", "eval") for m in names]
    split_of = {m: split for split, names in groups.items() for m in names}
    c1, c2, c3 = st.columns([3, 1.2, 1.2])
    from_url = url_state.arrival_value("metrics", url_state.decode_names(options), "metrics")
    default = from_url if from_url is not None else [
        m for m in derived(run, ("default_metrics",), lambda: default_metrics(metrics, run.series)) if m in options]
    chosen = c1.multiselect("Metrics", options, default=default,
                            format_func=lambda m: f"{split_of.get(m, '')} · {m}", key=f"{k}.metrics",
                            help="Train and eval metrics (eval_* names) from trainer_state.json / TensorBoard.")
    url_state.publish("metrics", ",".join(chosen))
    axes = derived(run, ("available_axes",), lambda: available_axes(metrics))
    _from_url("x", f"{k}.x_axis", url_state.decode_choice(axes), "x axis")
    _from_url("log", f"{k}.log_y", _decode_flag, "log scale")
    _from_url("smooth", f"{k}.smoothing", _decode_smoothing, "smoothing")
    st.session_state.setdefault(f"{k}.smoothing", DEFAULT_SMOOTHING)
    x_axis = c2.radio("X axis", axes, format_func=X_LABELS.get, horizontal=True, key=f"{k}.x_axis")
    log_y = c3.toggle("Log scale (y)", key=f"{k}.log_y")
    smoothing = c3.slider("Smoothing", 0.0, 0.99, step=0.01, key=f"{k}.smoothing",
                          help="TensorBoard's debiased exponential moving average, for dense train curves; "
                               "the logged values stay behind it and in the hover.")
    url_state.publish("x", x_axis if x_axis != axes[0] else None)
    url_state.publish("log", "1" if log_y else None)
    url_state.publish("smooth", f"{smoothing:g}" if smoothing != DEFAULT_SMOOTHING else None)
    smooth_sparse = c3.toggle("Smooth eval/sparse series too", key=f"{k}.smooth_sparse",
                              help=f"Off: eval series and series with fewer than {SPARSE_POINTS} points are "
                                   "drawn exactly as logged.")

    more = _more_controls(run, groups, metrics, k)
    sources = _source_pickers(run, chosen, k)
    split_attempts = False
    if run.restarts:
        split_attempts = st.toggle("Draw each training attempt as its own trace", key=f"{k}.attempts",
                                   help="Off: the run that survived its restarts (where an attempt re-logged "
                                        "steps, the later attempt's values). On: every attempt exactly as it "
                                        "logged, the replaced steps included.")
    chart = ChartOptions(metrics=chosen, x_axis=x_axis, log_y=log_y, smoothing=smoothing, max_points=more.max_points,
                         step_range=more.step_range, score_labels=more.score_labels, smooth_sparse=smooth_sparse,
                         split_attempts=split_attempts, sources=tuple(sorted(sources.items())))
    return chart, more.best_metric, more.mode, more.overlays, more.live, more.interval


@dataclass(frozen=True)
class MoreControls:
    """What the "Best checkpoint, overlays, …" expander sets."""

    best_metric: str | None
    mode: str
    overlays: list[str]
    score_labels: list[str]
    step_range: tuple[int, int] | None
    max_points: int
    live: bool
    interval: float


def _kept(key: str, default: Any, options: Sequence[Any] | None = None) -> Any:
    """A widget's value on a run that does not draw it (its expander is closed): what it kept
    (``persist_state="page"``), else its default; a kept value no longer offered falls back too."""
    value = st.session_state.get(key, default)
    return value if options is None or value in options else default


def _more_controls(run: RunData, groups: dict[str, list[str]], metrics: pd.DataFrame, k: str) -> MoreControls:
    """The expander's widgets, drawn only while it is open.

    A page switch to the Timeline mounted every widget of the collapsed expander too: a quarter of
    the page's elements (issue 35: Home → Timeline rerun latency). Closed, its widgets are not sent;
    their values stay in the session (``persist_state="page"``: until the page is left, as before)
    and the chart reads them from there.
    """
    best_options = groups["eval"] + groups["train"]
    default_best = "eval_loss" if "eval_loss" in best_options else (best_options[0] if best_options else None)
    scores, problem = saved_scores(run.path, get_settings().data_dir)
    if problem:
        st.warning(markdown_safe(problem))
    labels = score_series_names(scores)
    # a live score line (a whole set) shows up by itself; subsets stay drawn only when chosen
    select_new_series(f"{k}.scores", default_score_labels(scores))
    steps = metrics["step"] if not metrics.empty else pd.Series([0])
    lo, hi = int(steps.min()), int(steps.max())
    k_range, k_bounds = f"{k}.range", f"{k}.range.bounds"  # bounds: the range the slider offered when drawn
    expander = st.expander(MORE_LABEL, key=K_MORE, on_change="rerun")
    if not expander.open:
        best_metric = _kept(f"{k}.best_metric", default_best, best_options)
        picked = _kept(k_range, None)
        return MoreControls(
            best_metric=best_metric,
            mode=_kept(f"{k}.best_mode.{best_metric}", default_mode(best_metric or "loss"), ("min", "max")),
            overlays=list(_kept(f"{k}.overlays", [])),
            score_labels=[label for label in _kept(f"{k}.scores", default_score_labels(scores)) if label in labels],
            step_range=None if picked is None or tuple(picked) == st.session_state.get(k_bounds)
            else (int(picked[0]), int(picked[1])),
            max_points=int(_kept(f"{k}.max_points", DEFAULT_MAX_POINTS)),
            live=bool(_kept(K_LIVE, False)), interval=float(_kept(K_INTERVAL, DEFAULT_INTERVAL)))
    with expander:
        b1, b2 = st.columns(2)
        best_metric = b1.selectbox("Best by", best_options, index=best_options.index(default_best)
                                   if default_best else None, key=f"{k}.best_metric", persist_state="page")
        mode = b2.radio("Mode", ["min", "max"], horizontal=True, key=f"{k}.best_mode.{best_metric}",
                        index=0 if default_mode(best_metric or "loss") == "min" else 1, persist_state="page")
        root = Path(state.get(state.RUNS_ROOT) or run.path.parent)
        listed = {str(r.path): r.name for r in list_runs(root) if r.path.resolve() != run.path.resolve()}
        overlays = st.multiselect("Overlay runs (same metrics, colour per run)", list(listed), key=f"{k}.overlays",
                                  format_func=lambda p: listed.get(p, Path(p).name), persist_state="page")
        # once the key holds a value (the widget's own or select_new_series's), a default as well
        # would make Streamlit log "created with a default value but also had its value set via the
        # Session State API" on every live-scoring rerun
        score_labels = st.multiselect("Saved eval-set scores (from Comparison)", labels,
                                      default=None if f"{k}.scores" in st.session_state
                                      else default_score_labels(scores), key=f"{k}.scores", persist_state="page",
                                      help="Complete results saved per checkpoint, one line per eval set, subset "
                                           "and settings; subsets (first N examples) are drawn only when chosen.")
        step_range = None
        if hi > lo:
            picked = st.slider("Step range (zoom: full resolution when few points)", lo, hi, (lo, hi),
                               key=k_range, persist_state="page")
            st.session_state[k_bounds] = (lo, hi)
            step_range = None if tuple(picked) == (lo, hi) else (int(picked[0]), int(picked[1]))
        max_points = st.number_input("Max points per trace", 100, 20_000, DEFAULT_MAX_POINTS, 100,
                                     key=f"{k}.max_points", persist_state="page")
        l1, l2 = st.columns(2)
        live = l1.toggle("Live: auto-refresh", key=K_LIVE, persist_state="page",
                         help="Re-read changed files only, chart only.")
        interval = l2.number_input("Every (s)", 2, 600, DEFAULT_INTERVAL, key=K_INTERVAL, persist_state="page")
    return MoreControls(best_metric=best_metric, mode=mode, overlays=overlays, score_labels=score_labels,
                        step_range=step_range, max_points=int(max_points), live=live, interval=float(interval))


def _source_pickers(run: RunData, chosen: list[str], k: str) -> dict[str, str]:
    """For each chosen metric logged by several sources: say which is drawn and let the user pick
    another or overlay them all."""
    # per loaded run, not per rerun: grouping the run's table by metric and source was a fifth of
    # a Timeline rerun's script time (py-spy, issue 35)
    options = derived(run, ("source_choices",), lambda: source_choices(run.surviving_metrics, run.series))
    picked: dict[str, str] = {}
    notes: list[str] = []
    for metric in [m for m in chosen if m in options]:
        available = options[metric]
        counts = derived(run, ("source_counts", metric), partial(source_counts, run.surviving_metrics, metric))
        choice = st.radio(
            f"Source of {markdown_safe(metric)}", [*available, "all"], horizontal=True, key=f"{k}.source.{metric}",
            format_func=lambda s, c=counts: "overlay all" if s == "all" else
            f"{SOURCE_FILES.get(s, s)} ({c.get(s, 0):,} points)",
            help="Several files log this metric; by default the chart draws one of them "
                 "(trainer_state.json, else trainer_log.jsonl, else TensorBoard).")
        picked[metric] = choice
        if choice == "all":
            notes.append(f"{metric}: every source drawn, labelled by file.")
        else:
            others = ", ".join(f"{SOURCE_FILES.get(s, s)} ({counts.get(s, 0):,} points)" for s in available
                               if s != choice)
            notes.append(f"{metric} is drawn from {SOURCE_FILES.get(choice, choice)} "
                         f"({counts.get(choice, 0):,} points); also logged by {others}.")
    if notes:  # one element, a line per metric: each element is mounted on every page switch (issue 35)
        st.caption("  \n".join(plain_caption(note) for note in notes))
    return picked


DEFAULT_SMOOTHING = 0.6


def _decode_flag(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("expected 0 or 1")
    return raw == "1"


def _decode_smoothing(raw: str) -> float:
    value = float(raw)  # ValueError for text
    if not 0.0 <= value <= 0.99:  # also NaN and ±inf
        raise ValueError("expected 0 … 0.99")
    return round(value, 2)


def _from_url(param: str, widget_key: str, decode, what: str) -> None:
    """A chart control's value from the URL, once per session (a link or reload shows the same chart)."""
    value = url_state.arrival_value(param, decode, what)
    if value is not None:
        st.session_state[widget_key] = value


def _controls_and_chart(run_path: str, live: bool, interval: float) -> None:
    signature = run_signature(Path(run_path).resolve())
    if st.session_state.get(K_SIGNATURE) != signature:
        # Live refresh found changed files: redraw the whole app, so the header's counts and the
        # sidebar's checkpoint list update with the chart (a fragment rerun only redraws itself).
        st.rerun()
    run = _load(run_path)  # cached by run_signature: a live run re-reads only changed files
    if run is None:
        return
    chart, best_metric, mode, overlays, live_now, interval_now = _controls(run)
    if (live_now, interval_now) != (live, interval):
        st.rerun()  # the fragment's refresh interval is set where it is created: redraw the page
    _chart(run, signature, chart, best_metric, mode, overlays)


def _chart(run: RunData, signature: tuple, chart: ChartOptions, best_metric: str | None, mode: str,
           overlays: list[str]) -> None:
    others = [r for r in (_load(p) for p in overlays) if r is not None]
    scores, _ = saved_scores(run.path, get_settings().data_dir)
    best = best_checkpoint(run, best_metric, mode) if best_metric else None  # type: ignore[arg-type]
    if best is not None:
        st.markdown(f"**Best checkpoint:** {markdown_safe(best.explanation)}")
        trainers = run.best_checkpoint
        if trainers is not None and best.checkpoint and trainers.name != best.checkpoint.name:
            st.caption(plain_caption(f"The trainer's own best checkpoint is {trainers.name} ({run.best.reason}; "
                                     "its metric_for_best_model may differ)."))
        elif trainers is None and run.state is not None:
            st.caption(plain_caption(f"The trainer's own best checkpoint: {run.best.reason}."))
    fresh = False  # a marker click just chose a new checkpoint
    if not chart.metrics and not chart.score_labels:
        st.info("Pick at least one metric to plot.")
    else:
        fig, stats = cached_figure(run, signature, chart, others, scores, best)
        missing = [o.name for o in others if chart.x_axis != "step" and o.metrics[chart.x_axis].isna().all()]
        if missing:
            st.caption(f"Not drawn on this axis (no {X_LABELS[chart.x_axis].lower()} in their logs): "
                       + markdown_safe(", ".join(missing)))
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=K_CHART, width="stretch")
        st.caption(f"{len(stats.points)} traces, at most {stats.max_points_per_trace} points each "
                   f"(from up to {max(stats.source_points.values(), default=0):,} logged). "
                   "Click a checkpoint marker (◆) to select it.")
        picked = checkpoint_from_selection(event, run, chart.x_axis)
        if picked is not None:
            fresh = state.get(K_SELECTED) != str(picked.path)
            state.put(K_SELECTED, str(picked.path))
    # Right below the chart, where the click was (above it, the panel appeared 400 px out of view),
    # and scrolled into view when a click just chose it.
    _selected_panel(run)
    if fresh:
        scroll_into_view(K_PANEL)


def _selected_panel(run: RunData) -> None:
    chosen = state.get(K_SELECTED)
    ckpt = run.checkpoint(chosen) if chosen else None
    if ckpt is None:
        return
    with st.container(border=True, key=K_PANEL):
        saved = ckpt.modified.strftime("%Y-%m-%d %H:%M:%S UTC")
        st.markdown(f"**Selected: {markdown_safe(ckpt.name)}** · step {ckpt.step} · {fmt_bytes(ckpt.size_bytes)} · "
                    f"{ckpt.weight_format}{' (PEFT adapter)' if ckpt.is_adapter else ''} · saved {saved}")
        for problem in ckpt.problems:
            st.caption(f"⚠ {markdown_safe(problem)}")
        if not ckpt.loadable:
            st.warning("This checkpoint cannot be loaded (see above); it can still be inspected here.")
        cols = st.columns(len(OPEN_TARGETS))
        for col, (label, page) in zip(cols, OPEN_TARGETS.items(), strict=True):
            if col.button(f"Open in {label}", key=f"tl.open.{label}", disabled=not ckpt.loadable):
                state.open_checkpoint_in(page, ckpt.path, run.path)


def render_timeline() -> None:
    st.title("Timeline")
    run_path = state.selected_run()
    if run_path is None:
        st.info("Pick a run in the sidebar (or build the demo run on Home).")
        return
    signature = run_signature(Path(run_path).resolve())  # taken before loading: never newer than the data
    run = _load(run_path)
    if run is None:
        return
    st.session_state[K_SIGNATURE] = signature
    st.caption(f"{markdown_safe(run.name)} · {len(run.checkpoints)} checkpoint(s) · {len(run.metrics):,} logged values"
               + (f" · from {markdown_safe(run.state_file.relative_to(run.path))}" if run.state_file else ""))
    render_live_scoring(run.path)
    if run.problems:
        with st.expander(f"{len(run.problems)} problem(s) reading this run", expanded=False):
            st.text("\n".join(f"• {p}" for p in run.problems))
    for notice in run.restart_notices():
        st.info(plain_caption(f"Resumed training — {notice}."))
    if run.metrics.empty:
        st.warning("No metrics found in this run (no readable trainer_state.json log_history, no TensorBoard "
                   "scalars). Checkpoints are listed in the sidebar.")
    # Controls and chart form one fragment: changing a chart control reruns only them, not the
    # router, sidebar and header (issue 17: rerun latency). Live refresh sets how often it reruns.
    live = bool(st.session_state.get(K_LIVE, False))
    interval = float(st.session_state.get(K_INTERVAL, DEFAULT_INTERVAL))
    fragment = st.fragment(run_every=interval if live else None)(_controls_and_chart)
    fragment(str(run.path), live, interval)
    render_text_panel(run)
    render_drift(run)

