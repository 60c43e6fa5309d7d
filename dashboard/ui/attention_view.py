"""Attention page: generate with capture, pick a token, see where it looked (overlay, layers, logit lens).

Capture, layout, overlay, logit lens and pointing live in ``dashboard.attention``; the
one-token drawing is
:mod:`dashboard.ui.attention_token_view`, the multi-checkpoint sections
:mod:`dashboard.ui.attention_sweep_view`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from PIL import Image

from dashboard.admission import Job
from dashboard.attention.analysis import AttentionRun
from dashboard.attention.sweep import ANALYSIS_ERRORS, capture
from dashboard.attention.tokens import SPECIAL_MARK
from dashboard.formatting import markdown_safe
from dashboard.generation import GenerationCancelled
from dashboard.ui import attention_tools as tools
from dashboard.ui import state, url_state
from dashboard.ui.attention_sweep_view import K_ACROSS, render_across_checkpoints, render_pointing
from dashboard.ui.attention_token_view import controls, show_lens, show_token, token_label
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import admitted, max_new_tokens_cap, queue_notice
from dashboard.ui.history_input import pick_history_item
from dashboard.ui.image_input import pick_image
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import DEFAULT_MAX_NEW_TOKENS, confined, show_model_error, why_no_checkpoint

K_RUN = "attn.run"  # the captured AttentionRun (plain key: survives reruns)
K_HISTORY = "attn.history_id"


def run_capture(checkpoint: Path, image: Image.Image, prompt: str, max_new_tokens: int) -> AttentionRun | None:
    try:
        with admitted(Job("Attention capture", max_new_tokens=max_new_tokens)):
            notice = st.empty()
            run = capture(get_pool(), checkpoint, image, prompt, max_new_tokens, should_stop=session_gone_check(),
                          on_wait=queue_notice(checkpoint, notice))
        notice.empty()
        return run
    except GenerationCancelled:  # the browser session is gone: nobody to show a cut-short capture to
        return None
    except ANALYSIS_ERRORS as exc:
        show_model_error(exc, "Attention capture failed")
        return None


def _input(run_dir: Path | None) -> tuple[Image.Image | None, str, str]:
    """(image, suggested prompt, key of the input) from the gallery/upload or an Inference-history entry."""
    source = st.radio("Input", ["Image", "Inference history"], horizontal=True, key="attn.input")
    if source == "Image":
        picked = pick_image("attn", run_dir)
        if picked is None:
            return None, "", ""
        return picked.image, picked.example.prompt if picked.example else "", picked.digest
    picked, prompt = pick_history_item(K_HISTORY, only_with_image=True)
    if picked is None:
        return None, "", ""
    return picked.image, prompt, f"h{st.session_state.get(K_HISTORY)}"


def render_attention() -> None:
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
        st.info(why_no_checkpoint())
        return
    get_pool().prefetch(checkpoint)  # loading while the user picks an image and types
    st.markdown(f"**Checkpoint:** `{checkpoint.name}`")
    image, default_prompt, image_key = _input(run_dir)
    prompt = st.text_input("Prompt", value=default_prompt, key=f"attn.prompt.{image_key}")
    cap = max_new_tokens_cap(256)
    max_new = st.number_input("Max new tokens", 1, cap, min(DEFAULT_MAX_NEW_TOKENS, cap), key="attn.max_new")
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
    captured: AttentionRun | None = st.session_state.get(K_RUN)
    if captured is None:
        return
    if not captured.tokens:
        st.warning("The model generated no tokens.")
        return
    st.markdown(f"**Output** of `{Path(captured.checkpoint).name}`: {markdown_safe(captured.text)}")
    hidden = captured.special_steps()
    if hidden:
        st.caption(f"{len(hidden)} of {len(captured.tokens)} generated tokens are special tokens, marked "
                   f"“{SPECIAL_MARK.strip()}” below; the output text leaves them out.")
    options = list(range(len(captured.tokens)))
    token = url_state.arrival_value("token", url_state.decode_choice(options, int), "token")
    step = st.segmented_control("Generated token", options, default=token or 0, required=True,
                                key=f"attn.token.{id(captured)}",
                                format_func=lambda i: token_label(i, captured.tokens[i]))
    step = 0 if step is None else int(step)
    url_state.publish("token", str(step))
    opts = controls(captured)
    show_token(captured, step, opts)
    tools.heads_grid(captured, step, opts)
    tools.spatial_lens(captured, step, opts)
    show_lens(captured)
    render_across_checkpoints(captured, step, opts, run_dir)
    render_pointing(run_dir)
