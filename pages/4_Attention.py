"""Attention: where does the model look while it writes each token — and how does that develop over training?

Thin page: capture, layout, overlay, logit lens and pointing score live in ``dashboard.attention``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.attention.adapters import LayoutError, UnsupportedFamily
from dashboard.attention.analysis import AttentionRun, analyse, pointing_report
from dashboard.attention.capture import CaptureError
from dashboard.attention.charts import lens_figure, pointing_figure, share_figure
from dashboard.attention.overlay import (
    COLORMAPS,
    render_overlay,
    shared_range,
    to_png,
    upscale,
    value_range_of,
    with_colorbar,
)
from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set
from dashboard.formatting import display_table, markdown_safe
from dashboard.generation import GenerationInputError, GenerationOOMError
from dashboard.history import HistoryError
from dashboard.images import ImageError, load_image
from dashboard.models.pool import CheckpointLoadError
from dashboard.paths import PathOutsideRoots
from dashboard.ui import state
from dashboard.ui.image_input import pick_image
from dashboard.ui.resources import get_history, get_run, get_settings
from dashboard.ui.visitor import generation_turn
from dashboard.ui.widgets import confined, show_model_error

K_RUN = "attn.run"  # the captured AttentionRun (plain key: survives reruns)
K_ACROSS = "attn.across"  # {checkpoint path: AttentionRun} for the chosen token
K_POINTING = "attn.pointing"  # {(checkpoint, eval path, n): summary dict}
POINTING_FRACTIONS = ("pointing", "chance", "mass_in_box", "accuracy", "best_layer_pointing")
ANALYSIS_ERRORS = (CheckpointLoadError, GenerationInputError, GenerationOOMError, UnsupportedFamily, LayoutError,
                   CaptureError, PathOutsideRoots)


def run_capture(checkpoint: Path, image, prompt: str, max_new_tokens: int, forced: tuple[int, ...] = ()
                ) -> AttentionRun | None:
    try:
        with generation_turn(checkpoint) as loaded:
            return analyse(loaded, image, prompt, max_new_tokens=max_new_tokens, forced=forced,
                           lens_top_k=5 if not forced else 0, lens_image_tokens=not forced)
    except ANALYSIS_ERRORS as exc:
        show_model_error(exc, "Attention capture failed")
        return None


def from_history() -> tuple[object, str, str] | None:
    """(image, prompt, digest-ish key) of an Inference-history entry that stored its image."""
    try:
        records = [r for r in get_history().list(limit=100) if r.image_stored]
    except HistoryError as exc:
        st.error(str(exc))
        return None
    if not records:
        st.info("No history entry with a stored image yet — generate on the Inference page first.")
        return None
    labels = {r.id: f"#{r.id} · {Path(r.checkpoint).name} · {r.prompt[:50]} → {r.output[:30]}" for r in records}
    record_id = st.selectbox("History entry", list(labels), format_func=labels.get, key="attn.history_id")
    record = get_history().get(int(record_id))
    if record is None or record.image is None:
        st.error(f"History entry #{record_id} has no stored image.")
        return None
    try:
        image = load_image(record.image, max_pixels=get_settings().max_image_pixels)
    except ImageError as exc:
        st.error(f"History entry #{record_id}: stored image unusable: {exc}")
        return None
    st.image(image, caption=f"history #{record_id} · {image.width}×{image.height}", width=256)
    return image, record.prompt, f"h{record_id}"


def token_label(index: int, token: str) -> str:
    """Widget/caption label for a generated token; model output is escaped, never rendered as Markdown."""
    return f"{index}: {markdown_safe(token)}"


def controls(run: AttentionRun) -> dict:
    """Layer range, head, view and drawing options for the overlay."""
    n_layers, n_heads = run.result.n_layers, run.result.n_heads
    c1, c2, c3 = st.columns(3)
    if n_layers > 1:
        lo, hi = c1.select_slider("Layers (mean over range)", options=list(range(n_layers)),
                                  value=(0, n_layers - 1), key=f"attn.layers.{n_layers}")
    else:
        lo = hi = 0
    head = c2.selectbox("Head", ["mean", "max", *range(n_heads)], key=f"attn.head.{n_heads}",
                        format_func=lambda h: f"head {h}" if isinstance(h, int) else f"{h} over heads")
    views = [v.name for v in run.layout.views]
    view = views[0]
    if len(views) > 1:
        view = c3.selectbox("Grid", views, key=f"attn.view.{'-'.join(views)}", help=run.layout.note)
    d1, d2, d3, d4 = st.columns(4)
    alpha = d1.slider("Opacity", 0.0, 1.0, 0.5, 0.05, key="attn.alpha")
    smooth = d2.toggle("Smooth upsampling", value=False, key="attn.smooth",
                       help="Off: each image patch is one flat colour (what the model attends to). On: "
                            "interpolated, which bleeds colour across patch borders.")
    lines = d3.toggle("Patch grid lines", value=False, key="attn.lines")
    cmap = d4.selectbox("Colormap", list(COLORMAPS), key="attn.cmap")
    return {"layers": list(range(lo, hi + 1)), "head": head, "view": view, "alpha": alpha, "smooth": smooth,
            "grid_lines": lines, "colormap": cmap}


def overlay(run: AttentionRun, step: int, opts: dict, layers: list[int] | None = None,
            value_range: tuple[float, float] | None = None, min_side: int = 256):
    """The heatmap over the image, enlarged to ``min_side`` and carrying its colour bar."""
    grid = run.grid(step, opts["layers"] if layers is None else layers, opts["head"], opts["view"])
    picture = render_overlay(run.image, grid, run.layout.view(opts["view"]), alpha=opts["alpha"],
                             smooth=opts["smooth"], colormap=opts["colormap"], grid_lines=opts["grid_lines"],
                             value_range=value_range)
    return with_colorbar(upscale(picture, min_side), opts["colormap"], value_range_of(grid, value_range))


def head_label(head) -> str:
    return f"head {head}" if isinstance(head, int) else f"{head} over heads"


def layers_label(layers: list[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"mean of layers {layers[0]}–{layers[-1]}"


def show_token(run: AttentionRun, step: int, opts: dict) -> None:
    token = run.tokens[step]
    left, right = st.columns([1, 1])
    picture = overlay(run, step, opts)
    caption = (f"{token_label(step, token)} — {layers_label(opts['layers'])}, {head_label(opts['head'])}, "
               f"{opts['view']} grid ({run.layout.note}); colour bar: attention weight, this map's own range")
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
    labels = run.tokens if which == "generated tokens" else [f"img{i}" for i in range(len(run.layout.image_positions))]
    if which == "image tokens":
        shown = min(64, len(labels))
        frame = frame[frame["position"] < shown]
        st.caption(f"First {shown} of {len(labels)} image tokens, in the order they appear in the prompt.")
    st.plotly_chart(lens_figure(frame, labels, "top-1 token per layer"), key="attn.lens_fig")
    with st.expander("Table (top-k)"):
        st.dataframe(frame, hide_index=True)


def across_checkpoints(run: AttentionRun, step: int, opts: dict, run_dir: Path | None) -> None:
    st.subheader("Across checkpoints", divider="gray")
    if run_dir is None:
        st.info("Pick a run in the sidebar to compare its checkpoints.")
        return
    infos = get_run(run_dir).loadable_checkpoints
    names = {str(c.path.resolve()): c.name for c in infos}
    default = [p for p in map(str, state.selected_compare_checkpoints()) if p in names] or list(names)[-4:]
    chosen = st.multiselect("Checkpoints", list(names), default=default, format_func=names.get, key="attn.ckpts")
    forced_text = ("the same prompt" if step == 0 else
                   f"the same prompt plus the first {step} generated token{'s' if step > 1 else ''} of the current "
                   "checkpoint (teacher forcing)")
    st.caption(f"Each checkpoint reads {forced_text}, so every heatmap is for the position that predicts "
               f"{token_label(step, run.tokens[step])}.")
    if st.button("Show across checkpoints", key="attn.across_go", disabled=not chosen):
        forced = tuple(run.result.generated_ids[:step])
        results = {}
        with st.spinner("Capturing…"):
            for path in chosen:
                other = run_capture(Path(path), run.image, run.prompt, 1, forced)
                if other is not None:
                    results[path] = other
        st.session_state[K_ACROSS] = {"key": (run.checkpoint, step), "runs": results}
    saved = st.session_state.get(K_ACROSS)
    if not saved or saved["key"] != (run.checkpoint, step):
        return
    shared = st.toggle("Same colour scale for all checkpoints", value=True, key="attn.across_shared",
                       help="Off: each map is stretched to its own min–max (shows shape, hides strength).")
    value_range = None
    if shared and saved["runs"]:
        value_range = shared_range([other.grid(0, opts["layers"], opts["head"], opts["view"])
                                    for other in saved["runs"].values()])
    cols = st.columns(max(1, len(saved["runs"])))
    for col, (path, other) in zip(cols, saved["runs"].items(), strict=False):
        picture = overlay(other, 0, opts, value_range=value_range, min_side=160)
        col.image(picture, caption=f"{names.get(path, Path(path).name)} → "
                  f"{markdown_safe(other.tokens[0]) if other.tokens else '—'}",
                  width="stretch")


def pointing_section(run_dir: Path | None) -> None:
    st.subheader("Pointing score", divider="gray")
    st.caption("Does the attention peak of the first answer token (mean over all layers and heads) fall inside the "
               "box of the object the question is about? *Chance* is the share of grid cells inside that box.")
    sets = find_eval_sets(run_dir) if run_dir else []
    if not sets:
        st.info("The selected run has no eval set with object boxes (the demo run ships eval/demo.jsonl).")
        return
    infos = get_run(run_dir).loadable_checkpoints
    c1, c2 = st.columns(2)
    path = c1.selectbox("Eval set", sets, format_func=lambda p: p.name, key="attn.point_set")
    n = c2.number_input("Examples per checkpoint", 1, 1000, 32, key="attn.point_n")
    if st.button("Score every checkpoint", key="attn.point_go"):
        try:
            examples = load_eval_set(path, roots=get_settings().runs_roots).examples
        except EvalSetError as exc:
            st.error(f"Eval set unusable: {exc}")
            return
        scores = st.session_state.setdefault(K_POINTING, {})
        bar = st.progress(0.0, text="Scoring…")
        for i, info in enumerate(infos):
            try:
                with generation_turn(info.path) as loaded:
                    report = pointing_report(loaded, examples, max_examples=int(n),
                                             max_pixels=get_settings().max_image_pixels)
            except ANALYSIS_ERRORS as exc:
                show_model_error(exc, "Attention capture failed")
                continue
            scores[(str(info.path), str(path), int(n))] = {**report.summary(), "step": info.step, "name": info.name}
            bar.progress((i + 1) / len(infos), text=f"Scored {info.name}")
    rows = [v for (ckpt, set_path, count), v in st.session_state.get(K_POINTING, {}).items()
            if set_path == str(path) and count == int(n) and Path(ckpt).resolve().parent == run_dir.resolve()]
    if rows:
        frame = pd.DataFrame(rows).sort_values("step")
        st.plotly_chart(pointing_figure(frame), key="attn.point_fig")
        columns = ["name", "step", "n", "pointing", "chance", "mass_in_box", "accuracy", "distinct_peaks",
                   "best_layer", "best_layer_pointing", "skipped"]
        st.caption(f"Scored on the first {int(n)} examples of {path.name} per checkpoint (n = examples with a box).")
        st.dataframe(display_table(frame[columns], {c: "fraction" for c in POINTING_FRACTIONS}), hide_index=True)


def main() -> None:
    st.title("Attention")
    st.caption("Generate, then pick a token to see where it looked. Capture keeps only each generated token's "
               "attention to the image tokens (plus text sums), never full attention matrices.")
    notice = state.get(state.NOTICE)
    if notice:
        st.toast(notice)
        state.put(state.NOTICE, None)
    run_dir = confined(state.selected_run(), "Run")
    checkpoint = confined(state.selected_checkpoint(), "Checkpoint")
    if checkpoint is None:
        st.info("Pick a run and a checkpoint in the sidebar.")
        return
    st.markdown(f"**Checkpoint:** `{checkpoint.name}`")
    source = st.radio("Input", ["Image", "Inference history"], horizontal=True, key="attn.input")
    image, default_prompt, image_key = None, "", ""
    if source == "Image":
        picked = pick_image("attn", run_dir)
        if picked is not None:
            image, image_key = picked.image, picked.digest
            default_prompt = picked.example.prompt if picked.example else ""
    else:
        chosen = from_history()
        if chosen is not None:
            image, default_prompt, image_key = chosen
    prompt = st.text_input("Prompt", value=default_prompt, key=f"attn.prompt.{image_key}")
    max_new = st.number_input("Max new tokens", 1, 256, 8, key="attn.max_new")
    if st.button("Generate and capture", type="primary", key="attn.go"):
        if image is None:
            st.error("No image: upload an image, click an eval-set example or pick a history entry first.")
        elif not prompt.strip():
            st.error("The prompt is empty: type a question or instruction.")
        else:
            with st.spinner("Generating with attention capture…"):
                run = run_capture(checkpoint, image, prompt, int(max_new))
            if run is not None:
                st.session_state[K_RUN] = run
                st.session_state.pop(K_ACROSS, None)
    run: AttentionRun | None = st.session_state.get(K_RUN)
    if run is None:
        return
    if not run.tokens:
        st.warning("The model generated no tokens.")
        return
    st.markdown(f"**Output** of `{Path(run.checkpoint).name}`: {markdown_safe(run.text)}")
    options = list(range(len(run.tokens)))
    step = st.segmented_control("Generated token", options, default=0, required=True, key=f"attn.token.{id(run)}",
                                format_func=lambda i: token_label(i, run.tokens[i]))
    step = 0 if step is None else int(step)
    opts = controls(run)
    show_token(run, step, opts)
    show_lens(run)
    across_checkpoints(run, step, opts, run_dir)
    pointing_section(run_dir)


main()
