"""The pieces of issue 37 that are logic, tested without a browser (the browser test judges the pixels)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.attention.charts import MIN_LABEL_PX, _label_size, pointing_figure, pointing_split_figure, share_figure
from dashboard.attention.overlay import colorbar
from dashboard.demo import jobs
from dashboard.ui.attention_sweep_view import in_step_order, spread_picks


def test_default_picks_spread_from_first_to_last() -> None:
    names = [f"checkpoint-{s}" for s in range(300, 3000, 300)]  # 9 checkpoints
    picks = spread_picks(names)
    assert picks[0] == names[0] and picks[-1] == names[-1] and len(picks) == 4
    assert picks == sorted(picks, key=names.index) and len(set(picks)) == 4
    assert spread_picks(names[:3]) == names[:3]


def test_maps_are_shown_in_step_order_whatever_the_pick_order() -> None:
    order = ["c300", "c600", "c900", "c1800", "c2700"]
    picked = {"c1800": 1, "c2700": 2, "c300": 3, "c600": 4, "c900": 5}  # the order of the screenshot
    assert [p for p, _ in in_step_order(picked, order)] == order


@pytest.mark.parametrize("figure", [
    lambda: share_figure(pd.DataFrame({"layer": [0, 1], "image": [0.5, 0.4], "prompt_text": [0.3, 0.3],
                                       "generated": [0.2, 0.3]}), "red"),
    lambda: pointing_figure(pd.DataFrame({"step": [1, 2], "pointing": [0.2, 0.5], "chance": [0.1, 0.1]})),
    lambda: pointing_split_figure(pd.DataFrame({"step": [1, 1], "answer": ["right", "wrong"], "pointing": [0.5, 0.2],
                                                "chance": [0.1, 0.1], "n": [3, 1]})),
])
def test_legends_sit_above_the_plot_clear_of_the_axis_titles(figure) -> None:
    layout = figure().layout
    assert layout.legend.orientation == "h" and layout.legend.yanchor == "bottom" and layout.legend.y > 1
    assert layout.margin.t >= 40  # room for it above the plot area


def test_logit_lens_labels_are_readable() -> None:
    boxes = np.zeros((10, 10, 4))
    assert _label_size(boxes, ["background"] * 100) >= MIN_LABEL_PX >= 10


def test_colour_bar_labels_scale_is_readable_on_small_maps() -> None:
    bar = colorbar("jet", (0.001, 0.04), 160)  # a small map's bar (was: labels ~6 px tall)
    labels = bar[:, max(10, 160 // 16) + 5:]  # right of the colour ramp
    rows = np.flatnonzero(labels.min(axis=(1, 2)) < 128)
    first_label = rows[rows < 80]
    assert first_label.max() - first_label.min() + 1 >= 9, first_label


def test_running_build_is_seen_by_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow_builder(out: Path, **_kwargs):
        release.wait(30)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(jobs, "_JOBS", {})
    assert jobs.running_build() is None
    job = jobs.demo_build_job(tmp_path / "demo", builder=slow_builder)
    job.start()
    try:
        status = jobs.running_build()
        assert status is not None and status.state == "running"
    finally:
        release.set()
        job.wait(30)
    assert jobs.running_build() is None


def test_best_checkpoint_help_names_the_metric(demo_run_dir: Path) -> None:
    """Home's tooltip said "best_metric = 3.608e-04" without naming the metric (issue 37)."""
    from dashboard.runs.run import load_run
    from dashboard.ui.home_view import _best_help

    run = load_run(demo_run_dir, [demo_run_dir.parent])
    best = next(c for c in run.checkpoints if c.name == Path(str(run.state.best_model_checkpoint)).name)
    text = _best_help(run, best)
    assert "eval\\_loss \\(metric\\_for\\_best\\_model\\)" in text and best.name.replace("-", "\\-") in text, text
