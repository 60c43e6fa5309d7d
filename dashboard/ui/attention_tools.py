"""Attention page sections for the researcher tools: rollout, heads grid, spatial logit lens, pointing split.

Widgets only; the numbers come from :mod:`dashboard.attention.analysis` (tested without Streamlit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.admission import Job
from dashboard.attention.analysis import AttentionRun, head_value_range
from dashboard.attention.charts import pointing_split_figure, spatial_lens_figure
from dashboard.attention.overlay import render_overlay, upscale
from dashboard.formatting import display_table, markdown_safe
from dashboard.ui.gate import generation_turn
from dashboard.ui.widgets import show_model_error

MAP_KINDS = ("raw attention", "attention rollout")


def map_kind() -> str:
    """Raw attention of the chosen layers, or rollout through the language model up to the last chosen layer."""
    return str(st.radio("Map", MAP_KINDS, horizontal=True, key="attn.map_kind",
                        help="Rollout multiplies every layer's head-mean attention (plus the residual path) from "
                             "layer 0 up to the last layer of the range: how much of each image token reached the "
                             "position that predicts this token. It runs one extra forward pass."))


def rollout_grid(run: AttentionRun, step: int, upto: int, view: str | None, errors: tuple[type[Exception], ...]
                 ) -> np.ndarray | None:
    caught: tuple[type[Exception], ...] = (*errors, ValueError)
    try:  # one extra forward pass (~2–3 s on CPU): say so while it runs
        with st.spinner(f"Rolling attention out through layers 0–{upto} (one forward pass)…"), \
                generation_turn(Path(run.checkpoint), Job("Attention rollout")) as loaded:
            return run.rollout_grid(loaded, step, upto=upto, view=view)
    except caught as exc:
        show_model_error(exc, "Attention rollout failed")
        return None


def heads_grid(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    """Every head of one layer as small multiples on one shared colour scale."""
    st.subheader("Every head of a layer", divider="gray")
    n_layers = run.result.n_layers
    layer = st.selectbox("Layer", list(range(n_layers)), index=n_layers - 1, key=f"attn.heads_layer.{n_layers}")
    grids = run.head_grids(step, int(layer), opts["view"])
    low, high = head_value_range(grids)
    st.caption(f"One colour scale for all heads: {low:.3g} (dark) … {high:.3g} (bright) of this token's attention. "
               "A head that looks flat here spreads its attention thinly or reads text instead.")
    view = run.layout.view(opts["view"])
    per_row = min(8, len(grids))
    for start in range(0, len(grids), per_row):
        cols = st.columns(per_row)
        for col, head in zip(cols, range(start, min(start + per_row, len(grids))), strict=False):
            picture = render_overlay(run.image, grids[head], view, alpha=opts["alpha"], smooth=opts["smooth"],
                                     colormap=opts["colormap"], value_range=(low, high))
            share = float(run.result.image_attention[step, int(layer), head].sum())
            col.image(upscale(picture, 128), caption=f"head {head} · image {share:.0%}", width="stretch")


def spatial_lens(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    """Which token each image patch decodes to at a layer, drawn over the image; answer-token patches framed."""
    st.subheader("Logit lens over the image", divider="gray")
    n_layers = run.result.n_layers
    layer = int(st.selectbox("Layer ", list(range(n_layers)), index=n_layers - 1,
                             key=f"attn.spatial_layer.{n_layers}"))
    try:
        lens = run.spatial_lens(layer, step, opts["view"])
    except ValueError as exc:
        st.info(str(exc))
        return
    st.caption(f"Each patch's residual stream after layer {layer}, decoded with the final norm and LM head: its top "
               f"token, darker when less probable. Framed patches decode to the chosen token "
               f"{markdown_safe(lens.answer)!s} ({lens.answer_share:.0%} of patches).")
    st.plotly_chart(spatial_lens_figure(run.image, lens, run.layout.view(opts["view"]),
                                        title=f"layer {layer}: top-1 token per patch"), key="attn.spatial_fig")


def pointing_split(scored: list[dict[str, Any]]) -> None:
    """Pointing of right vs wrong answers per checkpoint (rows of ``pointing_per_checkpoint`` with ``split``)."""
    rows = [{**part, "name": s["name"], "step": s["step"]} for s in scored for part in s.get("split", [])]
    frame = pd.DataFrame([r for r in rows if r.get("n")])
    if frame.empty:
        return
    st.markdown("**Pointing by answer correctness** (whole answer, exact match)")
    st.plotly_chart(pointing_split_figure(frame), key="attn.point_split_fig")
    shown = display_table(frame[["name", "step", "answer", "n", "pointing", "chance", "mass_in_box"]],
                          {c: "fraction" for c in ("pointing", "chance", "mass_in_box")})
    st.dataframe(shown, hide_index=True, key="attn.point_split_table")
