"""Attention page: "Check this map" — deletion and insertion curves against random orders, and the randomisation check.

The checks live in :mod:`dashboard.attention.faithfulness` (the CLI runs the same code); this module only
runs them through the admission gate and draws the result. Results stay in the session, keyed by the
capture, token, layers, head and view, so a rerun redraws without running the model again.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard.admission import Job
from dashboard.attention.analysis import AttentionRun
from dashboard.attention.charts import LEGEND_ABOVE
from dashboard.attention.faithfulness import (
    ALPHA,
    DEFAULT_POINTS,
    DEFAULT_SEEDS,
    FILL,
    LOCAL_PLAN,
    CheckPlan,
    Faithfulness,
    FaithfulnessError,
    PatchCurves,
    check_map,
)
from dashboard.attention.sweep import ANALYSIS_ERRORS
from dashboard.generation import GenerationCancelled, check_cancelled
from dashboard.public import LIMITS, public_mode
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import admitted, generation_turn, max_batch_size
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import show_model_error

K_RESULTS = "attn.faith"  # {key: Faithfulness}, plain key: survives reruns
K_BUTTON = "attn.faith_go"


def _key(run: AttentionRun, step: int, opts: dict[str, Any]) -> str:
    return f"{id(run)}|{step}|{','.join(map(str, opts['layers']))}|{opts['head']}|{opts['view']}"


def _cells(run: AttentionRun, opts: dict[str, Any]) -> int:
    chosen = run.layout.view_or_primary(opts["view"])
    return int(np.prod(chosen.shape))


def check_plan(run: AttentionRun, opts: dict[str, Any]) -> CheckPlan:
    """Locally the full check; in public mode one that fits ``LIMITS.max_map_check_pictures``, in batches of
    ``LIMITS.max_batch_size``, without the sanity check (a deep copy of the whole model per anonymous click)."""
    if not public_mode():
        return LOCAL_PLAN
    return CheckPlan.within(_cells(run, opts), LIMITS.max_map_check_pictures, max_batch_size())


def _compute(run: AttentionRun, step: int, opts: dict[str, Any]) -> Faithfulness | Exception | None:
    """Both checks on the pooled checkpoint, through the one admission gate, the pictures it runs declared.

    Locally one checkpoint turn for the whole check, as before; in public mode the model is pinned for the
    check and each batch takes its own turn, so other visitors' generations run between batches, and a check
    whose browser session went away stops before its next batch (None: nobody to show it to)."""
    checkpoint = Path(run.checkpoint)
    try:
        plan = check_plan(run, opts)
        job = Job("Map faithfulness check", pictures=plan.pictures(_cells(run, opts)))
        if not public_mode():
            with admitted(job), get_pool().turn(checkpoint) as loaded:
                return check_map(loaded, run, step, opts["layers"], opts["head"], opts["view"], plan=plan)
        should_stop = session_gone_check()

        @contextmanager
        def batch_turn() -> Iterator[None]:
            check_cancelled(should_stop, "Map faithfulness check")
            with generation_turn(checkpoint):
                yield

        with admitted(job), get_pool().acquire(checkpoint) as loaded:
            return check_map(loaded, run, step, opts["layers"], opts["head"], opts["view"], plan=plan,
                             batch_turn=batch_turn)
    except GenerationCancelled:
        return None
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
    reduced = _public_note(result)
    if reduced:
        st.info(reduced, icon=":material/public:")
    st.caption(f"On this example, {what}. Deleted patches are painted with the {FILL} in the picture the "
               f"processor sees; insertion starts from the picture painted all over. Deletion cannot show evidence "
               f"for the answer the model gives a painted picture (its probability stays), insertion can. "
               f"Probability of the token with the whole picture: {result.deletion.base:.3f}.{stages} "
               f"Computed in {result.seconds:.1f} s.")


def _public_note(result: Faithfulness) -> str:
    """What a reduced (public) check left out and what that means for p, in words; "" for the full check."""
    orders = len(result.deletion.seeds)
    if orders >= len(DEFAULT_SEEDS) and result.sanity is not None:
        return ""
    points = len(result.deletion.fractions)
    return (f"This public demo checked against **{orders} random orders** and {points} points per curve (locally "
            f"{len(DEFAULT_SEEDS)} orders and up to {DEFAULT_POINTS} points), so that one click runs the model on at "
            f"most {LIMITS.max_map_check_pictures} pictures. With {orders} orders the smallest p possible is "
            f"1 / {orders + 1} = {1 / (orders + 1):.3f}: the map beats random only when it does better than every "
            "random order on one curve and no random order does better than all the others on the other curve, so "
            "a map the full check finds faithful may read \"no\" here. "
            + ("The randomisation check is not run here: it needs a private copy of the whole model. "
               if result.sanity is None else "")
            + "Run the dashboard locally for the full check.")


def render_faithfulness(run: AttentionRun, step: int, opts: dict[str, Any]) -> None:
    """The "Check this map" button under the heatmap and, once clicked, its result."""
    st.subheader("Trust in this map", divider="gray")
    results: dict[str, Faithfulness] = st.session_state.setdefault(K_RESULTS, {})
    key = _key(run, step, opts)
    if key not in results:
        plan = check_plan(run, opts)
        randomised = ("; checks that the map changes when the model's weights are randomised" if plan.sanity else "")
        st.caption("Is this attention map faithful? Deletes the image patches it points at (and random ones) from "
                   "the model's input, and inserts them into a painted picture, watching the token's probability"
                   f"{randomised}. Checks the attention map of these layers and head (not the rollout); runs the "
                   f"model on {plan.pictures(_cells(run, opts)):,} pictures against {len(plan.seeds)} random orders "
                   f"in batches of {plan.batch_size} (seconds on the demo model, minutes on a large one).")
        if not st.button("Check this map", key=K_BUTTON):
            return
        with st.spinner("Deleting and inserting patches" + (", randomising a copy of the model…" if plan.sanity
                                                            else "…")):
            result = _compute(run, step, opts)
        if result is None:  # the session went away mid-check
            return
        if isinstance(result, Exception):
            show_model_error(result, "Map check failed")  # not kept: a refusal may pass on the next click
            return
        results.clear()  # one result at a time: they are small, but a session may click through many tokens
        results[key] = result
    _show(results[key])
