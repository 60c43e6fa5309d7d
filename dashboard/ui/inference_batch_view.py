"""Inference, batch mode: many images (uploads or eval-set examples) through one checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.generation import (
    GenerationInputError,
    GenerationOOMError,
    GenerationSettings,
    generate_batch,
    result_stats,
)
from dashboard.history import HistoryRecord
from dashboard.models.pool import CheckpointLoadError
from dashboard.ui.image_input import PickedImage, pick_images_batch
from dashboard.ui.inference_history_view import save_history
from dashboard.ui.resources import get_pool
from dashboard.ui.widgets import generation_settings_form, show_model_error

K_BATCH = "inf.batch_results"


def render_batch_mode(checkpoint: Path, run_dir: Path | None) -> None:
    images = pick_images_batch("inf.batch", run_dir)
    from_examples = bool(images) and all(p.example is not None for p in images)
    own_prompts = from_examples and st.checkbox("Use each example's own prompt", value=True, key="inf.batch_own")
    prompt = "" if own_prompts else st.text_area("Prompt (applied to every image)", key="inf.batch_prompt")
    settings = generation_settings_form("inf.batch")
    batch_size = st.number_input("Batch size", 1, 64, 4, key="inf.batch_size",
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
    rows = st.session_state.get(K_BATCH)
    if rows:
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True)
        c1, c2 = st.columns(2)
        c1.download_button("Download CSV", table.to_csv(index=False).encode(), "batch_results.csv", "text/csv",
                           key="inf.batch_csv")
        c2.download_button("Download JSON", json.dumps(rows, indent=1).encode(), "batch_results.json",
                           "application/json", key="inf.batch_json")


def run_batch(checkpoint: Path, run_dir: Path | None, images: list[PickedImage], prompts: list[str],
              settings: GenerationSettings, batch_size: int) -> None:
    progress = st.progress(0.0, text=f"0 / {len(images)}")
    pool = get_pool()
    try:
        with pool.acquire(checkpoint) as loaded:
            results = generate_batch(loaded, [p.image for p in images], prompts, settings, batch_size=batch_size,
                                     on_progress=lambda done, total: progress.progress(
                                         done / total, text=f"{done} / {total}"))
    except (CheckpointLoadError, GenerationInputError, GenerationOOMError) as exc:
        show_model_error(exc)
        return
    rows, records = [], []
    for picked, prompt, result in zip(images, prompts, results, strict=True):
        stats = result_stats(result)
        row = {"image": picked.name, "prompt": prompt, "output": result.text, **stats}
        if picked.example is not None:
            row["reference"] = picked.example.answer
            row["exact_match"] = result.text.strip().lower() == picked.example.answer.strip().lower()
        rows.append(row)
        records.append(HistoryRecord.from_generation(
            checkpoint=checkpoint, prompt=prompt, output=result.text, settings=json.loads(settings.key()),
            timings=stats, image=picked.image, image_name=picked.name, run=run_dir,
            example_id=picked.example.id if picked.example else None, mode="batch"))
    save_history(records)
    st.session_state[K_BATCH] = rows
