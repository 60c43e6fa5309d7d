"""A Plotly figure assembled as plain dicts, validated by Plotly only when asked.

Building a ``go.Figure`` call by call (``make_subplots``, ``add_trace(go.Scatter(...))``,
``update_layout``) runs Plotly's per-property validators and deep copies on every call: most of a
Timeline rerun on the demo run (issue 35). :class:`PlainFigure` offers the few figure calls the
Timeline makes on plain dicts; :meth:`PlainFigure.figure` turns the result into a ``go.Figure``
either validated (the reference) or with ``_validate=False`` (values stored as given). The
subplot grid comes from ``make_subplots`` itself, once per grid shape (:func:`subplot_grid`), so
axis domains, shared axes and subplot titles are Plotly's own.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import plotly.graph_objects as go
from plotly.subplots import make_subplots


@lru_cache(maxsize=64)
def subplot_grid(rows: int, spacing: float, titles: tuple[str, ...] | None) -> tuple[dict, tuple[tuple[str, str], ...]]:
    """``make_subplots(rows, 1, shared_xaxes=True)``'s layout and each row's (xaxis, yaxis) names.

    Shared between figures: callers must copy what they change (:class:`PlainFigure` does)."""
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=spacing,
                        subplot_titles=list(titles) if titles else None)
    axes = tuple((ref.trace_kwargs["xaxis"], ref.trace_kwargs["yaxis"])
                 for ref in (fig._grid_ref[r][0][0] for r in range(rows)))
    return fig.to_plotly_json()["layout"], axes


def _merge(base: dict, update: dict) -> dict:
    """``base`` updated like Plotly's ``update``: nested dicts merged, ``None`` removes a key."""
    out = dict(base)
    for key, value in update.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _axis_name(ref: str) -> str:
    """Trace axis reference (``x2``) -> layout key (``xaxis2``)."""
    return ref[0] + "axis" + ref[1:]


class PlainFigure:
    """The figure calls the Timeline uses, on dicts (rows counted from 1, one column)."""

    def __init__(self, rows: int, spacing: float, titles: list[str] | None) -> None:
        layout, self._axes = subplot_grid(rows, spacing, tuple(titles) if titles else None)
        self.layout = dict(layout)  # shallow: keys are replaced, never changed in place
        self.data: list[dict] = []

    def add_trace(self, trace: dict, row: int) -> None:
        x, y = self._axes[row - 1]
        self.data.append({"type": "scatter", **trace, "xaxis": x, "yaxis": y})

    def update_layout(self, **update) -> None:
        self.layout = _merge(self.layout, update)

    def update_yaxes(self, row: int, **update) -> None:
        key = _axis_name(self._axes[row - 1][1])
        self.layout[key] = _merge(self.layout.get(key, {}), update)

    def set_x_title(self, row: int, text: str) -> None:
        key = _axis_name(self._axes[row - 1][0])
        self.layout[key] = _merge(self.layout.get(key, {}), {"title": {"text": text}})

    def figure(self, validate: bool) -> go.Figure:
        """The ``go.Figure``: validated property by property, or taken as built (``validate=False``)."""
        spec = {"data": self.data, "layout": self.layout}
        if validate:
            return go.Figure(copy.deepcopy(spec))
        return go.Figure(spec, _validate=False)
