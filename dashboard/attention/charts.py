"""Plotly figures for the Attention page (built here so they can be tested without Streamlit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.attention.capture import TEXT_SUMMARY_FIELDS
from dashboard.formatting import plotly_format, plotly_text

SHARE_LABELS = {"image": "image tokens", "prompt_text": "prompt text", "generated": "generated text"}


LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "xanchor": "left"}
"""A horizontal legend above the plot area: below it, it sat on the x-axis title ("layer", "step")."""


def share_head_label(head: object) -> str:
    """What :meth:`AttentionRun.image_share` averaged for this Head choice (``max`` cannot be stacked)."""
    return f"head {head}" if isinstance(head, int) else "mean over heads"


def share_figure(share: pd.DataFrame, token: str, head: object = "mean") -> go.Figure:
    """Stacked bars per layer: where the token's attention goes (image vs text)."""
    fig = go.Figure()
    for column in ("image", "prompt_text", "generated"):
        fig.add_bar(x=share["layer"], y=share[column], name=SHARE_LABELS[column])
    fig.update_layout(barmode="stack", height=330, margin={"t": 78, "b": 40, "l": 50, "r": 10},
                      title={"text": plotly_text(f"Attention of {token!r} per layer ({share_head_label(head)})"),
                             "y": 0.98, "yanchor": "top"},
                      xaxis_title="layer", yaxis_title="share", yaxis_range=[0, 1.0001], legend=LEGEND_ABOVE)
    return fig


def lens_figure(lens: pd.DataFrame, column_labels: list[str], title: str) -> go.Figure:
    """Layer × position heatmap of the top-1 logit-lens probability, annotated with the token."""
    top = lens[lens["rank"] == 0]
    probs = top.pivot(index="layer", columns="position", values="prob").sort_index()
    tokens = top.pivot(index="layer", columns="position", values="token").sort_index()
    labels = [column_labels[i] if i < len(column_labels) else str(i) for i in probs.columns]
    # Plotly reads a subset of HTML in labels and text: an unescaped "</s>" would vanish.
    escaped = np.vectorize(plotly_text, otypes=[object])(tokens.to_numpy()) if tokens.size else tokens.to_numpy()
    fig = go.Figure(go.Heatmap(z=probs.to_numpy(), x=[plotly_text(f"{i}:{t}") for i, t in enumerate(labels)],
                               y=[f"L{i}" for i in probs.index], text=escaped, texttemplate="%{text}",
                               hovertemplate="%{y} · %{x}<br>top-1 %{text} (p = %{z:.3f})<extra></extra>",
                               colorscale="Blues", zmin=0, zmax=1, colorbar_title="p"))
    fig.update_layout(height=120 + 28 * len(probs), margin={"t": 40, "b": 30, "l": 40, "r": 10},
                      title=plotly_text(title))
    return fig


def pointing_figure(frame: pd.DataFrame) -> go.Figure:
    """Pointing score (and chance) per checkpoint step."""
    fig = go.Figure()
    fig.add_scatter(x=frame["step"], y=frame["pointing"], mode="lines+markers", name="pointing score",
                    error_y=_interval(frame))
    fig.add_scatter(x=frame["step"], y=frame["chance"], mode="lines", name="chance (random peak)",
                    line={"dash": "dot"})
    if "accuracy" in frame:
        fig.add_scatter(x=frame["step"], y=frame["accuracy"], mode="lines+markers",
                        name="answer accuracy (first token)")
    fig.update_traces(hovertemplate=f"step %{{x}}: %{{y:{plotly_format('fraction')}}}")
    fig.update_layout(height=340, xaxis_title="step", yaxis_range=[0, 1.0001], yaxis_tickformat=".0%",
                      legend=LEGEND_ABOVE, margin={"t": 50, "b": 40, "l": 50, "r": 10})
    return fig


MIN_LABEL_PX = 10  # readable; a label longer than its cell at this size is shortened (full text in the hover)
MAX_LABEL_PX = 14


def _label_size(boxes: np.ndarray, labels: list[str], plot_px: int = 500) -> int:
    """A font size at which the longest label fits its cell, never below :data:`MIN_LABEL_PX` (was 6 px)."""
    longest = max((len(t) for t in labels), default=1)
    return int(min(MAX_LABEL_PX, max(MIN_LABEL_PX, _cell_px(boxes, labels, plot_px) / (0.6 * max(longest, 1)))))


def _cell_px(boxes: np.ndarray, labels: list[str], plot_px: int) -> float:
    columns = boxes.shape[1] if boxes.ndim == 3 else max(1, round(len(labels) ** 0.5))
    return plot_px / max(columns, 1)


