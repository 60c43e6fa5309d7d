"""Attention page: "Check this map" — deletion and insertion curves against random orders, and the randomisation check.

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
from dashboard.attention.charts import LEGEND_ABOVE
from dashboard.attention.faithfulness import ALPHA, FILL, Faithfulness, FaithfulnessError, PatchCurves, check_map
from dashboard.attention.sweep import ANALYSIS_ERRORS
from dashboard.ui.gate import admitted
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import show_model_error

K_RESULTS = "attn.faith"  # {key: Faithfulness}, plain key: survives reruns
K_BUTTON = "attn.faith_go"


def _key(run: AttentionRun, step: int, opts: dict[str, Any]) -> str:
    return f"{id(run)}|{step}|{','.join(map(str, opts['layers']))}|{opts['head']}|{opts['view']}"


def _compute(run: AttentionRun, step: int, opts: dict[str, Any]) -> Faithfulness | Exception:
    """Both checks on the pooled checkpoint, through the one admission gate (it runs the model on ~3,200 pictures)."""
    try:
        with admitted(Job("Map faithfulness check")), get_pool().turn(Path(run.checkpoint)) as loaded:
            return check_map(loaded, run, step, opts["layers"], opts["head"], opts["view"])
    except ANALYSIS_ERRORS as exc:  # a public limit, a busy or unloadable model, an unmappable layout
        return exc
    except (FaithfulnessError, OSError) as exc:  # nothing to delete; the checkpoint folder went away
        return exc


CURVE_WORDS = {"deletion": ("Deleting", "deleted"), "insertion": ("Inserting", "inserted")}


def curve_figure(curves: PatchCurves, token: str) -> go.Figure:
    """Probability of the token as patches are deleted (inserted): the map's order against each random order
    and their mean."""
    verb, done = CURVE_WORDS[curves.kind]
    x = [100 * f for f in curves.fractions]
    fig = go.Figure()
    for seed, ys in zip(curves.seeds, curves.by_random, strict=True):
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines", line={"color": "rgba(150,150,150,0.25)", "width": 1},
                                 name=f"random order (seed {seed})", showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=curves.random_mean.tolist(), mode="lines", name="random orders (mean)",
                             line={"color": "grey", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=x, y=curves.by_map, mode="lines+markers", name="most attended first",
                             line={"color": "#d62728"}))
    fig.update_layout(title={"text": f"{verb} patches: probability of “{token}”", "y": 0.98, "yanchor": "top"},
                      height=340, margin={"l": 10, "r": 10, "t": 90, "b": 10}, legend=LEGEND_ABOVE)
    fig.update_xaxes(title=f"patches {done} (%)", range=[0, 100])
    fig.update_yaxes(title="probability", rangemode="tozero")
    return fig


def _p_text(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.3f}"


def _show(result: Faithfulness) -> None:
    token = html.escape(result.token)
    left, right = st.columns(2)
    for column, curves in zip((left, right), result.curves, strict=True):
        column.plotly_chart(curve_figure(curves, token), key=f"attn.faith_fig.{curves.kind}")
        score = curves.score
        column.caption(f"{CURVE_WORDS[curves.kind][0]} the most attended patches first: area between the curves "
                       f"**{'n/a' if not np.isfinite(score) else f'{score:+.2f}'}**, permutation p = "
                       f"**{_p_text(curves.p_value)}** among {len(curves.seeds)} random orders.")
    verdict, p_value, sanity = st.columns(3)
    verdict.metric("Beats random orders", "yes" if result.beats_random else "no",
                   help=f"Yes when the map's deletion or insertion curve is better than random orders at p ≤ {ALPHA} "
                        "for the two curves together. Each curve's p ranks the map's area among the random orders' "
                        "areas.")
    p_value.metric("p (both curves)", _p_text(result.p_value),
                   help="The share of orders (the map's included) whose better curve p is at least as small as the "
                        "map's (Westfall–Young min-p): testing two curves is paid for only as far as they disagree "
                        "on which orders are good. With N random orders the smallest possible p is 1 / (N + 1).")
    rho = result.sanity.full if result.sanity is not None else float("nan")
    sanity.metric("Map with random weights (ρ)", "n/a" if not np.isfinite(rho) else f"{rho:.2f}",
                  help="Rank correlation between this map and the map of a copy whose decoder layers were all "
                       "re-initialised (Adebayo et al. 2018). Near 1: the map hardly depends on the trained weights.")
    what = ("what this map points at is what the model uses for this token: deleting it first removes the token, "
            "or inserting it first restores the token, faster than random orders" if result.beats_random else
            "neither deleting nor inserting the patches this map points at first changes the token faster than "
            "random orders — on this example the map does not show what the model uses")
    stages = ""
    if result.sanity is not None:
        stages = " Randomised from the top: " + ", ".join(
            f"{n} layer{'s' if n > 1 else ''} ρ = {r:.2f}" for n, r in
            zip(result.sanity.randomised_layers, result.sanity.spearman, strict=True)) + "."
    st.caption(f"On this example, {what}. Deleted patches are painted with the {FILL} in the picture the "
               f"processor sees; insertion starts from the picture painted all over. Deletion cannot show evidence "
               f"for the answer the model gives a painted picture (its probability stays), insertion can. "
               f"Probability of the token with the whole picture: {result.deletion.base:.3f}.{stages} "
               f"Computed in {result.seconds:.1f} s.")


def render_faithfulness(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    """The "Check this map" button under the heatmap and, once clicked, its result."""
    st.subheader("Trust in this map", divider="gray")
    results: dict[str, Faithfulness] = st.session_state.setdefault(K_RESULTS, {})
    key = _key(run, step, opts)
    if key not in results:
        st.caption("Is this attention map faithful? Deletes the image patches it points at (and random ones) from "
                   "the model's input, and inserts them into a painted picture, watching the token's probability; "
                   "checks that the map changes when the model's weights are randomised. Checks the attention map "
                   "of these layers and head (not the rollout); runs the model on about 3,200 pictures in batches "
                   "(seconds on the demo model, minutes on a large one).")
        if not st.button("Check this map", key=K_BUTTON):
            return
        with st.spinner("Deleting and inserting patches, randomising a copy of the model…"):
            result = _compute(run, step, opts)
        if isinstance(result, Exception):
            show_model_error(result, "Map check failed")  # not kept: a refusal may pass on the next click
            return
        results.clear()  # one result at a time: they are small, but a session may click through many tokens
        results[key] = result
    _show(results[key])
