"""Small Streamlit widgets used by several pages (one definition each)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.formatting import markdown_safe
from dashboard.generation import DEFAULT_GENERATION, GenerationOOMError, GenerationSettings
from dashboard.models.pool import CheckpointLoadError
from dashboard.paths import PathOutsideRoots, resolve_within
from dashboard.ui import state
from dashboard.ui.resources import get_pool, get_run, get_settings

_SHARED = DEFAULT_GENERATION
DEFAULT_MAX_NEW_TOKENS = _SHARED.max_new_tokens
SETTING_DEFAULTS: Mapping[str, object] = {
    "max_new_tokens": _SHARED.max_new_tokens, "num_beams": _SHARED.num_beams, "seed": _SHARED.seed,
    "decoding": "Sampling" if _SHARED.do_sample else "Greedy", "temperature": _SHARED.temperature,
    "top_p": _SHARED.top_p}
"""The one generation default of every page (:data:`dashboard.generation.DEFAULT_GENERATION`, which the
CLI uses too); a page may override
single values through ``generation_settings_form(defaults=...)``."""


def generation_settings_form(prefix: str, label: str = "Generation settings",
                             defaults: Mapping[str, object] | None = None) -> GenerationSettings:
    """Generation-settings widgets under ``prefix.*`` keys; greedy by default (reproducible).

    Defaults go through ``session_state`` rather than widget arguments so that
    :func:`apply_generation_settings` (a history re-run) can set them.
    """
    for name, value in {**SETTING_DEFAULTS, **(defaults or {})}.items():
        st.session_state.setdefault(f"{prefix}.{name}", value)
    cap = _max_new_tokens_cap()
    if int(st.session_state[f"{prefix}.max_new_tokens"]) > cap:  # e.g. a history re-run from before the cap
        st.session_state[f"{prefix}.max_new_tokens"] = cap
    if int(st.session_state[f"{prefix}.num_beams"]) > _max_beams():
        st.session_state[f"{prefix}.num_beams"] = _max_beams()
    with st.expander(label, expanded=False):
        c1, c2, c3 = st.columns(3)
        max_new = c1.number_input("Max new tokens", 1, _max_new_tokens_cap(), key=f"{prefix}.max_new_tokens")
        beams = c2.number_input("Beams", 1, _max_beams(), key=f"{prefix}.num_beams")
        seed = c3.number_input("Seed", 0, 2**31 - 1, key=f"{prefix}.seed")
        decoding = st.radio("Decoding", ["Greedy", "Sampling"], horizontal=True, key=f"{prefix}.decoding")
        sampling = decoding == "Sampling"
        c4, c5 = st.columns(2)
        temperature = c4.slider("Temperature", 0.05, 2.0, step=0.05, key=f"{prefix}.temperature",
                                disabled=not sampling)
        top_p = c5.slider("Top-p", 0.05, 1.0, step=0.05, key=f"{prefix}.top_p", disabled=not sampling)
    return GenerationSettings(max_new_tokens=int(max_new), do_sample=sampling, temperature=float(temperature),
                              top_p=float(top_p), num_beams=int(beams), seed=int(seed))


def _max_new_tokens_cap() -> int:
    """4096 locally; public mode's per-visitor cap (a stored larger value is clamped into range first)."""
    from dashboard.public import LIMITS, public_mode

    return LIMITS.max_new_tokens if public_mode() else 4096


def _max_beams() -> int:
    """16 locally; public mode's cap."""
    from dashboard.public import LIMITS, public_mode

    return LIMITS.max_beams if public_mode() else 16


def apply_generation_settings(prefix: str, settings: Mapping[str, Any]) -> None:
    """Put stored settings back into the form (only valid before it is drawn this run)."""
    st.session_state[f"{prefix}.max_new_tokens"] = int(settings.get("max_new_tokens", _SHARED.max_new_tokens))
    st.session_state[f"{prefix}.num_beams"] = int(settings.get("num_beams", _SHARED.num_beams))
    st.session_state[f"{prefix}.seed"] = int(settings.get("seed", _SHARED.seed))
    st.session_state[f"{prefix}.decoding"] = "Sampling" if settings.get("do_sample") else "Greedy"
    st.session_state[f"{prefix}.temperature"] = float(settings.get("temperature", _SHARED.temperature))
    st.session_state[f"{prefix}.top_p"] = float(settings.get("top_p", _SHARED.top_p))


def confined(path: str | Path | None, what: str = "Path") -> Path | None:
    """``path`` resolved inside the runs roots, or None with an error shown (never raises)."""
    if path is None:
        return None
    try:
        return resolve_within(path, get_settings().runs_roots)
    except PathOutsideRoots as exc:
        st.error(markdown_safe(f"{what} refused: {exc}"))
        return None


def why_no_checkpoint() -> str:
    """What a page that needs a checkpoint says when there is none: which run, and why."""
    from dashboard.demo.jobs import running_build  # no trainer import: only the job registry

    run_path = state.selected_run()
    building = running_build()
    if run_path is None and building is not None:
        return (f"The demo run is being built ({building.fraction:.0%}: {markdown_safe(building.message)}); "
                "this page is ready when it is. Home shows the progress.")
    if run_path is None:
        return "Pick a run and a checkpoint in the sidebar first."
    try:
        run = get_run(run_path)
    except (PathOutsideRoots, OSError) as exc:
        return markdown_safe(f"Run {Path(run_path).name} cannot be used: {exc}")
    return markdown_safe(run.why_not_loadable() or f"Pick a checkpoint of run {run.name} in the sidebar.")


def scroll_into_view(container_key: str) -> None:
    """Scroll the container created with ``st.container(key=container_key)`` into view (once, on this run):
    what a click produced must not appear outside the viewport. ``container_key`` is code, never run text."""
    if not container_key.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"not a container key: {container_key!r}")
    # A counter makes every call's element new: the frontend runs a script when its element changes, so an
    # unchanged script (the same panel scrolled to again after another click) would never run a second time.
    nonce = st.session_state.get("_scroll_nonce", 0) + 1
    st.session_state["_scroll_nonce"] = nonce
    # In a function: every such script runs in the page's global scope (a second top-level const would throw).
    st.html(f"<script>(() => {{ /* {nonce} */ const el = document.querySelector('.st-key-{container_key}');"
            "if (el) { el.scrollIntoView({block: 'center'}); } })();</script>", unsafe_allow_javascript=True)


def show_model_error(exc: Exception, context: str = "Generation failed") -> None:
    """Explain a load/generation failure; after an out-of-memory error free what the pool can."""
    from dashboard.models.turns import QueueTimeoutError
    from dashboard.public import VisitorLimitError

    if isinstance(exc, (QueueTimeoutError, VisitorLimitError)):
        st.warning(markdown_safe(f"Not run: {exc}"))
    elif isinstance(exc, GenerationOOMError):
        get_pool().recover_after_oom()
        st.error(markdown_safe(f"{exc}. Unused models were evicted; try again."))
    elif isinstance(exc, CheckpointLoadError):
        st.error(markdown_safe(f"Cannot load checkpoint: {exc}"))
    else:
        st.error(markdown_safe(f"{context}: {exc}"))
