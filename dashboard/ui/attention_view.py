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
from dashboard.ui.attention_faithfulness_view import render_faithfulness
from dashboard.ui.attention_sweep_view import K_ACROSS, render_across_checkpoints, render_pointing
from dashboard.ui.attention_token_view import controls, show_lens, show_token, token_label
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import admitted, max_new_tokens_cap, queue_notice
from dashboard.ui.history_input import pick_history_item
from dashboard.ui.image_input import PickedImage, pick_image, pick_more_images
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import (
    DEFAULT_MAX_NEW_TOKENS,
    confined,
    scroll_into_view,
    show_model_error,
    why_no_checkpoint,
)

K_RUN = "attn.run"  # the captured AttentionRun (plain key: survives reruns)
K_HISTORY = "attn.history_id"
K_OUTPUT = "attn-output"  # the container of the captured output (scrolled into view after a capture)


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_capture(checkpoint: str, mtime_ns: int, image_digest: str, prompt: str, max_new_tokens: int,
                    _image: Image.Image, _should_stop, _on_wait, more_digests: tuple[str, ...] = (),
                    _more: tuple[Image.Image, ...] = ()) -> AttentionRun:
    """One capture per (checkpoint version, image contents, prompt, length), shared by sessions: a reloaded
    link shows its capture again without a second generation. Keyed by the images' digests, never by a
    per-visitor id, so two visitors' different images never meet."""
    return capture(get_pool(), checkpoint, _image, prompt, max_new_tokens, should_stop=_should_stop,
                   on_wait=_on_wait, more_images=_more)


def run_capture(checkpoint: Path, image: Image.Image, image_digest: str, prompt: str,
                max_new_tokens: int, more: list[PickedImage] | None = None) -> AttentionRun | None:
    more = more or []
    try:
        with admitted(Job("Attention capture", max_new_tokens=max_new_tokens)):
            notice = st.empty()
            run = _cached_capture(str(checkpoint), checkpoint.stat().st_mtime_ns, image_digest, prompt,
                                  max_new_tokens, image, session_gone_check(), queue_notice(checkpoint, notice),
                                  tuple(p.digest for p in more), tuple(p.image for p in more))
        notice.empty()
        return run
    except GenerationCancelled:  # the browser session is gone: nobody to show a cut-short capture to
        return None
    except ANALYSIS_ERRORS as exc:
        show_model_error(exc, "Attention capture failed")
        return None
    except OSError as exc:  # the checkpoint folder went away
        show_model_error(exc, "Attention capture failed")
        return None


def _input(run_dir: Path | None) -> tuple[Image.Image | None, str, str]:
    """(image, suggested prompt, the image's digest) from the gallery/upload or an Inference-history entry.

    An eval-set example is in the URL (``ex``), so a link or a reload shows the same input."""
    source = st.radio("Input", ["Image", "Inference history"], horizontal=True, key="attn.input")
    if source == "Image":
        picked = pick_image("attn", run_dir, url_param="ex")
        if picked is None:
            return None, "", ""
        return picked.image, picked.example.prompt if picked.example else "", picked.digest
    url_state.publish("ex", None)
    picked, prompt = pick_history_item(K_HISTORY, only_with_image=True)
    if picked is None:
        return None, "", ""
    return picked.image, prompt, picked.digest


