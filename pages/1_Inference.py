"""Inference: image + prompt → streamed answer on the selected checkpoint; batch mode; history.

Thin page: loading, generation, image decoding and persistence live in ``dashboard``.
"""

from __future__ import annotations

import io
import json
import time
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.batch import BatchItem, batch_rows, batch_summary
from dashboard.formatting import display_table, fmt_rate, fmt_seconds, markdown_safe
from dashboard.generation import (
    GenerationInputError,
    GenerationOOMError,
    GenerationSettings,
    format_prompt,
    generate_batch,
    result_stats,
    stream,
)
from dashboard.history import HistoryError, HistoryRecord
from dashboard.images import ImageError, image_digest, load_image
from dashboard.models.pool import CheckpointLoadError
from dashboard.provenance import provenance, with_provenance
from dashboard.thumbnails import png_data_uri
from dashboard.ui import state
from dashboard.ui.image_input import PickedImage, pick_image, pick_images_batch
from dashboard.ui.resources import get_history, get_settings
from dashboard.ui.visitor import generation_turn, visitor_limits
from dashboard.ui.widgets import apply_generation_settings, confined, generation_settings_form, show_model_error

MODES = ["Single", "Batch", "History"]
K_MODE = "inf.mode"
K_LAST = "inf.last"
K_SESSION = "inf.session_history"
K_RERUN = "inf.rerun"
K_BATCH = "inf.batch_results"


# ------------------------------------------------------------------------- helpers

def show_stats(stats: dict) -> None:
    cols = st.columns(6)
    cols[0].metric("Latency", fmt_seconds(stats["latency_s"]), help="End to end: preprocessing + prefill + decode.")
    cols[1].metric("Preprocessing", fmt_seconds(stats.get("preprocess_s")),
                   help="The processor: image resize/normalise, chat template, tokenising.")
    cols[2].metric("Time to first token", fmt_seconds(stats.get("ttft_s")), help="The prefill, from generate's start.")
    cols[3].metric("Decode", fmt_rate(stats.get("tokens_per_s")),
                   help="Tokens after the first ÷ time after the first token (— for a one-token answer).")
    cols[4].metric("Input tokens", stats["prompt_tokens"])
    cols[5].metric("Output tokens", stats["output_tokens"])


def save_history(records: list[HistoryRecord]) -> None:
    """Persist, and mirror into session_state; a failing database is reported, results are kept."""
    st.session_state.setdefault(K_SESSION, []).extend(r.export_dict() for r in records)
    try:
        get_history().add_many(records)
    except HistoryError as exc:
        st.warning(f"Result shown but not saved to history: {exc}")


def start_rerun(record_id: int) -> None:
    """Callback: put a history row back into the single-mode form."""
    record = get_history().get(record_id)
    if record is None:
        return
    st.session_state[K_RERUN] = record_id
    st.session_state["inf.prompt"] = record.prompt
    st.session_state["inf.prefill"] = record.prefill
    apply_generation_settings("inf", record.settings)
    st.session_state[K_MODE] = "Single"
    if record.checkpoint != str(state.selected_checkpoint()):
        state.put(state.CHECKPOINT_PATH, record.checkpoint)
        if record.run:
            state.put(state.RUN_PATH, record.run)


def rerun_image() -> PickedImage | None:
    """The stored image of the history row being re-run, if any."""
    record_id = st.session_state.get(K_RERUN)
    if record_id is None:
        return None
    record = get_history().get(record_id)
    if record is None:
        st.session_state.pop(K_RERUN, None)
        return None
    if record.image is None:
        st.warning(f"History #{record_id}: the original image was too large to store; pick the image again.")
        return None
    try:
        image = load_image(record.image, max_pixels=get_settings().max_image_pixels)
    except ImageError as exc:
        st.error(f"History #{record_id}: stored image unusable: {exc}")
        return None
    return PickedImage(image=image, name=record.image_name or f"history #{record_id}", digest=image_digest(image))


