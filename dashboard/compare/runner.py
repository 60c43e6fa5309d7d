"""Run checkpoints through the shared model pool for the Comparison page.

Two jobs: one (image, prompt) across 2–8 checkpoints, and a whole eval set across them.
Both avoid re-running models: single-example outputs are cached in-process by
(checkpoint path + signature, image digest, prompt, settings key); eval-set outputs are
saved per checkpoint (see :mod:`dashboard.compare.results`) after every chunk, so Stop — or
any interruption — keeps what was already computed and a later run only does the rest.
No Streamlit here: progress and stopping go through plain callables.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboard.compare.results import (
    CheckpointScores,
    checkpoint_signature,
    checkpoint_step,
    load_scores,
    save_scores,
)
from dashboard.evalset import EvalExample, EvalSet
from dashboard.metrics import score

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from PIL import Image

    from dashboard.generation import GenerationResult, GenerationSettings
    from dashboard.models.pool import ModelPool

Progress = Callable[[int, int, str], None]
"""``(done, total, message)`` — called after each unit of work."""


def _no_progress(done: int, total: int, message: str) -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class SingleOutput:
    """One checkpoint's answer to the chosen (image, prompt), or the error that prevented it."""

    checkpoint: Path
    name: str
    step: int | None
    text: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    generation_s: float = 0.0
    """End to end, preprocessing included (``GenerationResult.latency_s``)."""
    tokens_per_s: float | None = None
    """Decode rate (``GenerationResult.tokens_per_s``); None for a one-token answer."""
    ttft_s: float | None = None
    load_s: float = 0.0
    """Wall time to get the model from the pool (≈0 when it was already loaded)."""
    cached: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


CacheKey = tuple[str, str, str, str, str]


def cache_key(checkpoint: str | Path, image_digest: str, prompt: str, settings: GenerationSettings) -> CacheKey:
    """Key of the in-process output cache; a re-saved checkpoint gets a new signature."""
    path = Path(checkpoint).resolve()
    return (str(path), checkpoint_signature(path), image_digest, prompt, settings.key())


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def compare_single(pool: ModelPool, checkpoints: Sequence[str | Path], image: Image.Image, prompt: str,
                   settings: GenerationSettings, cache: MutableMapping[CacheKey, SingleOutput], *,
                   image_digest: str, on_progress: Progress = _no_progress,
                   should_stop: Callable[[], bool] = _never) -> list[SingleOutput]:
    """Generate with every checkpoint (cached ones are not re-run); errors stay per checkpoint."""
    from dashboard.generation import generate

    outputs: list[SingleOutput] = []
    total = len(checkpoints)
    for i, ckpt in enumerate(checkpoints):
        path = Path(ckpt)
        key = cache_key(path, image_digest, prompt, settings)
        if key in cache:
            outputs.append(dataclasses.replace(cache[key], cached=True))
            on_progress(i + 1, total, f"{path.name}: cached")
            continue
        if should_stop():
            break
        on_progress(i, total, f"{path.name}: loading")
        out = SingleOutput(checkpoint=path, name=path.name, step=checkpoint_step(path.name))
        try:
            t0 = time.perf_counter()
            with pool.acquire(path) as loaded:
                out.load_s = time.perf_counter() - t0
                on_progress(i, total, f"{path.name}: generating")
                with loaded.lock:
                    result = generate(loaded, image, prompt, settings)
        except Exception as exc:  # one bad checkpoint must not lose the others' outputs
            logger.warning("comparison: %s failed", path.name, exc_info=True)
            out.error = _error_text(exc)
        else:
            _fill(out, result)
            cache[key] = out
        outputs.append(out)
        on_progress(i + 1, total, f"{path.name}: {'failed' if out.error else 'done'}")
    return outputs


def _fill(out: SingleOutput, result: GenerationResult) -> None:
    out.text = result.text
    out.prompt_tokens = result.prompt_tokens
    out.output_tokens = result.output_tokens
    out.generation_s = result.latency_s
    out.tokens_per_s = result.tokens_per_s
    out.ttft_s = result.ttft_s


# ---------------------------------------------------------------------------------- eval sets


@dataclass
class EvalRun:
    """What :func:`run_eval` did: per-checkpoint scores plus timing and failures."""

    scores: dict[str, CheckpointScores]
    computed: int = 0
    reused: int = 0
    stopped: bool = False
    load_s: float = 0.0
    generation_s: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)
    saved_to: dict[str, Path] = field(default_factory=dict)


