"""Attention, one token: overlay controls, the token's heatmap, every layer, and the logit lens.

Shared by the page view and the across-checkpoints section (same controls, same drawing).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import streamlit as st

from dashboard.attention.analysis import AttentionRun
from dashboard.attention.charts import lens_figure, share_figure
from dashboard.attention.overlay import (
    COLORMAPS,
    render_overlay,
    shared_range,
    to_png,
    upscale,
    value_range_of,
    with_colorbar,
)
from dashboard.formatting import markdown_safe
from dashboard.ui import url_state

LENS_IMAGE_COLUMNS = 64  # image tokens (the first, in prompt order) in the logit-lens chart and table


def token_label(index: int, token: str) -> str:
    """Widget/caption label for a generated token; model output is escaped, never rendered as Markdown."""
    return f"{index}: {markdown_safe(token)}"


def _parse_head(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


def _decode_layers(n_layers: int):
    def decode(raw: str) -> tuple[int, int]:
        try:
            lo, hi = (int(x) for x in raw.split("-"))
        except ValueError:
            raise ValueError("expected <first>-<last>") from None
        if not 0 <= lo <= hi < n_layers:
            raise ValueError(f"this model has layers 0–{n_layers - 1}")
        return lo, hi
    return decode


def controls(run: AttentionRun) -> dict[str, Any]:
    """Layer range, head, view and drawing options for the overlay."""
    n_layers, n_heads = run.result.n_layers, run.result.n_heads
    c1, c2, c3 = st.columns(3)
    if n_layers > 1:
        layers = url_state.arrival_value("layers", _decode_layers(n_layers), "layer range")
        lo, hi = c1.select_slider("Layers (mean over range)", options=list(range(n_layers)),
                                  value=layers or (0, n_layers - 1), key=f"attn.layers.{n_layers}")
    else:
        lo = hi = 0
    heads: list[int | str] = ["mean", "max", *range(n_heads)]
    head_from_url = url_state.arrival_value("head", url_state.decode_choice(heads, _parse_head), "head")
    if head_from_url is not None:
        st.session_state[f"attn.head.{n_heads}"] = head_from_url
    head = c2.selectbox("Head", heads, key=f"attn.head.{n_heads}",
                        format_func=lambda h: f"head {h}" if isinstance(h, int) else f"{h} over heads")
    url_state.publish("layers", f"{lo}-{hi}")
    url_state.publish("head", str(head))
    views = [v.name for v in run.layout.views]
    view = views[0]
    if len(views) > 1:
        view = c3.selectbox("Grid", views, key=f"attn.view.{'-'.join(views)}", help=markdown_safe(run.layout.note))
    d1, d2, d3, d4 = st.columns(4)
    alpha = d1.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="attn.alpha")
    smooth = d2.toggle("Smooth upsampling", value=False, key="attn.smooth",
                       help="Off: each image patch is one flat colour (what the model attends to). On: "
                            "interpolated, which bleeds colour across patch borders.")
    lines = d3.toggle("Patch grid lines", value=False, key="attn.lines")
    cmap = d4.selectbox("Colormap", list(COLORMAPS), key="attn.cmap")
    return {"layers": list(range(lo, hi + 1)), "head": head, "view": view, "alpha": alpha, "smooth": smooth,
            "grid_lines": lines, "colormap": cmap}


def overlay(run: AttentionRun, step: int, opts: dict[str, Any], layers: list[int] | None = None,
            value_range: tuple[float, float] | None = None, min_side: int = 256) -> np.ndarray:
    """The heatmap over the image, enlarged to ``min_side`` and carrying its colour bar."""
    grid = run.grid(step, opts["layers"] if layers is None else layers, opts["head"], opts["view"])
    picture = render_overlay(run.image, grid, run.layout.view(opts["view"]), alpha=opts["alpha"],
                             smooth=opts["smooth"], colormap=opts["colormap"], grid_lines=opts["grid_lines"],
                             value_range=value_range)
    return with_colorbar(upscale(picture, min_side), opts["colormap"], value_range_of(grid, value_range))


def head_label(head: int | str) -> str:
    return f"head {head}" if isinstance(head, int) else f"{head} over heads"


def layers_label(layers: list[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"mean of layers {layers[0]}–{layers[-1]}"


def show_token(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    from dashboard.attention.sweep import ANALYSIS_ERRORS
    from dashboard.ui import attention_tools as tools

    token = run.tokens[step]
    kind = tools.map_kind()
    left, right = st.columns([1, 1])
    picture = overlay(run, step, opts)
    caption = (f"{token_label(step, token)} — {layers_label(opts['layers'])}, {head_label(opts['head'])}, "
               f"{opts['view']} grid ({markdown_safe(run.layout.note)}); "
               "colour bar: attention weight, this map's own range")
    if kind == "attention rollout":
        rolled = tools.rollout_grid(run, step, opts["layers"][-1], opts["view"], ANALYSIS_ERRORS)
        if rolled is not None:
            drawn = render_overlay(run.image, rolled, run.layout.view(opts["view"]), alpha=opts["alpha"],
                                   smooth=opts["smooth"], colormap=opts["colormap"], grid_lines=opts["grid_lines"])
            picture = with_colorbar(upscale(drawn, 256), opts["colormap"], value_range_of(rolled, None))
            caption = (f"{token_label(step, token)} — rollout through layers 0–{opts['layers'][-1]} (head mean), "
                       f"{rolled.sum():.0%} of it traced to image tokens; colour bar: rollout share")
    left.image(picture, caption=caption, width="stretch")
    with right:
        st.plotly_chart(share_figure(run.image_share(step, opts["head"]), token, opts["head"]), key="attn.share")
        payload = run.to_json(step, opts["layers"], opts["head"], opts["view"])
        d1, d2 = st.columns(2)
        d1.download_button("Overlay PNG", to_png(picture), file_name=f"attention-{step}.png", mime="image/png",
                           key="attn.dl_png")
        d2.download_button("Numbers JSON", json.dumps(payload, indent=1), file_name=f"attention-{step}.json",
                           mime="application/json", key="attn.dl_json")
    st.subheader("Every layer", divider="gray")
    shared = st.toggle("Same colour scale for every layer", value=True, key="attn.layers_shared",
                       help="Off: each layer's map is stretched to its own min–max (shows shape, hides strength).")
    grids = run.layer_grids(step, opts["head"], opts["view"])
    value_range = shared_range(list(grids)) if shared else None
    st.caption(f"{head_label(opts['head'])}; "
               + ("one colour scale for all layers" if shared else "each layer on its own scale (see its bar)"))
    per_row = min(6, run.result.n_layers)
    for start in range(0, run.result.n_layers, per_row):
        cols = st.columns(per_row)
        for col, layer in zip(cols, range(start, min(start + per_row, run.result.n_layers)), strict=False):
            col.image(overlay(run, step, opts, [layer], value_range, min_side=128), caption=f"layer {layer}",
                      width="stretch")


def show_lens(run: AttentionRun) -> None:
    st.subheader("Logit lens", divider="gray")
    st.caption("Top tokens decoded from each layer's residual stream with the model's final norm and LM head.")
    which = st.radio("Positions", ["generated tokens", "image tokens"], horizontal=True, key="attn.lens_which")
    frame = run.lens_frame("generated" if which == "generated tokens" else "image")
    if frame.empty:
        st.info("No logit-lens data for these positions.")
        return
    labels = run.tokens if which == "generated tokens" else run.image_token_labels()
    if which == "image tokens":
        shown = min(LENS_IMAGE_COLUMNS, len(labels))
        frame = frame[frame["position"] < shown]
        st.caption(run.image_order_caption(shown))
    st.plotly_chart(lens_figure(frame, labels, "top-1 token per layer"), key="attn.lens_fig")
    with st.expander("Table (top-k)"):
        st.dataframe(frame, hide_index=True)
