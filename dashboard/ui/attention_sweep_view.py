"""Attention across checkpoints: one token on every checkpoint (teacher-forced), and the pointing score.

Checkpoints come from the run model (:func:`dashboard.ui.resources.get_run`), so a checkpoint
the sidebar hides (e.g. a symlink out of the runs root) is never offered here either. The
loops over checkpoints are :mod:`dashboard.attention.sweep`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.admission import Job
from dashboard.attention.analysis import AttentionRun
from dashboard.attention.charts import pointing_figure
from dashboard.attention.overlay import shared_range
from dashboard.attention.sweep import capture_across, pointing_per_checkpoint
from dashboard.formatting import display_table, markdown_safe
from dashboard.generation import GenerationCancelled
from dashboard.paths import PathOutsideRoots
from dashboard.public import VisitorLimitError
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.run import RunNotFoundError
from dashboard.ui import attention_tools as tools
from dashboard.ui import state
from dashboard.ui.attention_token_view import overlay, token_label
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.evalset_input import choose_run_eval_set, run_eval_sets
from dashboard.ui.gate import admitted, max_examples
from dashboard.ui.resources import get_pool, get_run, get_settings
from dashboard.ui.widgets import show_model_error

K_ACROSS = "attn.across"  # {"key": (checkpoint, step), "runs": {checkpoint path: AttentionRun}}
K_POINTING = "attn.pointing"  # {(checkpoint, eval path, n): summary dict}
ACROSS_DEFAULT = 4  # checkpoints picked by default: first … last, evenly spread
ACROSS_PER_ROW = 4  # tiles per row: more made ~80 px maps with unreadable colour-bar labels
POINTING_FRACTIONS = ("pointing", "chance", "mass_in_box", "accuracy", "exact_match", "best_layer_pointing")


def loadable_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """The run's loadable checkpoints, as the sidebar sees them; [] with the reason shown otherwise."""
    try:
        return list(get_run(run_dir).loadable_checkpoints)
    except (PathOutsideRoots, RunNotFoundError) as exc:
        st.error(markdown_safe(f"Cannot open run: {exc}"))
        return []


def spread_picks(options: list[str], count: int = ACROSS_DEFAULT) -> list[str]:
    """``count`` options evenly spread from the first to the last (the early ones are what a map is compared to)."""
    if len(options) <= count:
        return list(options)
    last = len(options) - 1
    return [options[round(i * last / (count - 1))] for i in range(count)]


def in_step_order(picked: dict[str, Any], order: list[str]) -> list[tuple[str, Any]]:
    """``picked`` (path → value, in the order the user picked) in the run's step order."""
    rank = {path: i for i, path in enumerate(order)}
    return sorted(picked.items(), key=lambda item: rank.get(item[0], len(rank)))


def render_across_checkpoints(run: AttentionRun, step: int, opts: dict[str, Any], run_dir: Path | None) -> None:
    st.subheader("Across checkpoints", divider="gray")
    if run_dir is None:
        st.info("Pick a run in the sidebar to compare its checkpoints.")
        return
    infos = loadable_checkpoints(run_dir)
    names = {str(c.path.resolve()): c.name for c in infos}
    default = [p for p in map(str, state.selected_compare_checkpoints()) if p in names] or spread_picks(list(names))
    chosen = st.multiselect("Checkpoints", list(names), default=default, format_func=names.get, key="attn.ckpts")
    forced_text = ("the same prompt" if step == 0 else
                   f"the same prompt plus the first {step} generated token{'s' if step > 1 else ''} of the current "
                   "checkpoint (teacher forcing)")
    st.caption(f"Each checkpoint reads {forced_text}, so every heatmap is for the position that predicts "
               f"{token_label(step, run.tokens[step])}.")
    if st.button("Show across checkpoints", key="attn.across_go", disabled=not chosen):
        try:
            with admitted(Job("Attention across checkpoints", checkpoints=len(chosen))), st.spinner("Capturing…"):
                runs, errors = capture_across(get_pool(), chosen, run.image, run.prompt,
                                              tuple(run.result.generated_ids[:step]), should_stop=session_gone_check())
        except GenerationCancelled:  # the browser session is gone
            return
        except VisitorLimitError as refused:
            st.warning(f"Not run: {refused}")
            return
        for exc in errors.values():
            show_model_error(exc, "Attention capture failed")
        st.session_state[K_ACROSS] = {"key": (run.checkpoint, step), "runs": runs}
    saved = st.session_state.get(K_ACROSS)
    if not saved or saved["key"] != (run.checkpoint, step):
        return
    shared = st.toggle("Same colour scale for all checkpoints", value=True, key="attn.across_shared",
                       help="Off: each map is stretched to its own min–max (shows shape, hides strength).")
    value_range = None
    if shared and saved["runs"]:
        value_range = shared_range([other.grid(0, opts["layers"], opts["head"], opts["view"])
                                    for other in saved["runs"].values()])
    tiles = in_step_order(saved["runs"], list(names))
    for start in range(0, len(tiles), ACROSS_PER_ROW):
        for col, (path, other) in zip(st.columns(ACROSS_PER_ROW), tiles[start:start + ACROSS_PER_ROW], strict=False):
            picture = overlay(other, 0, opts, value_range=value_range, min_side=256)
            col.image(picture, caption=f"{markdown_safe(names.get(path, Path(path).name))} → "
                      f"{markdown_safe(other.tokens[0]) if other.tokens else '—'}",
                      width="stretch")


