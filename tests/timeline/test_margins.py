"""The Timeline reserves the margins Plotly's automargin would settle on (one drawing pass, issue 35)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.runs.run import load_run
from dashboard.runs.synthetic import write_run
from dashboard.timeline.figure import ChartOptions, build_figure
from dashboard.timeline.margins import BOTTOM_DEFAULT_PX, legend_rows, legend_top_margin, reserved_margins
from dashboard.timeline.series import best_checkpoint

# Plotly's own settled margins (``gd._fullLayout._size``) for the full demo run in Chromium, with
# the margins at their old 10/40/10 (so automargin alone placed them): tallest legend group's
# entries, figure height, bottom margin -> top margin.
MEASURED_TOP = [(3, 600, 65, 86), (4, 860, 65, 110), (5, 860, 65, 128), (6, 1120, 65, 152),
                (8, 1380, 65, 194), (9, 1640, 65, 218), (11, 1900, 65, 260), (6, 1120, 80, 152)]


@pytest.mark.parametrize(("rows", "height", "bottom", "top"), MEASURED_TOP)
def test_top_margin_is_what_plotly_settled_on(rows: int, height: int, bottom: int, top: int) -> None:
    assert legend_top_margin(rows, height, bottom) == top


def test_legend_rows_counts_the_tallest_group() -> None:
    data = [{"legendgroup": "run"}, {"legendgroup": "run"}, {"legendgroup": "run", "showlegend": True},
            {"legendgroup": "checkpoints"}, {"legendgroup": "checkpoints", "showlegend": False},
            {"name": "score A"}, {"name": "score B"}, {"showlegend": False}]
    assert legend_rows(data) == 3  # ungrouped traces are a group each, hidden entries count nothing
    assert legend_rows([]) == 0
    assert legend_rows([{"name": "a"}, {"name": "b"}]) == 1


def test_more_legend_entries_reserve_more_room_and_nothing_shrinks_below_the_old_margins() -> None:
    tops = [legend_top_margin(n, 860, BOTTOM_DEFAULT_PX) for n in range(0, 12)]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    margins = reserved_margins([{"legendgroup": "g"}], 860, "step")
    assert margins["l"] >= 10 and margins["r"] >= 10 and margins["t"] >= 40 and margins["b"] >= 10
    assert reserved_margins([], 860, "wall_time")["b"] > reserved_margins([], 860, "step")["b"]


def test_the_figure_carries_the_reserved_margins(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", n_steps=400, save_every=100, eval_every=100), [tmp_path])
    best = best_checkpoint(run, "eval_loss")
    for options in (ChartOptions(metrics=["loss"]), ChartOptions(metrics=["loss", "eval_loss", "learning_rate"]),
                    ChartOptions(metrics=["loss"], x_axis="wall_time")):
        fig, _ = build_figure(run, options, best=best, validate=False)
        layout = fig.to_plotly_json()["layout"]
        data = fig.to_plotly_json()["data"]
        assert layout["margin"] == reserved_margins(data, layout["height"], options.x_axis)
    one, _ = build_figure(run, ChartOptions(metrics=["loss"]), best=best, validate=False)
    three, _ = build_figure(run, ChartOptions(metrics=["loss", "eval_loss", "learning_rate"]), best=best,
                            validate=False)
    assert three.layout.margin.t > one.layout.margin.t  # a taller legend gets a taller top margin
