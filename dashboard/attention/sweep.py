"""Attention workflows over several checkpoints: the same token across checkpoints, pointing per checkpoint.

Kept out of the page so the loops (acquire each model from the pool, capture, collect the
failures next to what worked) are testable without Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from dashboard.attention.adapters import NEEDS_TORCHVISION, LayoutError, UnsupportedFamily, adapter_for
from dashboard.attention.analysis import AttentionRun, analyse, pointing_over_checkpoints
from dashboard.attention.hooks import CaptureError
from dashboard.generation import GenerationInputError, GenerationOOMError, check_cancelled
from dashboard.images import DEFAULT_MAX_PIXELS
from dashboard.models.pool import CheckpointLoadError
from dashboard.models.turns import WaitCallback
from dashboard.paths import PathOutsideRoots
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.load_plan import plan_checkpoint

ANALYSIS_ERRORS: tuple[type[Exception], ...] = (
    CheckpointLoadError, GenerationInputError, GenerationOOMError, UnsupportedFamily, LayoutError, CaptureError,
    PathOutsideRoots)
"""What capturing on one checkpoint may raise and the user can act on (shown, never fatal).

A cancel (:class:`~dashboard.generation.GenerationCancelled`, the page's ``should_stop`` turned
True) is not among them: it ends the whole workflow, and the page stops drawing.
"""

StopCheck = Callable[[], bool] | None


def capture(pool: Any, checkpoint: str | Path, image: Image.Image, prompt: str, max_new_tokens: int,
            forced: tuple[int, ...] = (), should_stop: StopCheck = None,
            on_wait: WaitCallback | None = None, more_images: Sequence[Image.Image] = ()) -> AttentionRun:
    """Generate on one pooled checkpoint with attention capture (logit lens only for a free generation).

    One FIFO turn on the checkpoint; ``on_wait`` is told the place in its queue while waiting. A family
    whose processor cannot be built here (:data:`NEEDS_TORCHVISION`) is refused first, saying why there
    is no map, rather than with the loader's import error.
    """
    roots = getattr(pool, "roots", None) or (Path(checkpoint).resolve().parent,)
    model_type = plan_checkpoint(Path(checkpoint), roots).model_type
    if model_type in NEEDS_TORCHVISION:
        adapter_for(model_type)  # raises UnsupportedFamily with the reason (unless torchvision is installed)
    with pool.turn(Path(checkpoint), on_wait=on_wait) as loaded:
        return analyse(loaded, image, prompt, max_new_tokens=max_new_tokens, forced=forced,
                       lens_top_k=5 if not forced else 0, lens_image_tokens=not forced, should_stop=should_stop,
                       more_images=more_images)


def capture_across(pool: Any, checkpoints: Sequence[str], image: Image.Image, prompt: str,
                   forced: tuple[int, ...], should_stop: StopCheck = None,
                   ) -> tuple[dict[str, AttentionRun], dict[str, Exception]]:
    """The next token after ``prompt`` + ``forced`` on every checkpoint (teacher forcing)."""
    runs: dict[str, AttentionRun] = {}
    errors: dict[str, Exception] = {}
    for path in checkpoints:
        check_cancelled(should_stop, Path(path).name)
        try:
            runs[path] = capture(pool, path, image, prompt, 1, forced, should_stop)
        except ANALYSIS_ERRORS as exc:
            errors[path] = exc
    return runs, errors


def pointing_per_checkpoint(pool: Any, checkpoints: Sequence[CheckpointInfo], examples: Sequence[Any],
                            max_examples: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                            on_progress: Callable[[int, int, str], None] | None = None,
                            should_stop: StopCheck = None,
                            ) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Pointing summary per checkpoint path (with its step, name and the right/wrong split), plus failures.

    Scored by :func:`dashboard.attention.analysis.pointing_over_checkpoints`, the function behind
    ``python -m dashboard pointing``, so the page and the CLI print the same numbers.
    """
    rows: dict[str, dict[str, Any]] = {}
    errors: dict[str, Exception] = {}

    def progress(done: int, total: int, name: str) -> None:
        if on_progress is not None:
            on_progress(done, total, name)

    for item in pointing_over_checkpoints(pool, checkpoints, examples, max_examples=max_examples,
                                          errors=ANALYSIS_ERRORS, max_pixels=max_pixels, progress=progress,
                                          should_stop=should_stop):
        if item.report is None:
            errors[item.path] = item.exception if isinstance(item.exception, Exception) else RuntimeError(item.error)
            continue
        rows[item.path] = {**item.report.summary(), "step": item.step, "name": item.name,
                           "split": item.report.split_by_correctness(), "examples": item.report.examples()}
    return rows, errors
