"""Score a run's checkpoints as they land: ``python -m dashboard watch`` and the app's *Live scoring*.

A :class:`Watcher` polls the run folder (no inotify: runs live on NFS and other shared disks
where change events do not arrive). Each poll it lists the loadable checkpoints, waits until a
checkpoint's files have stopped changing (:class:`Settler`), skips those that already have a
complete result for this eval set and these settings (:mod:`dashboard.live.identity`), and
scores the rest, oldest step first, through the very path ``python -m dashboard eval`` uses
(:func:`dashboard.compare.headless.score_and_report`): same sweep backend (the local pool, or Ray
when ``VLMLAB_RAY_ADDRESS`` is set), same result files, same report. Results are saved batch by
batch, so a watcher killed mid-checkpoint loses at most one batch and a restarted one does only
the rest. A ``threading.Event`` stops it between batches (and mid-generation on the local pool).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dashboard.compare.identity import checkpoint_signature
from dashboard.live.identity import has_complete_result, saved_result

if TYPE_CHECKING:
    from dashboard.compare.headless import EvalContext, EvalRequest
    from dashboard.compare.sweep import SweepBackend
    from dashboard.models.pool import ModelPool
    from dashboard.runs.checkpoints import CheckpointInfo

logger = logging.getLogger(__name__)

WatchState = Literal["starting", "waiting", "scoring", "stopped", "failed"]
TRAINER_STATE = "trainer_state.json"
TRAINER_ARGS = "training_args.bin"
POINTING_KEYS = ("n", "pointing", "chance", "mass_in_box")


@dataclass(frozen=True)
class WatchStatus:
    """A snapshot of one watcher, safe to read from any thread (the app's status line)."""

    state: WatchState = "starting"
    checkpoint: str | None = None
    done: int = 0
    total: int = 0
    scored: tuple[str, ...] = ()
    """Checkpoints this watcher scored (in order)."""
    errors: tuple[tuple[str, str], ...] = ()
    """(checkpoint, why) for checkpoints that could not be scored."""
    waiting_for: tuple[str, ...] = ()
    """Checkpoints seen but still being written."""
    error: str | None = None
    """Why the watcher itself stopped (state ``failed``)."""

    def text(self) -> str:
        """``scoring checkpoint-1200: 40/200`` or what it is waiting for."""
        if self.state == "scoring" and self.checkpoint:
            return f"scoring {self.checkpoint}: {self.done}/{self.total}"
        if self.state == "failed":
            return f"stopped: {self.error}"
        if self.state == "stopped":
            return f"stopped ({len(self.scored)} checkpoint(s) scored)"
        if self.state == "starting":
            return "starting"
        waiting = f"; {', '.join(self.waiting_for)} still being written" if self.waiting_for else ""
        return f"waiting for new checkpoints ({len(self.scored)} scored so far{waiting})"


class Settler:
    """Tells when a checkpoint folder is complete: nothing changed between two polls, weights parse.

    "Unchanged" is the results' own change detector (newest mtime + total size of the folder's
    files, :func:`~dashboard.compare.identity.checkpoint_signature`), so a result saved for a
    settled folder stays valid. A ``Trainer`` checkpoint (it has ``training_args.bin``, or its run's
    other checkpoints have a ``trainer_state.json``) is complete only once its own
    ``trainer_state.json`` is there: Trainer writes that file last.
    """

    def __init__(self, check: Callable[[Path], None]) -> None:
        self._check = check
        self._last: dict[Path, str] = {}

    def ready(self, path: Path, trainer_run: bool) -> bool:
        signature = checkpoint_signature(path)
        previous, self._last[path] = self._last.get(path), signature
        if previous != signature:
            return False
        if (trainer_run or (path / TRAINER_ARGS).is_file()) and not (path / TRAINER_STATE).is_file():
            return False
        try:
            self._check(path)  # headers of every weight file, config: a half-written file fails here
        except Exception as exc:  # any failure means "not loadable yet": logged, retried next poll
            logger.debug("checkpoint %s stable but not loadable yet: %s", path, exc)
            return False
        return True


@dataclass
class WatchConfig:
    """What to watch and how to score (the ``watch`` command's options)."""

    request: EvalRequest
    pointing: bool = False
    poll_s: float = 2.0
    until_idle_s: float | None = None
    """Return after this long without a new checkpoint scored or seen (None: until stopped)."""
    settings: Any = None
    """Base :class:`~dashboard.config.Settings` (the app passes its own); default the environment's."""


@dataclass
class _Memo:
    """Per-checkpoint facts the watcher keeps between polls (keyed by the folder's signature)."""

    done: dict[Path, str] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)


