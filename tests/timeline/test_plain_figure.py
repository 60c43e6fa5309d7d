"""The page's figure, built without Plotly's per-property validation, sends the browser exactly
what the validated figure sends (issue 35), for every kind of chart the Timeline draws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.runs.run import load_run
from dashboard.runs.synthetic import write_run
from dashboard.timeline.figure import ChartOptions, build_figure, cached_figure
from dashboard.timeline.plain_figure import PlainFigure
from dashboard.timeline.series import best_checkpoint

CASES = {
    "default": ChartOptions(metrics=["loss", "eval_loss"]),
    "log scale": ChartOptions(metrics=["loss", "eval_loss"], log_y=True, smoothing=0.3),
    "epoch axis": ChartOptions(metrics=["loss", "learning_rate"], x_axis="epoch"),
    "wall-time axis": ChartOptions(metrics=["loss"], x_axis="wall_time", smoothing=0),
    "step range, smoothed evals": ChartOptions(metrics=["eval_loss"], step_range=(100, 300), smooth_sparse=True),
    "no checkpoints, few points": ChartOptions(metrics=["loss"], show_checkpoints=False, max_points=40),
    "nothing picked": ChartOptions(metrics=[]),
}


def _spec(fig) -> dict:
    return json.loads(fig.to_json())


def _assert_same_figures(run, options: ChartOptions, **kwargs) -> None:
    checked, checked_stats = build_figure(run, options, **kwargs)
    fast, fast_stats = build_figure(run, options, validate=False, **kwargs)
    assert _spec(fast) == _spec(checked)
    assert fast.to_dict()["layout"] == checked.to_dict()["layout"]  # what st.plotly_chart serialises
    assert (fast_stats.points, fast_stats.source_points) == (checked_stats.points, checked_stats.source_points)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_figure_equals_validated_figure_on_a_synthetic_run(tmp_path: Path, case: str) -> None:
    run = load_run(write_run(tmp_path / "r", n_steps=400, save_every=100, eval_every=100), [tmp_path])
    _assert_same_figures(run, CASES[case], best=best_checkpoint(run, "eval_loss"))


def test_fast_figure_equals_validated_figure_with_overlays(tmp_path: Path) -> None:
    a = load_run(write_run(tmp_path / "a", n_steps=300, save_every=100, eval_every=100), [tmp_path])
    b = load_run(write_run(tmp_path / "b", n_steps=200, save_every=50, eval_every=50), [tmp_path])
    _assert_same_figures(a, ChartOptions(metrics=["loss", "eval_loss"]), overlays=[b])


def test_fast_figure_equals_validated_figure_on_the_trainer_written_demo(demo_run_dir: Path) -> None:
    run = load_run(demo_run_dir, [demo_run_dir.parent])
    best = best_checkpoint(run, "eval_loss")
    for options in (ChartOptions(metrics=["loss", "eval_loss", "eval_accuracy"]),
                    ChartOptions(metrics=["loss", "grad_norm"], x_axis="epoch", log_y=True)):
        _assert_same_figures(run, options, best=best)


def test_the_page_gets_the_fast_figure(tmp_path: Path) -> None:
    """``cached_figure`` (what the Timeline page draws) is built without validation, same JSON."""
    run = load_run(write_run(tmp_path / "r", n_steps=200, save_every=100, eval_every=100), [tmp_path])
    cached_figure.clear()
    options = ChartOptions(metrics=["loss"])
    page, _ = cached_figure(run, ("sig",), options, [], None, None)
    assert page._validate is False
    assert _spec(page) == _spec(build_figure(run, options)[0])


def test_plain_figure_update_semantics() -> None:
    """``None`` removes a key and nested dicts merge, as Plotly's ``update`` does."""
    fig = PlainFigure(2, 0.08, ["a", "b"])
    fig.update_yaxes(2, tickformat=".0%", type="log")
    fig.update_yaxes(2, tickformat=None)
    fig.update_layout(legend={"x": 0}, margin={"l": 1})
    fig.update_layout(legend={"y": 1.0})
    fig.add_trace({"y": [1, 2]}, 2)
    spec = _spec(fig.figure(validate=False))
    assert "tickformat" not in spec["layout"]["yaxis2"] and spec["layout"]["yaxis2"]["type"] == "log"
    assert spec["layout"]["legend"] == {"x": 0, "y": 1.0}
    assert (spec["data"][0]["xaxis"], spec["data"][0]["yaxis"]) == ("x2", "y2")
    assert _spec(fig.figure(validate=True)) == spec


def test_views_kept_with_the_run_give_the_same_figure(tmp_path: Path) -> None:
    """Series and checkpoint tables kept in ``run.derived`` (reused by every smoothing / log-scale
    rerun) draw what a freshly loaded run draws, for each axis."""
    run_dir = write_run(tmp_path / "r", n_steps=400, save_every=100, eval_every=100)
    run = load_run(run_dir, [tmp_path])
    for x_axis in ("step", "epoch", "step"):
        for smoothing in (0.2, 0.7):
            options = ChartOptions(metrics=["loss", "eval_loss"], x_axis=x_axis, smoothing=smoothing)
            kept = build_figure(run, options, validate=False)[0]
            fresh = build_figure(load_run(run_dir, [tmp_path]), options, validate=False)[0]
            assert _spec(kept) == _spec(fresh)
    assert ("metric_series", "loss", "epoch") in run.derived
    assert ("checkpoint_table", ("loss", "eval_loss")) in run.derived


def test_metric_groups_equal_the_groupby_reading(tmp_path: Path, demo_run_dir: Path) -> None:
    """The code-based split lookup gives what ``groupby("metric").split.first()`` gives."""
    import pandas as pd

    from dashboard.runs.metrics import concat_metrics
    from dashboard.timeline.series import _first_split

    runs = [load_run(write_run(tmp_path / "r", n_steps=300, save_every=100, eval_every=100), [tmp_path]),
            load_run(demo_run_dir, [demo_run_dir.parent])]
    for run in runs:
        for table in (run.metrics, run.preferred_metrics, concat_metrics([run.metrics, run.metrics.iloc[::7]]),
                      run.metrics[run.metrics["step"] > 100]):
            expected = table.groupby("metric", observed=True)["split"].first()
            got = _first_split(table)
            assert {str(k): str(v) for k, v in got.items()} == {str(k): str(v) for k, v in expected.items()}
            assert list(map(str, got)) == list(map(str, expected.index))
    plain = runs[0].metrics.astype({"metric": str, "split": str})
    assert {str(k): str(v) for k, v in _first_split(plain).items()} == {
        str(k): str(v) for k, v in pd.Series(_first_split(runs[0].metrics)).items()}