# ------------------------------------------------------------------------- modes
def single_mode(checkpoint: Path, run_dir: Path | None) -> None:
    picked = rerun_image()
    if picked is not None:
        c1, c2 = st.columns([3, 1])
        c1.image(picked.image, caption=f"Re-running with {picked.name}", width=256)
        if c2.button("Choose another image", key="inf.clear_rerun"):
            st.session_state.pop(K_RERUN, None)
            st.rerun()
    else:
        picked = pick_image("inf", run_dir)
    example = picked.example if picked else None
    if example is not None and st.session_state.get("inf.example_seen") != example.id:
        st.session_state["inf.example_seen"] = example.id
        st.session_state["inf.prompt"] = example.prompt  # suggest the example's own question
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
        st.markdown(f"**Answer** ({Path(last['checkpoint']).name}): {markdown_safe(last['prefill'])}"
                    f"{markdown_safe(last['output'])}")
        show_stats(last["timings"])


def run_single(checkpoint: Path, run_dir: Path | None, picked: PickedImage, prompt: str, prefill: str,
               settings: GenerationSettings) -> None:
    try:
        with ExitStack() as stack:
            with st.spinner(f"Waiting for a turn on {checkpoint.name}…"):
                loaded = stack.enter_context(generation_turn(checkpoint, settings))  # our turn until the stream ends
            generation = stream(loaded, picked.image, prompt, settings, prefill)
            templated = format_prompt(loaded, prompt.strip(), prefill.strip())
            with st.expander("Prompt as sent to the model (chat template applied)"):
                st.code(templated, language=None, wrap_lines=True)
            st.markdown(f"**Answer** ({checkpoint.name}):")
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


def batch_mode(checkpoint: Path, run_dir: Path | None) -> None:
    images = pick_images_batch("inf.batch", run_dir)
    from_examples = bool(images) and all(p.example is not None for p in images)
    own_prompts = from_examples and st.checkbox("Use each example's own prompt", value=True, key="inf.batch_own")
    prompt = "" if own_prompts else st.text_area("Prompt (applied to every image)", key="inf.batch_prompt")
    settings = generation_settings_form("inf.batch")
    batch_size = st.number_input("Batch size", 1, 64, 4, key="inf.batch_size",
                                 help="Images processed together (left-padded); timings are per chunk.")
    st.caption(f"{len(images)} image(s) ready.")
    if st.button("Run batch", type="primary", key="inf.batch_run"):
        prompts = [p.example.prompt for p in images] if own_prompts else [prompt] * len(images)
        if not images:
            st.error("No image: add images (upload several, or choose eval-set examples) first.")
        elif any(not p.strip() for p in prompts):
            st.error("The prompt is empty: type a question or instruction.")
        else:
            run_batch(checkpoint, run_dir, images, prompts, settings, int(batch_size))
    saved = st.session_state.get(K_BATCH)
    if saved:
        rows, block = saved["rows"], saved["provenance"]
        st.markdown(f"**{batch_summary(rows)}**")
        table = pd.DataFrame(rows)
        shown = table.drop(columns=["latency_s", "preprocess_s", "ttft_s", "decode_s"], errors="ignore")
        st.dataframe(display_table(shown, {"per_example_s": "seconds", "tokens_per_s": "rate"}), hide_index=True)
        st.caption("per_example_s: each row's share of its batch's wall time (batch time ÷ batch_size); the "
                   "exports keep the batch's own phase timings too.")
        c1, c2 = st.columns(2)
        csv = pd.DataFrame(with_provenance(rows, block)).to_csv(index=False).encode()
        c1.download_button("Download CSV", csv, "batch_results.csv", "text/csv", key="inf.batch_csv")
        c2.download_button("Download JSON", json.dumps({"provenance": block, "rows": rows}, indent=1).encode(),
                           "batch_results.json", "application/json", key="inf.batch_json")