class Watcher:
    """Scores every checkpoint of a run that has no result yet, then each new one as it settles."""

    def __init__(self, config: WatchConfig, *, on_result: Callable[[dict[str, Any]], None] | None = None,
                 stop: threading.Event | None = None,
                 pool_factory: Callable[[], ModelPool] | None = None) -> None:
        from dashboard.compare.headless import eval_context

        self.config = config
        self.ctx: EvalContext = eval_context(config.request, config.settings)  # BadInput before anything starts
        self.stop_event = stop or threading.Event()
        self._on_result = on_result or (lambda line: None)
        self._pool_factory = pool_factory
        self._backend: SweepBackend | None = None
        self._pool: ModelPool | None = None
        self._settler = Settler(self._inspect)
        self._memo = _Memo()
        self._lock = threading.Lock()
        self._status = WatchStatus()

    # ------------------------------------------------------------------ status
    @property
    def status(self) -> WatchStatus:
        with self._lock:
            return self._status

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, **changes)

    # ------------------------------------------------------------------ the loop
    def run(self) -> WatchStatus:
        """Poll until stopped or idle for ``until_idle_s``; returns the final status."""
        idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self.poll():
                    idle_since = time.monotonic()
                limit = self.config.until_idle_s
                if limit is not None and time.monotonic() - idle_since >= limit:
                    break
                self.stop_event.wait(self.config.poll_s)
        except Exception as exc:
            logger.exception("live scoring of %s stopped", self.ctx.run_dir)
            self._set(state="failed", error=f"{type(exc).__name__}: {exc}", checkpoint=None)
            raise
        self._set(state="stopped", checkpoint=None)
        return self.status

    def poll(self) -> bool:
        """One pass: score every settled checkpoint without a result. True if anything new happened
        (a checkpoint scored, or one seen that is still being written)."""
        from dashboard.runs.checkpoints import discover_checkpoints

        infos = [c for c in discover_checkpoints(self.ctx.run_dir, [self.ctx.run_dir]) if c.loadable]
        infos.sort(key=lambda c: (c.step is None, c.step or 0, c.name))
        trainer_run = any((c.path / TRAINER_STATE).is_file() for c in infos)
        active = False
        waiting: list[str] = []
        for info in infos:
            if self.stop_event.is_set():
                break
            signature = checkpoint_signature(info.path)
            if self._memo.done.get(info.path) == signature or self._memo.failed.get(info.path) == signature:
                continue
            if not self._settler.ready(info.path, trainer_run):
                waiting.append(info.name)
                continue
            if has_complete_result(self.ctx, info.path):
                self._memo.done[info.path] = signature
                continue
            active = True
            self._score(info, signature)
        if waiting:
            active = True
        self._set(state="waiting", checkpoint=None, waiting_for=tuple(waiting))
        return active

    def score_path(self, path: Path) -> dict[str, Any] | None:
        """Score one checkpoint now, without waiting for it to settle (its writer says it is complete,
        e.g. ``Trainer``'s ``on_save``); None if it already had a complete result or scoring was stopped."""
        from dashboard.runs.checkpoints import checkpoint_step, inspect_checkpoint

        path = Path(path)
        info = inspect_checkpoint(path, path.name, checkpoint_step(path.name))
        if has_complete_result(self.ctx, path):
            return None
        lines: list[dict[str, Any]] = []
        emit, self._on_result = self._on_result, lines.append
        try:
            self._score(info, checkpoint_signature(path))
        finally:
            self._on_result = emit
        for line in lines:
            emit(line)
        return lines[0] if lines else None

    def release(self, path: Path) -> None:
        """Drop ``path``'s model from the local pool (a training process needs its memory back)."""
        if self._pool is not None:
            self._pool.evict(path)
        elif self._backend is not None and hasattr(self._backend, "pool"):
            self._backend.pool.evict(path)

    # ------------------------------------------------------------------ scoring one checkpoint
    def _score(self, info: CheckpointInfo, signature: str) -> None:
        from dashboard.compare.headless import context_backend, score_and_report

        total = len(self.ctx.evalset.examples)
        already = saved_result(self.ctx, info.path).n
        self._set(state="scoring", checkpoint=info.name, done=already, total=total)

        def on_progress(done: int, _total: int, message: str) -> None:
            self._set(done=min(total, already + done))

        if self._backend is None:
            self._backend = context_backend(self.ctx, self._pool_factory)
        report, outcome = score_and_report(self.ctx, [info.path], self._backend, on_progress=on_progress,
                                           should_stop=self.stop_event.is_set)
        if outcome.stopped or self.stop_event.is_set():
            return  # the rows so far are saved; a later watcher finishes this checkpoint
        if outcome.errors:
            error = outcome.errors.get(info.name) or "; ".join(outcome.errors.values())
            self._memo.failed[info.path] = signature
            self._set(errors=(*self.status.errors, (info.name, error)))
            self._on_result({"checkpoint": info.name, "step": info.step, "error": error})
            return
        (entry,) = [c for c in report["checkpoints"] if c["checkpoint"] == info.name]
        line: dict[str, Any] = {"checkpoint": entry["checkpoint"], "step": entry["step"], "n": entry["n"],
                                "metrics": entry["metrics"]}
        if self.config.pointing:
            line["pointing"] = self._pointing(info)
        self._memo.done[info.path] = signature
        self._set(scored=(*self.status.scored, info.name), done=total)
        self._on_result(line)

    def _pointing(self, info: CheckpointInfo) -> dict[str, Any]:
        """The Attention page's pointing score for this checkpoint (the ``pointing`` command's function)."""
        from dashboard.attention.adapters import LayoutError, UnsupportedFamily
        from dashboard.attention.analysis import pointing_over_checkpoints
        from dashboard.attention.hooks import CaptureError
        from dashboard.models.pool import CheckpointLoadError

        (scored,) = pointing_over_checkpoints(
            self._local_pool(), [info], self.ctx.evalset.examples, max_pixels=self.ctx.settings.max_image_pixels,
            errors=(CheckpointLoadError, UnsupportedFamily, LayoutError, CaptureError),
            should_stop=self.stop_event.is_set)
        summary = scored.summary()
        return {k: summary.get(k) for k in POINTING_KEYS} | ({"error": scored.error} if scored.error else {})

    def _local_pool(self) -> ModelPool:
        from dashboard.compare.sweep import LocalBackend
        from dashboard.models.pool import ModelPool

        if self._pool is None:
            if isinstance(self._backend, LocalBackend):
                self._pool = self._backend.pool
            else:
                self._pool = (self._pool_factory or (lambda: ModelPool.from_settings(self.ctx.settings)))()
        return self._pool

    def _inspect(self, path: Path) -> None:
        from dashboard.models.loading import inspect_checkpoint

        inspect_checkpoint(path, allow_pickle=self.ctx.settings.allow_pickle,
                           trust_remote_code=self.ctx.settings.trust_remote_code, roots=[self.ctx.run_dir])
