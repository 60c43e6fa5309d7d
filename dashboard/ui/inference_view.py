"""Inference page: one image + prompt → streamed answer; batch and history modes in their own views.

Loading, generation, image decoding and persistence live in ``dashboard``.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import streamlit as st

from dashboard.admission import Job
from dashboard.formatting import fmt_rate, fmt_seconds, markdown_safe
from dashboard.generation import (
    GenerationInputError,
    GenerationOOMError,
    GenerationSettings,
    format_prompt,
    result_stats,
    stream,
)
from dashboard.history import HistoryRecord
from dashboard.models.pool import CheckpointLoadError
from dashboard.public import shown_path
from dashboard.ui import state
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import generation_turn
from dashboard.ui.history_input import history_image
from dashboard.ui.image_input import PickedImage, pick_image
from dashboard.ui.inference_batch_view import render_batch_mode
from dashboard.ui.inference_history_view import K_RERUN, render_history_mode, save_history
from dashboard.ui.resources import get_history, get_pool, get_settings
from dashboard.ui.widgets import confined, generation_settings_form, show_model_error, why_no_checkpoint

MODES = ["Single", "Batch", "History"]
K_MODE = "inf.mode"
K_LAST = "inf.last"


def show_stats(stats: dict) -> None:
    """The timings as metrics in a wrapping row: each takes its value's width, so none is cut off
    (six fixed columns truncated "415.9 tok/s" to "41…" and the labels at 1400 px)."""
    with st.container(horizontal=True, wrap=True, gap="medium", key="inf.stats"):
        for label, value, help_text in [
            ("Latency", fmt_seconds(stats["latency_s"]), "End to end: preprocessing + prefill + decode."),
            ("Preprocessing", fmt_seconds(stats.get("preprocess_s")),
             "The processor: image resize/normalise, chat template, tokenising."),
            ("Time to first token", fmt_seconds(stats.get("ttft_s")), "The prefill, from generate's start."),
            ("Decode", fmt_rate(stats.get("tokens_per_s")),
             "Tokens after the first ÷ time after the first token (— for a one-token answer)."),
            ("Input tokens", stats["prompt_tokens"], "The templated prompt plus the image tokens."),
            ("Output tokens", stats["output_tokens"], "Tokens generated."),
        ]:
            st.metric(label, value, help=help_text, width="content")


def rerun_image() -> PickedImage | None:
    """The stored image of the history row being re-run, if any."""
    record_id = st.session_state.get(K_RERUN)
    if record_id is None:
        return None
    record = get_history().get(record_id)
    if record is None:
        st.session_state.pop(K_RERUN, None)
        return None
    picked = history_image(record)
    if isinstance(picked, str):
        st.warning(markdown_safe(picked))
        return None
    return picked


def render_single_mode(checkpoint: Path, run_dir: Path | None) -> None:
    """Image on the left; prompt, Generate and the answer on the right, so all stay in view together."""
    left, right = st.columns([2, 3], gap="large")
    with left:
        picked = _single_image(run_dir)
    example = picked.example if picked else None
    if example is not None and st.session_state.get("inf.example_seen") != example.id:
        st.session_state["inf.example_seen"] = example.id
        st.session_state["inf.prompt"] = example.prompt  # suggest the example's own question
    with right:
        prompt = st.text_area("Prompt", key="inf.prompt", height=80,
                              help="Wrapped in the model's chat template with the image before generation.")
        prefill = st.text_input("Assistant prefill (optional)", key="inf.prefill",
                                help="Text the answer is forced to start with; the model continues it.")
        settings = generation_settings_form("inf")
        if st.button("Generate", type="primary", key="inf.generate"):
            if picked is None:
                st.error("No image: upload an image or click an eval-set example first.")
            elif not prompt.strip():
                st.error("The prompt is empty: type a question or instruction.")
            else:
                run_single(checkpoint, run_dir, picked, prompt, prefill, settings)
                return
        last = st.session_state.get(K_LAST)
        if last:
            st.markdown(f"**Answer** ({markdown_safe(Path(last['checkpoint']).name)}): {markdown_safe(last['prefill'])}"
                        f"{markdown_safe(last['output'])}")
            show_stats(last["timings"])


def _single_image(run_dir: Path | None) -> PickedImage | None:
    picked = rerun_image()
    if picked is None:
        return pick_image("inf", run_dir)
    st.image(picked.image, caption=f"Re-running with {markdown_safe(picked.name)}", width=256)
    if st.button("Choose another image", key="inf.clear_rerun"):
        st.session_state.pop(K_RERUN, None)
        st.rerun()
    return picked


def run_single(checkpoint: Path, run_dir: Path | None, picked: PickedImage, prompt: str, prefill: str,
               settings: GenerationSettings) -> None:
    try:
        with ExitStack() as stack:
            with st.spinner(f"Waiting for a turn on {markdown_safe(checkpoint.name)}…"):
                job = Job.generating("Inference", settings)
                loaded = stack.enter_context(generation_turn(checkpoint, job))  # our turn until the stream ends
            generation = stream(loaded, picked.image, prompt, settings, prefill, should_stop=session_gone_check())
            templated = format_prompt(loaded, prompt.strip(), prefill.strip())
            with st.expander("Prompt as sent to the model (chat template applied)"):
                st.code(templated, language=None, wrap_lines=True)
            st.markdown(f"**Answer** ({markdown_safe(checkpoint.name)}):")
            if prefill.strip():
                st.markdown(markdown_safe(prefill.strip()))
            st.write_stream(markdown_safe(chunk) for chunk in generation)
            result = generation.result
    except (CheckpointLoadError, GenerationInputError, GenerationOOMError) as exc:
        show_model_error(exc)
        return
    if result is None:
        st.warning("Generation stopped before it finished.")
        return
    stats = result_stats(result)
    show_stats(stats)
    record = HistoryRecord.from_generation(
        checkpoint=checkpoint, prompt=prompt.strip(), output=result.text, settings=json.loads(settings.key()),
        timings=stats, image=picked.image, image_name=picked.name, run=run_dir, prefill=prefill.strip(),
        example_id=picked.example.id if picked.example else None)
    save_history([record])
    st.session_state[K_LAST] = {"checkpoint": str(checkpoint), "output": result.text,
                                "prefill": f"{prefill.strip()} " if prefill.strip() else "", "timings": stats}


def render_inference() -> None:
    st.title("Inference")
    notice = state.get(state.NOTICE)
    if notice:
        st.info(markdown_safe(notice))
        state.put(state.NOTICE, None)
    st.session_state.setdefault(K_MODE, "Single")
    mode = st.segmented_control("Mode", MODES, key=K_MODE) or "Single"
    if mode == "History":
        render_history_mode()
        return
    checkpoint = confined(state.selected_checkpoint(), "Checkpoint")
    if checkpoint is None:
        st.info(why_no_checkpoint())
        return
    get_pool().prefetch(checkpoint)  # loading while the user picks an image and types
    st.caption(f"Checkpoint: {markdown_safe(shown_path(checkpoint, get_settings().runs_roots))}")
    if mode == "Single":
        render_single_mode(checkpoint, state.selected_run())
    else:
        render_batch_mode(checkpoint, state.selected_run())