def pointing_caption(frame: pd.DataFrame, asked: int, eval_set: str) -> str:
    """What was really scored: n per checkpoint (the set may have fewer examples with a box than asked)."""
    scored = sorted({int(v) for v in frame["n"]})
    n_text = str(scored[0]) if len(scored) == 1 else f"{scored[0]}–{scored[-1]}"
    return (f"Scored on n = {n_text} examples of {eval_set} per checkpoint (the first ones with an object box; "
            f"up to {int(asked)} asked). Error bars: exact 95 % interval of the hit rate.")


def render_pointing(run_dir: Path | None) -> None:
    st.subheader("Pointing score", divider="gray")
    st.caption("Does the attention peak of the first answer token (mean over all layers and heads) fall inside the "
               "box of the object the question is about? *Chance* is the share of grid cells inside that box.")
    sets = run_eval_sets(run_dir)
    if run_dir is None or not sets:
        st.info("The selected run has no eval set with object boxes (the demo run ships eval/demo.jsonl).")
        return
    c1, c2 = st.columns(2)
    with c1:
        eval_set = choose_run_eval_set("attn.point_set", sets)
    infos = loadable_checkpoints(run_dir)
    cap = max_examples(len(infos), 1000)
    n = int(c2.number_input("Examples per checkpoint", 1, cap, min(32, cap), key="attn.point_n",
                            help=f"At most {cap} here (examples × checkpoints is capped)" if cap < 1000 else None))
    if eval_set is None:
        return
    if st.button("Score every checkpoint", key="attn.point_go"):
        bar = st.progress(0.0, text="Scoring…")
        try:
            with admitted(Job("Pointing score", examples=n, checkpoints=len(infos))):
                scored, errors = pointing_per_checkpoint(
                    get_pool(), infos, eval_set.examples, n, get_settings().max_image_pixels,
                    on_progress=lambda done, total, name: bar.progress(done / total,
                                                                       text=f"Scored {markdown_safe(name)}"),
                    should_stop=session_gone_check())
        except GenerationCancelled:  # the browser session is gone
            return
        except VisitorLimitError as refused:
            st.warning(f"Not run: {refused}")
            return
        for exc in errors.values():
            show_model_error(exc, "Attention capture failed")
        scores = st.session_state.setdefault(K_POINTING, {})
        scores.update({(ckpt, str(eval_set.path), n): row for ckpt, row in scored.items()})
    rows = [v for (ckpt, set_path, count), v in st.session_state.get(K_POINTING, {}).items()
            if set_path == str(eval_set.path) and count == n and Path(ckpt).resolve().parent == run_dir.resolve()]
    if rows:
        frame = pd.DataFrame(rows).sort_values("step")
        st.plotly_chart(pointing_figure(frame), key="attn.point_fig")
        columns = ["name", "step", "n", "pointing", "chance", "mass_in_box", "accuracy", "exact_match",
                   "distinct_peaks", "best_layer", "best_layer_pointing", "skipped"]
        st.caption(pointing_caption(frame, n, markdown_safe(eval_set.name)))
        st.dataframe(display_table(frame[columns], {c: "fraction" for c in POINTING_FRACTIONS}), hide_index=True)
        per_example = {"eval_set": {"name": eval_set.name, "sha256": eval_set.content_hash}, "examples_asked": n,
                       "checkpoints": [{k: r.get(k) for k in ("name", "step", "n", "pointing", "pointing_ci95_low",
                                                              "pointing_ci95_high", "chance", "mass_in_box",
                                                              "examples")} for r in frame.to_dict("records")]}
        st.download_button("Pointing per example (JSON)", json.dumps(per_example, indent=1, default=str),
                           file_name=f"pointing-{eval_set.name}.json", mime="application/json",
                           key="attn.point_dl", on_click="ignore")
        tools.pointing_split(sorted(rows, key=lambda row: row["step"] or 0))
