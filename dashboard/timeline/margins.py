"""Figure margins that already hold what Plotly would push them to, so it draws the chart once.

Plotly lays a figure out with ``layout.margin``, then lets the legend and the axis labels push
the margins wider ("automargin") and, when they moved, draws the whole figure a second time.
Streamlit 1.67 mounts a new chart for every new figure (the element's id is derived from the
figure), so every new Timeline view paid that second pass: about a third of Plotly's time in
the browser (issue 35, ``bench/RESULTS.md``). Reserving the margins the first pass would arrive
at skips it. Plotly still widens a margin that turns out too small (a legend wrapped onto two
rows on a narrow screen, wide tick labels): then it draws twice, as before, and nothing is ever
clipped.

The constants are Plotly's legend metrics under Streamlit's chart theme (12 px Source Sans),
measured in Chromium on the demo run (legends of 3 to 11 stacked entries): every entry is 19 px,
a legend is 10 px taller than its entries, and it sits 10 px above its anchor plus ``y - 1`` of
the plot area's height (``tests/timeline/test_margins.py`` holds the measured margins).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

LEGEND_ENTRY_PX = 19
LEGEND_PAD_PX = 10
LEGEND_GAP_PX = 10
LEGEND_Y = 1.02
"""The legend's bottom edge, in plot-area heights (``legend.y`` with ``yanchor="bottom"``)."""
SIDE_PX = 10
LEFT_PX = 47
"""Room for y tick labels up to ``100%`` wide (what the demo's accuracy row needs); wider labels
push the margin as before. Narrower labels keep this gutter, so the plot's left edge stays put when
metrics are added or removed."""
BOTTOM_PX = {"wall_time": 80}
"""Room below the last row for the x tick labels and the axis title (dates take two lines)."""
BOTTOM_DEFAULT_PX = 65


def legend_rows(data: Iterable[Mapping]) -> int:
    """Entries in the legend's tallest group (a horizontal legend stacks each group's entries).

    Traces without a ``legendgroup`` form a group each; traces with ``showlegend=False`` have no
    entry."""
    groups: Counter = Counter()
    for i, trace in enumerate(data):
        if trace.get("showlegend", True) is False:
            continue
        groups[trace.get("legendgroup") or f"#{i}"] += 1
    return max(groups.values(), default=0)


def legend_top_margin(rows: int, height: int, bottom: int) -> int:
    """Top margin holding a one-row horizontal legend of ``rows`` stacked entries above the plot.

    Plotly solves ``t = legend + gap + (LEGEND_Y - 1) * (height - t - bottom)`` for ``t`` and
    rounds it to whole pixels, as here, so the reserved margin equals the one it would settle on."""
    if rows == 0:
        return 40
    legend = LEGEND_ENTRY_PX * rows + LEGEND_PAD_PX
    lift = LEGEND_Y - 1
    return round((legend + LEGEND_GAP_PX + lift * (height - bottom)) / (1 + lift))


def reserved_margins(data: Iterable[Mapping], height: int, x_axis: str) -> dict[str, int]:
    """``layout.margin`` for the Timeline figure: what Plotly's automargin would settle on."""
    bottom = BOTTOM_PX.get(x_axis, BOTTOM_DEFAULT_PX)
    return {"l": LEFT_PX, "r": SIDE_PX, "t": legend_top_margin(legend_rows(data), height, bottom), "b": bottom}
