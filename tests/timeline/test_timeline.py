"""Timeline logic: drawn values equal the log, TensorBoard smoothing, downsampling, best, selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.metrics import format_metric
from dashboard.runs.run import load_run
from dashboard.runs.synthetic import write_json, write_run
from dashboard.runs.trainer_state import parse_log_history
from dashboard.timeline.downsample import downsample, minmax_indices
from dashboard.timeline.figure import SPARSE_POINTS, ChartOptions, build_figure, constant_range, smoothing_for
from dashboard.timeline.scores import saved_scores, score_series_names
from dashboard.timeline.selection import OPEN_TARGETS, checkpoint_from_selection
from dashboard.timeline.series import available_axes, best_checkpoint, metric_groups, metric_series, plot_metrics
from dashboard.timeline.smoothing import tb_smooth, tb_smooth_reference


@pytest.fixture()
def run(tmp_path: Path):
    return load_run(write_run(tmp_path / "r", n_steps=400, save_every=100, eval_every=100), [tmp_path])


# ------------------------------------------------------------------ values drawn == log
def test_drawn_raw_values_equal_the_log_exactly(run) -> None:
    entries = json.loads((run.path / "trainer_state.json").read_text())["log_history"]
    fig, stats = build_figure(run, ChartOptions(metrics=["loss", "eval_loss"], smoothing=0.0))
    traces = {t.name: t for t in fig.data}
    loss = traces["loss"]
    assert list(loss.x) == [e["step"] for e in entries if "loss" in e]
    assert list(loss.y) == [e["loss"] for e in entries if "loss" in e]
    ev = traces["eval_loss"]
    assert list(zip(ev.x, ev.y, strict=True)) == [(e["step"], e["eval_loss"]) for e in entries if "eval_loss" in e]
    assert stats.points["loss"] == 400


def test_smoothed_trace_is_tensorboard_smoothing_of_the_raw(run) -> None:
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], smoothing=0.8))
    traces = {t.name: t for t in fig.data}
    raw, smooth = traces["loss"], traces["loss (smoothed 0.80)"]
    assert raw.opacity < 1 and smooth.line.width > raw.line.width
    np.testing.assert_allclose(smooth.y, tb_smooth_reference(raw.y, 0.8), rtol=1e-12)
    # the hover reads the logged values; the smoothed line is labelled and never hovered
    assert "(logged)" in raw.hovertemplate and smooth.hoverinfo == "skip"


def test_default_view_draws_eval_and_sparse_series_exactly_as_logged(run) -> None:
    """Smoothing 0.6 (the default) must not bend a 4-point eval curve: the bold line is the log."""
    entries = json.loads((run.path / "trainer_state.json").read_text())["log_history"]
    fig, _ = build_figure(run, ChartOptions(metrics=["loss", "eval_loss", "eval_accuracy"]))
    names = [t.name for t in fig.data if t.mode != "markers"]
    assert "loss (smoothed 0.60)" in names  # 400 train points: smoothed, labelled
    assert not any("eval" in n and "smoothed" in n for n in names)
    for metric in ("eval_loss", "eval_accuracy"):
        trace = next(t for t in fig.data if t.name == metric)
        assert trace.opacity == 1.0
        assert list(zip(trace.x, trace.y, strict=True)) == [(e["step"], e[metric]) for e in entries if metric in e]
    opted_in = build_figure(run, ChartOptions(metrics=["eval_loss"], smooth_sparse=True))[0]
    assert any(t.name == "eval_loss (smoothed 0.60)" for t in opted_in.data)


def test_sparse_train_series_is_not_smoothed_by_default(tmp_path: Path) -> None:
    sparse = load_run(write_run(tmp_path / "s", n_steps=30, save_every=10, eval_every=10), [tmp_path])
    series = metric_series(plot_metrics(sparse), "loss")
    assert len(series.y) < SPARSE_POINTS and smoothing_for(series, ChartOptions(metrics=["loss"])) == 0.0
    fig, _ = build_figure(sparse, ChartOptions(metrics=["loss"]))
    assert [t.name for t in fig.data if t.mode in ("lines", "lines+markers")] == ["loss"]


def test_fraction_metrics_read_as_percentages_and_constant_series_get_a_real_axis(run) -> None:
    fig, _ = build_figure(run, ChartOptions(metrics=["eval_accuracy", "learning_rate"], smoothing=0))
    accuracy = next(t for t in fig.data if t.name == "eval_accuracy")
    assert "%{y:.1%}" in accuracy.hovertemplate and fig.layout.yaxis.tickformat == ".0%"
    assert constant_range(np.array([5e-5] * 10)) == pytest.approx([2.5e-5, 7.5e-5])
    assert constant_range(np.array([0.0, 0.0])) == [-1.0, 1.0]
    assert constant_range(np.array([1e-3, 1e-3]), log=True) == pytest.approx([-3.5, -2.5])
    assert constant_range(np.array([1.0, 2.0])) is None


def test_constant_learning_rate_is_drawn_around_its_value(tmp_path: Path) -> None:
    entries = [{"loss": 1.0 / i, "learning_rate": 5e-5, "step": i} for i in range(1, 101)]
    write_json(tmp_path / "c" / "trainer_state.json", {"global_step": 100, "log_history": entries})
    fig, _ = build_figure(load_run(tmp_path / "c", [tmp_path]), ChartOptions(metrics=["loss", "learning_rate"]))
    assert fig.layout.yaxis2.range == pytest.approx((2.5e-5, 7.5e-5))
    assert fig.layout.yaxis.range is None  # a varying series keeps autorange


def test_epoch_and_wall_time_axes(run) -> None:
    assert available_axes(run.metrics) == ["step", "epoch"]  # no TensorBoard: no wall time
    series = metric_series(run.metrics, "loss", "epoch")
    assert series.x[:3].tolist() == [0.01, 0.02, 0.03]
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], x_axis="epoch", smoothing=0))
    curve = next(t for t in fig.data if t.mode == "lines+markers")
    assert list(curve.x[:2]) == [0.01, 0.02]


# ------------------------------------------------------------------ smoothing
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
       st.floats(0.0, 0.99))
def test_smoothing_matches_tensorboard_formula(values, weight) -> None:
    np.testing.assert_allclose(tb_smooth(np.array(values), weight), tb_smooth_reference(values, weight),
                               rtol=1e-9, atol=1e-6)


def test_smoothing_edge_cases() -> None:
    values = [1.0, float("nan"), 3.0, float("inf"), 5.0]
    out = tb_smooth(np.array(values), 0.5)
    ref = tb_smooth_reference(values, 0.5)
    assert np.isnan(out[1]) and np.isinf(out[3])
    np.testing.assert_allclose(out[[0, 2, 4]], np.array(ref)[[0, 2, 4]])
    assert tb_smooth(np.array([2.0, 2.0, 2.0]), 0.9).tolist() == [2.0, 2.0, 2.0]  # constant passes through
    assert tb_smooth(np.array([1.0, 2.0]), 0.0).tolist() == [1.0, 2.0]
    assert tb_smooth(np.array([1.0, 3.0]), 0.5)[1] == pytest.approx((0.25 + 1.5) / 0.75)
    with pytest.raises(ValueError):
        tb_smooth(np.array([1.0]), 1.0)


# ------------------------------------------------------------------ downsampling
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=3000), st.integers(4, 500))
def test_downsampling_keeps_extremes_endpoints_and_bound(values, max_points) -> None:
    y = np.array(values)
    idx = minmax_indices(y, max_points)
    assert len(idx) <= max_points
    assert np.all(np.diff(idx) > 0)
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    kept = y[idx]
    assert kept.min() == y.min() and kept.max() == y.max()


def test_downsampling_keeps_every_bucket_extreme_and_spike() -> None:
    y = np.sin(np.linspace(0, 50, 1_000_000))
    y[123_457] = 40.0  # one spike
    y[987_001] = -40.0
    x = np.arange(len(y))
    dx, dy = downsample(x, y, 2_000)
    assert len(dx) <= 2_000 and 40.0 in dy and -40.0 in dy
    assert 123_457 in dx and 987_001 in dx
    zx, zy = downsample(x, y, 2_000, x_range=(500_000, 500_999))
    assert zx.tolist() == list(range(500_000, 501_000))  # zoomed in: full resolution
    np.testing.assert_array_equal(zy, y[500_000:501_000])


def test_figure_bounds_points_per_trace_for_a_long_log(tmp_path: Path) -> None:
    n = 120_000
    entries = [{"loss": float(np.sin(i / 1000.0)), "step": i, "epoch": i / 1000} for i in range(1, n + 1)]
    entries[5000]["loss"] = 99.0
    write_json(tmp_path / "big" / "trainer_state.json", {"global_step": n, "log_history": entries})
    run = load_run(tmp_path / "big", [tmp_path])
    fig, stats = build_figure(run, ChartOptions(metrics=["loss"], smoothing=0.9, max_points=1000))
    assert stats.max_points_per_trace <= 1000
    assert stats.source_points["loss"] == n
    raw = next(t for t in fig.data if t.name == "loss")
    assert 99.0 in raw.y and 5001 in raw.x


# ------------------------------------------------------------------ checkpoints / best
def test_checkpoint_markers_carry_name_and_hover(run) -> None:
    fig, _ = build_figure(run, ChartOptions(metrics=["loss", "eval_loss"]))
    markers = [t for t in fig.data if t.name == "checkpoints"]
    assert len(markers) == 2
    assert [c[0] for c in markers[1].customdata] == ["checkpoint-100", "checkpoint-200", "checkpoint-300",
                                                     "checkpoint-400"]
    assert list(markers[0].x) == [100, 200, 300, 400]
    eval_rows = run.metrics[run.metrics["metric"] == "eval_loss"]
    assert list(markers[1].y) == eval_rows["value"].tolist()
    assert "eval_loss = " in markers[1].customdata[0][4]
    vlines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert [s.x0 for s in vlines] == [100, 200, 300, 400]


def test_best_checkpoint_explained_and_selectable_mode(run) -> None:
    eval_rows = run.metrics[run.metrics["metric"] == "eval_loss"]
    lowest = eval_rows.loc[eval_rows["value"].idxmin()]
    best = best_checkpoint(run, "eval_loss")
    assert best.mode == "min" and best.step == lowest["step"] and best.checkpoint.step == lowest["step"]
    assert best.candidates == 4
    assert best.explanation == (f"lowest eval_loss among the 4 checkpoint(s) that logged it: "
                                f"{format_metric('eval_loss', lowest['value'])} at step {lowest['step']} "
                                f"(checkpoint-{lowest['step']})")
    worst = best_checkpoint(run, "eval_loss", "max")
    assert worst.value == eval_rows["value"].max() and worst.explanation.startswith("highest eval_loss")
    assert best_checkpoint(run, "eval_accuracy").mode == "max"
    assert best_checkpoint(run, "nope") is None
    fig, _ = build_figure(run, ChartOptions(metrics=["eval_loss"]), best=best)
    star = next(t for t in fig.data if t.name == "best checkpoint")
    assert star.customdata[0][0] == best.checkpoint.name


def test_best_checkpoint_mentions_a_better_step_without_a_checkpoint(tmp_path: Path) -> None:
    entries = [{"eval_loss": v, "step": s} for s, v in ((100, 0.5), (150, 0.1), (200, 0.3))]
    write_json(tmp_path / "b" / "trainer_state.json", {"global_step": 200, "log_history": entries})
    for step in (100, 200):
        write_json(tmp_path / "b" / f"checkpoint-{step}" / "config.json", {"model_type": "llava"})
    best = best_checkpoint(load_run(tmp_path / "b", [tmp_path]), "eval_loss")
    assert best.step == 200 and best.checkpoint.name == "checkpoint-200"
    assert best.explanation.endswith("A better value, 0.1, was logged at step 150, which has no checkpoint")


def test_metric_groups_keep_train_and_eval_apart(run) -> None:
    groups = metric_groups(run.metrics)
    assert groups["train"][:1] == ["loss"] and "grad_norm" in groups["train"]
    assert groups["eval"][:2] == ["eval_loss", "eval_accuracy"]
    assert not set(groups["train"]) & set(groups["eval"])


def test_overlay_runs_get_their_own_colour(tmp_path: Path) -> None:
    a = load_run(write_run(tmp_path / "a", n_steps=100), [tmp_path])
    b = load_run(write_run(tmp_path / "b", n_steps=150, seed=3), [tmp_path])
    fig, _ = build_figure(a, ChartOptions(metrics=["loss"], smoothing=0), overlays=[b])
    # Overlaid: legend names say which run, by the configuration that tells them apart (max_steps here).
    ta = next(t for t in fig.data if t.name == "a (max_steps=100) · loss")
    tb = next(t for t in fig.data if t.name == "b (max_steps=150) · loss")
    assert ta.line.color != tb.line.color and len(tb.x) == 150


# ------------------------------------------------------------------ selection -> checkpoint
def test_selection_maps_to_checkpoint(run) -> None:
    event = {"selection": {"points": [{"curve_number": 3, "point_index": 1, "x": 200, "y": 0.4,
                                       "customdata": ["checkpoint-200", "200", "1 KB", "t", "m"]}]}}
    assert checkpoint_from_selection(event, run).name == "checkpoint-200"
    plain = {"selection": {"points": [{"x": 150, "y": 1.0}]}}
    assert checkpoint_from_selection(plain, run).name == "checkpoint-200"  # first checkpoint at/after step 150
    assert checkpoint_from_selection(plain, run, x_axis="epoch") is None
    assert checkpoint_from_selection({"selection": {"points": []}}, run) is None
    assert checkpoint_from_selection(None, run) is None
    assert checkpoint_from_selection({"selection": {"points": [{"x": 10_000}]}}, run) is None
    unknown = {"selection": {"points": [{"customdata": ["checkpoint-999"], "x": 999}]}}
    assert checkpoint_from_selection(unknown, run) is None
    assert set(OPEN_TARGETS.values()) == {"pages/1_Inference.py", "pages/2_Comparison.py", "pages/4_Attention.py"}


# ------------------------------------------------------------------ saved eval-set scores
def _write_scores(run_dir: Path, checkpoint: str, step: int, exact: list[int]) -> None:
    """A saved result as the Comparison page writes it (content-keyed layout)."""
    from dashboard.compare.results import result_relpath

    rows = [{"id": f"{i:05d}", "output": "red", "scores": {"exact_match": float(v), "contains": float(v),
                                                           "token_f1": float(v)}} for i, v in enumerate(exact)]
    write_json(run_dir / "eval_results" / result_relpath("demo", "a" * 64, checkpoint, "k"), {
        "checkpoint": checkpoint, "step": step, "eval_set": "demo", "n": len(rows), "eval_set_hash": "a" * 64,
        "settings_key": "k", "metrics": {"exact_match": sum(exact) / len(exact)}, "settings": {}, "rows": rows})


def test_saved_scores_become_their_own_clickable_series(run, tmp_path: Path) -> None:
    _write_scores(run.path, "checkpoint-100", 100, [0, 1, 0, 0])
    _write_scores(run.path, "checkpoint-300", 300, [1, 1, 1, 0])
    scores, problem = saved_scores(run.path, tmp_path / "data")
    assert problem is None
    labels = score_series_names(scores)
    assert "demo · exact_match" in labels
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], score_labels=["demo · exact_match"]), scores=scores)
    # the legend names the series once (not "r · demo · exact_match" repeated across rows)
    trace = next(t for t in fig.data if t.name == "demo · exact_match (saved score)")
    assert "%{y:.1%}" in trace.hovertemplate  # exact match is a fraction: a percentage, like its table
    assert list(trace.x) == [100, 300] and list(trace.y) == [0.25, 0.75]
    assert [c[0] for c in trace.customdata] == ["checkpoint-100", "checkpoint-300"]
    band = next(t for t in fig.data if t.name == "r · demo · exact_match 95% CI")
    assert band.fill == "toself" and list(band.x) == [100, 300, 300, 100]
    high, low = list(band.y[:2]), list(band.y[2:][::-1])
    assert all(lo <= v <= hi for lo, v, hi in zip(low, [0.25, 0.75], high, strict=True)) and high[0] > low[0]
    event = {"selection": {"points": [{"x": 300, "y": 0.75, "customdata": list(trace.customdata[1])}]}}
    assert checkpoint_from_selection(event, run).name == "checkpoint-300"


def test_malformed_log_degrades_gracefully(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "r", n_steps=50, save_every=50, eval_every=0)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    state["log_history"][10]["loss"] = float("nan")
    state["log_history"][11] = "oops"
    (run_dir / "trainer_state.json").write_text(json.dumps(state))  # json writes NaN as a bare token
    run = load_run(run_dir, [tmp_path])
    assert any("'loss' has 1 NaN/inf/null value(s) (step 11)" in p for p in run.problems)
    fig, _ = build_figure(run, ChartOptions(metrics=["loss", "eval_loss"], smoothing=0.5))
    raw = next(t for t in fig.data if t.name == "loss")
    assert 11 not in raw.x and 12 not in raw.x and len(raw.x) == 48
    assert all(np.isfinite(raw.y))
    empty, problems = parse_log_history({"not": "a list"})
    assert empty.empty and "not a list" in problems[0]
    assert isinstance(empty, pd.DataFrame)


def test_checkpoint_markers_are_on_top_and_curves_are_clickable(run) -> None:
    """Plotly selects nothing on line-only traces: the logged curve carries invisible markers (the smoothed line
    is not hovered at all), checkpoints are drawn last."""
    fig, _ = build_figure(run, ChartOptions(metrics=["loss"], smoothing=0.6))
    curves = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(curves) == 1 and all(t.marker.opacity == 0 and t.selected.marker.opacity == 0 for t in curves)
    modes = [t.mode for t in fig.data]
    assert modes.index("markers") > max(i for i, m in enumerate(modes) if m == "lines+markers")


def test_a_curve_click_next_to_a_checkpoint_selects_it(run) -> None:
    # 400 logged steps: within 1.5 % (6 steps) of checkpoint-200 on either side.
    for x in (195, 200, 205):
        assert checkpoint_from_selection({"selection": {"points": [{"x": x}]}}, run).name == "checkpoint-200"
    # was: a click just right of a marker (the curve point at 201) selected the *next* checkpoint
    assert checkpoint_from_selection({"selection": {"points": [{"x": 220}]}}, run).name == "checkpoint-300"


def test_cached_figure_is_the_built_figure_and_follows_every_input(run) -> None:
    from dashboard.runs.run import run_signature
    from dashboard.timeline.figure import cached_figure

    cached_figure.clear()
    calls = cached_figure.calls  # a running count over the process (pages' AppTests draw too)
    signature = run_signature(run.path)
    options = ChartOptions(metrics=["loss", "eval_loss"])
    fig, _ = cached_figure(run, signature, options, [], None, None)
    reference, _ = build_figure(run, options)
    assert fig.to_plotly_json() == reference.to_plotly_json()  # same drawing as the uncached path
    again, _ = cached_figure(run, signature, ChartOptions(metrics=["loss", "eval_loss"]), [], None, None)
    assert again is fig and cached_figure.calls == calls + 1
    logged, _ = cached_figure(run, signature, ChartOptions(metrics=["loss", "eval_loss"], log_y=True), [], None, None)
    assert logged is not fig and logged.layout.yaxis.type == "log"
    changed, _ = cached_figure(run, (*signature, ("new-file", 1, 1)), options, [], None, None)
    assert changed is not fig and cached_figure.calls == calls + 3  # a changed run is drawn anew


def test_a_curve_point_at_a_checkpoint_names_it_in_the_hover(run) -> None:
    """Hovering where a marker sits often hovers the curve's point: it names the checkpoint too (issue 37)."""
    fig, _ = build_figure(run, ChartOptions(metrics=["eval_loss"], smoothing=0.0))
    curve = next(t for t in fig.data if t.name == "eval_loss")
    by_step = dict(zip(curve.x, (c[0] for c in curve.customdata), strict=True))
    saved = {c.step: c.name for c in run.checkpoints if c.step in by_step}
    assert saved, "the synthetic run evaluates at some checkpoint steps"
    assert all(by_step[step] == f" · {name}" for step, name in saved.items())
    assert all(text == "" for step, text in by_step.items() if step not in saved)
    assert "%{customdata[0]}" in curve.hovertemplate
