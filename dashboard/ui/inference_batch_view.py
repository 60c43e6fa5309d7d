"""Inference, batch mode: many images (uploads or eval-set examples) through one checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.admission import Job
from dashboard.batch import BatchItem, batch_rows, batch_summary
from dashboard.csv_export import rows_csv_bytes
from dashboard.formatting import display_table
from dashboard.generation import (
    GenerationCancelled,
    GenerationInputError,
    GenerationOOMError,
    GenerationSettings,
    check_cancelled,
    generate_batch,
    result_stats,
)
from dashboard.history import HistoryRecord
from dashboard.models.pool import CheckpointLoadError
from dashboard.provenance import provenance, with_provenance
from dashboard.public import scrub_paths
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.gate import admitted, generation_turn, max_batch_size
from dashboard.ui.image_input import PickedImage, pick_images_batch
from dashboard.ui.inference_history_view import save_history
from dashboard.ui.resources import get_settings
from dashboard.ui.widgets import generation_settings_form, show_model_error

K_BATCH = "inf.batch_results"


def render_batch_mode(checkpoint: Path, run_dir: Path | None) -> None:
    images = pick_images_batch("inf.batch", run_dir)
    from_examples = bool(images) and all(p.example is not None for p in images)
    own_prompts = from_examples and st.checkbox("Use each example's own prompt", value=True, key="inf.batch_own")
    prompt = "" if own_prompts else st.text_area("Prompt (applied to every image)", key="inf.batch_prompt")
    settings = generation_settings_form("inf.batch")
    most = max_batch_size()
    batch_size = st.number_input("Batch size", 1, most, min(4, most), key="inf.batch_size",
                                 help="Images processed together (left-padded); timings are per chunk.")
    st.caption(f"{len(images)} image(s) ready.")
    if st.button("Run batch", type="primary", key="inf.batch_run"):
        prompts = [p.example.prompt for p in images if p.example] if own_prompts else [prompt] * len(images)
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
        csv = rows_csv_bytes(with_provenance(rows, block))
        c1.download_button("Download CSV", csv, "batch_results.csv", "text/csv", key="inf.batch_csv")
        c2.download_button("Download JSON", json.dumps({"provenance": block, "rows": rows}, indent=1).encode(),
                           "batch_results.json", "application/json", key="inf.batch_json")


def run_batch(checkpoint: Path, run_dir: Path | None, images: list[PickedImage], prompts: list[str],
              settings: GenerationSettings, batch_size: int) -> None:
    progress = st.progress(0.0, text=f"0 / {len(images)}")
    results = []
    should_stop = session_gone_check()
    try:
        with admitted(Job.generating("Batch inference", settings, examples=len(images))):
            for start in range(0, len(images), batch_size):  # one turn per chunk: others get theirs between
                check_cancelled(should_stop, checkpoint.name)  # before waiting for the next turn
                with generation_turn(checkpoint) as loaded:
                    results += generate_batch(loaded, [p.image for p in images[start:start + batch_size]],
                                              prompts[start:start + batch_size], settings, batch_size=batch_size,
                                              should_stop=should_stop)
                progress.progress(len(results) / len(images), text=f"{len(results)} / {len(images)}")
    except GenerationCancelled:  # the browser session went away mid-batch: nobody to show rows to
        return
    except (CheckpointLoadError, GenerationInputError, GenerationOOMError) as exc:
        show_model_error(exc)
        return
    items = [BatchItem(p.name, prompt, p.example.answer if p.example else None) for p, prompt in zip(
        images, prompts, strict=True)]
    rows = batch_rows(items, results)
    source = next((p.source for p in images if p.source is not None), None)
    block = scrub_paths(provenance(run=run_dir, checkpoint=checkpoint, settings=json.loads(settings.key()),
                                   eval_set=source, roots=get_settings().runs_roots), get_settings().runs_roots)
    records = []
    for picked, prompt, result in zip(images, prompts, results, strict=True):
        stats = result_stats(result)
        records.append(HistoryRecord.from_generation(
            checkpoint=checkpoint, prompt=prompt, output=result.text, settings=json.loads(settings.key()),
            timings=stats, image=picked.image, image_name=picked.name, run=run_dir,
            example_id=picked.example.id if picked.example else None, mode="batch"))
    save_history(records)
    st.session_state[K_BATCH] = {"rows": rows, "provenance": block}