def run_batch(checkpoint: Path, run_dir: Path | None, images: list[PickedImage], prompts: list[str],
              settings: GenerationSettings, batch_size: int) -> None:
    progress = st.progress(0.0, text=f"0 / {len(images)}")
    results = []
    try:
        with visitor_limits(settings, sweep=(len(images), 1)):
            for start in range(0, len(images), batch_size):  # one turn per chunk: others get theirs between
                with generation_turn(checkpoint, limits=False) as loaded:
                    results += generate_batch(loaded, [p.image for p in images[start:start + batch_size]],
                                              prompts[start:start + batch_size], settings, batch_size=batch_size)
                progress.progress(len(results) / len(images), text=f"{len(results)} / {len(images)}")
    except (CheckpointLoadError, GenerationInputError, GenerationOOMError) as exc:
        show_model_error(exc)
        return
    items = [BatchItem(p.name, prompt, p.example.answer if p.example else None) for p, prompt in zip(
        images, prompts, strict=True)]
    rows = batch_rows(items, results)
    source = next((p.source for p in images if p.source is not None), None)
    block = provenance(run=run_dir, checkpoint=checkpoint, settings=json.loads(settings.key()), eval_set=source,
                       roots=get_settings().runs_roots)
    records = []
    for picked, prompt, result in zip(images, prompts, results, strict=True):
        stats = result_stats(result)
        records.append(HistoryRecord.from_generation(
            checkpoint=checkpoint, prompt=prompt, output=result.text, settings=json.loads(settings.key()),
            timings=stats, image=picked.image, image_name=picked.name, run=run_dir,
            example_id=picked.example.id if picked.example else None, mode="batch"))
    save_history(records)
    st.session_state[K_BATCH] = {"rows": rows, "provenance": block}


def history_mode() -> None:
    try:
        history = get_history()
        checkpoints = history.distinct("checkpoint")
    except HistoryError as exc:
        st.error(str(exc))
        return
    c1, c2 = st.columns([2, 2])
    ckpt_filter = c1.selectbox("Checkpoint", ["all", *checkpoints], key="inf.hist_ckpt",
                               format_func=lambda p: p if p == "all" else "/".join(Path(p).parts[-2:]))
    text_filter = c2.text_input("Search prompt / output", key="inf.hist_text")
    records = history.list(checkpoint=None if ckpt_filter == "all" else ckpt_filter, text=text_filter or None)
    st.caption(f"{len(records)} record(s) shown · {history.count()} stored in {history.path}")
    if not records:
        st.info("No generations recorded yet (or none match the filter).")
        return
    table = pd.DataFrame([{
        "id": r.id, "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at)),
        "image": png_data_uri(r.thumbnail), "checkpoint": Path(r.checkpoint).name, "prompt": r.prompt,
        "output": r.output, "mode": r.mode, "decode": fmt_rate(r.timings.get("tokens_per_s")),
        "latency": fmt_seconds(r.timings.get("per_example_s", r.timings.get("latency_s")))} for r in records])
    st.dataframe(table, hide_index=True, column_config={"image": st.column_config.ImageColumn("image")})
    ids = [r.id for r in records]
    by_id = {r.id: r for r in records}
    chosen = st.selectbox("Record", ids, key="inf.hist_pick",
                          format_func=lambda i: f"#{i} · {Path(by_id[i].checkpoint).name} · {by_id[i].prompt[:40]}")
    b1, b2, b3 = st.columns(3)
    b1.button("Re-run", key="inf.hist_rerun", on_click=start_rerun, args=(chosen,),
              help="Put checkpoint, prompt, settings and image back into the Single form")
    if b2.button("Delete", key="inf.hist_delete"):
        history.delete(int(chosen))
        st.rerun()
    if b3.button(f"Delete all {len(records)} shown", key="inf.hist_delete_all"):
        history.delete(ids)
        st.rerun()
    rows = history.export_rows(records)
    d1, d2 = st.columns(2)
    buffer = io.StringIO()
    pd.DataFrame(rows).drop(columns=["settings", "timings"], errors="ignore").to_csv(buffer, index=False)
    d1.download_button("Export CSV", buffer.getvalue().encode(), "history.csv", "text/csv", key="inf.hist_csv")
    d2.download_button("Export JSON", json.dumps(rows, indent=1, default=str).encode(), "history.json",
                       "application/json", key="inf.hist_json")


# ------------------------------------------------------------------------- page
st.title("Inference")
notice = state.get(state.NOTICE)
if notice:
    st.info(notice)
    state.put(state.NOTICE, None)
st.session_state.setdefault(K_MODE, "Single")
mode = st.segmented_control("Mode", MODES, key=K_MODE) or "Single"
if mode == "History":
    history_mode()
else:
    checkpoint = confined(state.selected_checkpoint(), "Checkpoint")
    if checkpoint is None:
        st.info("Pick a run and a checkpoint in the sidebar first.")
    else:
        st.caption(f"Checkpoint: `{checkpoint}`")
        if mode == "Single":
            single_mode(checkpoint, state.selected_run())
        else:
            batch_mode(checkpoint, state.selected_run())
