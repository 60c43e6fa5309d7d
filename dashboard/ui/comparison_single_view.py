"""Comparison, one example: the same image + prompt through every chosen checkpoint, word-diffed.

Model output is only ever shown through ``dashboard.compare.diff`` (escaped HTML).
"""

from __future__ import annotations

import streamlit as st

from dashboard.admission import Job
from dashboard.compare.diff import diff_html, escape_text, plain_html, similarity
from dashboard.compare.export import checkpoint_metadata, single_export, to_csv_bytes, to_json_bytes
from dashboard.compare.results import safe_name
from dashboard.compare.runner import SingleOutput, cache_key, compare_single, settings_dict
from dashboard.formatting import fmt_rate, fmt_seconds, markdown_safe
from dashboard.generation import GenerationSettings
from dashboard.public import VisitorLimitError, scrub_paths
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.run import RunData
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import admitted
from dashboard.ui.history_input import pick_history_item
from dashboard.ui.image_input import pick_image
from dashboard.ui.resources import get_pool, get_settings

K_CACHE = "cmp.cache"
K_FAILED = "cmp.failed"
K_PROMPT = "cmp.prompt"
K_PROMPT_SRC = "cmp.prompt_source"
K_HISTORY = "cmp.history_id"


def prompt_input(source_id: str, suggested: str) -> str:
    """Prompt box that takes the example's/history item's prompt when the source changes."""
    if st.session_state.get(K_PROMPT_SRC) != source_id:
        st.session_state[K_PROMPT_SRC] = source_id
        if suggested:
            st.session_state[K_PROMPT] = suggested
    return st.text_area("Prompt", key=K_PROMPT, height=80, placeholder="e.g. where is the red object ?")


def render_outputs(outputs: list[SingleOutput], reference: str, show_deleted: bool) -> None:
    ref_text = next((o.text for o in outputs if o.name == reference and o.ok), "")
    per_row = min(4, len(outputs))
    for start in range(0, len(outputs), per_row):
        for column, out in zip(st.columns(per_row), outputs[start:start + per_row], strict=False):
            with column, st.container(border=True):
                tag = " · reference" if out.name == reference else ""
                st.html(f"<strong>{escape_text(out.name)}</strong>{tag}")
                if not out.ok:
                    st.error(markdown_safe(out.error or "failed"))
                    continue
                body = plain_html(out.text) if out.name == reference else diff_html(ref_text, out.text,
                                                                                     show_deleted=show_deleted)
                st.html(body)
                st.caption(f"{out.output_tokens} tokens out · {out.prompt_tokens} in · "
                           f"decode {fmt_rate(out.tokens_per_s)} · first token {fmt_seconds(out.ttft_s)}")
                st.caption(f"end to end {fmt_seconds(out.generation_s)} · load {fmt_seconds(out.load_s)}"
                           + (" · cached" if out.cached else "")
                           + ("" if out.name == reference else f" · {similarity(ref_text, out.text):.0%} similar"))


def export_buttons(data: dict, stem: str, key: str) -> None:
    c1, c2 = st.columns(2)
    c1.download_button("Download JSON", to_json_bytes(data), f"{stem}.json", "application/json",
                       key=f"cmp.dl.{key}.json", on_click="ignore")
    c2.download_button("Download CSV", to_csv_bytes(data), f"{stem}.csv", "text/csv",
                       key=f"cmp.dl.{key}.csv", on_click="ignore")


def render_single_example(run: RunData, infos: list[CheckpointInfo], gen: GenerationSettings) -> None:
    source = st.radio("Input", ["Image", "History item"], horizontal=True, key="cmp.input")
    if source == "Image":
        picked = pick_image("cmp.img", run.path)
        suggested = picked.example.prompt if picked is not None and picked.example is not None else ""
        source_id = f"img:{picked.digest if picked else ''}:{picked.example.id if picked and picked.example else ''}"
    else:
        picked, suggested = pick_history_item(K_HISTORY)
        source_id = f"hist:{st.session_state.get(K_HISTORY)}"
    prompt = prompt_input(source_id, suggested)
    if picked is None:
        st.info("Choose an image (upload, demo gallery or history) to compare outputs.")
        return
    if not prompt.strip():
        st.info("Enter a prompt.")
        return
    cache: dict = st.session_state.setdefault(K_CACHE, {})
    failed: dict = st.session_state.setdefault(K_FAILED, {})
    keys = {c.name: cache_key(c.path, picked.digest, prompt, gen) for c in infos}
    missing = [c for c in infos if keys[c.name] not in cache]
    label = f"Run {len(missing)} checkpoint(s)" if missing else "All outputs cached"
    if st.button(label, type="primary", disabled=not missing, key="cmp.run_single"):
        bar = st.progress(0.0, text="starting")
        try:
            with admitted(Job.generating("Comparison", gen, checkpoints=len(missing))):
                outs = compare_single(get_pool(), [c.path for c in missing], picked.image, prompt, gen, cache,
                                      image_digest=picked.digest, should_stop=session_gone_check(),
                                      on_progress=lambda d, t, m: bar.progress(
                                          d / max(t, 1), text=markdown_safe(f"{d}/{t} · {m}")))
        except VisitorLimitError as exc:
            st.warning(markdown_safe(f"Not run: {exc}"))
            return
        for out in outs:
            failed.pop(keys[out.name], None)
            if not out.ok:
                failed[keys[out.name]] = out
        st.rerun()  # redraw the button and the columns from the cache
    outputs = [o for o in (cache.get(keys[c.name]) or failed.get(keys[c.name]) for c in infos) if o is not None]
    if not outputs:
        return
    ok_names = [o.name for o in outputs if o.ok]
    if not ok_names:
        for out in outputs:
            st.error(markdown_safe(f"{out.name}: {out.error}"))
        return
    c1, c2 = st.columns([3, 1])
    reference = c1.selectbox("Reference checkpoint (diffs are against its output)", ok_names,
                             index=len(ok_names) - 1, key="cmp.reference")
    show_deleted = c2.toggle("Show removed words", value=True, key="cmp.show_deleted")
    render_outputs(outputs, reference, show_deleted)
    meta = {c.name: checkpoint_metadata(c) for c in infos}
    data = single_export(outputs, reference=reference, prompt=prompt, image_name=picked.name,
                         image_digest=picked.digest, settings=settings_dict(gen), checkpoints=meta)
    export_buttons(scrub_paths(data, get_settings().runs_roots), f"comparison-{safe_name(run.name)}", "single")
