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
import functools
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dashboard.compare.identity import checkpoint_signature, result_identity
from dashboard.compare.results import (
    CheckpointScores,
    checkpoint_step,
    load_scores,
    migrate_legacy,
    row_still_valid,
    rows_of_other_subsets,
    save_scores,
)
from dashboard.compare.sweep import LocalBackend, SweepBackend, SweepJob, error_text, queue_status
from dashboard.evalset import EvalSet

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


def compare_single(pool: ModelPool, checkpoints: Sequence[str | Path], image: Image.Image, prompt: str,
                   settings: GenerationSettings, cache: MutableMapping[CacheKey, SingleOutput], *,
                   image_digest: str, on_progress: Progress = _no_progress,
                   should_stop: Callable[[], bool] = _never) -> list[SingleOutput]:
    """Generate with every checkpoint (cached ones are not re-run); errors stay per checkpoint.

    ``should_stop`` is checked between checkpoints and, through the generation, every token: once
    it is True the outputs so far are returned and the cut-short one is neither returned nor cached.
    """
    from dashboard.generation import GenerationCancelled, generate

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
            with pool.acquire(path):  # the load, timed apart from the queue
                out.load_s = time.perf_counter() - t0
                on_wait = queue_status(path.name, functools.partial(_progress_line, on_progress, i, total),
                                       should_stop)
                with pool.turn(path, on_wait=on_wait) as loaded:  # one FIFO turn per generation
                    on_progress(i, total, f"{path.name}: generating")
                    result = generate(loaded, image, prompt, settings, should_stop=should_stop)
        except GenerationCancelled:
            break
        except Exception as exc:  # one bad checkpoint must not lose the others' outputs
            logger.warning("comparison: %s failed", path.name, exc_info=True)
            out.error = error_text(exc)
        else:
            _fill(out, result)
            cache[key] = out
        outputs.append(out)
        on_progress(i + 1, total, f"{path.name}: {'failed' if out.error else 'done'}")
    return outputs


def _progress_line(on_progress: Progress, done: int, total: int, name: str, message: str) -> None:
    on_progress(done, total, f"{name}: {message}")


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
    retries: dict[str, int] = field(default_factory=dict)
    backend: str = "local"


def settings_dict(settings: GenerationSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def prepare_scores(run_dir: Path, checkpoints: Sequence[str | Path], evalset: EvalSet,
                   settings: GenerationSettings, data_dir: Path | None = None,
                   borrowed: dict[str, int] | None = None) -> dict[str, CheckpointScores]:
    """Saved results that are still valid, rescored against the current answers; fresh ones otherwise.

    A result is looked up by its identity (:func:`~dashboard.compare.identity.result_identity`:
    checkpoint content, eval file hash, subset, settings, scorer version); rows it lacks are
    taken from results of the same identity but another subset (``borrowed`` gets how many per
    checkpoint), so neither the page nor the CLI regenerates an answer the other has saved.
    Rows are reused only for examples whose prompt and image are unchanged. Old-layout results
    of this set are migrated first (:func:`~dashboard.compare.results.migrate_legacy`).
    """
    migrate_legacy(run_dir, data_dir, lambda: [evalset])
    answers = {ex.id: ex.answer for ex in evalset.examples}
    by_id = evalset.by_id()
    out: dict[str, CheckpointScores] = {}
    for ckpt in checkpoints:
        path = Path(ckpt)
        ident = result_identity(path, evalset, settings)
        scores = CheckpointScores(
            checkpoint=path.name, step=checkpoint_step(path.name), eval_set=evalset.name,
            settings=settings_dict(settings), settings_key=ident.settings_key,
            checkpoint_signature=ident.checkpoint_signature, rows=[], total=len(evalset.examples),
            eval_set_hash=ident.eval_set_sha256, subset=ident.subset, scorer_version=ident.scorer_version)
        saved = load_scores(run_dir, evalset.name, path.name, data_dir, eval_set_hash=ident.eval_set_sha256,
                            settings_key=ident.settings_key, subset=ident.subset)
        if saved is not None and saved.identity == ident:
            scores.rows = [r for r in saved.rows if row_still_valid(r, by_id)]
            scores.saved_at = saved.saved_at
        have = scores.row_ids()
        if ident.eval_set_sha256 and len(have) < len(by_id):
            extra = [r for i, r in rows_of_other_subsets(run_dir, evalset.name, ident, data_dir).items()
                     if i in by_id and i not in have and row_still_valid(r, by_id)]
            scores.rows.extend(extra)
            if borrowed is not None and extra:
                borrowed[path.name] = len(extra)
        out[path.name] = scores.rescored(answers)
    return out


def run_eval(pool: ModelPool | None, run_dir: Path, checkpoints: Sequence[str | Path], evalset: EvalSet,
             settings: GenerationSettings, *, data_dir: Path | None = None, batch_size: int = 8,
             max_image_pixels: int = 40_000_000, on_progress: Progress = _no_progress,
             should_stop: Callable[[], bool] = _never, backend: SweepBackend | None = None) -> EvalRun:
    """Score every checkpoint on every example not already scored, saving after each batch.

    The work goes to ``backend`` (default: :class:`~dashboard.compare.sweep.LocalBackend`
    over ``pool``); rows come back batch by batch and are saved at once, so a stopped or
    failed run keeps them and a later run only does the rest. A checkpoint's saved file only
    ever grows: a batch adds rows, nothing removes any.
    """
    if backend is None:
        if pool is None:
            raise ValueError("run_eval needs a pool or a backend")
        backend = LocalBackend(pool)
    borrowed: dict[str, int] = {}
    scores = prepare_scores(run_dir, checkpoints, evalset, settings, data_dir, borrowed)
    report = EvalRun(scores=scores)
    for name in borrowed:  # rows taken from another subset's result: this subset's result now has them too
        report.saved_to[name] = save_scores(run_dir, scores[name], data_dir)
    jobs = [SweepJob(Path(c), tuple(ex for ex in evalset.examples if ex.id not in scores[Path(c).name].row_ids()),
                     scores[Path(c).name].identity) for c in checkpoints]
    report.reused = sum(s.n for s in scores.values())
    total = sum(len(j.examples) for j in jobs)
    progress = {"done": 0}
    on_progress(0, total, "starting")

    def on_rows(name: str, rows: list[dict[str, Any]]) -> None:
        known = scores[name].row_ids()
        fresh = [r for r in rows if str(r["id"]) not in known]  # a retried batch never duplicates rows
        scores[name].rows.extend(fresh)
        report.saved_to[name] = save_scores(run_dir, scores[name], data_dir)
        progress["done"] += len(fresh)
        report.computed += len(fresh)
        on_progress(progress["done"], total, f"{name}: {scores[name].n}/{len(evalset.examples)}")

    def on_status(name: str, message: str) -> None:
        on_progress(progress["done"], total, f"{name}: {message}")

    outcome = backend.run(jobs, settings, batch_size=batch_size, max_image_pixels=max_image_pixels,
                          on_rows=on_rows, on_status=on_status, should_stop=should_stop)
    report.stopped, report.errors, report.retries = outcome.stopped, outcome.errors, outcome.retries
    report.load_s, report.generation_s = outcome.load_s, outcome.generation_s
    report.backend = backend.name
    return report
