"""One sweep engine, two backends: run eval examples through several checkpoints.

A *sweep* is "for each checkpoint, these pending examples". The Comparison page, the
headless ``python -m dashboard eval`` and anything else that scores many examples hand a
list of :class:`SweepJob` to a :class:`SweepBackend` and receive rows back batch by batch
(``on_rows``), which they save as they arrive — so Stop, a crash or a dead worker keeps
what was computed. Two backends implement it:

- :class:`LocalBackend` — the in-process model pool (the default).
- ``RayBackend`` (:mod:`dashboard.compare.ray_backend`) — one Ray actor per checkpoint,
  chosen only when ``Settings.ray_address`` is set (:mod:`dashboard.compare.backends`); Ray is
  never imported otherwise, and this module never imports the Ray backend (no import circle).

Both run the very same :func:`score_chunk`, so their rows are identical for greedy decoding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dashboard.compare.identity import ResultIdentity
from dashboard.evalset import EvalExample
from dashboard.metrics import score

if TYPE_CHECKING:
    from dashboard.generation import GenerationResult, GenerationSettings
    from dashboard.models.pool import ModelPool
    from dashboard.models.turns import WaitCallback

logger = logging.getLogger(__name__)

OnRows = Callable[[str, list[dict[str, Any]]], None]
"""``(checkpoint name, rows of one finished batch)``."""
OnStatus = Callable[[str, str], None]
"""``(checkpoint name, message)`` — loading, retrying, failed …"""


@dataclass(frozen=True)
class SweepJob:
    """One checkpoint and the examples it still has to score."""

    checkpoint: Path
    examples: tuple[EvalExample, ...]
    identity: ResultIdentity | None = None
    """The result these rows belong to (:mod:`dashboard.compare.identity`); a remote worker checks the
    checkpoint content it sees against it."""

    @property
    def name(self) -> str:
        return self.checkpoint.name


@dataclass
class SweepOutcome:
    """What a backend did besides delivering rows."""

    stopped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    """Checkpoint name → why it failed (after any retries)."""
    retries: dict[str, int] = field(default_factory=dict)
    load_s: float = 0.0
    generation_s: float = 0.0


class SweepBackend(Protocol):
    """Runs jobs, calling ``on_rows`` for every finished batch; checks ``should_stop`` between batches
    (the local backend also every token, through the generation's stopping criteria)."""

    name: str

    def run(self, jobs: Sequence[SweepJob], settings: GenerationSettings, *, batch_size: int,
            max_image_pixels: int, on_rows: OnRows, on_status: OnStatus,
            should_stop: Callable[[], bool]) -> SweepOutcome: ...


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# ------------------------------------------------------------------------------ the work


@dataclass
class BatchState:
    """Per-model memory of whether batched generation works (no pad token → one at a time)."""

    batch_size: int
    batching_ok: bool = True


def score_chunk(loaded: Any, chunk: Sequence[EvalExample], settings: GenerationSettings, state: BatchState,
                max_image_pixels: int, should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Generate and score one chunk; a bad image or a failed generation becomes an error row.

    ``should_stop`` goes to the generation itself: once it is True the chunk raises
    :class:`~dashboard.generation.GenerationCancelled` (no ``except Exception`` here catches it),
    so its cut-short answers are never saved as scored rows.
    """
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
            rows.append(result_row(ex, None, error_text(exc)))
    if not good:
        return rows
    results: list[GenerationResult | None] | None = None
    if state.batching_ok and len(good) > 1:
        try:
            results = list(generate_batch(loaded, images, [ex.prompt for ex in good], settings,
                                          batch_size=len(good), should_stop=should_stop))
        except Exception:
            logger.warning("batched generation failed on %s; generating one example at a time",
                           loaded.path.name, exc_info=True)
            state.batching_ok = False  # e.g. no pad token: fall back to one at a time for this model
    if results is None:
        results = []
        for ex, img in zip(good, images, strict=True):
            try:
                results.append(generate(loaded, img, ex.prompt, settings, should_stop=should_stop))
            except Exception as exc:
                logger.warning("eval set: example %s failed", ex.id, exc_info=True)
                rows.append(result_row(ex, None, error_text(exc)))
                results.append(None)
    for ex, res in zip(good, results, strict=True):
        if res is not None:
            rows.append(result_row(ex, res, None))
    order = {ex.id: i for i, ex in enumerate(chunk)}
    return sorted(rows, key=lambda r: order[r["id"]])


def result_row(ex: EvalExample, result: GenerationResult | None, error: str | None) -> dict[str, Any]:
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


def chunks(examples: Sequence[EvalExample], size: int) -> list[tuple[EvalExample, ...]]:
    size = max(1, size)
    return [tuple(examples[i:i + size]) for i in range(0, len(examples), size)]


# ------------------------------------------------------------------------------ backends


class LocalBackend:
    """The in-process pool: checkpoint-major, each model acquired once, one chunk at a time."""

    name = "local"

    def __init__(self, pool: ModelPool):
        self.pool = pool

    def run(self, jobs: Sequence[SweepJob], settings: GenerationSettings, *, batch_size: int,
            max_image_pixels: int, on_rows: OnRows, on_status: OnStatus,
            should_stop: Callable[[], bool]) -> SweepOutcome:
        from dashboard.generation import GenerationCancelled

        outcome = SweepOutcome()
        for job in jobs:
            if not job.examples:
                continue
            if should_stop():
                outcome.stopped = True
                break
            on_status(job.name, "loading")
            try:
                t0 = time.perf_counter()
                with self.pool.acquire(job.checkpoint):  # loaded once and kept for the job (a pin is not a turn)
                    outcome.load_s += time.perf_counter() - t0
                    state = BatchState(batch_size=max(1, batch_size))
                    on_wait = queue_status(job.name, on_status, should_stop)
                    for chunk in chunks(job.examples, state.batch_size):
                        if should_stop():
                            outcome.stopped = True
                            break
                        # One FIFO turn per chunk: sessions waiting on this checkpoint get theirs in between.
                        with self.pool.turn(job.checkpoint, on_wait=on_wait) as loaded:
                            t1 = time.perf_counter()
                            with loaded.lock:
                                rows = score_chunk(loaded, chunk, settings, state, max_image_pixels, should_stop)
                            outcome.generation_s += time.perf_counter() - t1
                        on_rows(job.name, rows)
            except GenerationCancelled:  # mid-chunk: that chunk's cut-short rows are dropped, earlier ones kept
                outcome.stopped = True
            except Exception as exc:  # load failure / OOM: report it, keep the other checkpoints going
                logger.warning("eval set: %s failed", job.name, exc_info=True)
                outcome.errors[job.name] = error_text(exc)
                on_status(job.name, f"failed: {outcome.errors[job.name]}")
            if outcome.stopped:
                break
        return outcome


def queue_status(name: str, on_status: OnStatus, should_stop: Callable[[], bool]) -> WaitCallback:
    """``on_wait`` for a sweep's turns: the queue position goes to the progress line; Stop ends the wait."""
    from dashboard.generation import check_cancelled
    from dashboard.models.turns import waiting_text

    def on_wait(ahead: int, waited_s: float) -> None:
        check_cancelled(should_stop, name)
        on_status(name, waiting_text(ahead, waited_s))

    return on_wait
