"""Plotly figures for the Attention page (built here so they can be tested without Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.attention.capture import TEXT_SUMMARY_FIELDS
from dashboard.formatting import plotly_format, plotly_text

SHARE_LABELS = {"image": "image tokens", "prompt_text": "prompt text", "generated": "generated text"}


def share_head_label(head: object) -> str:
    """What :meth:`AttentionRun.image_share` averaged for this Head choice (``max`` cannot be stacked)."""
    return f"head {head}" if isinstance(head, int) else "mean over heads"


def share_figure(share: pd.DataFrame, token: str, head: object = "mean") -> go.Figure:
    """Stacked bars per layer: where the token's attention goes (image vs text)."""
    fig = go.Figure()
    for column in ("image", "prompt_text", "generated"):
        fig.add_bar(x=share["layer"], y=share[column], name=SHARE_LABELS[column])
    fig.update_layout(barmode="stack", height=300, margin={"t": 40, "b": 30, "l": 40, "r": 10},
                      title=plotly_text(f"Attention of {token!r} per layer ({share_head_label(head)})"),
                      xaxis_title="layer",
                      yaxis_title="share", yaxis_range=[0, 1.0001], legend_orientation="h")
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
    fig.add_scatter(x=frame["step"], y=frame["pointing"], mode="lines+markers", name="pointing score")
    fig.add_scatter(x=frame["step"], y=frame["chance"], mode="lines", name="chance (random peak)",
                    line={"dash": "dot"})
    if "accuracy" in frame:
        fig.add_scatter(x=frame["step"], y=frame["accuracy"], mode="lines+markers",
                        name="answer accuracy (first token)")
    fig.update_traces(hovertemplate=f"step %{{x}}: %{{y:{plotly_format('fraction')}}}")
    fig.update_layout(height=320, xaxis_title="step", yaxis_range=[0, 1.0001], yaxis_tickformat=".0%",
                      legend_orientation="h", margin={"t": 30, "b": 30, "l": 40, "r": 10})
    return fig


__all__ = ["TEXT_SUMMARY_FIELDS", "lens_figure", "pointing_figure", "share_figure", "share_head_label"]
