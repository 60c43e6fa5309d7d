"""Attention workflows over several checkpoints: the same token across checkpoints, pointing per checkpoint.

Kept out of the page so the loops (acquire each model from the pool, capture, collect the
failures next to what worked) are testable without Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from dashboard.attention.adapters import LayoutError, UnsupportedFamily
from dashboard.attention.analysis import AttentionRun, analyse, pointing_report
from dashboard.attention.capture import CaptureError
from dashboard.generation import GenerationInputError, GenerationOOMError
from dashboard.images import DEFAULT_MAX_PIXELS
from dashboard.models.pool import CheckpointLoadError
from dashboard.paths import PathOutsideRoots
from dashboard.runs.checkpoints import CheckpointInfo

ANALYSIS_ERRORS: tuple[type[Exception], ...] = (
    CheckpointLoadError, GenerationInputError, GenerationOOMError, UnsupportedFamily, LayoutError, CaptureError,
    PathOutsideRoots)
"""What capturing on one checkpoint may raise and the user can act on (shown, never fatal)."""


def capture(pool: Any, checkpoint: str | Path, image: Image.Image, prompt: str, max_new_tokens: int,
            forced: tuple[int, ...] = ()) -> AttentionRun:
    """Generate on one pooled checkpoint with attention capture (logit lens only for a free generation)."""
    with pool.turn(Path(checkpoint)) as loaded:
        return analyse(loaded, image, prompt, max_new_tokens=max_new_tokens, forced=forced,
                       lens_top_k=5 if not forced else 0, lens_image_tokens=not forced)


def capture_across(pool: Any, checkpoints: Sequence[str], image: Image.Image, prompt: str,
                   forced: tuple[int, ...]) -> tuple[dict[str, AttentionRun], dict[str, Exception]]:
    """The next token after ``prompt`` + ``forced`` on every checkpoint (teacher forcing)."""
    runs: dict[str, AttentionRun] = {}
    errors: dict[str, Exception] = {}
    for path in checkpoints:
        try:
            runs[path] = capture(pool, path, image, prompt, 1, forced)
        except ANALYSIS_ERRORS as exc:
            errors[path] = exc
    return runs, errors


def pointing_per_checkpoint(pool: Any, checkpoints: Sequence[CheckpointInfo], examples: Sequence[Any],
                            max_examples: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                            on_progress: Callable[[int, int, str], None] | None = None,
                            ) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Pointing summary per checkpoint path (with its step and name), plus per-checkpoint failures."""
    rows: dict[str, dict[str, Any]] = {}
    errors: dict[str, Exception] = {}
    for i, info in enumerate(checkpoints):
        try:
            with pool.turn(info.path) as loaded:
                report = pointing_report(loaded, examples, max_examples=max_examples, max_pixels=max_pixels)
        except ANALYSIS_ERRORS as exc:
            errors[str(info.path)] = exc
            continue
        rows[str(info.path)] = {**report.summary(), "step": info.step, "name": info.name}
        if on_progress is not None:
            on_progress(i + 1, len(checkpoints), info.name)
    return rows, errors