def render_attention() -> None:
    st.title("Attention")
    st.caption("Generate, then pick a token to see where it looked. Capture keeps only each generated token's "
               "attention to the image tokens (plus text sums), never full attention matrices.")
    notice = state.get(state.NOTICE)
    if notice:
        st.toast(markdown_safe(notice))
        state.put(state.NOTICE, None)
    run_dir = confined(state.selected_run(), "Run")
    checkpoint = confined(state.selected_checkpoint(), "Checkpoint")
    if checkpoint is None:
        st.info(why_no_checkpoint())
        return
    get_pool().prefetch(checkpoint)  # loading while the user picks an image and types
    st.markdown(f"**Checkpoint:** {markdown_safe(checkpoint.name)}")
    image, default_prompt, image_key = _input(run_dir)
    more = pick_more_images("attn")
    prompt_key = f"attn.prompt.{image_key}"
    asked = url_state.arrival_value("q", str, "prompt")
    if asked is not None:
        st.session_state[prompt_key] = asked
    st.session_state.setdefault(prompt_key, default_prompt)
    prompt = st.text_input("Prompt", key=prompt_key)
    cap = max_new_tokens_cap(256)  # public mode: what the gate allows
    length = url_state.arrival_value("n", url_state.decode_choice(range(1, cap + 1), int), "max new tokens")
    if length is not None:
        st.session_state["attn.max_new"] = length
    st.session_state.setdefault("attn.max_new", min(DEFAULT_MAX_NEW_TOKENS, cap))
    st.session_state["attn.max_new"] = min(int(st.session_state["attn.max_new"]), cap)
    max_new = st.number_input("Max new tokens", 1, cap, key="attn.max_new")
    url_state.publish("q", prompt if prompt != default_prompt else None)
    url_state.publish("n", str(int(max_new)) if int(max_new) != DEFAULT_MAX_NEW_TOKENS else None)
    # A link or reload that showed a capture shows it again (recomputed, or from the shared cache).
    again = url_state.arrival_value("cap", url_state.decode_choice(["1"]), "capture") == "1" \
        and K_RUN not in st.session_state and image is not None and bool(prompt.strip())
    fresh = False  # a capture made on this run: its output is scrolled into view (it lands below the fold)
    if st.button("Generate and capture", type="primary", key="attn.go") or again:
        if image is None:
            st.error("No image: upload an image, click an eval-set example or pick a history entry first.")
        elif not prompt.strip():
            st.error("The prompt is empty: type a question or instruction.")
        else:
            with st.spinner("Generating with attention capture…"):
                run = run_capture(checkpoint, image, image_key, prompt, int(max_new), more)
            if run is not None:
                st.session_state[K_RUN] = run
                st.session_state.pop(K_ACROSS, None)
                fresh = True
    captured: AttentionRun | None = st.session_state.get(K_RUN)
    url_state.publish("cap", "1" if captured is not None else None)
    if captured is None:
        return
    if not captured.tokens:
        st.warning("The model generated no tokens.")
        return
    with st.container(key=K_OUTPUT):
        st.markdown(f"**Output** of {markdown_safe(Path(captured.checkpoint).name)}: {markdown_safe(captured.text)}")
        hidden = captured.special_steps()
        if hidden:
            st.caption(f"{len(hidden)} of {len(captured.tokens)} generated tokens are special tokens, marked "
                       f"“{SPECIAL_MARK.strip()}” below; the output text leaves them out.")
    if fresh:
        scroll_into_view(K_OUTPUT)
    options = list(range(len(captured.tokens)))
    token = url_state.arrival_value("token", url_state.decode_choice(options, int), "token")
    step = st.segmented_control("Generated token", options, default=token or 0, required=True,
                                key=f"attn.token.{id(captured)}",
                                format_func=lambda i: token_label(i, captured.tokens[i]))
    step = 0 if step is None else int(step)
    url_state.publish("token", str(step))
    shown = _pick_drawn_image(captured)
    opts = controls(shown)
    show_token(shown, step, opts)
    if len(captured.images) <= 1:
        render_faithfulness(shown, step, opts)
    else:  # the deletion curve masks one picture and re-runs the processor on it alone
        st.caption("The faithfulness check (“Check this map”) runs on single-image prompts.")
    tools.heads_grid(shown, step, opts)
    tools.spatial_lens(shown, step, opts)
    show_lens(shown)
    render_across_checkpoints(captured, step, opts, run_dir)
    render_pointing(run_dir)


def _pick_drawn_image(captured: AttentionRun) -> AttentionRun:
    """With several images in the prompt: which one the heatmaps are drawn on (each image's own tokens)."""
    count = len(captured.images)
    if count <= 1:
        return captured
    index = st.segmented_control("Draw on image", list(range(count)), default=0, required=True,
                                 key=f"attn.image.{id(captured)}", format_func=lambda k: f"image {k + 1}")
    index = 0 if index is None else int(index)
    st.caption(f"The prompt holds {count} images; the maps below show the attention to image {index + 1}'s "
               f"tokens, drawn on image {index + 1} (each image's share of the attention differs).")
    return captured.for_image(index)