def _fit(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[:max(1, chars - 1)] + "…"


def spatial_lens_figure(image: Any, lens: Any, view: Any, title: str = "") -> go.Figure:
    """The logit lens over the image: each patch's top-1 token written on it, shaded by its probability.

    ``lens`` is a :class:`dashboard.attention.analysis.SpatialLens`, ``view`` the grid view it was laid
    out on (its ``boxes`` place the cells in original-image pixels). Cells whose token is the answer
    token get a bright frame and bold text. Token text is HTML-escaped (Plotly renders some HTML).
    """
    pixels = np.asarray(image.convert("RGB"))
    boxes = np.asarray(view.boxes, dtype=float)
    cx = ((boxes[..., 0] + boxes[..., 2]) / 2).reshape(-1)
    cy = ((boxes[..., 1] + boxes[..., 3]) / 2).reshape(-1)
    labels = [t for row in lens.labels() for t in row]  # HTML-escaped, for the hover
    raw = [str(t) for row in lens.tokens for t in row]  # shortened before escaping (never cut an entity)
    probs = np.asarray(lens.probs, dtype=float).reshape(-1)
    answer = np.asarray(lens.is_answer, dtype=bool).reshape(-1)
    fig = go.Figure(go.Image(z=pixels, hoverinfo="skip"))
    for (x0, y0, x1, y1), p in zip(boxes.reshape(-1, 4), probs, strict=True):  # shade: darker = less sure
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line_width=0, fillcolor="black",
                      opacity=float(0.65 * (1.0 - p)), layer="above")
    for (x0, y0, x1, y1), hit in zip(boxes.reshape(-1, 4), answer, strict=True):
        if hit:
            fig.add_shape(type="rect", x0=x0 + 0.5, y0=y0 + 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                          line={"color": "#ffe100", "width": 2}, layer="above")
    size = _label_size(boxes, raw)
    chars = max(1, int(_cell_px(boxes, raw, 500) / (0.6 * size)))
    shown = [plotly_text(_fit(t, chars)) for t in raw]
    text = [f"<b>{t}</b>" if hit else t for t, hit in zip(shown, answer, strict=True)]
    fig.add_scatter(x=cx, y=cy, mode="text", text=text, textfont={"color": "white", "size": size},
                    customdata=np.stack([probs, answer, labels], axis=-1),
                    hovertemplate="%{customdata[2]}<br>p = %{customdata[0]:.2f}<extra></extra>", showlegend=False)
    height = 520
    fig.update_layout(title=title, height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    fig.update_xaxes(visible=False, range=[0, pixels.shape[1]])
    fig.update_yaxes(visible=False, range=[pixels.shape[0], 0], scaleanchor="x")
    return fig


def _interval(frame: pd.DataFrame) -> dict[str, object] | None:
    """Error bars from the exact 95 % interval of the hit rate (``summarise``'s ``pointing_ci95_*``)."""
    if "pointing_ci95_low" not in frame:
        return None
    from dashboard.compare.tables import error_bars

    return error_bars(list(frame["pointing"]), list(frame["pointing_ci95_low"]), list(frame["pointing_ci95_high"]))


def pointing_split_figure(frame: pd.DataFrame) -> go.Figure:
    """Pointing per checkpoint step, separately for right and wrong answers (plus chance), each point
    labelled with its n and drawn with its exact 95 % interval (n = 1 or 3 is a wide bar, not a fact)."""
    fig = go.Figure()
    for label, dash in (("right", "solid"), ("wrong", "dash")):
        part = frame[frame["answer"] == label].sort_values("step")
        fig.add_scatter(x=part["step"], y=part["pointing"], mode="lines+markers+text", name=f"answer {label}",
                        line={"dash": dash}, customdata=part["n"], error_y=_interval(part),
                        text=[f"n={n}" for n in part["n"]], textposition="top right",
                        hovertemplate="step %{x}: %{y:.1%} (n=%{customdata}, 95% CI in the error bar)")
    chance = frame.groupby("step")["chance"].mean()
    fig.add_scatter(x=chance.index, y=chance.to_numpy(), mode="lines", name="chance", line={"dash": "dot"})
    fig.update_layout(height=320, xaxis_title="step", yaxis_title="pointing", yaxis_range=[0, 1.0001],
                      legend=LEGEND_ABOVE, margin={"t": 50, "b": 40, "l": 50, "r": 10})
    return fig


__all__ = ["TEXT_SUMMARY_FIELDS", "lens_figure", "pointing_figure", "pointing_split_figure", "share_figure",
           "share_head_label", "spatial_lens_figure"]