def settings_dict(settings: GenerationSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def prepare_scores(run_dir: Path, checkpoints: Sequence[str | Path], evalset: EvalSet,
                   settings: GenerationSettings, data_dir: Path | None = None) -> dict[str, CheckpointScores]:
    """Saved results that are still valid, rescored against the current answers; fresh ones otherwise.

    A saved file is reused only if it was made with the same generation settings and the
    checkpoint folder has not changed since; its rows are reused only for examples whose
    prompt and image are unchanged.
    """
    answers = {ex.id: ex.answer for ex in evalset.examples}
    by_id = evalset.by_id()
    out: dict[str, CheckpointScores] = {}
    for ckpt in checkpoints:
        path = Path(ckpt)
        signature = checkpoint_signature(path)
        saved = load_scores(run_dir, evalset.name, path.name, data_dir, eval_set_hash=evalset.content_hash,
                            settings_key=settings.key())
        if saved is not None and saved.settings_key == settings.key() and saved.checkpoint_signature == signature:
            saved.rows = [r for r in saved.rows if _row_still_valid(r, by_id)]
            out[path.name] = saved.rescored(answers)
        else:
            out[path.name] = CheckpointScores(
                checkpoint=path.name, step=checkpoint_step(path.name), eval_set=evalset.name,
                settings=settings_dict(settings), settings_key=settings.key(),
                checkpoint_signature=signature, rows=[], total=len(evalset.examples),
                eval_set_hash=evalset.content_hash)
    return out


def _row_still_valid(row: dict[str, Any], by_id: dict[str, EvalExample]) -> bool:
    ex = by_id.get(str(row.get("id")))
    return ex is not None and row.get("prompt") == ex.prompt and row.get("image") == ex.image_path.name


def run_eval(pool: ModelPool, run_dir: Path, checkpoints: Sequence[str | Path], evalset: EvalSet,
             settings: GenerationSettings, *, data_dir: Path | None = None, batch_size: int = 8,
             max_image_pixels: int = 40_000_000, on_progress: Progress = _no_progress,
             should_stop: Callable[[], bool] = _never) -> EvalRun:
    """Score every checkpoint on every example not already scored, saving after each chunk.

    Work is checkpoint-major (each model is acquired once) and batched with
    ``generate_batch``; if a model cannot batch, that checkpoint falls back to one example
    at a time. ``should_stop`` is checked between chunks; a stopped run keeps its rows.
    """
    scores = prepare_scores(run_dir, checkpoints, evalset, settings, data_dir)
    report = EvalRun(scores=scores)
    todo = {name: [ex for ex in evalset.examples if ex.id not in s.row_ids()] for name, s in scores.items()}
    report.reused = sum(s.n for s in scores.values())
    total = sum(len(v) for v in todo.values())
    done = 0
    on_progress(0, total, "starting")
    for ckpt in checkpoints:
        path = Path(ckpt)
        pending = todo[path.name]
        if not pending:
            continue
        if should_stop():
            report.stopped = True
            break
        on_progress(done, total, f"{path.name}: loading")
        try:
            t0 = time.perf_counter()
            with pool.acquire(path) as loaded:
                report.load_s += time.perf_counter() - t0
                state = _BatchState(batch_size=max(1, batch_size))
                for start in range(0, len(pending), state.batch_size):
                    if should_stop():
                        report.stopped = True
                        break
                    chunk = pending[start:start + state.batch_size]
                    t1 = time.perf_counter()
                    with loaded.lock:
                        rows = _run_chunk(loaded, chunk, settings, state, max_image_pixels)
                    report.generation_s += time.perf_counter() - t1
                    scores[path.name].rows.extend(rows)
                    report.saved_to[path.name] = save_scores(run_dir, scores[path.name], data_dir)
                    done += len(chunk)
                    report.computed += len(chunk)
                    on_progress(done, total, f"{path.name}: {scores[path.name].n}/{len(evalset.examples)}")
        except Exception as exc:  # load failure / OOM: report it, keep the other checkpoints going
            logger.warning("eval set: %s failed", path.name, exc_info=True)
            report.errors[path.name] = _error_text(exc)
            done += len([ex for ex in pending if ex.id not in scores[path.name].row_ids()])
        if report.stopped:
            break
    return report


@dataclass
class _BatchState:
    batch_size: int
    batching_ok: bool = True


def _run_chunk(loaded: Any, chunk: Sequence[EvalExample], settings: GenerationSettings, state: _BatchState,
               max_image_pixels: int) -> list[dict[str, Any]]:
    from dashboard.generation import generate, generate_batch
    from dashboard.images import load_image

    images: list[Any] = []
    rows: list[dict[str, Any]] = []
    good: list[EvalExample] = []
    for ex in chunk:
        try:
            images.append(load_image(ex.image_path, max_pixels=max_image_pixels))
            good.append(ex)
        except Exception as exc:  # the file changed since validation: score the row as a failure
            logger.warning("eval set: image of example %s unusable", ex.id, exc_info=True)
            rows.append(_row(ex, None, _error_text(exc)))
    if not good:
        return rows
    results: list[GenerationResult] | None = None
    if state.batching_ok and len(good) > 1:
        try:
            results = generate_batch(loaded, images, [ex.prompt for ex in good], settings, batch_size=len(good))
        except Exception:
            logger.warning("batched generation failed on %s; generating one example at a time",
                           loaded.path.name, exc_info=True)
            state.batching_ok = False  # e.g. no pad token: fall back to one at a time for this model
    if results is None:
        results = []
        for ex, img in zip(good, images, strict=True):
            try:
                results.append(generate(loaded, img, ex.prompt, settings))
            except Exception as exc:
                logger.warning("eval set: example %s failed", ex.id, exc_info=True)
                rows.append(_row(ex, None, _error_text(exc)))
                results.append(None)  # type: ignore[arg-type]
    for ex, res in zip(good, results, strict=True):
        if res is not None:
            rows.append(_row(ex, res, None))
    order = {ex.id: i for i, ex in enumerate(chunk)}
    return sorted(rows, key=lambda r: order[r["id"]])


def _row(ex: EvalExample, result: GenerationResult | None, error: str | None) -> dict[str, Any]:
    output = result.text if result is not None else ""
    row: dict[str, Any] = {
        "id": ex.id, "prompt": ex.prompt, "image": ex.image_path.name, "output": output,
        "scores": score(output, ex.answer),
        "prompt_tokens": result.prompt_tokens if result else 0,
        "output_tokens": result.output_tokens if result else 0,
        "latency_s": result.per_example_s if result else 0.0,
        "batch_size": result.batch_size if result else 1,
    }
    if error:
        row["error"] = error
    return row
