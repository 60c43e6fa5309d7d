"""Attention page: "Check this map" — the deletion curve against random orders and the randomisation check.

The checks live in :mod:`dashboard.attention.faithfulness` (the CLI runs the same code); this module only
runs them through the admission gate and draws the result. Results stay in the session, keyed by the
capture, token, layers, head and view, so a rerun redraws without running the model again.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard.admission import Job
from dashboard.attention.analysis import AttentionRun
from dashboard.attention.faithfulness import FILL, DeletionCurves, Faithfulness, FaithfulnessError, check_map
from dashboard.attention.sweep import ANALYSIS_ERRORS
from dashboard.ui.gate import admitted
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import show_model_error

K_RESULTS = "attn.faith"  # {key: Faithfulness}, plain key: survives reruns
K_BUTTON = "attn.faith_go"


def _key(run: AttentionRun, step: int, opts: dict[str, Any]) -> str:
    return f"{id(run)}|{step}|{','.join(map(str, opts['layers']))}|{opts['head']}|{opts['view']}"


def _compute(run: AttentionRun, step: int, opts: dict[str, Any]) -> Faithfulness | Exception:
    """Both checks on the pooled checkpoint, through the one admission gate (it runs the model ~100 times)."""
    try:
        with admitted(Job("Map faithfulness check")), get_pool().turn(Path(run.checkpoint)) as loaded:
            return check_map(loaded, run, step, opts["layers"], opts["head"], opts["view"])
    except ANALYSIS_ERRORS as exc:  # a public limit, a busy or unloadable model, an unmappable layout
        return exc
    except (FaithfulnessError, OSError) as exc:  # nothing to delete; the checkpoint folder went away
        return exc


def deletion_figure(curves: DeletionCurves, token: str) -> go.Figure:
    """Probability of the token as patches are deleted: the map's order against each random order and their mean."""
    x = [100 * f for f in curves.fractions]
    fig = go.Figure()
    for seed, ys in zip(curves.seeds, curves.by_random, strict=True):
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines", line={"color": "rgba(150,150,150,0.35)", "width": 1},
                                 name=f"random order (seed {seed})", showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=curves.random_mean.tolist(), mode="lines", name="random orders (mean)",
                             line={"color": "grey", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=x, y=curves.by_map, mode="lines+markers", name="most attended first",
                             line={"color": "#d62728"}))
    fig.update_layout(title=f"Deleting patches: probability of “{token}”", height=320,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title="patches deleted (%)", range=[0, 100])
    fig.update_yaxes(title="probability", rangemode="tozero")
    return fig


def _show(result: Faithfulness) -> None:
    curves = result.deletion
    left, right = st.columns([3, 2])
    left.plotly_chart(deletion_figure(curves, html.escape(result.token)), key="attn.faith_fig")
    score = result.score
    right.metric("Faithfulness (area between curves)", "n/a" if not np.isfinite(score) else f"{score:+.2f}",
                 help="Area between the mean random curve and the map's curve, probability relative to nothing "
                      "deleted, x = share of patches deleted: > 0 the map beats random, 0 no better, < 0 worse.")
    rho = result.sanity.full if result.sanity is not None else float("nan")
    right.metric("Same map after randomising the weights (Spearman)", "n/a" if not np.isfinite(rho) else f"{rho:.2f}",
                 help="Rank correlation between this map and the map of a copy whose decoder layers were all "
                      "re-initialised (Adebayo et al. 2018). Near 1: the map hardly depends on the trained weights.")
    verdict = ("deleting the patches this map points at first removes the token's probability faster than deleting "
               "patches at random" if result.beats_random else
               "deleting the patches this map points at first removes the token's probability no faster than "
               "deleting patches at random — on this example the map does not show what the model uses")
    stages = ""
    if result.sanity is not None:
        stages = " Randomised from the top: " + ", ".join(
            f"{n} layer{'s' if n > 1 else ''} ρ = {r:.2f}" for n, r in
            zip(result.sanity.randomised_layers, result.sanity.spearman, strict=True)) + "."
    right.caption(f"On this example, {verdict}. Deleted patches are painted with the {FILL} in the picture the "
                  f"processor sees; random = mean of {len(curves.seeds)} random orders. Probability of the token "
                  f"with nothing deleted: {curves.base:.3f}.{stages} Computed in {result.seconds:.1f} s.")


def render_faithfulness(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    """The "Check this map" button under the heatmap and, once clicked, its result."""
    st.subheader("Trust in this map", divider="gray")
    results: dict[str, Faithfulness] = st.session_state.setdefault(K_RESULTS, {})
    key = _key(run, step, opts)
    if key not in results:
        st.caption("Is this attention map faithful? Deletes the image patches it points at (and random ones) from "
                   "the model's input and watches the token's probability, and checks that the map changes when "
                   "the model's weights are randomised. Checks the attention map of these layers and head (not the "
                   "rollout); runs the model about a hundred times in a few batches.")
        if not st.button("Check this map", key=K_BUTTON):
            return
        with st.spinner("Deleting patches and randomising a copy of the model…"):
            result = _compute(run, step, opts)
        if isinstance(result, Exception):
            show_model_error(result, "Map check failed")  # not kept: a refusal may pass on the next click
            return
        results.clear()  # one result at a time: they are small, but a session may click through many tokens
        results[key] = result
    _show(results[key])
